import { and, count, desc, eq, inArray, max, min, sql } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { auditEvents, grants } from '../db/schema.ts';
import type { GrantCallSummary, SummarizeGrant } from '../shared/grant-summary.ts';

export const CALL_KINDS = ['proxy.call', 'proxy.denied'] as const;

export interface GrantSummarizerOptions {
  /** How many method + path pairs to list. */
  topPaths?: number;
  /** How many distinct client IPs to list (a summary, not an export). */
  maxIps?: number;
}

/**
 * `/access audit <grant>`: a grant's calls from the audit log. Every query is on the
 * `(grant_id, seq)` index, so a summary costs the grant's own rows, not the log's.
 * Undefined when no such grant exists.
 */
export function createGrantSummarizer(db: Db, options: GrantSummarizerOptions = {}): SummarizeGrant {
  const topN = options.topPaths ?? 10;
  const maxIps = options.maxIps ?? 20;
  return async (grantId) => {
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(grantId)) return undefined;
    const [grant] = await db
      .select({ resource: grants.resource, userId: grants.userId })
      .from(grants)
      .where(eq(grants.id, grantId));
    if (!grant) return undefined;
    const calls = and(eq(auditEvents.grantId, grantId), inArray(auditEvents.kind, [...CALL_KINDS]));
    const status = sql<number>`(${auditEvents.data}->>'status')::int`.mapWith(Number);
    const method = sql<string>`${auditEvents.data}->>'method'`;
    const path = sql<string>`${auditEvents.data}->>'path'`;
    const ip = sql<string>`${auditEvents.data}->>'clientIp'`;
    const [totals, byStatus, topPaths, ips] = await Promise.all([
      db
        .select({
          total: count(),
          denied: sql<number>`count(*) filter (where ${auditEvents.kind} = 'proxy.denied')`.mapWith(Number),
          bytes: sql<number>`coalesce(sum((${auditEvents.data}->>'bytes')::bigint), 0)`.mapWith(Number),
          first: min(auditEvents.at),
          last: max(auditEvents.at),
        })
        .from(auditEvents)
        .where(calls),
      db.select({ status, count: count() }).from(auditEvents).where(calls).groupBy(status).orderBy(status),
      db
        .select({ method, path, count: count() })
        .from(auditEvents)
        .where(calls)
        .groupBy(method, path)
        .orderBy(desc(count()), method, path)
        .limit(topN),
      db
        .select({ ip, first: min(auditEvents.seq) })
        .from(auditEvents)
        .where(calls)
        .groupBy(ip)
        .orderBy(min(auditEvents.seq))
        .limit(maxIps),
    ]);
    const t = totals[0];
    const summary: GrantCallSummary = {
      grantId,
      resource: grant.resource,
      userId: grant.userId,
      totalCalls: t?.total ?? 0,
      deniedCalls: t?.denied ?? 0,
      byStatus: byStatus.map((r) => ({ status: r.status, count: r.count })),
      topPaths: topPaths.map((r) => ({ method: r.method, path: r.path, count: r.count })),
      firstSeen: t?.first ?? undefined,
      lastSeen: t?.last ?? undefined,
      // In order of first appearance: the first is the grant's baseline IP.
      clientIps: ips.map((r) => r.ip).filter((v): v is string => typeof v === 'string'),
      responseBytes: t?.bytes ?? 0,
    };
    return summary;
  };
}
