import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { renderPolicyResource } from '../policy-view.ts';
import { refusalResponses } from '../refusals.ts';
import type { V1Context } from './context.ts';

/** The policy, per resource, as the signed-in person may read it. */
export function policyRoutes(app: FastifyInstance, { ctx, viewerOf }: V1Context): void {
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.get(
    '/policy',
    {
      schema: {
        summary: 'The policy, per resource (read-only; upstream details for those who act on it)',
        tags: ['policy'],
        response: {
          200: z.object({ resources: z.array(z.record(z.string(), z.unknown())) }),
          ...refusalResponses,
        },
      },
    },
    async (request) => ({
      resources: ctx.reads.policy(viewerOf(request)).map((r) => renderPolicyResource(r.resource, r.full)),
    }),
  );
}
