import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { seesAll } from '../../console/viewer.ts';
import { refusalResponses, refuse } from '../refusals.ts';
import { auditFilterOf, auditQuery, auditRowBody, auditRowDto, bucketsBody, bucketsDto } from '../schemas.ts';
import type { V1Context } from './context.ts';

/** The audit log: search, histogram, export, and the hash chain's checks. */
export function auditRoutes(app: FastifyInstance, { ctx, viewerOf }: V1Context): void {
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.get(
    '/audit',
    {
      schema: {
        summary: 'Search the audit log, newest first; page with `cursor` = `next`',
        tags: ['audit'],
        querystring: auditQuery,
        response: {
          200: z.object({ rows: z.array(auditRowBody), next: z.number().int().nullable() }),
          ...refusalResponses,
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
        response: { 200: bucketsBody, ...refusalResponses },
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
        response: { 200: chainBody, ...refusalResponses },
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
        response: { 200: chainBody, ...refusalResponses },
      },
    },
    async (request, reply) => {
      const viewer = viewerOf(request);
      if (!seesAll(viewer)) return refuse(reply, 403, 'forbidden', 'For auditors and admins.');
      return ctx.chain.verify({ type: 'console', userId: viewer.userId });
    },
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
