import type { App } from '@slack/bolt';
import { checkUserText } from '../../../access/index.ts';
import { checkRequest, type Policy } from '../../../policy/index.ts';
import { isUuid } from '../../../shared/ids.ts';
import {
  DENY_FIELDS,
  errorMessage,
  REQUEST_FIELDS,
  refusalMessage,
  refusalText,
  requestFieldOf,
  requestModal,
  requestSubmittedMessage,
  VIEWS,
} from '../../blocks/index.ts';
import { errorText, type SlackDeps, tell } from '../../deps.ts';
import { privateMetadataOf, viewInput } from '../../payloads.ts';

/** The resource and scope chosen in the request form (or in the single select of an older form). */
function chosenTarget(view: unknown): { resource: string; scope: string | undefined } {
  const resource = viewInput(view, REQUEST_FIELDS.resource.block, REQUEST_FIELDS.resource.action);
  if (resource !== undefined) {
    return { resource, scope: viewInput(view, REQUEST_FIELDS.scope.block, REQUEST_FIELDS.scope.action) };
  }
  const [legacy = '', scope] = (
    viewInput(view, REQUEST_FIELDS.target.block, REQUEST_FIELDS.target.action) ?? ''
  ).split('|');
  return { resource: legacy, scope };
}

/**
 * The form must be shown again for the chosen resource when the scope it shows is not one of
 * that resource's (the update that follows a resource choice lost a race and was dropped).
 */
function needsScopes(policy: Policy, resource: string, scope: string | undefined): boolean {
  const known = Object.hasOwn(policy.resources, resource) ? policy.resources[resource] : undefined;
  return known !== undefined && (scope === undefined || !Object.hasOwn(known.scopes, scope));
}

export function register(app: App, deps: SlackDeps): void {
  app.view(VIEWS.request, async ({ ack, body, view }) => {
    const userId = body.user.id;
    const policy = deps.policy.current();
    const { resource, scope } = chosenTarget(view);
    if (needsScopes(policy, resource, scope)) {
      await ack({ response_action: 'update', view: requestModal(policy, { resource }) });
      return;
    }
    const durationSeconds = Number(
      viewInput(view, REQUEST_FIELDS.duration.block, REQUEST_FIELDS.duration.action),
    );
    const reason = viewInput(view, REQUEST_FIELDS.reason.block, REQUEST_FIELDS.reason.action) ?? '';
    // Validation is pure (policy only), so it runs before the ack and its errors stay in the modal.
    const errors: Record<string, string> = {};
    const unfit = checkUserText(reason, 'reason');
    if (unfit) errors[REQUEST_FIELDS.reason.block] = refusalText(unfit);
    if (!Number.isSafeInteger(durationSeconds) || durationSeconds <= 0) {
      errors[REQUEST_FIELDS.duration.block] = 'Choose a duration.';
    } else if (!unfit) {
      const checked = checkRequest(policy, { resource, scope, durationSeconds, reason });
      if (!checked.ok) errors[requestFieldOf(checked.code)] = refusalText(checked).slice(0, 2000);
    }
    if (Object.keys(errors).length > 0) {
      await ack({ response_action: 'errors', errors });
      return;
    }
    await ack();
    try {
      const result = await deps.access.createRequest({
        actor: { type: 'slack', userId },
        resource,
        scope,
        durationSeconds,
        reason,
      });
      await tell(
        deps,
        body,
        result.ok
          ? requestSubmittedMessage(result.value.request, result.value.grant !== undefined)
          : refusalMessage(result),
      );
    } catch (error) {
      deps.logger.error({ err: errorText(error) }, 'request submission failed');
      await tell(deps, body, errorMessage('Something went wrong on our side; try again in a moment.', false));
    }
  });

  app.view(VIEWS.deny, async ({ ack, body, view }) => {
    const requestId = privateMetadataOf(view);
    const note = viewInput(view, DENY_FIELDS.reason.block, DENY_FIELDS.reason.action)?.trim() ?? '';
    const unfit = checkUserText(note, 'note');
    if (note === '' || unfit) {
      await ack({
        response_action: 'errors',
        errors: { [DENY_FIELDS.reason.block]: unfit ? refusalText(unfit) : 'Say why, for the requester.' },
      });
      return;
    }
    await ack();
    if (!isUuid(requestId)) return;
    try {
      const result = await deps.access.deny({
        actor: { type: 'slack', userId: body.user.id },
        requestId,
        note,
      });
      if (!result.ok) await tell(deps, body, refusalMessage(result));
    } catch (error) {
      deps.logger.error({ err: errorText(error) }, 'deny failed');
      await tell(deps, body, errorMessage('Something went wrong on our side; try again in a moment.', false));
    }
  });
}
