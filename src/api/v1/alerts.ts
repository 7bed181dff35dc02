import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { refusalResponses } from '../refusals.ts';
import { auditRowBody, auditRowDto, grantBody, grantDto } from '../schemas.ts';
import type { V1Context } from './context.ts';

/** Anomaly alerts of the last days, each with its grant. */
export function alertRoutes(app: FastifyInstance, { ctx, viewerOf }: V1Context): void {
  const api = app.withTypeProvider<ZodTypeProvider>();

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
          ...refusalResponses,
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
}
