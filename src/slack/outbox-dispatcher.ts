import { appendAuditEvents } from '../audit/chain-append.ts';
import {
  claimDueOutboxRows,
  endOutageWaits,
  markOutboxSent,
  markOutboxStepDead,
  markOutboxStepDone,
  probeWithOutageRow,
  scheduleOutboxRetry,
} from '../db/queries/outbox.ts';
import type { OutboxRow } from '../db/schema/index.ts';
import { readOutboxMessage } from '../outbox/index.ts';
import type { HomeTabs } from './home.ts';
import { createDeliveries, type DeliveryDeps, type Step } from './outbox-deliveries.ts';
import { isPermanent, SlackCallError } from './slack-errors.ts';

/**
 * Delivers the `outbox` rows the access service writes with every state change. Rows are
 * claimed with a lease (`FOR UPDATE SKIP LOCKED`, then `next_attempt_at` pushed past the
 * lease) and each of a row's messages is sent as its own step (see outbox-deliveries.ts).
 *
 * Failures are sorted once (slack-errors.ts). Retryable ones (429, 5xx, the network) keep the
 * row with `last_error` and a backed-off `next_attempt_at` (never sooner than Slack's
 * Retry-After), up to `maxAttempts`. Permanent ones (`invalid_blocks`, `not_in_channel`, …)
 * are not retried: a short stand-in is sent where one helps, and the message becomes a dead
 * letter — audited (`outbox.dead_letter`), logged, counted (`jitgate_outbox_dead_letters`).
 * A step that failed never stops the row's other steps, nor the rows after it.
 *
 * Catching up after an outage: backoff grows while Slack fails, but the first call Slack
 * answers again makes every row waiting out that outage due at once, in every process
 * (endOutageWaits). While rows wait, the poll tries the one due soonest early, every
 * `probeIntervalMs`, without counting the try: the same call that failed, so a method or
 * channel that alone keeps failing keeps its backoff.
 * Rows are sent by `workers` workers, each a batch at a time with the batch's lanes (one per
 * request or grant, in order within it) in parallel: one hung call holds up its lane only.
 */

export interface OutboxDispatcherDeps extends DeliveryDeps {
  homes?: HomeTabs;
  pollIntervalMs?: number;
  /** Rows one worker claims at a time; their lanes (see laneOf) are sent in parallel. */
  batchSize?: number;
  /** Workers claiming and sending at once: a call that hangs holds up one worker's batch only. */
  workers?: number;
  /** While rows wait out an outage, how often one of them is tried early to learn whether Slack is back. */
  probeIntervalMs?: number;
  /** How long a claimed row is hidden from other dispatchers while being sent. */
  leaseMs?: number;
  maxBackoffMs?: number;
  /** Claims of a row, first included, before a message still failing is given up. */
  maxAttempts?: number;
}

export interface OutboxDispatcher {
  /** Deliver what is due soon (called from the access service's `onCommitted`); never throws. */
  kick(): void;
  /** Deliver everything due now; resolves with how many rows were finished. */
  drain(): Promise<number>;
  /** Poll every `pollIntervalMs` (catches rows left by crashes, other processes and retries). */
  start(): void;
  /** While rows wait out an outage, tries one early (each poll does); then delivers what is due. */
  probe(): Promise<void>;
  /** Stop polling and wait for the delivery in progress. */
  stop(): Promise<void>;
}

/** 1 s, 2 s, 4 s … after each failed attempt, capped at `maxMs`. */
function backoffMs(attempts: number, maxMs: number): number {
  return Math.min(maxMs, 1000 * 2 ** Math.min(Math.max(0, attempts - 1), 20));
}

interface Failure {
  step: string;
  error: unknown;
}

/** Why a failed row waits: an outage ends when Slack answers again; a Retry-After does not. */
function waitOf(failures: Failure[]): 'outage' | 'rate_limit' | null {
  const slack = failures.map((f) => f.error).filter((e): e is SlackCallError => e instanceof SlackCallError);
  if (slack.some((e) => e.retryAfterMs !== undefined)) return 'rate_limit';
  return slack.some((e) => e.retryable) ? 'outage' : null;
}

