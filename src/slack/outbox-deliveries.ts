import type { Logger } from 'pino';
import type { AccessService } from '../access/index.ts';
import type { Db } from '../db/client.ts';
import { findGrantOfRequest } from '../db/queries/grants/lifecycle.ts';
import type { AccessRequest, Grant } from '../db/schema/index.ts';
import type { OutboxMessage } from '../outbox/index.ts';
import { type PolicyStore, type ResourcePolicy, requiresBoundTokens } from '../policy/index.ts';
import type { Clock } from '../shared/clock.ts';
import { isUuid } from '../shared/ids.ts';
import { isRecord } from '../shared/is-record.ts';
import { approvalMessageTs, createApprovalMessageClaims } from './approval-message-claims.ts';
import {
  anomalyAlert,
  approvalMessage,
  approvalMessageFallback,
  approversUnreachableDm,
  grantApprovedDm,
  grantExpiredDm,
  grantExtendedDm,
  grantQuotaExhaustedDm,
  grantReminderDm,
  grantRevokedDm,
  offboardedNote,
  requestDeniedDm,
  requestTimedOutDm,
  type SlackMessage,
  shortMessage,
  weeklyReportMessage,
} from './blocks/index.ts';
import type { Notifier, PostOnce } from './notifier.ts';
import { isChannelRefusal, isPayloadRefusal, SlackCallError } from './slack-errors.ts';

/** The approval message's post is keyed by its request, whichever event's delivery posts it. */
const approvalKey = (requestId: string): string => `approval:${requestId}`;

/**
 * What one outbox event sends, as steps: the approval message, then a DM, each sent and
 * recorded on its own, so a message Slack refuses never holds back the next one (a request's
 * time-out DM still goes out when its approval message cannot be updated). Every step renders
 * from the CURRENT database state, so a late delivery never shows a stale outcome.
 */

/** Which try of a step this is, so that no retry posts a message twice (see PostOnce). */
export interface StepAttempt {
  /** Stable across the tries of one step of one outbox row. */
  key: string;
  /** An earlier try of the row ran and did not record this step done: it may have posted. */
  retry: boolean;
  /** The row's creation: no try of it posted anything before. */
  since: Date;
}

export interface Step {
  /** Stable for the event across attempts: a step done once is skipped on retry. */
  name: string;
  run(attempt: StepAttempt): Promise<void>;
  /** Slack refused `run` for good: what to send instead, or whom to tell (best effort). */
  refused?(error: SlackCallError, attempt: StepAttempt): Promise<void>;
}

const onceFor = (attempt: StepAttempt, suffix = ''): PostOnce => ({
  key: `${attempt.key}${suffix}`,
  mayHavePosted: attempt.retry,
  since: attempt.since,
});

export interface Delivery {
  steps: Step[];
  /** Whose App Home to refresh afterwards, and the resource whose approvers' homes to refresh. */
  users: string[];
  resource?: string;
}

export interface DeliveryDeps {
  db: Db;
  access: AccessService;
  policy: PolicyStore;
  notifier: Notifier;
  clock: Clock;
  logger: Logger;
  /** Base URL of the proxy, shown in DMs (`<proxyUrl>/<resource>/…`). */
  proxyUrl: string;
}

/** Thrown while another instance holds the claim to post an approval message; retried later. */
class PostingElsewhere extends Error {
  constructor() {
    super('approval message is being posted by another instance');
  }
}

