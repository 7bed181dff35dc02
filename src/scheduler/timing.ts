/**
 * Timing math for the scheduler, kept pure so unit tests can pin every edge without
 * Redis, timers or a database.
 */

/** setTimeout's ceiling: a longer delay overflows and fires at once, so timers re-arm in steps. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A re-delayed job waits at least this long, so a clock skew cannot spin a job in a hot loop. */
export const MIN_REDELAY_MS = 100;

/** Added to a re-delay so the retry lands just after the deadline rather than just before. */
const REDELAY_MARGIN_MS = 25;

/** What a delayed job carries. Versions make a job stale once its grant is extended or revoked. */
export type SchedulerJob =
  | { kind: 'expire-grant'; grantId: string; version: number }
  | { kind: 'remind-grant'; grantId: string; version: number }
  | { kind: 'timeout-request'; requestId: string };

/**
 * Deterministic job ids: the same grant version always maps to the same id, so a repeated
 * add (event replay, sweep) is a no-op and an extension (new version) gets a new job.
 * BullMQ refuses custom ids containing `:` (its key separator) and ids that parse as
 * integers, hence `-` separators and a `v` before the version.
 */
export function jobIdOf(job: SchedulerJob): string {
  switch (job.kind) {
    case 'expire-grant':
      return `expire-${job.grantId}-v${job.version}`;
    case 'remind-grant':
      return `remind-${job.grantId}-v${job.version}`;
    case 'timeout-request':
      return `timeout-${job.requestId}`;
  }
}

/** A safe BullMQ custom id: not an integer, no `:`. */
export function isSafeJobId(id: string): boolean {
  return id.length > 0 && !id.includes(':') && `${Number.parseInt(id, 10)}` !== id;
}

/**
 * When to send the before-expiry reminder, or undefined for none: a grant shorter than
 * `remind_before` gets no reminder, since the approval DM already said when it ends and a
 * reminder at the moment of granting would only be noise.
 */
export function reminderAt(
  grant: { startsAt: Date; expiresAt: Date },
  remindBeforeSeconds: number,
): Date | undefined {
  if (remindBeforeSeconds <= 0) return undefined;
  const at = grant.expiresAt.getTime() - remindBeforeSeconds * 1000;
  return at > grant.startsAt.getTime() ? new Date(at) : undefined;
}

/** Delay from `now` until `at`, never negative (a past deadline runs at once). */
export function delayUntil(at: Date, now: Date): number {
  return Math.max(0, at.getTime() - now.getTime());
}

/** One timer step: the whole delay, or the largest setTimeout accepts (the timer re-arms then). */
export function timerStep(delayMs: number): number {
  return Math.min(Math.max(0, delayMs), MAX_TIMER_MS);
}

/** How long a job that fired early waits before trying again. */
export function redelayMs(at: Date, now: Date): number {
  return Math.max(MIN_REDELAY_MS, delayUntil(at, now) + REDELAY_MARGIN_MS);
}

/** Runtime check of job data read back from Redis (it is JSON: trust nothing). */
export function parseJob(name: string, data: unknown): SchedulerJob | undefined {
  if (typeof data !== 'object' || data === null) return undefined;
  const record = data as Record<string, unknown>;
  const isId = (v: unknown): v is string => typeof v === 'string' && v.length > 0;
  const isVersion = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 1;
  switch (name) {
    case 'expire-grant':
    case 'remind-grant':
      return isId(record.grantId) && isVersion(record.version)
        ? { kind: name, grantId: record.grantId, version: record.version }
        : undefined;
    case 'timeout-request':
      return isId(record.requestId) ? { kind: name, requestId: record.requestId } : undefined;
    default:
      return undefined;
  }
}

/** A job and when it is due. */
export interface PlannedJob {
  id: string;
  job: SchedulerJob;
  at: Date;
}

const planned = (job: SchedulerJob, at: Date): PlannedJob => ({ id: jobIdOf(job), job, at });

/** The jobs an active grant's current version needs: its expiry and, when due, a reminder. */
export function grantJobs(
  grant: { id: string; version: number; startsAt: Date; expiresAt: Date },
  remindBeforeSeconds: number,
): PlannedJob[] {
  const jobs = [
    planned({ kind: 'expire-grant', grantId: grant.id, version: grant.version }, grant.expiresAt),
  ];
  const remindAt = reminderAt(grant, remindBeforeSeconds);
  if (remindAt)
    jobs.push(planned({ kind: 'remind-grant', grantId: grant.id, version: grant.version }, remindAt));
  return jobs;
}

export function requestJob(request: { id: string; timeoutAt: Date }): PlannedJob {
  return planned({ kind: 'timeout-request', requestId: request.id }, request.timeoutAt);
}

/** Ids of every job a grant may still have, up to its current version (for best-effort removal). */
export function grantJobIds(grantId: string, upToVersion: number): string[] {
  const ids: string[] = [];
  for (let version = 1; version <= upToVersion; version++) {
    ids.push(
      jobIdOf({ kind: 'expire-grant', grantId, version }),
      jobIdOf({ kind: 'remind-grant', grantId, version }),
    );
  }
  return ids;
}