/** Rows of one request (or grant) are sent in order; the rest in parallel. */
function laneOf(row: OutboxRow): string {
  const { requestId, grantId } = row.payload;
  if (typeof requestId === 'string') return `request:${requestId}`;
  if (typeof grantId === 'string') return `grant:${grantId}`;
  return `row:${row.id}`;
}

function lanes(rows: OutboxRow[]): OutboxRow[][] {
  const byLane = new Map<string, OutboxRow[]>();
  for (const row of rows) {
    const lane = byLane.get(laneOf(row)) ?? [];
    lane.push(row);
    byLane.set(laneOf(row), lane);
  }
  return [...byLane.values()];
}

const describe = (error: unknown): string =>
  error instanceof SlackCallError ? error.message : error instanceof Error ? error.message : String(error);

/** The ids a dead letter's audit row names, read with care from stored JSON. */
function subjectOf(payload: Record<string, unknown>): {
  requestId?: string;
  grantId?: string;
  resource?: string;
} {
  const str = (key: string) => (typeof payload[key] === 'string' ? (payload[key] as string) : undefined);
  const subject: { requestId?: string; grantId?: string; resource?: string } = {};
  const requestId = str('requestId');
  const grantId = str('grantId');
  const resource = str('resource');
  if (requestId) subject.requestId = requestId;
  if (grantId) subject.grantId = grantId;
  if (resource) subject.resource = resource;
  return subject;
}

