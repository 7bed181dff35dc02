import type { Db } from '../db/client.ts';
import { countPendingRequests, oldestOverdueRequestTimeout } from '../db/queries/access-requests.ts';
import { countLiveGrants, oldestOverdueGrantExpiry } from '../db/queries/grants/live.ts';
import { countDeadLetters, countUndelivered, oldestUndeliveredAt } from '../db/queries/outbox.ts';
import type { Clock } from '../shared/clock.ts';
import type { Metrics } from './metrics.ts';

/** Seconds from the earliest of `times` to `now`, 0 when there is none. */
function secondsSince(now: Date, ...times: (Date | null | undefined)[]): number {
  const earliest = Math.min(...times.map((t) => t?.getTime() ?? Number.POSITIVE_INFINITY));
  return Number.isFinite(earliest) ? Math.max(0, (now.getTime() - earliest) / 1000) : 0;
}

/** How much work is waiting and how late it is: what an operator graphs and alerts on. */
export interface Backlog {
  pendingRequests(): Promise<number>;
  activeGrants(): Promise<number>;
  /** Outbox messages not yet delivered (Slack down, or no bot running). */
  undeliveredMessages(): Promise<number>;
  /** Outbox messages with a Slack message given up (refused for good, or failing past the attempts). */
  deadLetters(): Promise<number>;
  /**
   * How far time-driven work is behind, in seconds: the longest any active grant has stayed
   * active past its expiry, or any pending request pending past its time-out (0 when none).
   * Read from the rows, not the queue, so it also shows jobs Redis lost that the sweep has
   * not yet healed. The proxy refuses such a grant regardless: this lag delays only the
   * state change and its messages.
   */
  schedulerLagSeconds(): Promise<number>;
  /** Age in seconds of the oldest message not yet delivered (0 when none). */
  outboxLagSeconds(): Promise<number>;
}

export function createBacklog(deps: { db: Db; clock: Clock }): Backlog {
  const { db, clock } = deps;
  return {
    pendingRequests: () => countPendingRequests(db),
    activeGrants: () => countLiveGrants(db, clock.now()),
    undeliveredMessages: () => countUndelivered(db),
    deadLetters: () => countDeadLetters(db),
    async schedulerLagSeconds() {
      const now = clock.now();
      const [grant, request] = await Promise.all([
        oldestOverdueGrantExpiry(db, now),
        oldestOverdueRequestTimeout(db, now),
      ]);
      return secondsSince(now, grant, request);
    },
    async outboxLagSeconds() {
      return secondsSince(clock.now(), await oldestUndeliveredAt(db));
    },
  };
}

/** The backlog as gauges, sampled at scrape time: name, help, and the reading behind each. */
export function registerBacklogGauges(metrics: Metrics, backlog: Backlog): void {
  const gauges: [string, string, () => Promise<number>][] = [
    ['jitgate_pending_requests', 'Access requests waiting for a decision', backlog.pendingRequests],
    ['jitgate_active_grants', 'Grants active and unexpired', backlog.activeGrants],
    ['jitgate_outbox_backlog', 'Slack messages not yet delivered', backlog.undeliveredMessages],
    [
      'jitgate_scheduler_lag_seconds',
      'Longest time an expiry or request time-out has been overdue without being processed',
      backlog.schedulerLagSeconds,
    ],
    [
      'jitgate_outbox_lag_seconds',
      'Age of the oldest Slack message not yet delivered',
      backlog.outboxLagSeconds,
    ],
    [
      'jitgate_outbox_dead_letters',
      'Outbox events with a Slack message given up: refused for good, or still failing after every attempt',
      backlog.deadLetters,
    ],
  ];
  for (const [name, help, read] of gauges) metrics.addGauge(name, help, read);
}
