import type { App, SlashCommand } from '@slack/bolt';
import { type AccessCommand, parseAccessCommand } from '../../access-command-parser.ts';
import {
  activeMessage,
  auditMessage,
  errorMessage,
  helpMessage,
  listMessage,
  NOT_A_REQUESTER_TEXT,
  noticeMessage,
  refusalMessage,
  requestModal,
  requestSubmittedMessage,
  revokeAllMessage,
  type SlackMessage,
} from '../../blocks/index.ts';
import { errorText, type SlackDeps } from '../../deps.ts';
import { openModal } from '../../open-modal.ts';
import { devicesCommand, linkCommand } from '../devices.ts';

const ephemeral = (message: SlackMessage) => ({ response_type: 'ephemeral' as const, ...message });

async function approvesAnything(deps: SlackDeps, userId: string): Promise<boolean> {
  return (await deps.access.approvedResources(userId)).length > 0;
}

/** Runs a parsed command after the ack; returns the answer to send through `response_url`. */
async function run(
  deps: SlackDeps,
  command: AccessCommand,
  body: SlashCommand,
): Promise<SlackMessage | undefined> {
  const userId = body.user_id;
  const now = deps.clock.now();
  switch (command.kind) {
    case 'modal': {
      // Whether this person may request can take a user-group lookup; the form opens within
      // the trigger's 3 s regardless (a loading modal first when the lookup is slow).
      let refused: SlackMessage | undefined;
      await openModal(
        deps,
        body.trigger_id,
        'Request access',
        async () =>
          (await deps.access.mayRequestAccess(userId))
            ? { view: requestModal(deps.policy.current()) }
            : { refusal: NOT_A_REQUESTER_TEXT },
        async (text) => {
          refused = errorMessage(text, false);
        },
      );
      return refused;
    }
    case 'help':
      return helpMessage();
    case 'request': {
      const result = await deps.access.createRequest({
        actor: { type: 'slack', userId },
        resource: command.resource,
        scope: command.scope,
        durationSeconds: command.durationSeconds,
        reason: command.reason,
      });
      if (!result.ok) return refusalMessage(result, true);
      return requestSubmittedMessage(result.value.request, result.value.grant !== undefined);
    }
    case 'list':
      return listMessage(await deps.access.listForUser(userId), now);
    case 'active':
      if (!(await approvesAnything(deps, userId))) {
        return errorMessage('`active` is for approvers, and you approve no resource.', false);
      }
      return activeMessage(await deps.access.listForApprover(userId), now);
    case 'revoke': {
      const grant = await deps.access.getGrant(command.grantId);
      const self = grant?.userId === userId;
      const result = await deps.access.revokeGrant({
        grantId: command.grantId,
        actor: { type: 'slack', userId },
        reason: command.reason ?? (self ? 'given up by its owner' : 'revoked in Slack'),
      });
      if (!result.ok) return refusalMessage(result, true);
      return noticeMessage(
        `Grant ${result.value.id} on ${result.value.resource} is revoked; its token no longer works.`,
      );
    }
    case 'extend': {
      const result = await deps.access.requestExtension({
        actor: { type: 'slack', userId },
        grantId: command.grantId,
        durationSeconds: command.durationSeconds,
      });
      if (!result.ok) return refusalMessage(result, true);
      return result.value.grant !== undefined
        ? noticeMessage(
            `Extended: your grant on ${result.value.request.resource} now lasts longer. Check your DMs.`,
          )
        : noticeMessage(
            `Extension of ${command.grantId} sent to the approvers of ${result.value.request.resource}.`,
          );
    }
    case 'revoke-all': {
      // Approvers only: the service ends what lies on the resources the caller approves.
      const result = await deps.access.revokeAll({
        actor: { type: 'slack', userId },
        targetId: command.userId,
        ...(command.reason !== undefined ? { reason: command.reason } : {}),
      });
      if (!result.ok) return refusalMessage(result, true);
      return revokeAllMessage({ userId: command.userId, ...result.value });
    }
    case 'link':
      return linkCommand(deps, userId, command.code);
    case 'devices':
      return devicesCommand(deps, userId);
    case 'audit': {
      // Someone who approves nothing learns nothing, not even whether a grant id exists.
      if (!(await approvesAnything(deps, userId))) {
        return errorMessage('`audit` is for approvers, and you approve no resource.', false);
      }
      const grant = await deps.access.getGrant(command.grantId);
      if (!grant) {
        return errorMessage(
          `There is no grant ${command.grantId}. Grant ids are shown by \`/access active\` and on approval messages.`,
          false,
        );
      }
      if (!(await deps.access.isApproverOf(grant.resource, userId))) {
        return errorMessage(`Only approvers of ${grant.resource} can see what a grant was used for.`, false);
      }
      if (!deps.summarizeGrant)
        return errorMessage('Audit summaries are not available in this deployment.', false);
      const summary = await deps.summarizeGrant(grant.id);
      // The summarizer answers a grant without calls with zeros; say so plainly instead.
      if (!summary || summary.totalCalls === 0) {
        return noticeMessage(
          `Grant ${grant.id} on ${grant.resource} has no calls recorded yet (nothing went through the proxy with it).`,
        );
      }
      return auditMessage(summary);
    }
  }
}

export function registerAccessCommand(app: App, deps: SlackDeps): void {
  app.command('/access', async ({ ack, command }) => {
    const parsed = parseAccessCommand(command.text);
    // Answers that need no database go out with the ack itself.
    if (!parsed.ok) {
      await ack(ephemeral(errorMessage(parsed.problem)));
      return;
    }
    if (parsed.command.kind === 'help') {
      await ack(ephemeral(helpMessage()));
      return;
    }
    await ack();
    try {
      const answer = await run(deps, parsed.command, command);
      if (answer) await deps.notifier.respond(command.response_url, answer);
    } catch (error) {
      deps.logger.error({ err: errorText(error), verb: parsed.command.kind }, '/access failed');
      await deps.notifier
        .respond(
          command.response_url,
          errorMessage('Something went wrong on our side; try again in a moment.', false),
        )
        .catch(() => undefined);
    }
  });
}
