export type { DeviceDeps } from './deps.ts';
export { findPairing, linkDeviceByCode, rejectPairing } from './link-device.ts';
export type {
  DeviceErrorCode,
  DeviceOutcome,
} from './outcomes.ts';
export {} from './pairing-code.ts';
export { revokeDevice, revokeDevicesOf } from './revoke-device.ts';
export {
  type StartedPairing,
  type StartPairingInput,
  startPairing,
} from './start-pairing.ts';
