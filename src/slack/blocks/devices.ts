import type { Device } from '../../db/schema/index.ts';
import { ACTIONS } from './ids.ts';
import { button, confirmDialog, context, type SlackMessage, section } from './kit.ts';
import { escapeText, notificationText, slackDate } from './text.ts';

/** "Link this device 'alice-laptop'? [Link] [Not me]": the answer to `/access link <code>`. */
export function linkDevicePrompt(device: Pick<Device, 'name' | 'createdAt'>, code: string): SlackMessage {
  const name = escapeText(device.name);
  return {
    text: notificationText(`Link this device '${device.name}'?`),
    blocks: [
      section(
        `:computer: Link this device '*${name}*'? It asked to pair at ${slackDate(device.createdAt)}. ` +
          'Once linked, the jitgate CLI on it acts as you: it can request access and use your grants.',
      ),
      {
        type: 'actions',
        elements: [
          button('Link', ACTIONS.linkDevice, code, 'primary'),
          button('Not me', ACTIONS.rejectDevice, code, 'danger'),
        ],
      },
      context('Press *Not me* if you did not just run `jitgate login`: that device can then never pair.'),
    ],
  };
}

/** `/access devices`: the person's linked devices, each with Revoke. */
export function devicesMessage(devices: readonly Device[]): SlackMessage {
  if (devices.length === 0) {
    return {
      text: 'You have no linked devices',
      blocks: [
        section('You have no linked devices. Run `jitgate login --server <url>` on a machine to pair one.'),
      ],
    };
  }
  return {
    text: notificationText(`Your linked devices: ${devices.length}`),
    blocks: [
      section(`*Your linked devices* (${devices.length})`),
      ...devices.slice(0, 40).map((device) => ({
        ...section(
          `*${escapeText(device.name)}* — linked ${device.linkedAt ? slackDate(device.linkedAt) : 'earlier'}`,
        ),
        accessory: button(
          'Revoke',
          ACTIONS.revokeDevice,
          device.id,
          'danger',
          confirmDialog(
            'Revoke this device?',
            'Its tokens stop working at once, and its key can never pair again.',
            'Revoke',
            'Keep it',
          ),
        ),
      })),
    ],
  };
}
