import type { AllMiddlewareArgs, App, SlackActionMiddlewareArgs } from '@slack/bolt';
import { requiresBoundTokens } from '../../../policy/index.ts';
import { isUuid } from '../../../shared/ids.ts';
import {
  ACTIONS,
  activeMessage,
  cliTokenModal,
  denyModal,
  errorMessage,
  listMessage,
  notARequesterModal,
  noticeMessage,
  REQUEST_FIELDS,
  refusalMessage,
  refusalText,
  requestModal,
  tokenModal,
} from '../../blocks/index.ts';
import { errorText, type SlackDeps, tell } from '../../deps.ts';
import { openModal } from '../../open-modal.ts';
import { actionTsOf, actionValue, responseUrlOf, triggerIdOf, userIdOf, viewOf } from '../../payloads.ts';
import { isStaleView } from '../../slack-errors.ts';
import { decodeListPage, decodeQuotaValue, decodeValue, type QuotaChoice } from './values.ts';

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

/**
 * The newest choice seen per open request modal (by Slack's `action_ts`), so a change that lost
 * the race for the view's hash is applied only when it is still the newest one.
 */
function createLatestChoices(limit = 1000) {
  const latest = new Map<string, number>();
  return {
    /** Records `at` for `viewId`; true when nothing newer was seen. */
    note(viewId: string, at: number): boolean {
      const seen = latest.get(viewId);
      if (seen !== undefined && seen > at) return false;
      latest.delete(viewId);
      latest.set(viewId, at);
      if (latest.size > limit) latest.delete(latest.keys().next().value ?? '');
      return true;
    },
    isNewest: (viewId: string, at: number): boolean => (latest.get(viewId) ?? at) <= at,
  };
}

