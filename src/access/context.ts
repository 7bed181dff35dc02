import { randomUUID } from 'node:crypto';
import type { Db } from '../db/client.ts';
import type { OutboxMessage } from '../outbox/index.ts';
import type { PolicyStore, ResourcePolicy } from '../policy/index.ts';
import type { Clock } from '../shared/clock.ts';
import type { Directory } from './directory.ts';

export interface AccessDeps {
  db: Db;
  policy: PolicyStore;
  clock: Clock;
  directory: Directory;
  /** NOTIFY channel the proxies listen on for grant changes. */
  grantChannel: string;
  newId?: () => string;
  /** Called after a transaction commits, with the messages it wrote (for prompt delivery). */
  onCommitted?: (messages: readonly OutboxMessage[]) => void;
}

/** What every access action gets: its dependencies, built once by `createAccessService`. */
export interface AccessContext extends AccessDeps {
  newId: () => string;
}

export function accessContext(deps: AccessDeps): AccessContext {
  return { ...deps, newId: deps.newId ?? randomUUID };
}

/** A resource of the policy now, or undefined (a name never in it, or no longer). */
export function resourceOf(ctx: Pick<AccessContext, 'policy'>, name: string): ResourcePolicy | undefined {
  const resources = ctx.policy.current().resources;
  return Object.hasOwn(resources, name) ? resources[name] : undefined;
}
