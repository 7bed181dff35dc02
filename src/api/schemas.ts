import { z } from 'zod';
import { toExportedRow } from '../audit/export.ts';
import type { AuditSearchFilter } from '../db/queries/audit-events/reads.ts';
import type { GrantState } from '../db/queries/grants/console-list.ts';
import type { AccessRequest, AuditEventRow, Grant } from '../db/schema/index.ts';
import { parseDuration } from '../policy/duration.ts';
import { SLACK_USER_ID } from '../shared/ids.ts';

/**
 * `/api/v1`'s shapes, as zod schemas: fastify validates requests and serialises responses
 * with them, and @fastify/swagger turns them into `/api/v1/openapi.json`. The console's
 * pages parse their query strings with the same ones.
 */

const iso = z.string().describe('ISO 8601 time (UTC)');
const slackUserId = z.string().regex(SLACK_USER_ID, 'expects a Slack user ID like U0123ABCD');
const uuid = z.uuid();
/** Empty query fields (an untouched form input) mean "not given". */
const optional = <T extends z.ZodType>(schema: T) =>
  z.preprocess((v) => (v === '' ? undefined : v), schema.optional());

export const errorBody = z
  .object({ error: z.string().describe('a stable code'), message: z.string() })
  .describe('Every refusal: a code and a sentence');

export const durationText = z
  .string()
  .refine((v) => parseDuration(v) !== undefined, 'expects a duration like 30m, 2h or 1d')
  .transform((v) => parseDuration(v) ?? 0);

/** Names of the people a response mentions, so a client shows names without a lookup of its own. */
export const namesBody = z
  .record(z.string(), z.string())
  .describe(
    'Slack user ID → name for the people this response names, from the names cache; an ID not yet known is absent',
  );

/** The Slack user ids a grant names: its holder, and who ended it. */
export const peopleOfGrant = (grant: Grant): string[] => [
  grant.userId,
  ...(grant.endedBy ? [grant.endedBy] : []),
];

/** The Slack user ids a request names: requester, approvers, and who decided it. */
export const peopleOfRequest = (
  request: AccessRequest,
  approvals: readonly { approverId: string }[] = [],
): string[] => [
  request.requesterId,
  ...approvals.map((a) => a.approverId),
  ...(request.decidedBy ? [request.decidedBy] : []),
];

export const grantBody = z.object({
  id: uuid,
  requestId: uuid,
  userId: z.string(),
  resource: z.string(),
  scope: z.string(),
  status: z.enum(['active', 'expired', 'revoked']),
  live: z.boolean().describe('active and unexpired now'),
  startsAt: iso,
  expiresAt: iso,
  extensions: z.number().int(),
  endedAt: iso.nullable(),
  endedBy: z.string().nullable(),
  endReason: z.string().nullable(),
  lastUsedAt: iso.nullable(),
  quotaRequests: z.number().int().nullable(),
  quotaResponseBytes: z.number().int().nullable(),
  usedRequests: z.number().int(),
  usedResponseBytes: z.number().int(),
});

export function grantDto(grant: Grant, now: Date): z.infer<typeof grantBody> {
  return {
    id: grant.id,
    requestId: grant.requestId,
    userId: grant.userId,
    resource: grant.resource,
    scope: grant.scope,
    status: grant.status,
    live: grant.status === 'active' && grant.expiresAt > now,
    startsAt: grant.startsAt.toISOString(),
    expiresAt: grant.expiresAt.toISOString(),
    extensions: grant.extensions,
    endedAt: grant.endedAt?.toISOString() ?? null,
    endedBy: grant.endedBy,
    endReason: grant.endReason,
    lastUsedAt: grant.lastUsedAt?.toISOString() ?? null,
    quotaRequests: grant.quotaRequests,
    quotaResponseBytes: grant.quotaResponseBytes,
    usedRequests: grant.usedRequests,
    usedResponseBytes: grant.usedResponseBytes,
  };
}

export const requestBody = z.object({
  id: uuid,
  requesterId: z.string(),
  resource: z.string(),
  scope: z.string(),
  durationSeconds: z.number().int(),
  reason: z.string(),
  status: z.enum(['pending', 'approved', 'denied', 'expired', 'cancelled']),
  approvalsRequired: z.number().int(),
  approvals: z.array(z.object({ approverId: z.string(), durationSeconds: z.number().int().nullable() })),
  extendsGrantId: uuid.nullable(),
  createdAt: iso,
  timeoutAt: iso,
  decidedAt: iso.nullable(),
  decidedBy: z.string().nullable(),
  decisionNote: z.string().nullable(),
  canDecide: z.boolean().describe('whether the signed-in person may approve or deny it'),
});