export function createOutboxDispatcher(deps: OutboxDispatcherDeps): OutboxDispatcher {
  const { db, clock } = deps;
  const log = deps.logger.child({ component: 'slack-outbox' });
  const batchSize = deps.batchSize ?? 5;
  const workers = deps.workers ?? 4;
  const probeIntervalMs = deps.probeIntervalMs ?? 2000;
  const leaseMs = deps.leaseMs ?? 60_000;
  const maxBackoffMs = deps.maxBackoffMs ?? 15 * 60_000;
  const maxAttempts = deps.maxAttempts ?? 12;
  const deliveries = createDeliveries({ ...deps, logger: log });
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<number> | undefined;
  let again = false;
  // Set while rows may wait out a Slack outage; cleared by the first call Slack answers, or when
  // none waits. Set at start: rows of a process gone may be waiting out one.
  let outage = true;
  let lastProbeAt = 0;

  /** Slack answered: what waits out the outage is due now. */
  async function slackAnswered(): Promise<void> {
    if (!outage) return;
    outage = false;
    const due = await endOutageWaits(db, clock.now());
    if (due > 0) {
      log.info({ rows: due }, 'Slack answers again: rows waiting out the outage are due now');
      again = true;
    }
  }

  /** While waiting out an outage, tries the row due soonest now and then: is Slack back? */
  async function probe(): Promise<void> {
    const now = clock.now();
    if (!outage || now.getTime() - lastProbeAt < probeIntervalMs) return;
    lastProbeAt = now.getTime();
    if (await probeWithOutageRow(db, now)) await drain();
    else outage = false;
  }

  /** Gives up one message of `row`: recorded as done (never retried), audited, logged. */
  async function giveUp(row: OutboxRow, step: string, error: unknown, why: string): Promise<void> {
    const now = clock.now();
    const code = error instanceof SlackCallError ? error.code : 'error';
    const details = error instanceof SlackCallError ? error.details.slice(0, 5) : [];
    const reason = `${step}: ${describe(error)} (${why})`.slice(0, 1000);
    await db.transaction(async (tx) => {
      await markOutboxStepDead(tx, row.id, step, now, reason);
      await appendAuditEvents(tx, [
        {
          kind: 'outbox.dead_letter',
          actor: { type: 'system', component: 'outbox' },
          at: now,
          ...subjectOf(row.payload),
          data: { outboxId: row.id, event: row.kind, step, code, details, attempts: row.attempts, why },
        },
      ]);
    });
    log.error(
      { outboxId: row.id, kind: row.kind, step, code, details, attempts: row.attempts, why },
      'slack message given up (dead letter)',
    );
  }

  /** Runs a step; says whether it is done (sent, or given up) or should be tried again. */
  async function runStep(row: OutboxRow, step: Step): Promise<Failure | undefined> {
    const attempt = { key: `outbox:${row.id}:${step.name}`, retry: row.attempts > 1, since: row.createdAt };
    try {
      await step.run(attempt);
      await markOutboxStepDone(db, row.id, step.name);
      await slackAnswered();
      return undefined;
    } catch (error) {
      if (!isPermanent(error)) return { step: step.name, error };
      try {
        await step.refused?.(error, attempt);
      } catch (fallback) {
        log.warn(
          { outboxId: row.id, step: step.name, err: describe(fallback) },
          'stand-in for a refused message failed too',
        );
      }
      await giveUp(row, step.name, error, 'Slack refused it');
      return undefined;
    }
  }

  async function handle(row: OutboxRow): Promise<boolean> {
    const event = readOutboxMessage(row.payload);
    if (!event) {
      await giveUp(
        row,
        'unreadable',
        new Error('outbox row with an unreadable payload'),
        'cannot be rendered',
      );
      await markOutboxSent(db, row.id, clock.now());
      return true;
    }
    let retry: Failure[] = [];
    let delivery: Awaited<ReturnType<typeof deliveries.plan>> | undefined;
    try {
      delivery = await deliveries.plan(event);
      const done = new Set(row.doneSteps);
      for (const step of delivery.steps) {
        if (done.has(step.name)) continue;
        const failed = await runStep(row, step);
        if (failed) retry.push(failed);
      }
    } catch (error) {
      // Reading the state failed (the database), or recording a step did: try the row again.
      retry = [{ step: 'delivery', error }];
    }
    if (retry.length > 0 && row.attempts < maxAttempts) {
      const rateLimited = retry.map((f) =>
        f.error instanceof SlackCallError ? (f.error.retryAfterMs ?? 0) : 0,
      );
      const wait = Math.max(backoffMs(row.attempts, maxBackoffMs), ...rateLimited);
      const reason = retry.map((f) => `${f.step}: ${describe(f.error)}`).join('; ');
      log.warn(
        { outboxId: row.id, kind: row.kind, attempts: row.attempts, retryInMs: wait, reason },
        'outbox delivery failed',
      );
      const waitingOut = waitOf(retry);
      if (waitingOut === 'outage') outage = true;
      await scheduleOutboxRetry(
        db,
        row.id,
        new Date(clock.now().getTime() + wait),
        reason.slice(0, 1000),
        waitingOut,
      );
      return false;
    }
    for (const failed of retry) {
      await giveUp(row, failed.step, failed.error, `still failing after ${row.attempts} attempts`);
    }
    await markOutboxSent(db, row.id, clock.now());
    if (deps.homes && delivery && delivery.users.length + (delivery.resource ? 1 : 0) > 0) {
      await deps.homes.refresh(delivery.users, delivery.resource);
    }
    return true;
  }

  async function drainOnce(): Promise<number> {
    let sent = 0;
    const worker = async (): Promise<void> => {
      for (;;) {
        const rows = await claimDueOutboxRows(db, clock.now(), batchSize, leaseMs);
        if (rows.length === 0) return;
        await Promise.all(
          lanes(rows).map(async (lane) => {
            // In order within a lane: later events of a request update the message the first one posted.
            for (const row of lane) if (await handle(row)) sent += 1;
          }),
        );
      }
    };
    await Promise.all(Array.from({ length: workers }, worker));
    return sent;
  }

  async function drain(): Promise<number> {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      let sent = 0;
      do {
        again = false;
        sent += await drainOnce();
      } while (again);
      return sent;
    })();
    try {
      return await running;
    } finally {
      running = undefined;
    }
  }

  const kick = (): void => {
    drain().catch((error: unknown) => {
      log.error({ err: describe(error) }, 'outbox drain failed');
    });
  };

  return {
    kick,
    drain,
    probe,
    start() {
      if (timer) return;
      timer = setInterval(() => {
        probe().then(kick, (error: unknown) => {
          log.error({ err: describe(error) }, 'outbox probe failed');
        });
      }, deps.pollIntervalMs ?? 1000);
      timer.unref();
      kick();
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      await running?.catch(() => undefined);
    },
  };
}
