/** Who caused a change. Stored in audit rows as `slack:U123`, `console:U123`, `system:scheduler`, `cli`. */
export type Actor =
  | { type: 'slack'; userId: string }
  /**
   * A person signed in to the web console (Sign in with Slack). `admin` is the console's
   * claim that the person is among the policy's `console.admins`; the access service checks
   * it against the policy again before it lets the claim widen anything.
   */
  | { type: 'console'; userId: string; admin?: boolean }
  | { type: 'system'; component: SystemComponent }
  | { type: 'cli' };

/** The parts of jitgate that act on their own. */
type SystemComponent = 'scheduler' | 'proxy' | 'anomaly' | 'policy' | 'offboarding' | 'outbox';

/** A person's actor: the one kind whose actions need a person's rights. */
export type PersonActor = Extract<Actor, { userId: string }>;

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

/** How each part of jitgate is spelled where a row says who ended or decided something. */
const SYSTEM_SPELLING: { readonly [C in SystemComponent]: string } = {
  scheduler: 'scheduler',
  proxy: 'proxy',
  // Revocations by anomaly rules have always been stored as `system`; kept, so old and new rows read alike.
  anomaly: 'system',
  policy: 'policy',
  offboarding: 'offboarding',
  outbox: 'outbox',
};

/**
 * Who ended or decided something, as `grants.ended_by` and `access_requests.decided_by`
 * store it and `grant_revoked` messages carry it: a person's Slack user id (whichever
 * channel they used), `cli`, or the part of the system. The one spelling of it.
 */
export function endedByOf(actor: Actor): string {
  switch (actor.type) {
    case 'slack':
    case 'console':
      return actor.userId;
    case 'cli':
      return 'cli';
    case 'system':
      return SYSTEM_SPELLING[actor.component];
  }
}

/** Every label a person's own actions carry in the audit log, whichever channel they used. */
export const personLabels = (userId: string): string[] => [`slack:${userId}`, `console:${userId}`];
