export * from './bull-scheduler.ts';
export * from './jobs.ts';
export * from './local-scheduler.ts';
export * from './reconcile.ts';
export * from './store.ts';
export * from './timing.ts';
export * from './types.ts';
export * from './with-timeout.ts';
