import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { AccessErrorCode } from '../access/outcomes.ts';
import type { WebContext } from '../console/context.ts';
import type { Viewer } from '../console/viewer.ts';
import { rolesOf, seesAll } from '../console/viewer.ts';
import { renderPolicyResource } from './policy-view.ts';
import { statusOfRefusal } from './refusals.ts';
import {
  auditFilterOf,
  auditQuery,
  auditRowBody,
  auditRowDto,
  bucketsBody,
  bucketsDto,
  durationText,
  errorBody,
  grantBody,
  grantCursor,
  grantDto,
  grantListQuery,
  lowerQuota,
  parseGrantCursor,
  requestBody,
  requestDto,
} from './schemas.ts';

const idParam = z.object({ id: z.uuid() });
const refusals = {
  400: errorBody,
  401: errorBody,
  403: errorBody,
  404: errorBody,
  409: errorBody,
  422: errorBody,
};

function refuse(reply: FastifyReply, status: number, error: string, message: string) {
  return reply.code(status).send({ error, message });
}

/** A refusal from the access service, as the API states it: the code, and the service's sentence. */
function refused(reply: FastifyReply, result: { code: AccessErrorCode; message: string }) {
  return refuse(reply, statusOfRefusal(result.code), result.code, result.message);
}

/**
 * `/api/v1`: JSON over the console session (API tokens for scripts are a later issue). Every
 * route needs a signed-in person (401 otherwise); every state-changing one a CSRF token in
 * `x-csrf-token` (403 otherwise). What each person sees is narrowed in the reads themselves;
 * what they change is decided by the access service.
 */
