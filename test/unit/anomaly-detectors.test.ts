import { describe, expect, it } from 'vitest';
import {
  DEFAULT_TUNING,
  type DetectorState,
  detectDeniedBurst,
  detectLargeResponse,
  detectNewIp,
  detectOutsideHours,
  detectRateSpike,
  detectRevokedTokenUse,
  emptyState,
  type Finding,
  minuteOfDay,
  runDetectors,
  withinHours,
} from '../../src/anomaly/detectors.ts';
import type { CallRecord } from '../../src/shared/call-record.ts';

const T0 = Date.parse('2026-01-05T10:00:00Z');
const GRANT = '0b7d3f5e-8a41-4c1e-9d55-2c3b4a5e6f70';

/** A call `ms` after T0; override anything. */
function call(ms: number, over: Partial<CallRecord> = {}): CallRecord {
  return {
    at: new Date(T0 + ms),
    requestId: `req-${ms}`,
    resource: 'billing-api',
    grantId: GRANT,
    userId: 'U1',
    scope: 'read',
    method: 'GET',
    path: '/invoices/1',
    clientIp: '10.0.0.1',
    decision: 'allowed',
    status: 200,
    responseBytes: 100,
    latencyMs: 3,
    ...over,
  };
}
const denied = (ms: number, over: Partial<CallRecord> = {}) =>
  call(ms, { decision: 'out_of_scope', status: 403, ...over });

/** Feed a stateful detector a stream; the indexes of the records that produced a finding. */
function firing(
  records: readonly CallRecord[],
  detect: (s: DetectorState, r: CallRecord) => { state: DetectorState; finding?: Finding },
): number[] {
  let state = emptyState();
  const fired: number[] = [];
  records.forEach((r, i) => {
    const out = detect(state, r);
    state = out.state;
    if (out.finding) fired.push(i);
  });
  return fired;
}

const S = 1000;
const MIN = 60 * S;

describe('denied burst (10 in 60s)', () => {
  const rule = { count: 10, windowSeconds: 60, action: 'alert' as const };
  const detect = (s: DetectorState, r: CallRecord) => detectDeniedBurst(s, r, rule);
  it.each([
    {
      name: '10 denials in 9 s fire on the 10th',
      records: Array.from({ length: 10 }, (_, i) => denied(i * S)),
      fires: [9],
    },
    { name: '9 denials never fire', records: Array.from({ length: 9 }, (_, i) => denied(i * S)), fires: [] },
    {
      name: '10 denials spread over 90 s do not fire',
      records: Array.from({ length: 10 }, (_, i) => denied(i * 10 * S)),
      fires: [],
    },
    {
      name: 'allowed calls in between do not count (9 denials among 18 calls)',
      records: Array.from({ length: 18 }, (_, i) => (i % 2 ? denied(i * S) : call(i * S))),
      fires: [],
    },
    {
      name: 'exactly 60 s from first to 10th is outside the window',
      records: Array.from({ length: 10 }, (_, i) => denied(Math.round((i * 60 * S) / 9))),
      fires: [],
    },
    {
      name: 'a burst keeps firing while it lasts (the monitor de-duplicates)',
      records: Array.from({ length: 12 }, (_, i) => denied(i * S)),
      fires: [9, 10, 11],
    },
  ])('$name', ({ records, fires }) => {
    expect(firing(records, detect)).toEqual(fires);
  });
});

