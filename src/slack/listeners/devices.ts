import type { AllMiddlewareArgs, App, SlackActionMiddlewareArgs } from '@slack/bolt';
import { linkedDevicesOf } from '../../db/queries/devices.ts';
import { findPairing, linkDeviceByCode, rejectPairing, revokeDevice } from '../../devices/index.ts';
import { isUuid } from '../../shared/ids.ts';
import {
  ACTIONS,
  devicesMessage,
  errorMessage,
  linkDevicePrompt,
  noticeMessage,
  type SlackMessage,
} from '../blocks/index.ts';
import { errorText, type SlackDeps, tell } from '../deps.ts';
import { actionValue, responseUrlOf, userIdOf } from '../payloads.ts';

const NO_DEVICES = 'Device pairing is not available in this deployment.';

/** `/access link <code>`: the device the code names, and Link / Not me. */
export async function linkCommand(deps: SlackDeps, userId: string, code: string): Promise<SlackMessage> {
  if (!deps.devices) return errorMessage(NO_DEVICES, false);
  const found = await findPairing(deps.devices, { code, userId });
  if (!found.ok) return errorMessage(found.message, false);
  return linkDevicePrompt(found.value, code);
}

/** `/access devices`: the person's linked devices. */
export async function devicesCommand(deps: SlackDeps, userId: string): Promise<SlackMessage> {
  if (!deps.devices) return errorMessage(NO_DEVICES, false);
  return devicesMessage(await linkedDevicesOf(deps.devices.db, userId));
}

type ActionArgs = SlackActionMiddlewareArgs & AllMiddlewareArgs;

/** Link, Not me and Revoke: each answers in place of the message its button was on. */
export function registerDeviceActions(app: App, deps: SlackDeps): void {
  const on = (actionId: string, work: (userId: string, value: string) => Promise<SlackMessage>) => {
    app.action(actionId, async ({ ack, action, body }: ActionArgs) => {
      await ack();
      const userId = userIdOf(body);
      const value = actionValue(action);
      if (!userId || value === undefined) return;
      let answer: SlackMessage;
      try {
        answer = deps.devices ? await work(userId, value) : errorMessage(NO_DEVICES, false);
      } catch (error) {
        deps.logger.error({ err: errorText(error), actionId }, 'slack device action failed');
        answer = errorMessage('Something went wrong on our side; try again in a moment.', false);
      }
      const url = responseUrlOf(body);
      if (url) await deps.notifier.respond(url, answer, { replaceOriginal: true }).catch(() => undefined);
      else await tell(deps, body, answer);
    });
  };
  on(ACTIONS.linkDevice, async (userId, code) => {
    const linked = await linkDeviceByCode(deps.devices!, { code, userId });
    if (!linked.ok) return errorMessage(linked.message, false);
    return noticeMessage(
      `Linked '${linked.value.name}'. The jitgate CLI on it now acts as you; \`/access devices\` lists and revokes your devices.`,
    );
  });
  on(ACTIONS.rejectDevice, async (userId, code) => {
    const refused = await rejectPairing(deps.devices!, { code, userId });
    if (!refused.ok) return errorMessage(refused.message, false);
    return noticeMessage(`Refused '${refused.value.name}': that key can never pair.`);
  });
  on(ACTIONS.revokeDevice, async (userId, deviceId) => {
    if (!isUuid(deviceId)) return errorMessage('No such device.', false);
    const revoked = await revokeDevice(deps.devices!, {
      deviceId: deviceId.toLowerCase(),
      actor: { type: 'slack', userId },
      reason: 'revoked in Slack by its owner',
    });
    if (!revoked.ok) return errorMessage(revoked.message, false);
    return noticeMessage(`Revoked '${revoked.value.name}': its tokens no longer work.`);
  });
}
