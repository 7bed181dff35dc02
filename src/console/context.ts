import type { FastifyReply, FastifyRequest } from 'fastify';
import type { PolicyStore } from '../policy/index.ts';
import type { Clock } from '../shared/clock.ts';
import type { ConsoleActions } from './actions.ts';
import type { ChainStatusReader } from './chain-status.ts';
import type { PersonNames } from './names.ts';
import type { ConsoleReads } from './reads.ts';
import type { Viewer } from './viewer.ts';

/** What the `/api/v1` routes and the console's pages share (built once in src/console/app.ts). */
export interface WebContext {
  reads: ConsoleReads;
  actions: ConsoleActions;
  chain: ChainStatusReader;
  /** People's names for the pages (a cache; never a Slack call per row). */
  names: PersonNames;
  clock: Clock;
  policy: PolicyStore;
  /** The signed-in person's roles now, or undefined when nobody is signed in. */
  viewer(request: FastifyRequest): Viewer | undefined;
  /** A CSRF token for the signed-in person, to echo in forms (`_csrf`) or `x-csrf-token`. */
  csrfToken(request: FastifyRequest, reply: FastifyReply): string;
  /**
   * preHandler for state-changing requests: a missing or wrong CSRF token, or an Origin that
   * is not the console's, is refused with 403 before the route runs.
   */
  checkCsrf: (request: FastifyRequest, reply: FastifyReply, done: (error?: Error) => void) => void;
}
