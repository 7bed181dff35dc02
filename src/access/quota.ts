import type { QuotaSettlement, SettleQuotaUse } from '../audit/call-writer.ts';
import type { AuditEventInput } from '../audit/chain-append.ts';
import { addGrantQuotaUse } from '../db/queries/grants/proxy-use.ts';
import { enqueue, type OutboxMessage, publishOnGrantFeed } from '../outbox/index.ts';
import type { Quota } from '../policy/index.ts';
import type { Actor } from '../shared/actor.ts';
import { grantRow } from './audit-rows.ts';
import type { AccessContext } from './context.ts';
import { type QuotaUnit, type Refusal, refuse } from './outcomes.ts';

/** A quota an approver chose when approving: fewer calls, fewer response bytes, or both. */
export interface LowerQuota {
  requests?: number;
  responseBytes?: number;
}

/**
 * Why an approver's quota cannot be used, or undefined when it can: each figure must be a
 * whole number of at least 1 and no higher than the policy's (where the policy sets one).
 * Checked before anything is stored, so a stored choice is always a lowering.
 */
export function checkLowerQuota(quota: LowerQuota, policy: Quota | undefined): Refusal | undefined {
  if (quota.requests === undefined && quota.responseBytes === undefined) {
    return refuse({ code: 'quota_above_policy', problem: 'nothing_named' });
  }
  const fields: { value: number | undefined; cap: number | undefined; unit: QuotaUnit }[] = [
    { value: quota.requests, cap: policy?.requests, unit: 'calls' },
    { value: quota.responseBytes, cap: policy?.responseBytes, unit: 'response bytes' },
  ];
  for (const { value, cap, unit } of fields) {
    if (value === undefined) continue;
    if (!Number.isSafeInteger(value) || value < 1) {
      return refuse({ code: 'quota_above_policy', problem: 'not_whole', unit });
    }
    if (cap !== undefined && value > cap) {
      return refuse({ code: 'quota_above_policy', problem: 'above_policy', unit, cap });
    }
  }
  return undefined;
}

/**
 * The appender's quota step (see `SettleQuotaUse`), as an access action: in the CALLER's
 * transaction, before it takes the audit chain's lock (access takes grant rows first and the
 * chain second; the same order here cannot deadlock with it). Adds the totals; the one batch
 * whose totals reach the quota marks the grant exhausted, enqueues the owner's notice (the
 * outbox's dedupe key is a second guard) and returns its audit row for the caller's batch.
 * Every touched grant is announced on the grant feed, so other proxies re-read the totals.
 * Grant state is written by access, and the appender only calls this.
 */
const PROXY: Actor = { type: 'system', component: 'proxy' };

export function quotaSettler(ctx: Pick<AccessContext, 'grantChannel'>): SettleQuotaUse {
  return async (tx, uses) => {
    if (uses.length === 0) return { settlements: [], audit: [] };
    const byId = new Map(uses.map((u) => [u.grantId, u]));
    const totals = await addGrantQuotaUse(
      tx,
      uses.map((u) => ({ id: u.grantId, requests: u.requests, bytes: u.bytes, at: u.at })),
    );
    const settlements: QuotaSettlement[] = [];
    const audit: AuditEventInput[] = [];
    const messages: OutboxMessage[] = [];
    let latest = 0;
    for (const row of totals) {
      const use = byId.get(row.id)!;
      settlements.push({
        grantId: row.id,
        requests: use.requests,
        bytes: use.bytes,
        usedRequests: row.usedRequests,
        usedBytes: row.usedBytes,
        exhausted: row.exhausted,
        userId: row.userId,
        resource: row.resource,
      });
      if (use.at.getTime() > latest) latest = use.at.getTime();
      if (!row.exhausted) continue;
      messages.push({ kind: 'grant_quota_exhausted', grantId: row.id });
      audit.push(
        grantRow(
          'grant.quota_exhausted',
          PROXY,
          use.at,
          { id: row.id, resource: row.resource, requestId: '' },
          {
            withRequest: false,
            data: {
              usedRequests: row.usedRequests,
              usedResponseBytes: row.usedBytes,
              quotaRequests: row.quotaRequests,
              quotaResponseBytes: row.quotaBytes,
            },
          },
        ),
      );
    }
    await enqueue(tx, messages, new Date(latest));
    await publishOnGrantFeed(
      tx,
      ctx.grantChannel,
      settlements.map((s) => s.grantId),
    );
    return { settlements, audit };
  };
}