export function requestDto(
  request: AccessRequest,
  approvals: readonly { approverId: string; durationSeconds: number | null }[],
  canDecide: boolean,
): z.infer<typeof requestBody> {
  return {
    id: request.id,
    requesterId: request.requesterId,
    resource: request.resource,
    scope: request.scope,
    durationSeconds: request.durationSeconds,
    reason: request.reason,
    status: request.status,
    approvalsRequired: request.approvalsRequired,
    approvals: approvals.map((a) => ({ approverId: a.approverId, durationSeconds: a.durationSeconds })),
    extendsGrantId: request.extendsGrantId,
    createdAt: request.createdAt.toISOString(),
    timeoutAt: request.timeoutAt.toISOString(),
    decidedAt: request.decidedAt?.toISOString() ?? null,
    decidedBy: request.decidedBy,
    decisionNote: request.decisionNote,
    canDecide,
  };
}

export const auditRowBody = z.object({
  seq: z.number().int(),
  at: iso,
  kind: z.string(),
  actor: z.string(),
  resource: z.string().nullable(),
  requestId: z.string().nullable(),
  grantId: z.string().nullable(),
  data: z.record(z.string(), z.unknown()),
  prevHash: z.string(),
  hash: z.string(),
});

/** An audit row in the API: the export's own form (every chained field, `at` as ISO 8601). */
export const auditRowDto = (row: AuditEventRow): z.infer<typeof auditRowBody> => toExportedRow(row);

export const bucketsBody = z.object({
  from: iso,
  to: iso,
  bucketSeconds: z.number().int(),
  buckets: z.array(
    z.object({ start: iso, allowed: z.number().int(), denied: z.number().int(), other: z.number().int() }),
  ),
});

export function bucketsDto(h: {
  from: Date;
  to: Date;
  bucketMs: number;
  buckets: readonly { start: Date; allowed: number; denied: number; other: number }[];
}): z.infer<typeof bucketsBody> {
  return {
    from: h.from.toISOString(),
    to: h.to.toISOString(),
    bucketSeconds: h.bucketMs / 1000,
    buckets: h.buckets.map((b) => ({ ...b, start: b.start.toISOString() })),
  };
}

const GRANT_STATES = ['live', 'expired', 'revoked'] as const satisfies readonly GrantState[];

export const grantListQuery = z.object({
  resource: optional(z.string().max(64)),
  user: optional(slackUserId),
  state: optional(z.enum(GRANT_STATES)),
  scope: optional(z.string().max(32)),
  cursor: optional(z.string().max(100).describe('`next` of the previous page')),
  limit: optional(z.coerce.number().int().min(1).max(200)),
});

/** A grants page cursor: the last row's start time and id. */
export function grantCursor(next: { startsAt: Date; id: string }): string {
  return `${next.startsAt.getTime()}_${next.id}`;
}

export function parseGrantCursor(text: string | undefined): { startsAt: Date; id: string } | undefined {
  const match = text ? /^(\d{1,15})_([0-9a-f-]{36})$/.exec(text) : null;
  return match ? { startsAt: new Date(Number(match[1])), id: match[2]! } : undefined;
}

const time = z.iso.datetime({ offset: true }).transform((v) => new Date(v));

export const auditQuery = z.object({
  since: optional(time.describe('rows at or after (ISO 8601)')),
  until: optional(time.describe('rows before (ISO 8601)')),
  user: optional(slackUserId.describe('rows the person acted in or that are about them')),
  grant: optional(uuid),
  resource: optional(z.string().max(64)),
  decision: optional(
    z
      .string()
      .regex(/^[a-z_]{1,40}$/)
      .describe('allowed, denied, or a denial code such as out_of_scope'),
  ),
  method: optional(z.string().regex(/^[A-Za-z]{1,10}$/)),
  path: optional(z.string().max(200).describe('text the call path contains')),
  ip: optional(z.string().max(64).describe('client IP address')),
  cursor: optional(z.coerce.number().int().min(1).describe('`next` of the previous page')),
  limit: optional(z.coerce.number().int().min(1).max(500)),
});

export type AuditQuery = z.infer<typeof auditQuery>;

export function auditFilterOf(q: AuditQuery): AuditSearchFilter {
  return {
    ...(q.since ? { since: q.since } : {}),
    ...(q.until ? { until: q.until } : {}),
    ...(q.user ? { userId: q.user } : {}),
    ...(q.grant ? { grantId: q.grant } : {}),
    ...(q.resource ? { resource: q.resource } : {}),
    ...(q.decision ? { decision: q.decision } : {}),
    ...(q.method ? { method: q.method } : {}),
    ...(q.path ? { pathText: q.path } : {}),
    ...(q.ip ? { clientIp: q.ip } : {}),
  };
}

export const lowerQuota = z
  .object({
    requests: z.number().int().min(1).optional(),
    responseBytes: z.number().int().min(1).optional(),
  })
  .describe('a lower quota than the policy gives');

/** `/:id` of a grant or request. */
export const idParam = z.object({ id: z.uuid() });
