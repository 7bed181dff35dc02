import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { SLACK_USER_ID } from '../../shared/ids.ts';
import { refusalResponses, refuse, refused } from '../refusals.ts';
import type { V1Context } from './context.ts';

/** People: who holds what, and ending all of a person's access at once. */
export function peopleRoutes(app: FastifyInstance, { ctx, viewerOf }: V1Context): void {
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.get(
    '/people',
    {
      schema: {
        summary: 'Who holds what: live grants and pending requests per person',
        tags: ['people'],
        response: {
          200: z.object({
            people: z.array(
              z.object({
                userId: z.string(),
                name: z.string().nullable().describe('from the names cache; null until known'),
                liveGrants: z.number().int(),
                resources: z.array(z.string()),
                nextExpiry: z.string().nullable(),
                pendingRequests: z.number().int(),
              }),
            ),
          }),
          ...refusalResponses,
        },
      },
    },
    async (request, reply) => {
      const people = await ctx.reads.people(viewerOf(request));
      if (!people.ok) return refuse(reply, people.status, 'forbidden', people.message);
      const names = await ctx.names.of(people.value.map((p) => p.userId));
      return {
        people: people.value.map((p) => ({
          ...p,
          name: names.get(p.userId) ?? null,
          nextExpiry: p.nextExpiry?.toISOString() ?? null,
        })),
      };
    },
  );

  api.post(
    '/people/:userId/revoke-all',
    {
      schema: {
        summary: "End a person's grants and pending requests on the resources you act on",
        tags: ['people'],
        params: z.object({ userId: z.string().regex(SLACK_USER_ID) }),
        body: z.object({ reason: z.string().max(2000).default('') }),
        response: {
          200: z.object({
            revokedGrants: z.array(z.string()),
            endedRequests: z.array(z.string()),
            untouchedResources: z.array(z.string()),
          }),
          ...refusalResponses,
        },
      },
    },
    async (request, reply) => {
      const result = await ctx.actions.revokeAll(viewerOf(request), {
        userId: request.params.userId,
        reason: request.body.reason,
      });
      if (!result.ok) return refused(reply, result);
      return {
        revokedGrants: result.value.grants.map((g) => g.id),
        endedRequests: result.value.requests.map((r) => r.id),
        untouchedResources: result.value.untouchedResources,
      };
    },
  );
}
