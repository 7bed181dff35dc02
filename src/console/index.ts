export * from './actions.ts';
export * from './app.ts';
export * from './viewer.ts';
