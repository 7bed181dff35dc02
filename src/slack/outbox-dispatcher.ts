import type { Logger } from 'pino';
import {
  type AccessEvent,
  type AccessEventKind,
  type AccessService,
  approvalMessageTs,
} from '../access/index.ts';
import type { Db } from '../db/client.ts';
import { findGrantOfRequest } from '../db/queries/grants.ts';
import { claimDueOutboxRows, markOutboxSent, scheduleOutboxRetry } from '../db/queries/outbox.ts';
import type { AccessRequest, Grant, OutboxRow } from '../db/schema/index.ts';
import type { PolicyStore, ResourcePolicy } from '../policy/index.ts';
import type { Clock } from '../shared/clock.ts';
import {
  anomalyAlert,
  approvalMessage,
  grantApprovedDm,
  grantExpiredDm,
  grantExtendedDm,
  grantQuotaExhaustedDm,
  grantReminderDm,
  grantRevokedDm,
  offboardedNote,
  requestDeniedDm,
  requestTimedOutDm,
  weeklyReportMessage,
} from './blocks.ts';
import type { HomeTabs } from './home.ts';
import { type Notifier, SlackCallError } from './notifier.ts';
import { isRecord, isUuid } from './payloads.ts';

/**
 * Delivers the `outbox` rows the access service writes with every state change. Rows are
 * claimed with a lease (`FOR UPDATE SKIP LOCKED`, then `next_attempt_at` pushed past the
 * lease), rendered from the CURRENT database state (a late delivery never shows a stale
 * outcome), and marked `sent_at` once Slack accepted them. A failure keeps the row with
 * `last_error` and a backed-off `next_attempt_at`, so a Slack outage delays messages but
 * never loses them; the outbox's unique dedupe key means a replayed transition adds no row.
 */

export interface OutboxDispatcherDeps {
  db: Db;
  access: AccessService;
  policy: PolicyStore;
  notifier: Notifier;
  clock: Clock;
  logger: Logger;
  /** Base URL of the proxy, shown in DMs (`<proxyUrl>/<resource>/…`). */
  proxyUrl: string;
  homes?: HomeTabs;
  pollIntervalMs?: number;
  batchSize?: number;
  /** How long a claimed row is hidden from other dispatchers while being sent. */
  leaseMs?: number;
  maxBackoffMs?: number;
}

export interface OutboxDispatcher {
  /** Deliver what is due soon (called from the access service's `onCommitted`); never throws. */
  kick(): void;
  /** Deliver everything due now; resolves with how many rows were sent. */
  drain(): Promise<number>;
  /** Poll every `pollIntervalMs` (catches rows left by crashes, other processes and retries). */
  start(): void;
  /** Stop polling and wait for the delivery in progress. */
  stop(): Promise<void>;
}

const KINDS: ReadonlySet<string> = new Set<AccessEventKind>([
  'request_created',
  'request_approval_added',
  'request_approved',
  'request_denied',
  'request_expired',
  'request_cancelled',
  'grant_created',
  'grant_extended',
  'grant_revoked',
  'grant_expired',
  'grant_reminder',
  'grant_quota_exhausted',
  'anomaly_alert',
  'user_offboarded',
  'weekly_report',
]);

/** String fields each kind's renderer relies on (beyond `kind`). */
function requiredFields(kind: string): string[] {
  if (kind === 'anomaly_alert') return ['alertId', 'resource', 'rule', 'summary'];
  if (kind === 'user_offboarded') return ['offboardId', 'resource', 'userId', 'reason', 'by'];
  if (kind === 'weekly_report') return ['resource', 'periodStart', 'periodEnd'];
  return kind.startsWith('grant_') ? ['grantId'] : ['requestId'];
}

/** The outbox stores events as JSON; check the fields the renderers rely on before trusting the kind. */
export function toAccessEvent(payload: Record<string, unknown>): AccessEvent | undefined {
  const kind = payload.kind;
  if (typeof kind !== 'string' || !KINDS.has(kind)) return undefined;
  if (!requiredFields(kind).every((field) => typeof payload[field] === 'string')) return undefined;
  return payload as unknown as AccessEvent;
}

export function backoffMs(attempts: number, maxMs: number): number {
  return Math.min(maxMs, 1000 * 2 ** Math.min(attempts, 20));
}

