import type { Db } from '../db/client.ts';
import { weeklyCountsByResource } from '../db/queries/audit-events/reads.ts';
import { queuedDedupeKeys } from '../db/queries/outbox.ts';
import { dedupeKey, enqueue, type OutboxMessageOf, type WeeklyReportCounts } from '../outbox/index.ts';
import type { PolicyStore } from '../policy/index.ts';
import type { Clock } from '../shared/clock.ts';

/**
 * The weekly report to each resource's approval channel: who got access, who used it, what
 * was refused. Every number comes from the audit log (the one record nobody can quietly
 * change), over `[periodStart, periodEnd)`:
 *
 * - grantsMade: `grant.created` rows in the period
 * - grantsUsed: distinct grants with at least one `proxy.call` (allowed call) in the period
 * - grantsUnused: grants made in the period that have no allowed call at all, up to periodEnd
 * - calls / deniedCalls: `proxy.call` / `proxy.denied` rows in the period
 * - alerts: `anomaly.alert` rows in the period
 * - idleRevoked: `grant.revoked` rows marked idle; offboarded: `user.offboarded`-driven
 *   grant revocations (rows carrying an `offboardId`)
 */

export interface WeeklyReport extends WeeklyReportCounts {
  resource: string;
  periodStart: Date;
  periodEnd: Date;
}

const WEEK_MS = 7 * 86_400_000;

/**
 * The end of the most recent complete report week at `now`: Monday `hourUtc`:00 UTC. Pure,
 * so the schedule is testable with a fixed clock: reports are due once `now` passes it.
 */
export function reportPeriodEnd(now: Date, hourUtc = 8): Date {
  const day = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate(), hourUtc));
  const sinceMonday = (day.getUTCDay() + 6) % 7;
  const monday = new Date(day.getTime() - sinceMonday * 86_400_000);
  return monday.getTime() <= now.getTime() ? monday : new Date(monday.getTime() - WEEK_MS);
}

/** The numbers for `resources` over `[periodStart, periodEnd)`, one row per resource (zeros included). */
export async function buildWeeklyReports(
  db: Db,
  input: { resources: readonly string[]; periodStart: Date; periodEnd: Date },
): Promise<WeeklyReport[]> {
  if (input.resources.length === 0) return [];
  const rows = await weeklyCountsByResource(db, input);
  const byResource = new Map(rows.map((r) => [r.resource, r]));
  return input.resources.map((resource) => {
    const r = byResource.get(resource);
    return {
      resource,
      periodStart: input.periodStart,
      periodEnd: input.periodEnd,
      grantsMade: r?.grantsMade ?? 0,
      grantsUsed: r?.grantsUsed ?? 0,
      grantsUnused: r?.grantsUnused ?? 0,
      calls: r?.calls ?? 0,
      deniedCalls: r?.deniedCalls ?? 0,
      alerts: r?.alerts ?? 0,
      idleRevoked: r?.idleRevoked ?? 0,
      offboarded: r?.offboarded ?? 0,
    };
  });
}

/** A week with nothing in it is not worth a message. */
function isQuiet(report: WeeklyReport): boolean {
  return (
    report.grantsMade +
      report.grantsUsed +
      report.calls +
      report.deniedCalls +
      report.alerts +
      report.idleRevoked ===
    0
  );
}

function toReportEvent(report: WeeklyReport): OutboxMessageOf<'weekly_report'> {
  return {
    kind: 'weekly_report',
    resource: report.resource,
    periodStart: report.periodStart.toISOString(),
    periodEnd: report.periodEnd.toISOString(),
    grantsMade: report.grantsMade,
    grantsUsed: report.grantsUsed,
    grantsUnused: report.grantsUnused,
    calls: report.calls,
    deniedCalls: report.deniedCalls,
    alerts: report.alerts,
    idleRevoked: report.idleRevoked,
    offboarded: report.offboarded,
  };
}

export interface WeeklyReporter {
  /** Queue last week's report of every resource not yet queued; returns how many were queued. */
  runDue(): Promise<number>;
}

/**
 * Called from the scheduler's sweep (BullMQ's reconcile job and the local timer alike), so
 * the report survives restarts, Redis flushes and several workers: each (resource, week)
 * becomes one outbox row whose dedupe key makes a second worker's insert a no-op, and the
 * outbox dispatcher posts it. A week is reported late rather than never after an outage.
 */
export function createWeeklyReporter(deps: {
  db: Db;
  policy: PolicyStore;
  clock: Clock;
  /** Hour (UTC) on Monday when the week closes. Default 8. */
  hourUtc?: number;
}): WeeklyReporter {
  const { db, policy, clock } = deps;
  return {
    async runDue() {
      const periodEnd = reportPeriodEnd(clock.now(), deps.hourUtc);
      const periodStart = new Date(periodEnd.getTime() - WEEK_MS);
      const resources = Object.keys(policy.current().resources);
      const keyOf = (resource: string) =>
        dedupeKey({ ...toReportEvent(emptyReport(resource, periodStart, periodEnd)) });
      // The common case every sweep: all already queued, one indexed look-up.
      const done = await queuedDedupeKeys(db, resources.map(keyOf));
      const todo = resources.filter((r) => !done.has(keyOf(r)));
      if (todo.length === 0) return 0;
      const reports = await buildWeeklyReports(db, { resources: todo, periodStart, periodEnd });
      const now = clock.now();
      // A quiet week is recorded as handled (sent_at set) without a message, so it is not rebuilt each sweep.
      const loud = reports.filter((r) => !isQuiet(r));
      const quiet = reports.filter(isQuiet);
      await db.transaction(async (tx) => {
        await enqueue(tx, loud.map(toReportEvent), now);
        await enqueue(tx, quiet.map(toReportEvent), now, { quiet: true });
      });
      return loud.length;
    },
  };
}

function emptyReport(resource: string, periodStart: Date, periodEnd: Date): WeeklyReport {
  return {
    resource,
    periodStart,
    periodEnd,
    grantsMade: 0,
    grantsUsed: 0,
    grantsUnused: 0,
    calls: 0,
    deniedCalls: 0,
    alerts: 0,
    idleRevoked: 0,
    offboarded: 0,
  };
}
