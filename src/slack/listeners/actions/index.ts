import type { AllMiddlewareArgs, App, SlackActionMiddlewareArgs } from '@slack/bolt';
import {
  ACTIONS,
  decodeQuotaValue,
  decodeValue,
  denyModal,
  errorMessage,
  notARequesterModal,
  noticeMessage,
  type QuotaChoice,
  REQUEST_FIELDS,
  requestModal,
  tokenModal,
} from '../../blocks.ts';
import { errorText, type SlackDeps, tell } from '../../deps.ts';
import { actionValue, isUuid, triggerIdOf, userIdOf, viewOf } from '../../payloads.ts';

type ActionArgs = SlackActionMiddlewareArgs & AllMiddlewareArgs;

interface Click {
  userId: string;
  value: string;
  triggerId: string | undefined;
  body: unknown;
}

/** Acks first (Slack's 3 s), then runs `work` with the clicker and value; failures are logged and told. */
function onAction(app: App, deps: SlackDeps, actionId: string, work: (click: Click) => Promise<void>): void {
  app.action(actionId, async ({ ack, action, body }: ActionArgs) => {
    await ack();
    const userId = userIdOf(body);
    const value = actionValue(action);
    if (!userId || value === undefined) return;
    try {
      await work({ userId, value, triggerId: triggerIdOf(body), body });
    } catch (error) {
      deps.logger.error({ err: errorText(error), actionId }, 'slack action failed');
      await tell(deps, body, errorMessage('Something went wrong on our side; try again in a moment.', false));
    }
  });
}

export function register(app: App, deps: SlackDeps): void {
  const { access } = deps;

  const approve = async (click: Click, requestId: string, durationSeconds?: number, quota?: QuotaChoice) => {
    if (!isUuid(requestId)) return;
    const result = await access.approve({
      requestId,
      approverId: click.userId,
      ...(durationSeconds === undefined ? {} : { durationSeconds }),
      ...(quota === undefined ? {} : { quota }),
    });
    // The approval message itself is updated by the outbox dispatcher; only refusals need words here.
    if (!result.ok) await tell(deps, click.body, errorMessage(result.message, false));
    else await deps.homes.refresh([click.userId]);
  };

  onAction(app, deps, ACTIONS.approve, (click) => approve(click, click.value));

  onAction(app, deps, ACTIONS.approveShorter, async (click) => {
    const decoded = decodeValue(click.value);
    if (decoded) await approve(click, decoded.id, decoded.seconds);
  });

  // "Approve with a smaller quota…": the value carries the request id and the lower caps;
  // the service refuses any above the policy's, so an edited value gains nothing.
  onAction(app, deps, ACTIONS.approveLowerQuota, async (click) => {
    const decoded = decodeQuotaValue(click.value);
    if (decoded) await approve(click, decoded.id, undefined, decoded.quota);
  });

  onAction(app, deps, ACTIONS.deny, async (click) => {
    if (!isUuid(click.value)) return;
    const request = await access.getRequest(click.value);
    if (!request) return tell(deps, click.body, errorMessage('No such request.', false));
    // Say why before opening a modal the clicker could not submit anyway.
    if (request.requesterId === click.userId) {
      return tell(deps, click.body, errorMessage('Nobody decides their own request.', false));
    }
    if (!(await access.isApproverOf(request.resource, click.userId))) {
      return tell(
        deps,
        click.body,
        errorMessage(`Only approvers of ${request.resource} can decide this request.`, false),
      );
    }
    if (request.status !== 'pending') {
      return tell(deps, click.body, errorMessage(`This request was already ${request.status}.`, false));
    }
    if (click.triggerId) await deps.notifier.openView(click.triggerId, denyModal(request));
  });

  onAction(app, deps, ACTIONS.cancel, async (click) => {
    if (!isUuid(click.value)) return;
    const result = await access.cancel({ requestId: click.value, userId: click.userId });
    if (!result.ok) await tell(deps, click.body, errorMessage(result.message, false));
  });

  onAction(app, deps, ACTIONS.showToken, async (click) => {
    if (!isUuid(click.value)) return;
    const grant = await access.getGrant(click.value);
    if (!grant || grant.userId !== click.userId) {
      return tell(deps, click.body, errorMessage("Only the grant's owner can see its token.", false));
    }
    if (grant.status !== 'active' || grant.expiresAt <= deps.clock.now()) {
      return tell(
        deps,
        click.body,
        errorMessage(`This grant has ${grant.status === 'revoked' ? 'been revoked' : 'expired'}.`, false),
      );
    }
    // Issued fresh on each click, so it carries the grant's current expiry (after extensions too).
    const token = await deps.issueToken(grant);
    if (click.triggerId)
      await deps.notifier.openView(click.triggerId, tokenModal(grant, token, deps.proxyUrl));
  });

  onAction(app, deps, ACTIONS.giveUp, async (click) => {
    if (!isUuid(click.value)) return;
    const grant = await access.getGrant(click.value);
    if (!grant || grant.userId !== click.userId) {
      return tell(deps, click.body, errorMessage('Only the grant owner can give it up.', false));
    }
    const result = await access.revokeGrant({
      grantId: grant.id,
      actor: { type: 'slack', userId: click.userId },
      reason: 'given up by its owner',
    });
    if (!result.ok) await tell(deps, click.body, errorMessage(result.message, false));
  });

  onAction(app, deps, ACTIONS.revoke, async (click) => {
    if (!isUuid(click.value)) return;
    const result = await access.revokeGrant({
      grantId: click.value,
      actor: { type: 'slack', userId: click.userId },
      reason: 'revoked in Slack',
    });
    if (!result.ok) await tell(deps, click.body, errorMessage(result.message, false));
    else await deps.homes.refresh([click.userId]);
  });

  onAction(app, deps, ACTIONS.extend, async (click) => {
    const decoded = decodeValue(click.value);
    if (!decoded || !isUuid(decoded.id)) return;
    const result = await access.requestExtension({
      grantId: decoded.id,
      userId: click.userId,
      durationSeconds: decoded.seconds,
    });
    if (!result.ok) return tell(deps, click.body, errorMessage(result.message, false));
    if (result.value.grant === undefined) {
      await tell(
        deps,
        click.body,
        noticeMessage(`Extension sent to the approvers of ${result.value.request.resource}.`),
      );
    }
  });

  // The request modal's resource select: narrow the durations to the chosen resource's.
  onAction(app, deps, REQUEST_FIELDS.target.action, async (click) => {
    const view = viewOf(click.body);
    if (!view) return;
    await deps.notifier.updateView(
      view.id,
      view.hash,
      requestModal(deps.policy.current(), { target: click.value }),
    );
  });

  onAction(app, deps, ACTIONS.openRequestModal, async (click) => {
    if (!click.triggerId) return;
    const view = (await deps.access.mayRequestAccess(click.userId))
      ? requestModal(deps.policy.current())
      : notARequesterModal();
    await deps.notifier.openView(click.triggerId, view);
  });
}
