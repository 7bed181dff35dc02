import { appendAuditEvents } from '../audit/chain-append.ts';
import { findDevice, revokeDeviceRow, revokeLinkedDevicesOf } from '../db/queries/devices.ts';
import type { Device } from '../db/schema/index.ts';
import { type Actor, actorLabel } from '../shared/actor.ts';
import { announceRevoked, changeAudited } from './audited.ts';
import type { DeviceDeps } from './deps.ts';
import { type DeviceOutcome, deviceOk, deviceRefusal } from './outcomes.ts';

const revokedEvent = (device: Device, actor: Actor, at: Date, reason: string) => ({
  kind: 'device.revoked',
  actor,
  at,
  data: { deviceId: device.id, name: device.name, userId: device.userId, reason },
});

/**
 * Ends a device: its key signs nothing the device API or (phase 2) the proxy accepts from then on.
 * A person revokes only their own devices; system actors (offboarding, anomaly rules) any.
 */
export async function revokeDevice(
  deps: DeviceDeps,
  input: { deviceId: string; actor: Actor; reason: string },
): Promise<DeviceOutcome<Device>> {
  const peek = await findDevice(deps.db, input.deviceId);
  if (!peek) return deviceRefusal('device_not_found', 'No such device.');
  if (input.actor.type === 'slack' && peek.userId !== input.actor.userId) {
    return deviceRefusal('not_device_owner', 'Only the person a device belongs to can revoke it.');
  }
  const reason = input.reason.trim().slice(0, 2000) || 'revoked';
  const now = deps.clock.now();
  const revoked = await changeAudited(
    deps,
    (tx) => revokeDeviceRow(tx, { id: peek.id, by: actorLabel(input.actor), reason, now }),
    (row) => revokedEvent(row, input.actor, now, reason),
  );
  return revoked ? deviceOk(revoked) : deviceRefusal('device_revoked', 'That device is already revoked.');
}

/** Every linked device of a person, revoked in one transaction with an audit row each (offboarding). */
export function revokeDevicesOf(
  deps: DeviceDeps,
  input: { userId: string; actor: Actor; reason: string },
): Promise<Device[]> {
  const now = deps.clock.now();
  return deps.db.transaction(async (tx) => {
    const rows = await revokeLinkedDevicesOf(tx, {
      userId: input.userId,
      by: actorLabel(input.actor),
      reason: input.reason,
      now,
    });
    await appendAuditEvents(
      tx,
      rows.map((row) => revokedEvent(row, input.actor, now, input.reason)),
    );
    await announceRevoked(deps, tx, rows);
    return rows;
  });
}