describe('rate far above the grant baseline (factor 5, ≥ 30/min, ≥ 5 min history)', () => {
  const rule = { factor: 5, action: 'alert' as const };
  const detect = (s: DetectorState, r: CallRecord) => detectRateSpike(s, r, rule);
  /** `perMinute[m]` calls spread over minute m. */
  const traffic = (perMinute: number[]) =>
    perMinute.flatMap((n, m) =>
      Array.from({ length: n }, (_, k) => call(m * MIN + Math.floor((k * MIN) / (n + 1)))),
    );
  it.each([
    { name: 'steady 4/min then 40 in a minute fires once', perMinute: [4, 4, 4, 4, 4, 4, 40], fires: 1 },
    { name: 'steady 10/min then 40 (4×) does not fire', perMinute: [10, 10, 10, 10, 10, 10, 40], fires: 0 },
    { name: 'a quiet grant’s 3rd call does not fire', perMinute: [0, 0, 0, 0, 0, 1, 2], fires: 0 },
    {
      name: '1/min then 20 (20× but under the 30/min floor) does not fire',
      perMinute: [1, 1, 1, 1, 1, 1, 20],
      fires: 0,
    },
    { name: 'a brand-new grant bursting has no baseline yet', perMinute: [200, 200], fires: 0 },
    { name: 'two spiking minutes fire once each', perMinute: [2, 2, 2, 2, 2, 2, 60, 2, 2, 400], fires: 2 },
  ])('$name', ({ perMinute, fires }) => {
    expect(firing(traffic(perMinute), detect)).toHaveLength(fires);
  });

  it('reports the evidence', () => {
    const records = traffic([4, 4, 4, 4, 4, 4, 40]);
    let state = emptyState();
    let finding: Finding | undefined;
    for (const r of records) {
      const out = detect(state, r);
      state = out.state;
      finding ??= out.finding;
    }
    expect(finding?.evidence).toMatchObject({ callsThisMinute: 30, baselinePerMinute: 4, factor: 5 });
  });
});

describe('revoked or expired token use', () => {
  const rule = { action: 'revoke' as const };
  it.each([
    { decision: 'grant_revoked', fires: true, action: 'revoke' },
    { decision: 'grant_expired', fires: true, action: 'revoke' },
    // Possibly the token from before an extension of a still-active grant: alert only.
    { decision: 'token_expired', fires: true, action: 'alert' },
    { decision: 'allowed', fires: false },
    { decision: 'out_of_scope', fires: false },
    { decision: 'invalid_token', fires: false },
  ])('$decision → $fires', ({ decision, fires, action }) => {
    const finding = detectRevokedTokenUse(
      call(0, { decision, status: decision === 'allowed' ? 200 : 403 }),
      rule,
    );
    expect(finding !== undefined).toBe(fires);
    if (finding) expect(finding.action).toBe(action);
  });
});

describe('new client IP', () => {
  const detect = (s: DetectorState, r: CallRecord) => detectNewIp(s, r, { action: 'alert' });
  const from = (...ips: string[]) => ips.map((clientIp, i) => call(i * S, { clientIp }));
  it.each([
    { name: 'the first IP is the baseline', records: from('10.0.0.1'), fires: [] },
    { name: 'the same IP again', records: from('10.0.0.1', '10.0.0.1', '10.0.0.1'), fires: [] },
    { name: 'a second IP fires', records: from('10.0.0.1', '10.0.0.1', '192.0.2.7'), fires: [2] },
    { name: 'each new IP fires once', records: from('a', 'b', 'a', 'b', 'c', 'c'), fires: [1, 4] },
  ])('$name', ({ records, fires }) => {
    expect(firing(records, detect)).toEqual(fires);
  });

  it('keeps state bounded', () => {
    let state = emptyState();
    for (let i = 0; i < 100; i++) state = detect(state, call(i, { clientIp: `10.0.0.${i}` })).state;
    expect(state.ips).toHaveLength(DEFAULT_TUNING.maxIps);
  });
});

describe('response larger than the limit (1000 bytes)', () => {
  it.each([
    { bytes: 0, fires: false },
    { bytes: 1000, fires: false },
    { bytes: 1001, fires: true },
    { bytes: 50_000_000, fires: true },
  ])('$bytes bytes → $fires', ({ bytes, fires }) => {
    expect(
      detectLargeResponse(call(0, { responseBytes: bytes }), { bytes: 1000, action: 'alert' }) !== undefined,
    ).toBe(fires);
  });
});