export function register(app: App, deps: SlackDeps): void {
  const { access } = deps;
  const choices = createLatestChoices();

  const approve = async (click: Click, requestId: string, durationSeconds?: number, quota?: QuotaChoice) => {
    if (!isUuid(requestId)) return;
    const result = await access.approve({
      actor: { type: 'slack', userId: click.userId },
      requestId,
      ...(durationSeconds === undefined ? {} : { durationSeconds }),
      ...(quota === undefined ? {} : { quota }),
    });
    // The approval message itself is updated by the outbox dispatcher; only refusals need words here.
    if (!result.ok) await tell(deps, click.body, refusalMessage(result));
    else await deps.homes.refresh([click.userId]);
  };

  /** Opens a modal within the trigger's 3 s, however long deciding what it shows takes. */
  const modal = (click: Click, title: string, work: Parameters<typeof openModal>[3]) => {
    if (!click.triggerId) return Promise.resolve();
    return openModal(deps, click.triggerId, title, work, (text) =>
      tell(deps, click.body, errorMessage(text, false)),
    );
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
    const requestId = click.value;
    // Say why before opening a modal the clicker could not submit anyway; an approver check may
    // ask Slack for a user group, so the modal opens first when that is slow.
    await modal(click, 'Deny request', async () => {
      const request = await access.getRequest(requestId);
      if (!request) return { refusal: refusalText({ code: 'request_not_found' }) };
      if (request.requesterId === click.userId) {
        return { refusal: refusalText({ code: 'self_approval', attempted: 'deny' }) };
      }
      if (!(await access.isApproverOf(request.resource, click.userId))) {
        return {
          refusal: refusalText({ code: 'not_an_approver', resource: request.resource, attempted: 'decide' }),
        };
      }
      if (request.status !== 'pending') {
        return {
          refusal: refusalText({ code: 'request_not_pending', status: request.status, decidedBy: null }),
        };
      }
      return { view: denyModal(request) };
    });
  });

  onAction(app, deps, ACTIONS.cancel, async (click) => {
    if (!isUuid(click.value)) return;
    const result = await access.cancel({
      actor: { type: 'slack', userId: click.userId },
      requestId: click.value,
    });
    if (!result.ok) await tell(deps, click.body, refusalMessage(result));
  });

  onAction(app, deps, ACTIONS.showToken, async (click) => {
    if (!isUuid(click.value)) return;
    const grantId = click.value;
    await modal(click, 'Your access token', async () => {
      const grant = await access.getGrant(grantId);
      if (!grant || grant.userId !== click.userId)
        return { refusal: "Only the grant's owner can see its token." };
      if (grant.status !== 'active' || grant.expiresAt <= deps.clock.now()) {
        return { refusal: `This grant has ${grant.status === 'revoked' ? 'been revoked' : 'expired'}.` };
      }
      // `sender_constraint: dpop`: a bearer token would be refused; the person is sent to the CLI.
      if (requiresBoundTokens(deps.policy.current(), grant.resource, grant.scope)) {
        return { view: cliTokenModal(grant, deps.serverUrl) };
      }
      // Issued fresh on each click, so it carries the grant's current expiry (after extensions too).
      return { view: tokenModal(grant, await deps.issueToken(grant), deps.proxyUrl) };
    });
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
    if (!result.ok) await tell(deps, click.body, refusalMessage(result));
  });

  onAction(app, deps, ACTIONS.revoke, async (click) => {
    if (!isUuid(click.value)) return;
    const result = await access.revokeGrant({
      grantId: click.value,
      actor: { type: 'slack', userId: click.userId },
      reason: 'revoked in Slack',
    });
    if (!result.ok) await tell(deps, click.body, refusalMessage(result));
    else await deps.homes.refresh([click.userId]);
  });

  onAction(app, deps, ACTIONS.extend, async (click) => {
    const decoded = decodeValue(click.value);
    if (!decoded || !isUuid(decoded.id)) return;
    const result = await access.requestExtension({
      actor: { type: 'slack', userId: click.userId },
      grantId: decoded.id,
      durationSeconds: decoded.seconds,
    });
    if (!result.ok) return tell(deps, click.body, refusalMessage(result));
    if (result.value.grant === undefined) {
      await tell(
        deps,
        click.body,
        noticeMessage(`Extension sent to the approvers of ${result.value.request.resource}.`),
      );
    }
  });

  // Next or previous page of /access list or /access active, in place of the page shown.
  const turnPage = async (click: Click) => {
    const page = decodeListPage(click.value);
    const url = responseUrlOf(click.body);
    if (!page || !url) return;
    const now = deps.clock.now();
    const message =
      page.list === 'mine'
        ? listMessage(await access.listForUser(click.userId), now, page.page)
        : activeMessage(await access.listForApprover(click.userId), now, page.page);
    await deps.notifier.respond(url, message, { replaceOriginal: true });
  };
  onAction(app, deps, ACTIONS.listPage, turnPage);
  onAction(app, deps, ACTIONS.listPageBack, turnPage);

  // The request modal's resource select: show that resource's scopes and durations.
  onAction(app, deps, REQUEST_FIELDS.resource.action, async (click) => {
    const view = viewOf(click.body);
    if (!view) return;
    const at = actionTsOf(click.body);
    if (!choices.note(view.id, at)) return;
    const next = requestModal(deps.policy.current(), { resource: click.value });
    try {
      await deps.notifier.updateView(view.id, view.hash, next);
    } catch (error) {
      if (!isStaleView(error)) throw error;
      // The view changed since this choice was made: another choice landed first. If this one
      // is still the newest seen, it is what the person wants now; otherwise it is old news.
      if (!choices.isNewest(view.id, at)) return;
      await deps.notifier.updateView(view.id, undefined, next).catch((again: unknown) => {
        deps.logger.debug({ err: errorText(again) }, 'request modal not updated');
      });
    }
  });

  // A modal opened before resource and scope were asked apart carries one `resource|scope` select.
  onAction(app, deps, REQUEST_FIELDS.target.action, async (click) => {
    const view = viewOf(click.body);
    const [resource, scope] = click.value.split('|');
    if (!view || !resource) return;
    const next = requestModal(deps.policy.current(), { resource, ...(scope ? { scope } : {}) });
    await deps.notifier.updateView(view.id, view.hash, next).catch((error: unknown) => {
      if (!isStaleView(error)) throw error;
    });
  });

  onAction(app, deps, ACTIONS.openRequestModal, async (click) => {
    await modal(click, 'Request access', async () =>
      (await deps.access.mayRequestAccess(click.userId))
        ? { view: requestModal(deps.policy.current()) }
        : { view: notARequesterModal() },
    );
  });
}
