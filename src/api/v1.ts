import type { FastifyInstance } from 'fastify';
import type { WebContext } from '../console/context.ts';
import type { Viewer } from '../console/viewer.ts';
import { refuse } from './refusals.ts';
import { alertRoutes } from './v1/alerts.ts';
import { auditRoutes } from './v1/audit.ts';
import type { V1Context } from './v1/context.ts';
import { grantRoutes } from './v1/grants.ts';
import { peopleRoutes } from './v1/people.ts';
import { policyRoutes } from './v1/policy.ts';
import { requestRoutes } from './v1/requests.ts';
import { sessionRoutes } from './v1/session.ts';

/**
 * `/api/v1`: JSON over the console session (API tokens for scripts are a later issue). Every
 * route needs a signed-in person (401 otherwise); every state-changing one a CSRF token in
 * `x-csrf-token` (403 otherwise). What each person sees is narrowed in the reads themselves;
 * what they change is decided by the access service. The routes, one file per tag, are in
 * src/api/v1/.
 */
export async function apiV1(app: FastifyInstance, ctx: WebContext): Promise<void> {
  app.addHook('preHandler', async (request, reply) => {
    if (!ctx.viewer(request)) return refuse(reply, 401, 'unauthenticated', 'Sign in to the console first.');
    reply.header('cache-control', 'no-store');
  });
  app.addHook('preHandler', (request, reply, done) => {
    if (request.method === 'GET' || request.method === 'HEAD') return done();
    ctx.checkCsrf(request, reply, done);
  });
  const routes: V1Context = {
    ctx,
    viewerOf(request): Viewer {
      const viewer = ctx.viewer(request);
      if (!viewer) throw new Error('route reached without a viewer');
      return viewer;
    },
  };
  for (const register of [
    sessionRoutes,
    grantRoutes,
    requestRoutes,
    peopleRoutes,
    alertRoutes,
    auditRoutes,
    policyRoutes,
  ]) {
    register(app, routes);
  }
}
