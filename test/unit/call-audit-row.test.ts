import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { callAuditEvent, callAuditRow } from '../../src/audit/call-row.ts';
import { canonicalJson, canonicalRow, chainHash, GENESIS_HASH } from '../../src/audit/chain.ts';
import { chainFrom, eventRowPrefix } from '../../src/audit/chain-append.ts';
import { actorLabel } from '../../src/shared/actor.ts';
import type { CallRecord, CapturedBody } from '../../src/shared/call-record.ts';

/**
 * The appender writes a call's row with callAuditRow (text straight from the record); the
 * chain's meaning is callAuditEvent's event, serialised by canonicalJson. They must be the
 * same bytes, so the same hash, for every record the proxy can make.
 */

const date = fc.date({
  min: new Date('2000-01-01T00:00:00Z'),
  max: new Date('2100-01-01T00:00:00Z'),
  noInvalidDate: true,
});
const text = fc.string({ unit: 'binary', maxLength: 12 });
const optional = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
const number = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constantFrom(0, -0, 1e21, Number.NaN, Number.POSITIVE_INFINITY, Number.MAX_SAFE_INTEGER),
);
const body: fc.Arbitrary<CapturedBody> = fc.record(
  {
    text,
    encoding: fc.constantFrom('utf8' as const, 'base64' as const),
    bytes: fc.nat(),
    truncated: fc.boolean(),
    omitted: text,
  },
  { requiredKeys: ['text', 'encoding', 'bytes', 'truncated'] },
);
const grantId = fc.oneof(
  fc.uuid(),
  fc.uuid().map((u) => u.toUpperCase()),
  text,
  fc.constant(undefined),
);

const record: fc.Arbitrary<CallRecord> = fc
  .record({
    at: date,
    requestId: text,
    resource: text,
    grantId,
    userId: optional(fc.oneof(text, fc.constant(''))),
    scope: optional(text),
    method: fc.oneof(fc.constantFrom('GET', 'POST', 'DELETE'), text),
    path: text,
    clientIp: text,
    decision: fc.oneof(
      fc.constantFrom('allowed', 'out_of_scope', 'client_closed', 'audit_unavailable'),
      text,
    ),
    status: fc.integer({ min: 100, max: 599 }),
    responseBytes: number,
    latencyMs: number,
    capture: optional(fc.record({ request: optional(body), response: optional(body) })),
    quotaCounted: optional(fc.boolean()),
    aborted: optional(fc.constantFrom('client' as const, 'upstream' as const)),
    aggregated: optional(fc.record({ count: fc.nat(), firstAt: date, lastAt: date })),
  })
  .map((r) => {
    // Optional fields are absent rather than undefined, as the proxy builds records.
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(r))
      if (v !== undefined || k === 'grantId' || k === 'userId') out[k] = v;
    return out as unknown as CallRecord;
  });

describe('callAuditRow', () => {
  it("is callAuditEvent's canonical row, byte for byte, at any seq", () => {
    fc.assert(
      fc.property(record, fc.integer({ min: 1, max: 2 ** 40 }), (r, seq) => {
        const event = callAuditEvent(r);
        const expected = canonicalRow({
          seq,
          at: event.at,
          kind: event.kind,
          actor: actorLabel(event.actor),
          resource: event.resource ?? null,
          requestId: event.requestId ?? null,
          grantId: event.grantId ?? null,
          data: event.data ?? {},
        });
        expect(`${callAuditRow(r)}${seq}}`).toBe(expected);
        expect(eventRowPrefix(event)).toBe(callAuditRow(r));
        // Valid JSON whose data is what canonicalJson makes of the event's.
        expect(canonicalJson(JSON.parse(expected).data)).toBe(canonicalJson(event.data));
      }),
      { numRuns: 2_000 },
    );
  });

  it('chains to the same hashes as the event path', () => {
    fc.assert(
      fc.property(fc.array(record, { minLength: 1, maxLength: 8 }), (records) => {
        const { rows, batch } = chainFrom(undefined, records.map(callAuditRow));
        let prev = GENESIS_HASH;
        records.forEach((r, i) => {
          const event = callAuditEvent(r);
          const hash = chainHash(prev, {
            seq: i + 1,
            at: event.at,
            kind: event.kind,
            actor: actorLabel(event.actor),
            resource: event.resource ?? null,
            requestId: event.requestId ?? null,
            grantId: event.grantId ?? null,
            data: event.data ?? {},
          });
          expect(JSON.parse(rows[i]!)).toMatchObject({ seq: i + 1, prevHash: prev, hash });
          prev = hash;
        });
        expect(batch).toMatchObject({
          count: records.length,
          firstSeq: 1,
          lastSeq: records.length,
          lastHash: prev,
        });
      }),
      { numRuns: 300 },
    );
  });
});
