import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { rolesOf } from '../../console/viewer.ts';
import { errorBody } from '../schemas.ts';
import type { V1Context } from './context.ts';

/** The signed-in person: who they are, their roles, and a CSRF token. */
export function sessionRoutes(app: FastifyInstance, { ctx, viewerOf }: V1Context): void {
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.get(
    '/session',
    {
      schema: {
        summary: 'The signed-in person, their roles and a CSRF token for state-changing calls',
        tags: ['session'],
        response: {
          200: z.object({
            userId: z.string(),
            name: z.string(),
            roles: z.array(z.enum(['admin', 'auditor', 'approver', 'requester'])),
            approves: z.array(z.string()),
            csrfToken: z.string(),
          }),
          401: errorBody,
        },
      },
    },
    async (request, reply) => {
      const viewer = viewerOf(request);
      return {
        userId: viewer.userId,
        name: viewer.name,
        roles: rolesOf(viewer),
        approves: [...viewer.approves].sort(),
        csrfToken: ctx.csrfToken(request, reply),
      };
    },
  );
}
