import type { Db } from '../db/client.ts';
import { grantCallStats } from '../db/queries/audit-events/reads.ts';
import { findGrantOwner } from '../db/queries/grants/lifecycle.ts';
import type { GrantCallSummary, SummarizeGrant } from '../shared/grant-summary.ts';
import { isUuid } from '../shared/ids.ts';

const CALL_KINDS = ['proxy.call', 'proxy.denied'] as const;

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
    if (!isUuid(grantId)) return undefined;
    const grant = await findGrantOwner(db, grantId);
    if (!grant) return undefined;
    const {
      totals: t,
      byStatus,
      topPaths,
      ips,
    } = await grantCallStats(db, grantId, {
      kinds: CALL_KINDS,
      topPaths: topN,
      maxIps,
    });
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
