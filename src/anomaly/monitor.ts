import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { Refusal } from '../access/outcomes.ts';
import type { AccessService } from '../access/service.ts';
import { appendAuditEvents } from '../audit/chain-append.ts';
import type { Db } from '../db/client.ts';
import { lockAuditChain } from '../db/queries/audit-events/append.ts';
import { enqueue, isEnqueued, type OutboxMessageOf } from '../outbox/index.ts';
import type { PolicyStore } from '../policy/store.ts';
import type { CallRecord, CallSink } from '../shared/call-record.ts';
import type { Clock } from '../shared/clock.ts';
import { isUuid } from '../shared/ids.ts';
import {
  DEFAULT_TUNING,
  type DetectorState,
  type DetectorTuning,
  emptyState,
  type Finding,
  type RuleName,
  runDetectors,
} from './detectors.ts';

export interface AnomalyMonitorDeps {
  db: Db;
  policy: PolicyStore;
  clock: Clock;
  access: Pick<AccessService, 'revokeGrant'>;
  /**
   * Words for a refused automatic revoke, kept in the alert's evidence (`revokeNote`) and
   * shown with it; the composition root passes Slack's (src/slack/blocks/refusals.ts).
   * Without it the note is the refusal's code.
   */
  describeRefusal?: (refusal: Refusal) => string;
  logger: Pick<Logger, 'info' | 'warn' | 'error'>;
  /** Records waiting to be examined at most; past it new records are dropped (and counted). */
  maxQueue?: number;
  /** Grants (and IPs) with detector state at most; the least recently seen is evicted. */
  maxSubjects?: number;
  /** A subject unseen this long (by record time) is forgotten. */
  idleMs?: number;
  tuning?: Partial<DetectorTuning>;
}

interface AnomalyMonitorStats {
  queued: number;
  processed: number;
  dropped: number;
  alerts: number;
  suppressed: number;
  subjects: number;
  failedAlerts: number;
}

export interface AnomalyMonitor extends CallSink {
  /** Resolves when every record offered so far has been examined and its alerts written. */
  flush(): Promise<void>;
  close(): Promise<void>;
  /** Forget a grant's state, e.g. when the change feed says it ended. */
  forgetGrant(grantId: string): void;
  stats(): AnomalyMonitorStats;
}

interface RaisedAlert {
  alertId: string;
  event: OutboxMessageOf<'anomaly_alert'>;
}

interface Subject {
  state: DetectorState;
  /** rule → record time (ms) until which the rule stays quiet for this subject. */
  quietUntil: Map<RuleName, number>;
  lastSeen: number;
}

/**
 * The same subject, rule and window always give the same alert id, so two proxy
 * processes that both see a burst write one alert: the outbox's dedupe key catches the
 * second (checked under the audit lock, so its audit row is not written either).
 */
