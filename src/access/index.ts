export * from './directory.ts';
export * from './offboarding.ts';
export * from './outcomes.ts';
export * from './service.ts';
export * from './transitions.ts';
export * from './user-text.ts';
