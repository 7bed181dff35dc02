import {
  findDevice,
  findPendingByHandle,
  linkPendingDevice,
  recordWrongPairingCode,
  revokeDeviceRow,
} from '../db/queries/devices.ts';
import { type Device, MAX_PAIRING_ATTEMPTS } from '../db/schema/index.ts';
import { changeAudited } from './audited.ts';
import type { DeviceDeps } from './deps.ts';
import { type DeviceOutcome, type DeviceRefusal, deviceOk, deviceRefusal } from './outcomes.ts';
import { pairingSecretHash, parsePairingCode } from './pairing-code.ts';

const unknownCode = (): DeviceRefusal =>
  deviceRefusal('pairing_code_unknown', 'No device is waiting with that code; run `jitgate login` again.');

/**
 * The pending device a typed code names, for showing "Link this device 'alice-laptop'?" before
 * linking. A wrong secret counts against that device; the last allowed one revokes it (audited,
 * as `userId`'s doing).
 */
export async function findPairing(
  deps: DeviceDeps,
  input: { code: string; userId: string },
): Promise<DeviceOutcome<Device>> {
  const parsed = parsePairingCode(input.code);
  if (!parsed) {
    return deviceRefusal(
      'pairing_code_malformed',
      'A pairing code has 8 letters and digits, like K7QF-3M9X.',
    );
  }
  const device = await findPendingByHandle(deps.db, parsed.handle);
  if (!device) return unknownCode();
  const now = deps.clock.now();
  if (device.pairingExpiresAt <= now) {
    return deviceRefusal('pairing_code_expired', 'That pairing code has expired; run `jitgate login` again.');
  }
  if (device.pairingSecretHash === pairingSecretHash(device.id, parsed.secret)) return deviceOk(device);
  const counted = await changeAudited(
    deps,
    (tx) => recordWrongPairingCode(tx, device.id, now),
    (row) =>
      row.status === 'revoked'
        ? {
            kind: 'device.pairing_locked',
            actor: { type: 'slack', userId: input.userId },
            at: now,
            data: { deviceId: row.id, name: row.name, attempts: row.pairingAttempts },
          }
        : undefined,
  );
  if (!counted) return unknownCode();
  if (counted.status === 'revoked') {
    return deviceRefusal(
      'pairing_locked',
      'Too many wrong codes for that device; run `jitgate login` again.',
    );
  }
  const left = MAX_PAIRING_ATTEMPTS - counted.pairingAttempts;
  return deviceRefusal(
    'pairing_code_wrong',
    `That code is wrong; check it against your terminal (${left} ${left === 1 ? 'try' : 'tries'} left).`,
  );
}

/**
 * Links the pending device a code names to the person who typed it, in one transaction with its
 * audit row. A code works once: of two submissions one links, the other is refused.
 */
export async function linkDeviceByCode(
  deps: DeviceDeps,
  input: { code: string; userId: string },
): Promise<DeviceOutcome<Device>> {
  const found = await findPairing(deps, input);
  if (!found.ok) return found;
  const parsed = parsePairingCode(input.code);
  if (!parsed) return unknownCode();
  const device = found.value;
  const now = deps.clock.now();
  const linked = await changeAudited(
    deps,
    (tx) =>
      linkPendingDevice(tx, {
        id: device.id,
        secretHash: pairingSecretHash(device.id, parsed.secret),
        userId: input.userId,
        now,
      }),
    (row) => ({
      kind: 'device.linked',
      actor: { type: 'slack', userId: input.userId },
      at: now,
      data: { deviceId: row.id, name: row.name, thumbprint: row.thumbprint },
    }),
  );
  if (linked) return deviceOk(linked);
  const after = await findDevice(deps.db, device.id);
  if (after?.status === 'revoked') return deviceRefusal('device_revoked', 'That device has been revoked.');
  if (after?.status === 'pending') {
    return deviceRefusal('pairing_code_expired', 'That pairing code has expired; run `jitgate login` again.');
  }
  return unknownCode();
}

/**
 * "Not me": the person who was shown a pending device refuses it; the device is revoked (its key
 * can never pair again) and the CLI that waits is told. Audited as that person's doing.
 */
export async function rejectPairing(
  deps: DeviceDeps,
  input: { code: string; userId: string },
): Promise<DeviceOutcome<Device>> {
  const found = await findPairing(deps, input);
  if (!found.ok) return found;
  const now = deps.clock.now();
  const reason = `refused in Slack by ${input.userId}`;
  const revoked = await changeAudited(
    deps,
    (tx) => revokeDeviceRow(tx, { id: found.value.id, by: `slack:${input.userId}`, reason, now }),
    (row) => ({
      kind: 'device.pairing_refused',
      actor: { type: 'slack', userId: input.userId },
      at: now,
      data: { deviceId: row.id, name: row.name },
    }),
  );
  return revoked ? deviceOk(revoked) : unknownCode();
}
