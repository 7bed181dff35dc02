export { createSlackApp, type SlackApp, type SlackAppOptions } from './app.ts';
export type { IssueToken } from './deps.ts';
export { slackGroupMembers } from './directory.ts';
export { createHomeTabs, type HomeTabs } from './home.ts';
export { createNotifier, type Notifier, type NotifierOptions, SlackCallError } from './notifier.ts';
export {
  createOutboxDispatcher,
  type OutboxDispatcher,
  type OutboxDispatcherDeps,
} from './outbox-dispatcher.ts';
