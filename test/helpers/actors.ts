import type { PersonActor } from '../../src/shared/actor.ts';

/** A person acting in Slack, as the Slack listeners pass them to the access actions. */
export const slackUser = (userId: string): PersonActor => ({ type: 'slack', userId });
