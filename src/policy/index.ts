export * from './duration.ts';
export * from './loader.ts';
export * from './matchers.ts';
export * from './schema.ts';
export * from './scope-rules.ts';
export * from './store.ts';
