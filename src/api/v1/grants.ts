import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { refusalResponses, refuse, refused } from '../refusals.ts';
import {
  auditRowBody,
  auditRowDto,
  bucketsBody,
  bucketsDto,
  durationText,
  grantBody,
  grantCursor,
  grantDto,
  grantListQuery,
  idParam,
  namesBody,
  parseGrantCursor,
  peopleOfGrant,
  requestBody,
  requestDto,
} from '../schemas.ts';
import { namesFor, type V1Context } from './context.ts';

/** Grants: the list, one grant with its timeline and calls, revoke, extend. */
export function grantRoutes(app: FastifyInstance, { ctx, viewerOf }: V1Context): void {
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.get(
    '/grants',
    {
      schema: {
        summary: 'Grants, newest first, filtered by resource, person, state and scope',
        tags: ['grants'],
        querystring: grantListQuery,
        response: {
          200: z.object({ grants: z.array(grantBody), next: z.string().nullable(), names: namesBody }),
          ...refusalResponses,
        },
      },
    },
    async (request) => {
      const q = request.query;
      const before = parseGrantCursor(q.cursor);
      const page = await ctx.reads.grants(
        viewerOf(request),
        {
          ...(q.resource ? { resource: q.resource } : {}),
          ...(q.user ? { userId: q.user } : {}),
          ...(q.state ? { state: q.state } : {}),
          ...(q.scope ? { scope: q.scope } : {}),
        },
        { limit: q.limit ?? 50, ...(before ? { before } : {}) },
      );
      const now = ctx.clock.now();
      return {
        grants: page.grants.map((g) => grantDto(g, now)),
        next: page.next ? grantCursor(page.next) : null,
        names: await namesFor(ctx, page.grants.flatMap(peopleOfGrant)),
      };
    },
  );

  api.get(
    '/grants/:id',
    {
      schema: {
        summary: "One grant: its timeline of state changes (from the audit log), its calls' numbers",
        tags: ['grants'],
        params: idParam,
        response: {
          200: z.object({
            grant: grantBody,
            names: namesBody,
            canRevoke: z.boolean(),
            timeline: z.array(auditRowBody),
            calls: z.object({
              total: z.number().int(),
              denied: z.number().int(),
              bytes: z.number().int(),
              first: z.string().nullable(),
              last: z.string().nullable(),
              byStatus: z.array(z.object({ status: z.number().int(), count: z.number().int() })),
              topPaths: z.array(z.object({ method: z.string(), path: z.string(), count: z.number().int() })),
              clientIps: z.array(z.string()),
              overTime: bucketsBody,
            }),
          }),
          ...refusalResponses,
        },
      },
    },
    async (request, reply) => {
      const found = await ctx.reads.grant(viewerOf(request), request.params.id);
      if (!found.ok) return refuse(reply, found.status, 'grant_not_found', found.message);
      const { grant, stats, timeline, calls, canRevoke } = found.value;
      return {
        grant: grantDto(grant, ctx.clock.now()),
        names: await namesFor(ctx, peopleOfGrant(grant)),
        canRevoke,
        timeline: timeline.map(auditRowDto),
        calls: {
          total: stats.totals?.total ?? 0,
          denied: stats.totals?.denied ?? 0,
          bytes: stats.totals?.bytes ?? 0,
          first: stats.totals?.first?.toISOString() ?? null,
          last: stats.totals?.last?.toISOString() ?? null,
          byStatus: stats.byStatus,
          topPaths: stats.topPaths,
          clientIps: stats.ips.map((i) => i.ip),
          overTime: bucketsDto(calls),
        },
      };
    },
  );

  api.post(
    '/grants/:id/revoke',
    {
      schema: {
        summary: "End a grant now (its resource's approvers, console admins, or its owner)",
        tags: ['grants'],
        params: idParam,
        body: z.object({ reason: z.string().max(2000).default('') }),
        response: { 200: z.object({ grant: grantBody }), ...refusalResponses },
      },
    },
    async (request, reply) => {
      const result = await ctx.actions.revokeGrant(viewerOf(request), {
        grantId: request.params.id,
        reason: request.body.reason,
      });
      if (!result.ok) return refused(reply, result);
      return { grant: grantDto(result.value, ctx.clock.now()) };
    },
  );

  api.post(
    '/grants/:id/extend',
    {
      schema: {
        summary:
          'More time on a grant: its owner asks (approved like a request, or by policy); an approver of its resource gives it',
        tags: ['grants'],
        params: idParam,
        body: z.object({ duration: durationText, reason: z.string().max(2000).optional() }),
        response: {
          200: z.object({ request: requestBody, grant: grantBody.nullable(), autoApproved: z.boolean() }),
          ...refusalResponses,
        },
      },
    },
    async (request, reply) => {
      const result = await ctx.actions.extendGrant(viewerOf(request), {
        grantId: request.params.id,
        durationSeconds: request.body.duration,
        ...(request.body.reason ? { reason: request.body.reason } : {}),
      });
      if (!result.ok) return refused(reply, result);
      return {
        request: requestDto(result.value.request, [], false),
        grant: result.value.grant ? grantDto(result.value.grant, ctx.clock.now()) : null,
        autoApproved: result.value.grant !== undefined,
      };
    },
  );
}
