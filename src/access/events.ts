import { sql } from 'drizzle-orm';
import type { WeeklyReportCounts } from '../audit/weekly-report.ts';
import type { Tx } from '../db/client.ts';
import { enqueueOutboxRows } from '../db/queries/outbox.ts';

/** The call that set an alert off, as the proxy recorded it: what the alert shows as "what". */
export interface AlertCall {
  method: string;
  path: string;
  clientIp: string;
  /** ISO time of the call. */
  at: string;
  /** `allowed` or the denial code. */
  decision: string;
  status: number;
  requestId: string;
}

/**
 * What happened, for whoever must react (Slack messages, the scheduler). Each event is
 * written to the outbox in the transaction that caused it, so a crash or a Slack outage
 * after commit loses nothing; `dedupeKey` makes a replayed transition enqueue nothing new.
 */
export type AccessEvent =
  | { kind: 'request_created'; requestId: string; autoApproved: boolean }
  | {
      kind: 'request_approval_added';
      requestId: string;
      approverId: string;
      approvals: number;
      required: number;
    }
  | { kind: 'request_approved'; requestId: string; grantId: string; approvers: string[] }
  | { kind: 'request_denied'; requestId: string; deniedBy: string; note: string | null }
  | { kind: 'request_expired'; requestId: string }
  | { kind: 'request_cancelled'; requestId: string }
  | { kind: 'grant_created'; grantId: string; requestId: string }
  | { kind: 'grant_extended'; grantId: string; requestId: string; version: number }
  | {
      kind: 'grant_revoked';
      grantId: string;
      revokedBy: string;
      reason: string;
      /** False when the owner cannot be reached (a deactivated account): no DM is attempted. */
      dmOwner?: boolean;
    }
  | { kind: 'grant_expired'; grantId: string }
  /** Written by the audit batch whose totals reached the grant's quota: the owner is told once. */
  | { kind: 'grant_quota_exhausted'; grantId: string }
  /** Sent once per grant version: an extension makes a new reminder due. */
  | { kind: 'grant_reminder'; grantId: string; version: number }
  /** One per affected resource: a note to its approval channel that a person's access ended at once. */
  | {
      kind: 'user_offboarded';
      offboardId: string;
      resource: string;
      userId: string;
      reason: string;
      /** Who ended it (`slack:U…`, `system:offboarding`, `cli`). */
      by: string;
      grantIds: string[];
      requestIds: string[];
    }
  /** Last week's numbers for one resource, posted once to its approval channel. */
  | (WeeklyReportCounts & {
      kind: 'weekly_report';
      resource: string;
      periodStart: string;
      periodEnd: string;
    })
  | {
      kind: 'anomaly_alert';
      alertId: string;
      grantId: string | null;
      resource: string;
      userId: string | null;
      rule: string;
      summary: string;
      evidence: Record<string, unknown>;
      /** Absent on alerts queued before calls were carried. */
      call?: AlertCall;
      action: 'alert' | 'revoke';
      revoked: boolean;
    };

export type AccessEventKind = AccessEvent['kind'];

export function dedupeKey(event: AccessEvent): string {
  switch (event.kind) {
    case 'request_approval_added':
      return `${event.kind}:${event.requestId}:${event.approverId}`;
    case 'grant_extended':
    case 'grant_reminder':
      return `${event.kind}:${event.grantId}:${event.version}`;
    case 'anomaly_alert':
      return `${event.kind}:${event.alertId}`;
    case 'user_offboarded':
      return `${event.kind}:${event.offboardId}:${event.resource}`;
    case 'weekly_report':
      return `${event.kind}:${event.resource}:${event.periodEnd}`;
    case 'grant_created':
    case 'grant_revoked':
    case 'grant_expired':
    case 'grant_quota_exhausted':
      return `${event.kind}:${event.grantId}`;
    default:
      return `${event.kind}:${event.requestId}`;
  }
}

export async function enqueueEvents(tx: Tx, events: readonly AccessEvent[], now: Date): Promise<void> {
  if (events.length === 0) return;
  await enqueueOutboxRows(
    tx,
    events.map((event) => ({
      dedupeKey: dedupeKey(event),
      kind: event.kind,
      payload: event as unknown as Record<string, unknown>,
      createdAt: now,
      nextAttemptAt: now,
    })),
  );
}

/** Tell every proxy that a grant changed; delivered on commit, and only if it commits. */
export async function notifyGrantChanged(tx: Tx, channel: string, grantId: string): Promise<void> {
  await tx.execute(sql`select pg_notify(${channel}, ${grantId})`);
}