export async function apiV1(app: FastifyInstance, ctx: WebContext): Promise<void> {
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.addHook('preHandler', async (request, reply) => {
    if (!ctx.viewer(request)) return refuse(reply, 401, 'unauthenticated', 'Sign in to the console first.');
    reply.header('cache-control', 'no-store');
  });
  api.addHook('preHandler', (request, reply, done) => {
    if (request.method === 'GET' || request.method === 'HEAD') return done();
    ctx.checkCsrf(request, reply, done);
  });
  const viewerOf = (request: FastifyRequest): Viewer => {
    const viewer = ctx.viewer(request);
    if (!viewer) throw new Error('route reached without a viewer');
    return viewer;
  };

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

  api.get(
    '/grants',
    {
      schema: {
        summary: 'Grants, newest first, filtered by resource, person, state and scope',
        tags: ['grants'],
        querystring: grantListQuery,
        response: { 200: z.object({ grants: z.array(grantBody), next: z.string().nullable() }), ...refusals },
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
          ...refusals,
        },
      },
    },
    async (request, reply) => {
      const found = await ctx.reads.grant(viewerOf(request), request.params.id);
      if (!found.ok) return refuse(reply, found.status, 'grant_not_found', found.message);
      const { grant, stats, timeline, calls, canRevoke } = found.value;
      return {
        grant: grantDto(grant, ctx.clock.now()),
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
        response: { 200: z.object({ grant: grantBody }), ...refusals },
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
          ...refusals,
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

  api.get(
    '/requests',
    {
      schema: {
        summary: 'Requests (pending unless asked otherwise) the signed-in person can see',
        tags: ['requests'],
        querystring: z.object({
          status: z.enum(['pending', 'approved', 'denied', 'expired', 'cancelled']).default('pending'),
        }),
        response: { 200: z.object({ requests: z.array(requestBody) }), ...refusals },
      },
    },
    async (request) => {
      const rows = await ctx.reads.requests(viewerOf(request), request.query.status);
      return { requests: rows.map((r) => requestDto(r.request, r.approvals, r.canDecide)) };
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
          ...refusals,
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
        response: { 200: z.object({ request: requestBody }), ...refusals },
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
                liveGrants: z.number().int(),
                resources: z.array(z.string()),
                nextExpiry: z.string().nullable(),
                pendingRequests: z.number().int(),
              }),
            ),
          }),
          ...refusals,
        },
      },
    },
    async (request, reply) => {
      const people = await ctx.reads.people(viewerOf(request));
      if (!people.ok) return refuse(reply, people.status, 'forbidden', people.message);
      return {
        people: people.value.map((p) => ({ ...p, nextExpiry: p.nextExpiry?.toISOString() ?? null })),
      };
    },
  );

  api.post(
    '/people/:userId/revoke-all',
    {
      schema: {
        summary: "End a person's grants and pending requests on the resources you act on",
        tags: ['people'],
        params: z.object({ userId: z.string().regex(/^[UW][A-Z0-9]{2,}$/) }),
        body: z.object({ reason: z.string().max(2000).default('') }),
        response: {
          200: z.object({
            revokedGrants: z.array(z.string()),
            endedRequests: z.array(z.string()),
            untouchedResources: z.array(z.string()),
          }),
          ...refusals,
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

  api.get(
    '/alerts',
    {
      schema: {
        summary: 'Anomaly alerts of the last 7 days, newest first',
        tags: ['alerts'],
        response: {
          200: z.object({
            alerts: z.array(
              z.object({ alert: auditRowBody, grant: grantBody.nullable(), canRevoke: z.boolean() }),
            ),
          }),
          ...refusals,
        },
      },
    },
    async (request) => {
      const now = ctx.clock.now();
      const alerts = await ctx.reads.alerts(viewerOf(request));
      return {
        alerts: alerts.map((a) => ({
          alert: auditRowDto(a.row),
          grant: a.grant ? grantDto(a.grant, now) : null,
          canRevoke: a.canRevoke,
        })),
      };
    },
  );

  api.get(
    '/audit',
    {
      schema: {
        summary: 'Search the audit log, newest first; page with `cursor` = `next`',
        tags: ['audit'],
        querystring: auditQuery,
        response: {
          200: z.object({ rows: z.array(auditRowBody), next: z.number().int().nullable() }),
          ...refusals,
        },
      },
    },
    async (request) => {
      const q = request.query;
      const page = await ctx.reads.auditSearch(viewerOf(request), auditFilterOf(q), {
        limit: q.limit ?? 100,
        ...(q.cursor !== undefined ? { before: q.cursor } : {}),
      });
      return { rows: page.rows.map(auditRowDto), next: page.next ?? null };
    },
  );

  api.get(
    '/audit/histogram',
    {
      schema: {
        summary: "The same search's rows counted over time (allowed, denied, other)",
        tags: ['audit'],
        querystring: auditQuery,
        response: { 200: bucketsBody, ...refusals },
      },
    },
    async (request) =>
      bucketsDto(await ctx.reads.auditHistogram(viewerOf(request), auditFilterOf(request.query))),
  );

  api.get(
    '/audit/export',
    {
      schema: {
        summary:
          'Every row of the same search, oldest first, as JSON Lines or CSV (as `jitgate audit export`)',
        tags: ['audit'],
        querystring: auditQuery.extend({ format: z.enum(['jsonl', 'csv']).default('jsonl') }),
      },
    },
    async (request, reply) => {
      const { format, ...q } = request.query;
      reply
        .header('content-type', format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson')
        .header('content-disposition', `attachment; filename="jitgate-audit.${format}"`);
      const out = reply.raw;
      reply.hijack();
      out.writeHead(200, reply.getHeaders() as Record<string, string>);
      try {
        await ctx.reads.auditExport(viewerOf(request), auditFilterOf(q), format, out);
      } finally {
        out.end();
      }
    },
  );

  api.get(
    '/audit/chain',
    {
      schema: {
        summary: 'The hash chain: the last check (head hash, when, rows) and rows appended since',
        tags: ['audit'],
        response: { 200: chainBody, ...refusals },
      },
    },
    async (request, reply) => {
      if (!seesAll(viewerOf(request))) return refuse(reply, 403, 'forbidden', 'For auditors and admins.');
      return ctx.chain.status();
    },
  );

  api.post(
    '/audit/chain/verify',
    {
      schema: {
        summary: 'Check the whole chain now and record the result in it (auditors and admins)',
        tags: ['audit'],
        response: { 200: chainBody, ...refusals },
      },
    },
    async (request, reply) => {
      const viewer = viewerOf(request);
      if (!seesAll(viewer)) return refuse(reply, 403, 'forbidden', 'For auditors and admins.');
      return ctx.chain.verify({ type: 'console', userId: viewer.userId });
    },
  );

  api.get(
    '/policy',
    {
      schema: {
        summary: 'The policy, per resource (read-only; upstream details for those who act on it)',
        tags: ['policy'],
        response: { 200: z.object({ resources: z.array(z.record(z.string(), z.unknown())) }), ...refusals },
      },
    },
    async (request) => ({
      resources: ctx.reads.policy(viewerOf(request)).map((r) => renderPolicyResource(r.resource, r.full)),
    }),
  );
}

const chainBody = z.object({
  lastCheck: z
    .object({
      at: z.string(),
      ok: z.boolean(),
      rows: z.number().int(),
      headSeq: z.number().int().nullable(),
      headHash: z.string().nullable(),
      brokenAt: z.object({ seq: z.number().int(), reason: z.string(), message: z.string() }).nullable(),
      by: z.string(),
    })
    .optional(),
  tail: z.object({ seq: z.number().int(), hash: z.string() }).optional(),
  rowsSinceCheck: z.number().int(),
});
