import type { AnomalyAction, AnomalyRules } from '../policy/types.ts';
import type { CallRecord } from '../shared/call-record.ts';

/**
 * Anomaly detectors: pure functions of (state, record, rule) → (state, finding?). Time is
 * the record's own `at`, so a test replays traffic with any timestamps it likes and the
 * result never depends on when it runs. State is per subject (a grant, or a client IP for
 * calls refused before a grant was known) and small by construction.
 */

const RULES = [
  'denied_burst',
  'rate_factor',
  'revoked_token_use',
  'new_ip',
  'max_response_bytes',
  'hours',
] as const;
export type RuleName = (typeof RULES)[number];

export interface Finding {
  rule: RuleName;
  action: AnomalyAction;
  summary: string;
  evidence: Record<string, unknown>;
  /** How long the same rule stays quiet for the same subject after it fired. */
  windowMs: number;
}

export interface DetectorState {
  /** Times (ms) of the latest denials, oldest first; at most `deniedBurst.count` kept. */
  denials: readonly number[];
  /** Calls per minute: the minute `rateMinute` counts `rateCounts[0]`, earlier minutes after it. */
  rateMinute: number;
  rateCounts: readonly number[];
  /** First minute this subject was seen; the baseline needs some history. */
  firstMinute: number | undefined;
  /** Client IPs seen, first one first (the baseline). */
  ips: readonly string[];
}

export const emptyState = (): DetectorState => ({
  denials: [],
  rateMinute: 0,
  rateCounts: [],
  firstMinute: undefined,
  ips: [],
});

export interface DetectorTuning {
  /** Minutes of history the rate baseline averages over. */
  baselineMinutes: number;
  /** A subject younger than this has no baseline yet, so no rate alert. */
  minBaselineMinutes: number;
  /** Fewer calls than this in a minute never count as a spike, whatever the baseline. */
  minCallsPerMinute: number;
  /** IPs remembered per grant; more are still compared but not added. */
  maxIps: number;
  /** De-duplication window for rules without a window of their own. */
  defaultWindowMs: number;
}

export const DEFAULT_TUNING: DetectorTuning = {
  baselineMinutes: 15,
  minBaselineMinutes: 5,
  minCallsPerMinute: 30,
  maxIps: 32,
  defaultWindowMs: 15 * 60_000,
};

const MINUTE = 60_000;

const REVOKED_DECISIONS: ReadonlySet<string> = new Set(['grant_revoked', 'grant_expired', 'token_expired']);

const isDenied = (record: CallRecord) => record.decision !== 'allowed';

export function detectDeniedBurst(
  state: DetectorState,
  record: CallRecord,
  rule: NonNullable<AnomalyRules['deniedBurst']>,
): { state: DetectorState; finding?: Finding } {
  if (!isDenied(record)) return { state };
  const t = record.at.getTime();
  const windowMs = rule.windowSeconds * 1000;
  // Keep only the last `count` denials: the burst fires when the oldest of them is still
  // inside the window, so older ones can never matter.
  const denials = [...state.denials, t].slice(-rule.count);
  const next = { ...state, denials };
  const oldest = denials[0]!;
  if (denials.length < rule.count || t - oldest >= windowMs) return { state: next };
  return {
    state: next,
    finding: {
      rule: 'denied_burst',
      action: rule.action,
      summary: `${rule.count} denied calls within ${rule.windowSeconds}s`,
      evidence: {
        denied: rule.count,
        windowSeconds: rule.windowSeconds,
        firstAt: new Date(oldest).toISOString(),
        lastAt: record.at.toISOString(),
        lastDecision: record.decision,
        lastPath: `${record.method} ${record.path}`,
      },
      windowMs,
    },
  };
}

