export * from './enqueue.ts';
export * from './grant-feed.ts';
export * from './messages.ts';
