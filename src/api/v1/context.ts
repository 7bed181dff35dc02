import type { FastifyRequest } from 'fastify';
import type { WebContext } from '../../console/context.ts';
import type { Viewer } from '../../console/viewer.ts';

/** `names` for a response: the names cache's answer for these people, as a plain object. */
export async function namesFor(ctx: WebContext, userIds: Iterable<string>): Promise<Record<string, string>> {
  return Object.fromEntries(await ctx.names.of(userIds));
}

/** What every /api/v1 route group gets: the console's context, and the signed-in person. */
export interface V1Context {
  ctx: WebContext;
  /** The person the session names; the routes run only after the hook that requires one. */
  viewerOf(request: FastifyRequest): Viewer;
}
