export { deviceAccessFrom } from './access-adapter.ts';
export { deviceApi } from './routes.ts';
