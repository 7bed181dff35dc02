import type { FastifyRequest } from 'fastify';
import type { WebContext } from '../../console/context.ts';
import type { Viewer } from '../../console/viewer.ts';

/** What every /api/v1 route group gets: the console's context, and the signed-in person. */
export interface V1Context {
  ctx: WebContext;
  /** The person the session names; the routes run only after the hook that requires one. */
  viewerOf(request: FastifyRequest): Viewer;
}