function alertIdFor(subject: string, rule: RuleName, windowStartMs: number): string {
  const h = createHash('sha256').update(`${subject}|${rule}|${windowStartMs}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

const subjectOf = (record: CallRecord) =>
  `${record.resource}:${record.grantId !== undefined ? `grant:${record.grantId}` : `ip:${record.clientIp}`}`;

/**
 * Feeds call records to the detectors off the hot path: `offer` only pushes to a bounded
 * queue and schedules work with setImmediate; detection, de-duplication and alert writes
 * happen later. It never asks the proxy to fail closed (`hasCapacity` is always true):
 * the audit appender is what must not lose calls; an overloaded monitor drops records
 * for detection only, counts them and says so in the log.
 */
export function createAnomalyMonitor(deps: AnomalyMonitorDeps): AnomalyMonitor {
  const { db, clock, logger } = deps;
  const maxQueue = deps.maxQueue ?? 10_000;
  const maxSubjects = deps.maxSubjects ?? 10_000;
  const idleMs = deps.idleMs ?? 24 * 3600_000;
  const tuning: DetectorTuning = { ...DEFAULT_TUNING, ...deps.tuning };

  const queue: CallRecord[] = [];
  // Map iteration order is insertion order; re-inserting on every touch makes it LRU order.
  const subjects = new Map<string, Subject>();
  const stats = { processed: 0, dropped: 0, alerts: 0, suppressed: 0, failedAlerts: 0 };
  let running: Promise<void> | undefined;
  let scheduled = false;
  let closed = false;
  let lastDropWarning = 0;

  function touch(key: string, now: number): Subject {
    const existing = subjects.get(key);
    if (existing) subjects.delete(key);
    const subject = existing ?? { state: emptyState(), quietUntil: new Map(), lastSeen: now };
    subject.lastSeen = Math.max(subject.lastSeen, now);
    subjects.set(key, subject);
    // Evict from the LRU end: past the bound, or idle for longer than idleMs.
    for (const [oldKey, old] of subjects) {
      if (subjects.size <= maxSubjects && old.lastSeen >= now - idleMs) break;
      if (oldKey === key) break;
      subjects.delete(oldKey);
    }
    return subject;
  }

  async function raise(record: CallRecord, subjectKey: string, finding: Finding): Promise<void> {
    const t = record.at.getTime();
    const alertId = alertIdFor(subjectKey, finding.rule, Math.floor(t / finding.windowMs) * finding.windowMs);
    const grantId = isUuid(record.grantId) ? record.grantId : undefined;
    let revoked = false;
    let revokeNote: string | undefined;
    if (finding.action === 'revoke' && grantId) {
      const result = await deps.access.revokeGrant({
        grantId,
        actor: { type: 'system', component: 'anomaly' },
        reason: `anomaly rule ${finding.rule}: ${finding.summary}`,
      });
      revoked = result.ok;
      if (!result.ok) revokeNote = deps.describeRefusal?.(result) ?? result.code;
    }
    const event: RaisedAlert['event'] = {
      kind: 'anomaly_alert',
      alertId,
      grantId: record.grantId ?? null,
      resource: record.resource,
      userId: record.userId ?? null,
      rule: finding.rule,
      summary: finding.summary,
      evidence: { ...finding.evidence, requestId: record.requestId, ...(revokeNote ? { revokeNote } : {}) },
      call: {
        method: record.method,
        path: record.path,
        clientIp: record.clientIp,
        at: record.at.toISOString(),
        decision: record.decision,
        status: record.status,
        requestId: record.requestId,
      },
      action: finding.action,
      revoked,
    };
    const now = clock.now();
    const written = await db.transaction(async (tx) => {
      // The audit lock serialises this check with any other process raising the same alert.
      await lockAuditChain(tx);
      if (await isEnqueued(tx, event)) return false;
      await appendAuditEvents(tx, [
        {
          kind: 'anomaly.alert',
          actor: { type: 'system', component: 'anomaly' },
          at: now,
          resource: record.resource,
          grantId: grantId ?? null,
          data: {
            alertId,
            rule: finding.rule,
            summary: finding.summary,
            evidence: event.evidence,
            action: finding.action,
            revoked,
            userId: record.userId ?? null,
            clientIp: record.clientIp,
          },
        },
      ]);
      await enqueue(tx, [event], now);
      return true;
    });
    if (written) {
      stats.alerts += 1;
      logger.info({ alertId, rule: finding.rule, grantId: record.grantId, revoked }, 'anomaly alert raised');
    } else {
      stats.suppressed += 1;
    }
  }

  async function examine(record: CallRecord): Promise<void> {
    const rules = Object.hasOwn(deps.policy.current().resources, record.resource)
      ? deps.policy.current().resources[record.resource]?.anomalies
      : undefined;
    if (!rules) return;
    const t = record.at.getTime();
    const key = subjectOf(record);
    const subject = touch(key, t);
    const { state, findings } = runDetectors(subject.state, record, rules, tuning);
    subject.state = state;
    for (const finding of findings) {
      // Once per window per subject and rule.
      if ((subject.quietUntil.get(finding.rule) ?? Number.NEGATIVE_INFINITY) > t) {
        stats.suppressed += 1;
        continue;
      }
      subject.quietUntil.set(finding.rule, t + finding.windowMs);
      try {
        await raise(record, key, finding);
      } catch (error) {
        // The alert is lost, not the call (the audit appender has it); reopen the window so
        // the next matching call tries again.
        stats.failedAlerts += 1;
        subject.quietUntil.delete(finding.rule);
        logger.error(
          { err: error, rule: finding.rule, grantId: record.grantId },
          'anomaly alert could not be written',
        );
      }
    }
  }

  async function drain(): Promise<void> {
    for (let record = queue.shift(); record !== undefined; record = queue.shift()) {
      try {
        await examine(record);
      } catch (error) {
        logger.error({ err: error }, 'anomaly detection failed for a record');
      }
      stats.processed += 1;
    }
  }

  function schedule(): void {
    if (scheduled || running) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      if (running) return;
      running = drain().finally(() => {
        running = undefined;
        if (queue.length > 0) schedule();
      });
    });
  }

  async function flush(): Promise<void> {
    while (queue.length > 0 || running || scheduled) {
      if (running) await running;
      else await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  return {
    offer(record) {
      if (closed) return true;
      if (queue.length >= maxQueue) {
        stats.dropped += 1;
        const now = clock.now().getTime();
        if (now - lastDropWarning > 10_000) {
          lastDropWarning = now;
          logger.warn({ dropped: stats.dropped }, 'anomaly monitor is behind; records skipped for detection');
        }
        return true;
      }
      queue.push(record);
      schedule();
      return true;
    },
    hasCapacity: () => true,
    flush,
    async close() {
      closed = true;
      await flush();
    },
    forgetGrant(grantId) {
      for (const key of subjects.keys()) if (key.endsWith(`:grant:${grantId}`)) subjects.delete(key);
    },
    stats: () => ({ queued: queue.length, subjects: subjects.size, ...stats }),
  };
}
