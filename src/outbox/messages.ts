/**
 * What jitgate has to tell people, as stored in the `outbox` table: one message per thing
 * that happened, written in the transaction that caused it, so a crash or a Slack outage
 * after commit loses nothing. The outbox knows no chat: src/slack/ turns each kind into
 * Block Kit and sends it; the scheduler reacts to the same messages after commit.
 */

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

/** A week's numbers for one resource, all read from the audit log (see audit/weekly-report.ts). */
export interface WeeklyReportCounts {
  grantsMade: number;
  grantsUsed: number;
  grantsUnused: number;
  calls: number;
  deniedCalls: number;
  alerts: number;
  idleRevoked: number;
  offboarded: number;
}

export type OutboxMessage =
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
      /** Who ended it, as its audit label (`slack:U…`, `system:offboarding`, `cli`). */
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

export type OutboxKind = OutboxMessage['kind'];

export type OutboxMessageOf<K extends OutboxKind> = Extract<OutboxMessage, { kind: K }>;

/**
 * Every kind, each with the string fields a stored payload must carry to be delivered. The
 * one list of kinds: a kind added to the union does not compile until it is here, and the
 * dispatcher (src/slack/outbox-deliveries.ts) switches over the same union exhaustively.
 */
const REQUIRED_FIELDS: { readonly [K in OutboxKind]: readonly (keyof OutboxMessageOf<K> & string)[] } = {
  request_created: ['requestId'],
  request_approval_added: ['requestId'],
  request_approved: ['requestId'],
  request_denied: ['requestId'],
  request_expired: ['requestId'],
  request_cancelled: ['requestId'],
  grant_created: ['grantId'],
  grant_extended: ['grantId'],
  grant_revoked: ['grantId'],
  grant_expired: ['grantId'],
  grant_quota_exhausted: ['grantId'],
  grant_reminder: ['grantId'],
  user_offboarded: ['offboardId', 'resource', 'userId', 'reason', 'by'],
  weekly_report: ['resource', 'periodStart', 'periodEnd'],
  anomaly_alert: ['alertId', 'resource', 'rule', 'summary'],
};

export const OUTBOX_KINDS = Object.keys(REQUIRED_FIELDS) as readonly OutboxKind[];

const isKind = (kind: unknown): kind is OutboxKind =>
  typeof kind === 'string' && Object.hasOwn(REQUIRED_FIELDS, kind);

/**
 * A stored payload as a message, or undefined when it cannot be one: an unknown kind, or a
 * field the renderers rely on missing (rows are JSON written by any version of jitgate).
 */
export function readOutboxMessage(payload: Record<string, unknown>): OutboxMessage | undefined {
  const kind = payload.kind;
  if (!isKind(kind)) return undefined;
  const fields: readonly string[] = REQUIRED_FIELDS[kind];
  if (!fields.every((field) => typeof payload[field] === 'string')) return undefined;
  return payload as unknown as OutboxMessage;
}

/** The key that makes a replayed transition, a re-run job or a second process enqueue nothing new. */
export function dedupeKey(message: OutboxMessage): string {
  switch (message.kind) {
    case 'request_approval_added':
      return `${message.kind}:${message.requestId}:${message.approverId}`;
    case 'grant_extended':
    case 'grant_reminder':
      return `${message.kind}:${message.grantId}:${message.version}`;
    case 'anomaly_alert':
      return `${message.kind}:${message.alertId}`;
    case 'user_offboarded':
      return `${message.kind}:${message.offboardId}:${message.resource}`;
    case 'weekly_report':
      return `${message.kind}:${message.resource}:${message.periodEnd}`;
    case 'grant_created':
    case 'grant_revoked':
    case 'grant_expired':
    case 'grant_quota_exhausted':
      return `${message.kind}:${message.grantId}`;
    case 'request_created':
    case 'request_approved':
    case 'request_denied':
    case 'request_expired':
    case 'request_cancelled':
      return `${message.kind}:${message.requestId}`;
  }
}

/** The dedupe key of a grant version's before-expiry reminder (the sweep asks which are queued). */
export const reminderKey = (grantId: string, version: number): string =>
  dedupeKey({ kind: 'grant_reminder', grantId, version });
