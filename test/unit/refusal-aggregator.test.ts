import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { aggregateRefusals } from '../../src/proxy/refusal-aggregator.ts';
import type { CallRecord, CallSink } from '../../src/shared/call-record.ts';
import { manualClock } from '../../src/shared/clock.ts';

const collect = (): CallSink & { rows: CallRecord[] } => {
  const rows: CallRecord[] = [];
  return { rows, offer: (r) => rows.push(r) > 0, hasCapacity: () => true };
};

let n = 0;
const refusal = (
  at: Date,
  clientIp: string,
  decision: string,
  extra: Partial<CallRecord> = {},
): CallRecord => ({
  at,
  requestId: `r-${n++}`,
  resource: 'billing-api',
  grantId: undefined,
  userId: undefined,
  scope: undefined,
  method: 'GET',
  path: '/x',
  clientIp,
  decision,
  status: 401,
  responseBytes: 0,
  latencyMs: 1,
  ...extra,
});

/** How many refusals a set of rows stands for. */
const counted = (rows: readonly CallRecord[]) => rows.reduce((sum, r) => sum + (r.aggregated?.count ?? 1), 0);

describe('refusal aggregator', () => {
  it('passes calls with a verified token and allowed calls through, one row each', async () => {
    const clock = manualClock();
    const sink = collect();
    const aggregated = aggregateRefusals(sink, { clock, detailPerKey: 1 });
    for (let i = 0; i < 5; i++) {
      aggregated.offer(refusal(clock.now(), '198.51.100.1', 'grant_revoked', { grantId: 'g1' }));
      aggregated.offer(refusal(clock.now(), '198.51.100.1', 'allowed', { grantId: 'g1', status: 200 }));
    }
    await aggregated.close();
    expect(sink.rows).toHaveLength(10);
    expect(sink.rows.every((r) => r.aggregated === undefined)).toBe(true);
  });

  it('writes the first refusals of a key in full, then one row counting the rest of the window', async () => {
    const clock = manualClock();
    const sink = collect();
    const aggregated = aggregateRefusals(sink, {
      clock,
      detailPerKey: 3,
      windowMs: 60_000,
      knownResource: (name) => name === 'billing-api',
    });
    const first = clock.now();
    for (let i = 0; i < 50; i++) {
      aggregated.offer(refusal(clock.now(), '198.51.100.1', 'missing_token'));
      clock.advance(100);
    }
    expect(sink.rows).toHaveLength(3);
    // The next window starts with the first refusal after it: the summary of the last one goes out.
    clock.advance(60_000);
    aggregated.offer(refusal(clock.now(), '198.51.100.1', 'missing_token'));
    const summary = sink.rows[3];
    expect(summary?.aggregated).toEqual({
      count: 47,
      firstAt: new Date(first.getTime() + 300),
      lastAt: new Date(first.getTime() + 4900),
    });
    expect(summary).toMatchObject({
      decision: 'missing_token',
      clientIp: '198.51.100.1',
      resource: 'billing-api',
    });
    expect(sink.rows[4]?.aggregated).toBeUndefined();
    await aggregated.close();
    expect(counted(sink.rows)).toBe(51);
  });

  it('past maxKeys, new clients share one row per decision, address "*"', async () => {
    const clock = manualClock();
    const sink = collect();
    const aggregated = aggregateRefusals(sink, { clock, detailPerKey: 1, maxKeys: 10, detailBudget: 1000 });
    for (let i = 0; i < 500; i++)
      aggregated.offer(refusal(clock.now(), `2001:db8::${i.toString(16)}`, 'invalid_token'));
    aggregated.flush();
    // Ten keys in full, plus the overflow key's first in full and one summary for the other 489.
    expect(sink.rows).toHaveLength(12);
    expect(sink.rows.at(-1)).toMatchObject({ clientIp: '*', aggregated: { count: 489 } });
    expect(counted(sink.rows)).toBe(500);
    await aggregated.close();
  });

  it('a window writes at most detailBudget + maxKeys + one per decision rows, whatever the flood', async () => {
    const clock = manualClock();
    const sink = collect();
    const aggregated = aggregateRefusals(sink, { clock, detailPerKey: 10, detailBudget: 100, maxKeys: 50 });
    const decisions = ['missing_token', 'invalid_token', 'bad_request'];
    for (let i = 0; i < 30_000; i++) {
      aggregated.offer(refusal(clock.now(), `2001:db8::${(i % 5000).toString(16)}`, decisions[i % 3]!));
    }
    aggregated.flush();
    expect(sink.rows.length).toBeLessThanOrEqual(100 + 50 + decisions.length);
    expect(counted(sink.rows)).toBe(30_000);
    await aggregated.close();
  });

  it('property: every refusal is counted exactly once, and verified calls pass one row each', async () => {
    const decisions = ['missing_token', 'invalid_token', 'bad_path', 'method_not_allowed'];
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            ip: fc.integer({ min: 0, max: 40 }),
            decision: fc.constantFrom(...decisions),
            verified: fc.boolean(),
            gapMs: fc.integer({ min: 0, max: 5_000 }),
          }),
          { maxLength: 400 },
        ),
        fc.integer({ min: 1, max: 5 }),
        async (events, detailPerKey) => {
          const clock = manualClock();
          const sink = collect();
          const aggregated = aggregateRefusals(sink, {
            clock,
            detailPerKey,
            detailBudget: 20,
            maxKeys: 8,
            windowMs: 30_000,
          });
          for (const e of events) {
            clock.advance(e.gapMs);
            aggregated.offer(
              refusal(clock.now(), `10.0.0.${e.ip}`, e.decision, e.verified ? { grantId: 'g' } : {}),
            );
          }
          await aggregated.close();
          expect(counted(sink.rows)).toBe(events.length);
          const verified = sink.rows.filter((r) => r.grantId !== undefined);
          expect(verified).toHaveLength(events.filter((e) => e.verified).length);
          expect(verified.every((r) => r.aggregated === undefined)).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });
});
