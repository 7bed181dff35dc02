/** Why a device operation was refused: a value each transport (Slack, the device API) maps once. */
export type DeviceErrorCode =
  | 'pairing_code_malformed'
  | 'pairing_code_unknown'
  | 'pairing_code_wrong'
  | 'pairing_code_expired'
  | 'pairing_locked'
  | 'device_key_known'
  | 'device_name_invalid'
  | 'device_not_found'
  | 'device_revoked'
  | 'not_device_owner';

export type DeviceRefusal = { ok: false; code: DeviceErrorCode; message: string };
export type DeviceOutcome<T> = { ok: true; value: T } | DeviceRefusal;

export const deviceOk = <T>(value: T): DeviceOutcome<T> => ({ ok: true, value });
export const deviceRefusal = (code: DeviceErrorCode, message: string): DeviceRefusal => ({
  ok: false,
  code,
  message,
});
