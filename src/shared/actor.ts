/** Who caused a change. Stored in audit rows as `slack:U123`, `console:U123`, `system:scheduler`, `cli`. */
export type Actor =
  | { type: 'slack'; userId: string }
  /**
   * A person signed in to the web console (Sign in with Slack). `admin` is the console's
   * claim that the person is among the policy's `console.admins`; the access service checks
   * it against the policy again before it lets the claim widen anything.
   */
  | { type: 'console'; userId: string; admin?: boolean }
  | { type: 'system'; component: 'scheduler' | 'proxy' | 'anomaly' | 'policy' | 'offboarding' | 'outbox' }
  | { type: 'cli' };

/** Where a person acted: the channel of a person's actor. */
export type PersonChannel = 'slack' | 'console';

export function actorLabel(actor: Actor): string {
  switch (actor.type) {
    case 'slack':
      return `slack:${actor.userId}`;
    case 'console':
      return `console:${actor.userId}`;
    case 'system':
      return `system:${actor.component}`;
    case 'cli':
      return 'cli';
  }
}

/** The person behind an actor (Slack or console), undefined for the system and the CLI. */
export function personOf(actor: Actor): string | undefined {
  return actor.type === 'slack' || actor.type === 'console' ? actor.userId : undefined;
}

/** The actor of a person acting through `channel` (Slack unless said otherwise). */
export function personActor(userId: string, channel: PersonChannel = 'slack'): Actor {
  return channel === 'console' ? { type: 'console', userId } : { type: 'slack', userId };
}

/** Every label a person's own actions carry in the audit log, whichever channel they used. */
export const personLabels = (userId: string): string[] => [`slack:${userId}`, `console:${userId}`];
