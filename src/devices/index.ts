export type { DeviceDeps } from './deps.ts';
export { findPairing, linkDeviceByCode, rejectPairing } from './link-device.ts';
export {
  type DeviceErrorCode,
  type DeviceOutcome,
  type DeviceRefusal,
  deviceOk,
  deviceRefusal,
} from './outcomes.ts';
export { newPairingCode, pairingSecretHash, parsePairingCode } from './pairing-code.ts';
export { revokeDevice, revokeDevicesOf } from './revoke-device.ts';
export {
  DEFAULT_PAIRING_SECONDS,
  type StartedPairing,
  type StartPairingInput,
  startPairing,
} from './start-pairing.ts';
