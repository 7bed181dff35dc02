export { deviceAccessFrom } from './access-adapter.ts';
export type {
  AccessResult,
  DeviceAccess,
  DeviceApiDeps,
  GrantView,
  NewRequest,
  RequestState,
  RequestView,
} from './deps.ts';
export { type DeviceApiErrorCode, type DeviceApiRefusal, deviceApiStatus } from './errors.ts';
export { deviceApi } from './routes.ts';