/** Roll the per-minute counters forward to `minute` and count one call in it. */
function countCall(state: DetectorState, minute: number, keep: number): DetectorState {
  const gap = minute - state.rateMinute;
  let counts: number[];
  if (state.rateCounts.length === 0 || gap >= keep) counts = [1];
  else if (gap <= 0) {
    // Same minute (or a slightly late record): count it in the newest bucket.
    counts = [...state.rateCounts];
    counts[0] = (counts[0] ?? 0) + 1;
  } else {
    counts = [1, ...new Array<number>(gap - 1).fill(0), ...state.rateCounts].slice(0, keep);
  }
  return {
    ...state,
    rateMinute: gap > 0 || state.rateCounts.length === 0 ? minute : state.rateMinute,
    rateCounts: counts,
    firstMinute: state.firstMinute ?? minute,
  };
}

export function detectRateSpike(
  state: DetectorState,
  record: CallRecord,
  rule: NonNullable<AnomalyRules['rateFactor']>,
  tuning: DetectorTuning = DEFAULT_TUNING,
): { state: DetectorState; finding?: Finding } {
  const minute = Math.floor(record.at.getTime() / MINUTE);
  const next = countCall(state, minute, tuning.baselineMinutes + 1);
  const current = next.rateCounts[0] ?? 0;
  const age = minute - (next.firstMinute ?? minute);
  if (age < tuning.minBaselineMinutes) return { state: next };
  // Average over the trailing minutes the subject has existed for (idle minutes count as 0).
  const span = Math.min(tuning.baselineMinutes, age);
  let sum = 0;
  for (let i = 1; i <= span; i++) sum += next.rateCounts[i] ?? 0;
  const baseline = sum / span;
  // Fire on the call that first meets both the volume floor and the factor in this
  // minute, so one spike is one finding, not one per call.
  const threshold = rule.factor * Math.max(baseline, 1);
  const spike = (n: number) => n >= tuning.minCallsPerMinute && n > threshold;
  if (!spike(current) || spike(current - 1)) return { state: next };
  return {
    state: next,
    finding: {
      rule: 'rate_factor',
      action: rule.action,
      summary: `${current} calls in a minute, over ${rule.factor}× the grant's usual ${baseline.toFixed(1)}/min`,
      evidence: {
        callsThisMinute: current,
        baselinePerMinute: Math.round(baseline * 10) / 10,
        baselineMinutes: span,
        factor: rule.factor,
      },
      windowMs: tuning.defaultWindowMs,
    },
  };
}

export function detectRevokedTokenUse(
  record: CallRecord,
  rule: NonNullable<AnomalyRules['revokedTokenUse']>,
  tuning: DetectorTuning = DEFAULT_TUNING,
): Finding | undefined {
  if (!REVOKED_DECISIONS.has(record.decision)) return undefined;
  const what = record.decision === 'grant_revoked' ? 'a revoked grant' : 'an expired grant';
  return {
    rule: 'revoked_token_use',
    // An expired token may belong to a grant that is still active (the token from before an
    // extension): stale, not stolen, so it is never grounds to revoke. For an ended grant,
    // revoking changes nothing either way.
    action: record.decision === 'token_expired' ? 'alert' : rule.action,
    summary: `call with the token of ${what} (${record.decision})`,
    evidence: {
      decision: record.decision,
      call: `${record.method} ${record.path}`,
      clientIp: record.clientIp,
      at: record.at.toISOString(),
    },
    windowMs: tuning.defaultWindowMs,
  };
}

export function detectNewIp(
  state: DetectorState,
  record: CallRecord,
  rule: NonNullable<AnomalyRules['newIp']>,
  tuning: DetectorTuning = DEFAULT_TUNING,
): { state: DetectorState; finding?: Finding } {
  if (state.ips.includes(record.clientIp)) return { state };
  const ips = state.ips.length < tuning.maxIps ? [...state.ips, record.clientIp] : state.ips;
  const next = { ...state, ips };
  // The first address a grant is used from is its baseline.
  if (state.ips.length === 0) return { state: next };
  return {
    state: next,
    finding: {
      rule: 'new_ip',
      action: rule.action,
      summary: `call from a new client IP ${record.clientIp}`,
      evidence: {
        clientIp: record.clientIp,
        knownIps: state.ips.slice(0, 5),
        call: `${record.method} ${record.path}`,
      },
      windowMs: tuning.defaultWindowMs,
    },
  };
}

