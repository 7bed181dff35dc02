import { describe, expect, it } from 'vitest';
import { dedupeKey, OUTBOX_KINDS, type OutboxMessage, readOutboxMessage } from '../../src/outbox/messages.ts';

const UUID = '00000000-0000-4000-8000-000000000001';

/** One message of every kind, as the writers make them. */
const SAMPLES: OutboxMessage[] = [
  { kind: 'request_created', requestId: UUID, autoApproved: false },
  { kind: 'request_approval_added', requestId: UUID, approverId: 'U1', approvals: 1, required: 2 },
  { kind: 'request_approved', requestId: UUID, grantId: UUID, approvers: ['U1'] },
  { kind: 'request_denied', requestId: UUID, deniedBy: 'U1', note: null },
  { kind: 'request_expired', requestId: UUID },
  { kind: 'request_cancelled', requestId: UUID },
  { kind: 'grant_created', grantId: UUID, requestId: UUID },
  { kind: 'grant_extended', grantId: UUID, requestId: UUID, version: 2 },
  { kind: 'grant_revoked', grantId: UUID, revokedBy: 'U1', reason: 'done' },
  { kind: 'grant_expired', grantId: UUID },
  { kind: 'grant_quota_exhausted', grantId: UUID },
  { kind: 'grant_reminder', grantId: UUID, version: 1 },
  {
    kind: 'user_offboarded',
    offboardId: UUID,
    resource: 'billing-api',
    userId: 'U2',
    reason: 'offboarded',
    by: 'system:offboarding',
    grantIds: [],
    requestIds: [],
  },
  {
    kind: 'weekly_report',
    resource: 'billing-api',
    periodStart: '2026-02-23T08:00:00.000Z',
    periodEnd: '2026-03-02T08:00:00.000Z',
    grantsMade: 0,
    grantsUsed: 0,
    grantsUnused: 0,
    calls: 0,
    deniedCalls: 0,
    alerts: 0,
    idleRevoked: 0,
    offboarded: 0,
  },
  {
    kind: 'anomaly_alert',
    alertId: 'a1',
    grantId: null,
    resource: 'billing-api',
    userId: null,
    rule: 'new_ip',
    summary: 'new IP',
    evidence: {},
    action: 'alert',
    revoked: false,
  },
];

describe('outbox messages', () => {
  it('lists every kind once, and a sample of each reads back as itself', () => {
    expect([...OUTBOX_KINDS].sort()).toEqual(SAMPLES.map((m) => m.kind).sort());
    for (const message of SAMPLES) {
      const stored = JSON.parse(JSON.stringify(message)) as Record<string, unknown>;
      expect(readOutboxMessage(stored)).toEqual(message);
    }
  });

  it('refuses a payload of an unknown kind, or without a field its renderer needs', () => {
    expect(readOutboxMessage({ kind: 'grant_exploded', grantId: UUID })).toBeUndefined();
    expect(readOutboxMessage({ kind: '__proto__' })).toBeUndefined();
    expect(readOutboxMessage({ kind: 'grant_revoked', grantId: 42 })).toBeUndefined();
    expect(readOutboxMessage({ kind: 'request_denied' })).toBeUndefined();
    expect(
      readOutboxMessage({ kind: 'user_offboarded', offboardId: UUID, resource: 'r', userId: 'U' }),
    ).toBeUndefined();
  });

  it('gives different messages different dedupe keys, and a replay the same one', () => {
    const keys = SAMPLES.map(dedupeKey);
    expect(new Set(keys).size).toBe(keys.length);
    for (const message of SAMPLES) expect(dedupeKey(structuredClone(message))).toBe(dedupeKey(message));
    expect(dedupeKey({ kind: 'grant_reminder', grantId: UUID, version: 2 })).not.toBe(
      dedupeKey({ kind: 'grant_reminder', grantId: UUID, version: 1 }),
    );
  });
});