export function createDeliveries(deps: DeliveryDeps) {
  const { db, access, notifier, clock, logger } = deps;
  const claims = createApprovalMessageClaims({ db, clock });

  const resourceOf = (name: string): ResourcePolicy | undefined => {
    const resources = deps.policy.current().resources;
    return Object.hasOwn(resources, name) ? resources[name] : undefined;
  };

  async function grantOfRequest(request: AccessRequest): Promise<Grant | undefined> {
    if (request.extendsGrantId) return access.getGrant(request.extendsGrantId);
    return findGrantOfRequest(db, request.id);
  }

  /**
   * Post the approval message once, then only update it: a retried delivery never posts twice.
   * A post Slack answered with a refusal gives the claim back (nothing was posted); one whose
   * outcome is unknown (a dropped connection) keeps it until it goes stale.
   */
  async function syncApprovalMessage(
    request: AccessRequest,
    render: (r: AccessRequest) => Promise<SlackMessage>,
    attempt: StepAttempt,
  ) {
    const channel = request.approvalChannel ?? resourceOf(request.resource)?.approvalChannel;
    if (!channel) return;
    const ts = approvalMessageTs(request);
    if (ts) {
      await notifier.updateMessage(channel, ts, await render(request));
      return;
    }
    const claim = await claims.claim(request.id);
    if (claim === 'posting_elsewhere') throw new PostingElsewhere();
    if (claim === 'already_posted') {
      const fresh = await access.getRequest(request.id);
      if (fresh && approvalMessageTs(fresh)) await syncApprovalMessage(fresh, render, attempt);
      return;
    }
    if (claim === 'not_found') return;
    let posted: Awaited<ReturnType<Notifier['postMessage']>>;
    try {
      posted = await notifier.postMessage(channel, await render(request), {
        key: approvalKey(request.id),
        mayHavePosted: claim === 'claimed_after_unknown' || attempt.retry,
        since: request.createdAt,
      });
    } catch (error) {
      // A timeout or a server error may have posted it: whoever posts next looks for it first.
      const unknown = error instanceof SlackCallError && (error.maybeDone || error.code.startsWith('http_5'));
      await (unknown ? claims.releaseUnsure(request.id) : claims.release(request.id));
      throw error;
    }
    await claims.record(request.id, posted.channel, posted.ts);
  }

  const fullApprovalMessage = async (request: AccessRequest): Promise<SlackMessage> =>
    approvalMessage({
      request,
      approvals: await access.approvalsOf(request.id),
      grant: await grantOfRequest(request),
      resource: resourceOf(request.resource),
      now: clock.now(),
    });

  /**
   * The approval message in its current state. Refused for its content: a short version with
   * the buttons. Refused for its channel when first posted: the requester is told their request
   * could not reach the approvers, so nobody waits for a decision that cannot come.
   */
  function approvalStep(requestId: string, tellRequester: boolean): Step {
    let posting = false;
    return {
      name: 'approval_message',
      async run(attempt) {
        const request = await access.getRequest(requestId);
        if (!request) return;
        posting = approvalMessageTs(request) === undefined;
        await syncApprovalMessage(request, fullApprovalMessage, attempt);
      },
      async refused(error, attempt) {
        const request = await access.getRequest(requestId);
        if (!request) return;
        if (isPayloadRefusal(error)) {
          await syncApprovalMessage(request, async (r) => approvalMessageFallback(r, error.code), attempt);
          return;
        }
        const channel = request.approvalChannel ?? resourceOf(request.resource)?.approvalChannel;
        if (isChannelRefusal(error) && posting && tellRequester && channel) {
          await notifier.postMessage(
            request.requesterId,
            approversUnreachableDm(request, channel, error.code),
            onceFor(attempt, ':unreachable'),
          );
        }
      },
    };
  }

  /** A message to a person or channel; refused for its content, its notification line alone. */
  function messageStep(name: string, to: string, message: SlackMessage): Step {
    return {
      name,
      run: async (attempt) => {
        await notifier.postMessage(to, message, onceFor(attempt));
      },
      async refused(error, attempt) {
        if (isPayloadRefusal(error))
          await notifier.postMessage(to, shortMessage(message, error.code), onceFor(attempt, ':short'));
      },
    };
  }

  /** A DM rendered when its step runs (from the state then), not when the delivery was planned. */
  function lazyMessageStep(name: string, to: string, render: () => Promise<SlackMessage | undefined>): Step {
    let rendered: SlackMessage | undefined;
    return {
      name,
      async run(attempt) {
        rendered = await render();
        if (rendered) await notifier.postMessage(to, rendered, onceFor(attempt));
      },
      async refused(error, attempt) {
        if (rendered && isPayloadRefusal(error))
          await notifier.postMessage(to, shortMessage(rendered, error.code), onceFor(attempt, ':short'));
      },
    };
  }

  /** What a message sends: one case per kind of the outbox's union (a new kind does not compile until it is here). */
  async function plan(event: OutboxMessage): Promise<Delivery> {
    switch (event.kind) {
      case 'request_created':
      case 'request_approval_added':
      case 'request_approved':
      case 'request_cancelled': {
        const request = await access.getRequest(event.requestId);
        if (!request) return { steps: [], users: [] };
        return {
          steps: [approvalStep(request.id, event.kind === 'request_created')],
          users: [request.requesterId],
          resource: request.resource,
        };
      }
      case 'request_denied':
      case 'request_expired': {
        const request = await access.getRequest(event.requestId);
        if (!request) return { steps: [], users: [] };
        const steps = [approvalStep(request.id, false)];
        if (request.status === 'denied')
          steps.push(messageStep('requester_dm', request.requesterId, requestDeniedDm(request)));
        if (request.status === 'expired') {
          steps.push(messageStep('requester_dm', request.requesterId, requestTimedOutDm(request)));
        }
        return { steps, users: [request.requesterId], resource: request.resource };
      }
      case 'grant_created': {
        const grant = await access.getGrant(event.grantId);
        // Rendered from now: a grant revoked before this DM went out gets only the revoked DM.
        if (grant?.status !== 'active') return { steps: [], users: [] };
        const approvers = (await access.approvalsOf(grant.requestId)).map((a) => a.approverId);
        return {
          steps: [
            messageStep(
              'owner_dm',
              grant.userId,
              grantApprovedDm({
                grant,
                proxyUrl: deps.proxyUrl,
                approvers,
                boundOnly: requiresBoundTokens(deps.policy.current(), grant.resource, grant.scope),
              }),
            ),
          ],
          users: [grant.userId],
          resource: grant.resource,
        };
      }
      case 'grant_extended': {
        const grant = await access.getGrant(event.grantId);
        if (grant?.status !== 'active') return { steps: [], users: [] };
        return {
          steps: [
            messageStep('owner_dm', grant.userId, grantExtendedDm(grant)),
            approvalStep(grant.requestId, false),
          ],
          users: [grant.userId],
          resource: grant.resource,
        };
      }
      case 'grant_revoked':
      case 'grant_expired': {
        const grant = await access.getGrant(event.grantId);
        if (!grant) return { steps: [], users: [] };
        const steps = [approvalStep(grant.requestId, false)];
        // A deactivated account cannot be messaged; trying would only fail.
        const dmOwner = event.kind !== 'grant_revoked' || event.dmOwner !== false;
        if (grant.status === 'revoked' && dmOwner)
          steps.push(messageStep('owner_dm', grant.userId, grantRevokedDm(grant)));
        if (grant.status === 'expired')
          steps.push(messageStep('owner_dm', grant.userId, grantExpiredDm(grant)));
        return { steps, users: [grant.userId], resource: grant.resource };
      }
      case 'grant_quota_exhausted': {
        // Sent even if the grant ended meanwhile: it explains the 403s the owner saw.
        const grant = await access.getGrant(event.grantId);
        if (!grant) return { steps: [], users: [] };
        return {
          steps: [messageStep('owner_dm', grant.userId, grantQuotaExhaustedDm(grant))],
          users: [grant.userId],
        };
      }
      case 'grant_reminder': {
        const grant = await access.getGrant(event.grantId);
        return {
          steps: grant
            ? [
                lazyMessageStep('owner_dm', grant.userId, async () => {
                  const now = clock.now();
                  const current = await access.getGrant(grant.id);
                  // A reminder for an older version (since extended) or an ended grant says nothing true any more.
                  if (
                    current?.status !== 'active' ||
                    current.version !== event.version ||
                    current.expiresAt <= now
                  ) {
                    return undefined;
                  }
                  return grantReminderDm(current, resourceOf(current.resource), now);
                }),
              ]
            : [],
          users: [],
        };
      }
      case 'user_offboarded': {
        const channel = resourceOf(event.resource)?.approvalChannel;
        if (!channel) {
          logger.warn(
            { resource: event.resource },
            'offboarding note for a resource no longer in the policy',
          );
          return { steps: [], users: [] };
        }
        const note = offboardedNote({
          resource: event.resource,
          userId: event.userId,
          reason: event.reason,
          by: event.by,
          grantIds: Array.isArray(event.grantIds) ? event.grantIds : [],
          requestIds: Array.isArray(event.requestIds) ? event.requestIds : [],
          at: clock.now(),
        });
        return {
          steps: [messageStep('channel_note', channel, note)],
          users: [event.userId],
          resource: event.resource,
        };
      }
      case 'weekly_report': {
        const channel = resourceOf(event.resource)?.approvalChannel;
        if (!channel) return { steps: [], users: [] };
        const report = weeklyReportMessage({
          ...event,
          periodStart: new Date(event.periodStart),
          periodEnd: new Date(event.periodEnd),
        });
        return { steps: [messageStep('channel_note', channel, report)], users: [] };
      }
      case 'anomaly_alert': {
        const resource = resourceOf(event.resource);
        const channel = resource?.alertChannel;
        if (!channel) {
          logger.warn(
            { resource: event.resource, alertId: event.alertId },
            'anomaly for a resource no longer in the policy',
          );
          return { steps: [], users: [] };
        }
        // The id is the token's `jti`, which nothing forces to be a UUID (the audit keeps odd ones
        // in `data`): looking up a malformed one would fail the query and retry the alert forever.
        const grantId = event.grantId ?? undefined;
        const grant = isUuid(grantId) ? await access.getGrant(grantId) : undefined;
        const alert = anomalyAlert({
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
        });
        return { steps: [messageStep('alert', channel, alert)], users: [] };
      }
    }
  }

  return { plan };
}
