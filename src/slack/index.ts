export { createSlackApp, type SlackApp } from './app.ts';
export { slackGroupMembers } from './directory.ts';
export { createNotifier, type Notifier } from './notifier.ts';
export { createOutboxDispatcher } from './outbox-dispatcher.ts';
