/** Who caused a change. Stored in audit rows as `slack:U123`, `system:scheduler`, `cli`. */
export type Actor =
  | { type: 'slack'; userId: string }
  | { type: 'system'; component: 'scheduler' | 'proxy' | 'anomaly' | 'policy' | 'offboarding' | 'outbox' }
  | { type: 'cli' };

export function actorLabel(actor: Actor): string {
  switch (actor.type) {
    case 'slack':
      return `slack:${actor.userId}`;
    case 'system':
      return `system:${actor.component}`;
    case 'cli':
      return 'cli';
  }
}
