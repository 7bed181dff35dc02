import type { PersonActor } from '../../src/shared/actor.ts';

/** A person acting in Slack, as the Slack listeners pass them to the access actions. */
export const slackUser = (userId: string): PersonActor => ({ type: 'slack', userId });

/** A person signed in to the web console. */
export const consoleUser = (userId: string, admin = false): PersonActor => ({
  type: 'console',
  userId,
  admin,
});