export function detectLargeResponse(
  record: CallRecord,
  rule: NonNullable<AnomalyRules['maxResponseBytes']>,
  tuning: DetectorTuning = DEFAULT_TUNING,
): Finding | undefined {
  if (record.responseBytes <= rule.bytes) return undefined;
  return {
    rule: 'max_response_bytes',
    action: rule.action,
    summary: `response of ${record.responseBytes} bytes, over the ${rule.bytes}-byte limit`,
    evidence: { bytes: record.responseBytes, limit: rule.bytes, call: `${record.method} ${record.path}` },
    windowMs: tuning.defaultWindowMs,
  };
}

// Intl.DateTimeFormat is costly to build; one per time zone, reused.
const formatters = new Map<string, Intl.DateTimeFormat>();

/** Minutes since local midnight in `timeZone` (0–1439), DST included. */
export function minuteOfDay(at: Date, timeZone: string): number {
  let format = formatters.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-GB', {
      timeZone,
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    });
    formatters.set(timeZone, format);
  }
  let hour = 0;
  let minute = 0;
  for (const part of format.formatToParts(at)) {
    if (part.type === 'hour') hour = Number(part.value);
    else if (part.type === 'minute') minute = Number(part.value);
  }
  return hour * 60 + minute;
}

/**
 * Inside [start, end) local time. A window whose end is before its start wraps midnight
 * (22:00-06:00); start == end means the whole day.
 */
export function withinHours(minute: number, startMinute: number, endMinute: number): boolean {
  if (startMinute === endMinute) return true;
  return startMinute < endMinute
    ? minute >= startMinute && minute < endMinute
    : minute >= startMinute || minute < endMinute;
}

const hhmm = (m: number) =>
  `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;

export function detectOutsideHours(
  record: CallRecord,
  rule: NonNullable<AnomalyRules['hours']>,
  tuning: DetectorTuning = DEFAULT_TUNING,
): Finding | undefined {
  const local = minuteOfDay(record.at, rule.timeZone);
  if (withinHours(local, rule.startMinute, rule.endMinute)) return undefined;
  const allowed = `${hhmm(rule.startMinute)}-${hhmm(rule.endMinute)} ${rule.timeZone}`;
  return {
    rule: 'hours',
    action: rule.action,
    summary: `call at ${hhmm(local)} ${rule.timeZone}, outside the allowed ${allowed}`,
    evidence: { localTime: hhmm(local), allowed, call: `${record.method} ${record.path}` },
    windowMs: tuning.defaultWindowMs,
  };
}

/** Run every rule the resource enables over one record. */
export function runDetectors(
  state: DetectorState,
  record: CallRecord,
  rules: AnomalyRules,
  tuning: DetectorTuning = DEFAULT_TUNING,
): { state: DetectorState; findings: Finding[] } {
  const findings: Finding[] = [];
  let next = state;
  const take = (result: { state: DetectorState; finding?: Finding }) => {
    next = result.state;
    if (result.finding) findings.push(result.finding);
  };
  const add = (finding: Finding | undefined) => {
    if (finding) findings.push(finding);
  };
  if (rules.revokedTokenUse) add(detectRevokedTokenUse(record, rules.revokedTokenUse, tuning));
  if (rules.deniedBurst) take(detectDeniedBurst(next, record, rules.deniedBurst));
  // Rate, IP, size and hours are about what a grant's holder does: only calls tied to a grant.
  if (record.grantId !== undefined) {
    if (rules.rateFactor) take(detectRateSpike(next, record, rules.rateFactor, tuning));
    if (rules.newIp) take(detectNewIp(next, record, rules.newIp, tuning));
    if (rules.maxResponseBytes) add(detectLargeResponse(record, rules.maxResponseBytes, tuning));
    if (rules.hours) add(detectOutsideHours(record, rules.hours, tuning));
  }
  return { state: next, findings };
}
