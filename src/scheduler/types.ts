import type { AccessService } from '../access/index.ts';
import type { AccessRequest, Grant } from '../db/schema/index.ts';
import type { OutboxMessage } from '../outbox/index.ts';
import type { PolicyStore } from '../policy/index.ts';
import type { Clock } from '../shared/clock.ts';

/** The part of pino the scheduler uses; a pino Logger fits as is. */
export interface SchedulerLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentLogger: SchedulerLogger = { info() {}, warn() {}, error() {} };

/** The access-service calls the scheduler makes: it never changes state any other way. */
export type SchedulerAccess = Pick<
  AccessService,
  | 'expireGrant'
  | 'expireDueGrants'
  | 'expireRequest'
  | 'remindGrant'
  | 'findOverdue'
  | 'revokeIdleGrants'
  | 'getGrant'
  | 'getRequest'
>;

export interface SchedulerBaseDeps {
  access: SchedulerAccess;
  policy: PolicyStore;
  clock: Clock;
  logger?: SchedulerLogger;
  /** Reconcile sweep period. Default 30 s. */
  sweepEveryMs?: number;
  /** Queues last week's report per resource when due; run by the sweep. Off when omitted. */
  weeklyReport?: { runDue(): Promise<number> };
}

/** What one reconcile sweep did (src/scheduler/reconcile.ts). */
export interface SweepResult {
  expiredGrants: number;
  expiredRequests: number;
  reminded: number;
  /** Grants revoked for going unused longer than their resource's `idle_timeout`. */
  idleRevoked: number;
  /** Weekly report messages queued by this sweep. */
  weeklyReports: number;
  /** Live grants / pending requests whose jobs were (re-)added; a present job is a no-op. */
  scheduledGrants: number;
  scheduledRequests: number;
  /** Steps that threw (database or Redis trouble); the next sweep tries again. */
  failures: number;
}

/**
 * Time-driven work on grants and requests: expire, remind, time out, reconcile. It tidies
 * state and triggers notifications; it never keeps an expired grant out (the proxy checks
 * the clock), so a late or missing job delays a DM, never a denial.
 */
export interface Scheduler {
  readonly kind: 'bullmq' | 'local';
  /** Connect, start processing (if this instance processes jobs) and run one sweep. */
  start(): Promise<void>;
  /** Graceful: stop taking jobs, let the current ones finish, close connections. */
  stop(): Promise<void>;
  /**
   * Pass as the access service's `onCommitted`. Never throws and never blocks the caller:
   * scheduling runs in the background, failures are logged and left to the sweep.
   */
  onAccessEvents(events: readonly OutboxMessage[]): void;
  /** Make sure the expiry (and reminder) jobs of the grant's current version exist. */
  scheduleGrant(grant: Grant): Promise<void>;
  /** Make sure a pending request's timeout job exists. */
  scheduleRequest(request: AccessRequest): Promise<void>;
  /** Reconcile now: complete what is past due in Postgres, re-add missing future jobs. */
  sweep(): Promise<SweepResult>;
  /** Resolves once background scheduling started by `onAccessEvents` has settled. */
  idle(): Promise<void>;
}