export function createOutboxDispatcher(deps: OutboxDispatcherDeps): OutboxDispatcher {
  const { db, access, notifier, clock } = deps;
  const log = deps.logger.child({ component: 'slack-outbox' });
  const batchSize = deps.batchSize ?? 20;
  const leaseMs = deps.leaseMs ?? 60_000;
  const maxBackoffMs = deps.maxBackoffMs ?? 15 * 60_000;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<number> | undefined;
  let again = false;

  const resourceOf = (name: string): ResourcePolicy | undefined => {
    const resources = deps.policy.current().resources;
    return Object.hasOwn(resources, name) ? resources[name] : undefined;
  };

  const claim = (): Promise<OutboxRow[]> => claimDueOutboxRows(db, clock.now(), batchSize, leaseMs);

  async function grantOfRequest(request: AccessRequest): Promise<Grant | undefined> {
    if (request.extendsGrantId) return access.getGrant(request.extendsGrantId);
    return findGrantOfRequest(db, request.id);
  }

  /** Post the approval message once, then only update it: a retried delivery never posts twice. */
  async function syncApprovalMessage(requestId: string): Promise<AccessRequest | undefined> {
    const request = await access.getRequest(requestId);
    if (!request) return undefined;
    const resource = resourceOf(request.resource);
    const channel = request.approvalChannel ?? resource?.approvalChannel;
    if (!channel) return request;
    const message = approvalMessage({
      request,
      approvals: await access.approvalsOf(request.id),
      grant: await grantOfRequest(request),
      resource,
      now: clock.now(),
    });
    const ts = approvalMessageTs(request);
    if (ts) {
      await notifier.updateMessage(channel, ts, message);
      return request;
    }
    const claim = await access.claimApprovalMessage(request.id);
    if (claim === 'posting_elsewhere') {
      // Another instance is posting it right now; retry later, then update what it posted.
      throw new Error('approval message is being posted by another instance');
    }
    if (claim === 'already_posted') return syncApprovalMessage(requestId);
    if (claim === 'claimed') {
      const posted = await notifier.postMessage(channel, message);
      await access.setApprovalMessage(request.id, posted.channel, posted.ts);
    }
    return request;
  }

  /** Delivers one event; returns the users whose App Home should be refreshed. */
  async function deliver(event: AccessEvent): Promise<{ users: string[]; resource?: string }> {
    switch (event.kind) {
      case 'request_created':
      case 'request_approval_added':
      case 'request_approved':
      case 'request_cancelled': {
        const request = await syncApprovalMessage(event.requestId);
        return request ? { users: [request.requesterId], resource: request.resource } : { users: [] };
      }
      case 'request_denied':
      case 'request_expired': {
        const request = await syncApprovalMessage(event.requestId);
        if (!request) return { users: [] };
        const dm = request.status === 'denied' ? requestDeniedDm(request) : requestTimedOutDm(request);
        if (request.status === 'denied' || request.status === 'expired') {
          await notifier.postMessage(request.requesterId, dm);
        }
        return { users: [request.requesterId], resource: request.resource };
      }
      case 'grant_created': {
        const grant = await access.getGrant(event.grantId);
        // Rendered from now: a grant revoked before this DM went out gets only the revoked DM.
        if (grant?.status !== 'active') return { users: [] };
        const approvers = (await access.approvalsOf(grant.requestId)).map((a) => a.approverId);
        await notifier.postMessage(
          grant.userId,
          grantApprovedDm({ grant, proxyUrl: deps.proxyUrl, approvers }),
        );
        return { users: [grant.userId], resource: grant.resource };
      }
      case 'grant_extended': {
        const grant = await access.getGrant(event.grantId);
        if (grant?.status !== 'active') return { users: [] };
        await notifier.postMessage(grant.userId, grantExtendedDm(grant));
        await syncApprovalMessage(grant.requestId);
        return { users: [grant.userId], resource: grant.resource };
      }
      case 'grant_revoked':
      case 'grant_expired': {
        const grant = await access.getGrant(event.grantId);
        if (!grant) return { users: [] };
        await syncApprovalMessage(grant.requestId);
        // A deactivated account cannot be messaged; trying would only retry forever.
        const dmOwner = event.kind !== 'grant_revoked' || event.dmOwner !== false;
        if (grant.status === 'revoked' && dmOwner)
          await notifier.postMessage(grant.userId, grantRevokedDm(grant));
        if (grant.status === 'expired') await notifier.postMessage(grant.userId, grantExpiredDm(grant));
        return { users: [grant.userId], resource: grant.resource };
      }
      case 'grant_quota_exhausted': {
        // Sent even if the grant ended meanwhile: it explains the 403s the owner saw.
        const grant = await access.getGrant(event.grantId);
        if (!grant) return { users: [] };
        await notifier.postMessage(grant.userId, grantQuotaExhaustedDm(grant));
        return { users: [grant.userId] };
      }
      case 'grant_reminder': {
        const grant = await access.getGrant(event.grantId);
        const now = clock.now();
        // A reminder for an older version (since extended) or an ended grant says nothing true any more.
        if (grant?.status !== 'active' || grant.version !== event.version || grant.expiresAt <= now) {
          return { users: [] };
        }
        await notifier.postMessage(grant.userId, grantReminderDm(grant, resourceOf(grant.resource), now));
        return { users: [] };
      }
      case 'user_offboarded': {
        const channel = resourceOf(event.resource)?.approvalChannel;
        if (!channel) {
          log.warn({ resource: event.resource }, 'offboarding note for a resource no longer in the policy');
          return { users: [] };
        }
        await notifier.postMessage(
          channel,
          offboardedNote({
            resource: event.resource,
            userId: event.userId,
            reason: event.reason,
            by: event.by,
            grantIds: Array.isArray(event.grantIds) ? event.grantIds : [],
            requestIds: Array.isArray(event.requestIds) ? event.requestIds : [],
            at: clock.now(),
          }),
        );
        return { users: [event.userId], resource: event.resource };
      }
      case 'weekly_report': {
        const channel = resourceOf(event.resource)?.approvalChannel;
        if (!channel) return { users: [] };
        await notifier.postMessage(
          channel,
          weeklyReportMessage({
            ...event,
            periodStart: new Date(event.periodStart),
            periodEnd: new Date(event.periodEnd),
          }),
        );
        return { users: [] };
      }
      case 'anomaly_alert': {
        const resource = resourceOf(event.resource);
        // The id is the token's `jti`, which nothing forces to be a UUID (the audit keeps odd ones
        // in `data`): looking up a malformed one would fail the query and retry the alert forever.
        const grantId = event.grantId ?? undefined;
        const grant = isUuid(grantId) ? await access.getGrant(grantId) : undefined;
        const channel = resource?.alertChannel;
        if (!channel) {
          log.warn(
            { resource: event.resource, alertId: event.alertId },
            'anomaly for a resource no longer in the policy',
          );
          return { users: [] };
        }
        await notifier.postMessage(
          channel,
          anomalyAlert({
            resource: event.resource,
            rule: event.rule,
            summary: event.summary,
            userId: typeof event.userId === 'string' ? event.userId : null,
            grantId: event.grantId,
            grant,
            evidence: isRecord(event.evidence) ? event.evidence : undefined,
            call: isRecord(event.call) ? event.call : undefined,
            revoked: event.revoked === true,
            at: clock.now(),
          }),
        );
        return { users: [] };
      }
    }
  }

  async function handle(row: OutboxRow): Promise<boolean> {
    const event = toAccessEvent(row.payload);
    try {
      const affected = event ? await deliver(event) : { users: [] };
      if (!event)
        log.error({ outboxId: row.id, kind: row.kind }, 'outbox row with an unreadable payload; skipped');
      await markOutboxSent(db, row.id, clock.now());
      if (deps.homes && affected.users.length + (affected.resource ? 1 : 0) > 0) {
        await deps.homes.refresh(affected.users, affected.resource);
      }
      return true;
    } catch (error) {
      const reason =
        error instanceof SlackCallError
          ? error.message
          : error instanceof Error
            ? error.message
            : String(error);
      const wait = backoffMs(row.attempts, maxBackoffMs);
      log.warn(
        { outboxId: row.id, kind: row.kind, attempts: row.attempts, retryInMs: wait, reason },
        'outbox delivery failed',
      );
      await scheduleOutboxRetry(db, row.id, new Date(clock.now().getTime() + wait), reason.slice(0, 1000));
      return false;
    }
  }

  async function drainOnce(): Promise<number> {
    let sent = 0;
    for (;;) {
      const rows = await claim();
      if (rows.length === 0) return sent;
      // One at a time and in order: later events of a request update the message the first one posted.
      for (const row of rows) if (await handle(row)) sent += 1;
    }
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
      log.error({ err: error instanceof Error ? error.message : String(error) }, 'outbox drain failed');
    });
  };

  return {
    kick,
    drain,
    start() {
      if (timer) return;
      timer = setInterval(kick, deps.pollIntervalMs ?? 2000);
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
