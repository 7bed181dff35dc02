import { randomUUID } from 'node:crypto';
import { findDeviceByThumbprint, insertPendingDevice } from '../db/queries/devices.ts';
import type { Device } from '../db/schema/index.ts';
import type { DpopPublicJwk } from '../tokens/dpop.ts';
import type { DeviceDeps } from './deps.ts';
import { type DeviceOutcome, deviceOk, deviceRefusal } from './outcomes.ts';
import { newPairingCode, pairingSecretHash } from './pairing-code.ts';

const DEFAULT_PAIRING_SECONDS = 10 * 60;
const MAX_NAME_LENGTH = 64;
// Printable text only: the name is shown in Slack and in terminals.
const CONTROL = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;
const HANDLE_DRAWS = 8;

export interface StartPairingInput {
  name: string;
  /** The key the CLI proved it holds (the public key of a verified DPoP proof). */
  publicJwk: DpopPublicJwk;
  thumbprint: string;
}

export interface StartedPairing {
  device: Device;
  /** Shown once to the CLI, never stored in clear: `HHHH-SSSS`. */
  code: string;
}

/**
 * A new pending device and its pairing code. Nothing is audited yet: a pending device can do
 * nothing; linking it (by a person in Slack) is the change that counts, and is audited.
 */
export async function startPairing(
  deps: DeviceDeps,
  input: StartPairingInput,
): Promise<DeviceOutcome<StartedPairing>> {
  const name = input.name.trim();
  if (name.length === 0 || name.length > MAX_NAME_LENGTH || CONTROL.test(name)) {
    return deviceRefusal(
      'device_name_invalid',
      `A device name is 1 to ${MAX_NAME_LENGTH} printable characters, like "alice-laptop".`,
    );
  }
  const keyKnown = () =>
    deviceRefusal(
      'device_key_known',
      'This key is already paired (or was revoked); make a new key to pair again.',
    );
  if (await findDeviceByThumbprint(deps.db, input.thumbprint)) return keyKnown();
  const now = deps.clock.now();
  const newId = deps.newId ?? randomUUID;
  // A handle is 20 bits and unique among pending devices only: a clash is rare and just redrawn.
  for (let draw = 0; draw < HANDLE_DRAWS; draw++) {
    const code = newPairingCode();
    const id = newId();
    const device = await insertPendingDevice(deps.db, {
      id,
      name,
      thumbprint: input.thumbprint,
      publicJwk: { ...input.publicJwk },
      pairingHandle: code.handle,
      pairingSecretHash: pairingSecretHash(id, code.secret),
      pairingExpiresAt: new Date(now.getTime() + (deps.pairingSeconds ?? DEFAULT_PAIRING_SECONDS) * 1000),
      createdAt: now,
    });
    if (device) return deviceOk({ device, code: code.display });
    if (await findDeviceByThumbprint(deps.db, input.thumbprint)) return keyKnown();
  }
  throw new Error(`startPairing: no free pairing handle after ${HANDLE_DRAWS} draws`);
}
