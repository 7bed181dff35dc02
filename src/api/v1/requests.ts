import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { refusalResponses, refused } from '../refusals.ts';
import {
  durationText,
  grantBody,
  grantDto,
  idParam,
  lowerQuota,
  namesBody,
  peopleOfRequest,
  requestBody,
  requestDto,
} from '../schemas.ts';
import { namesFor, type V1Context } from './context.ts';

/** Requests: the ones a person can see, approve, deny. */
export function requestRoutes(app: FastifyInstance, { ctx, viewerOf }: V1Context): void {
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.get(
    '/requests',
    {
      schema: {
        summary: 'Requests (pending unless asked otherwise) the signed-in person can see',
        tags: ['requests'],
        querystring: z.object({
          status: z.enum(['pending', 'approved', 'denied', 'expired', 'cancelled']).default('pending'),
        }),
        response: {
          200: z.object({ requests: z.array(requestBody), names: namesBody }),
          ...refusalResponses,
        },
      },
    },
    async (request) => {
      const rows = await ctx.reads.requests(viewerOf(request), request.query.status);
      return {
        requests: rows.map((r) => requestDto(r.request, r.approvals, r.canDecide)),
        names: await namesFor(
          ctx,
          rows.flatMap((r) => peopleOfRequest(r.request, r.approvals)),
        ),
      };
    },
  );

  api.post(
    '/requests/:id/approve',
    {
      schema: {
        summary:
          'Approve (its approvers only, never one own request; N-of-M); for less time or quota if given',
        tags: ['requests'],
        params: idParam,
        body: z.object({
          duration: durationText.optional().describe('approve for less: at most what was asked'),
          quota: lowerQuota.optional(),
        }),
        response: {
          200: z.object({
            request: requestBody,
            grant: grantBody.nullable(),
            approvals: z.number().int(),
            required: z.number().int(),
          }),
          ...refusalResponses,
        },
      },
    },
    async (request, reply) => {
      const { duration, quota } = request.body;
      const result = await ctx.actions.approve(viewerOf(request), {
        requestId: request.params.id,
        ...(duration !== undefined ? { durationSeconds: duration } : {}),
        ...(quota !== undefined ? { quota } : {}),
      });
      if (!result.ok) return refused(reply, result);
      const { value } = result;
      return {
        request: requestDto(value.request, [], false),
        grant: value.grant ? grantDto(value.grant, ctx.clock.now()) : null,
        approvals: value.approvals,
        required: value.required,
      };
    },
  );

  api.post(
    '/requests/:id/deny',
    {
      schema: {
        summary: 'Deny, with a reason the requester is shown',
        tags: ['requests'],
        params: idParam,
        body: z.object({ reason: z.string().trim().min(1, 'say why').max(2000) }),
        response: { 200: z.object({ request: requestBody }), ...refusalResponses },
      },
    },
    async (request, reply) => {
      const result = await ctx.actions.deny(viewerOf(request), {
        requestId: request.params.id,
        reason: request.body.reason,
      });
      if (!result.ok) return refused(reply, result);
      return { request: requestDto(result.value, [], false) };
    },
  );
}