describe('outside allowed hours', () => {
  const berlin = {
    startMinute: 8 * 60,
    endMinute: 20 * 60,
    timeZone: 'Europe/Berlin',
    action: 'alert' as const,
  };
  const night = {
    startMinute: 22 * 60,
    endMinute: 6 * 60,
    timeZone: 'America/New_York',
    action: 'alert' as const,
  };
  it.each([
    // Berlin is UTC+1 in January, UTC+2 in July.
    { rule: berlin, at: '2026-01-05T06:59:00Z', fires: true, why: '07:59 Berlin, before 08:00' },
    { rule: berlin, at: '2026-01-05T07:00:00Z', fires: false, why: '08:00 Berlin, the start is inside' },
    { rule: berlin, at: '2026-01-05T18:59:00Z', fires: false, why: '19:59 Berlin' },
    { rule: berlin, at: '2026-01-05T19:00:00Z', fires: true, why: '20:00 Berlin, the end is outside' },
    { rule: berlin, at: '2026-07-05T06:30:00Z', fires: false, why: '08:30 Berlin in summer time' },
    { rule: berlin, at: '2026-07-05T18:30:00Z', fires: true, why: '20:30 Berlin in summer time' },
    // A window that wraps midnight: 22:00-06:00 New York (UTC-5 in January).
    { rule: night, at: '2026-01-06T03:30:00Z', fires: false, why: '22:30 New York, inside before midnight' },
    { rule: night, at: '2026-01-06T08:00:00Z', fires: false, why: '03:00 New York, inside after midnight' },
    { rule: night, at: '2026-01-06T11:00:00Z', fires: true, why: '06:00 New York, the end' },
    { rule: night, at: '2026-01-06T17:00:00Z', fires: true, why: '12:00 New York, midday' },
  ])('$why → $fires', ({ rule, at, fires }) => {
    const finding = detectOutsideHours({ ...call(0), at: new Date(at) }, rule);
    expect(finding !== undefined).toBe(fires);
  });

  it('computes local minutes and window membership', () => {
    expect(minuteOfDay(new Date('2026-01-05T23:30:00Z'), 'Asia/Kolkata')).toBe(5 * 60);
    expect(withinHours(0, 0, 1440)).toBe(true);
    expect(withinHours(1439, 0, 1440)).toBe(true);
    expect(withinHours(600, 600, 600)).toBe(true);
    expect(withinHours(23 * 60, 22 * 60, 6 * 60)).toBe(true);
    expect(withinHours(12 * 60, 22 * 60, 6 * 60)).toBe(false);
  });
});

describe('runDetectors', () => {
  it('runs only the rules the resource enables', () => {
    const record = call(0, { decision: 'grant_revoked', status: 403, responseBytes: 10_000 });
    expect(runDetectors(emptyState(), record, {}).findings).toEqual([]);
    const rules = {
      revokedTokenUse: { action: 'alert' as const },
      maxResponseBytes: { bytes: 10, action: 'alert' as const },
    };
    expect(runDetectors(emptyState(), record, rules).findings.map((f) => f.rule)).toEqual([
      'revoked_token_use',
      'max_response_bytes',
    ]);
  });

  it('counts denials without a grant (per IP) but leaves grant rules alone', () => {
    const rules = {
      deniedBurst: { count: 2, windowSeconds: 60, action: 'alert' as const },
      newIp: { action: 'alert' as const },
    };
    let state = emptyState();
    const rules2: string[] = [];
    for (const ip of ['1.1.1.1', '2.2.2.2']) {
      const out = runDetectors(
        state,
        denied(0, { grantId: undefined, clientIp: ip, decision: 'invalid_token' }),
        rules,
      );
      state = out.state;
      rules2.push(...out.findings.map((f) => f.rule));
    }
    expect(rules2).toEqual(['denied_burst']);
  });
});
