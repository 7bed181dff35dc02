import type { App } from '@slack/bolt';
import { checkRequest } from '../../../policy/index.ts';
import { DENY_FIELDS, errorMessage, REQUEST_FIELDS, requestSubmittedMessage, VIEWS } from '../../blocks.ts';
import { errorText, type SlackDeps, tell } from '../../deps.ts';
import { isUuid, privateMetadataOf, viewInput } from '../../payloads.ts';

export function register(app: App, deps: SlackDeps): void {
  app.view(VIEWS.request, async ({ ack, body, view }) => {
    const userId = body.user.id;
    const target = viewInput(view, REQUEST_FIELDS.target.block, REQUEST_FIELDS.target.action) ?? '';
    const [resource = '', scope] = target.split('|');
    const durationSeconds = Number(
      viewInput(view, REQUEST_FIELDS.duration.block, REQUEST_FIELDS.duration.action),
    );
    const reason = viewInput(view, REQUEST_FIELDS.reason.block, REQUEST_FIELDS.reason.action) ?? '';
    // Validation is pure (policy only), so it runs before the ack and its errors stay in the modal.
    const errors: Record<string, string> = {};
    if (!Number.isSafeInteger(durationSeconds) || durationSeconds <= 0) {
      errors[REQUEST_FIELDS.duration.block] = 'Choose a duration.';
    } else {
      const checked = checkRequest(deps.policy.current(), { resource, scope, durationSeconds, reason });
      if (!checked.ok) {
        const block =
          checked.code === 'unknown_resource' || checked.code === 'unknown_scope'
            ? REQUEST_FIELDS.target.block
            : checked.code.startsWith('duration')
              ? REQUEST_FIELDS.duration.block
              : REQUEST_FIELDS.reason.block;
        errors[block] = checked.message;
      }
    }
    if (Object.keys(errors).length > 0) {
      await ack({ response_action: 'errors', errors });
      return;
    }
    await ack();
    try {
      const result = await deps.access.createRequest({
        requesterId: userId,
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
          : errorMessage(result.message, false),
      );
    } catch (error) {
      deps.logger.error({ err: errorText(error) }, 'request submission failed');
      await tell(deps, body, errorMessage('Something went wrong on our side; try again in a moment.', false));
    }
  });

  app.view(VIEWS.deny, async ({ ack, body, view }) => {
    const requestId = privateMetadataOf(view);
    const note = viewInput(view, DENY_FIELDS.reason.block, DENY_FIELDS.reason.action)?.trim() ?? '';
    if (note === '') {
      await ack({
        response_action: 'errors',
        errors: { [DENY_FIELDS.reason.block]: 'Say why, for the requester.' },
      });
      return;
    }
    await ack();
    if (!isUuid(requestId)) return;
    try {
      const result = await deps.access.deny({ requestId, approverId: body.user.id, note });
      if (!result.ok) await tell(deps, body, errorMessage(result.message, false));
    } catch (error) {
      deps.logger.error({ err: errorText(error) }, 'deny failed');
      await tell(deps, body, errorMessage('Something went wrong on our side; try again in a moment.', false));
    }
  });
}
