import { describe, expect, it } from 'vitest';
import type { AccessRequest, Grant } from '../../src/db/schema/index.ts';
import {
  anomalyAlert,
  approvalMessage,
  decodeValue,
  encodeValue,
  escapeText,
  grantApprovedDm,
  grantReminderDm,
  grantRevokedDm,
  homeView,
  mention,
  requestDeniedDm,
  requestModal,
  slackDate,
  tokenModal,
} from '../../src/slack/blocks.ts';
import { testPolicy } from '../helpers/policy.ts';

const NOW = new Date('2026-01-05T10:00:00Z');
const policy = testPolicy();
const billing = policy.resources['billing-api']!;

function request(overrides: Partial<AccessRequest> = {}): AccessRequest {
  return {
    id: '11111111-1111-4111-8111-111111111111',
    requesterId: 'UREQ',
    resource: 'billing-api',
    scope: 'write',
    durationSeconds: 7200,
    reason: 'INC-1',
    status: 'pending',
    approvalsRequired: 1,
    extendsGrantId: null,
    createdAt: NOW,
    timeoutAt: new Date(NOW.getTime() + 3600_000),
    decidedAt: null,
    decidedBy: null,
    decisionNote: null,
    approvalChannel: 'CAPPROVALS',
    approvalMessageTs: null,
    ...overrides,
  };
}

function grant(overrides: Partial<Grant> = {}): Grant {
  return {
    id: '22222222-2222-4222-8222-222222222222',
    requestId: '11111111-1111-4111-8111-111111111111',
    userId: 'UREQ',
    resource: 'billing-api',
    scope: 'write',
    status: 'active',
    startsAt: NOW,
    expiresAt: new Date(NOW.getTime() + 7200_000),
    extensions: 0,
    version: 1,
    endedAt: null,
    endedBy: null,
    quotaRequests: null,
    quotaResponseBytes: null,
    usedRequests: 0,
    usedResponseBytes: 0,
    quotaExhaustedAt: null,
    endReason: null,
    lastUsedAt: null,
    ...overrides,
  };
}

const text = (value: unknown) => JSON.stringify(value);

/** Hostile strings and what must never survive into mrkdwn. */
const HOSTILE: [string, string][] = [
  ['<!channel> urgent', '<!channel>'],
  ['<!here>', '<!here>'],
  ['<!everyone>', '<!everyone>'],
  ['cc <@UOTHER9>', '<@UOTHER9>'],
  ['<#C123|general>', '<#C123'],
  ['<!subteam^S123>', '<!subteam'],
  ['<https://evil.example|totally safe>', '<https://evil'],
  ['<mailto:a@b.c|mail>', '<mailto:'],
  ['<!date^1^{date}|x>', '<!date^1^'],
  ['a > b < c & d', ' < c'],
];

describe('escaping user text', () => {
  it.each(HOSTILE)('%j is shown, never interpreted', (hostile, forbidden) => {
    const views = [
      approvalMessage({
        request: request({ reason: hostile }),
        approvals: [],
        grant: undefined,
        resource: billing,
        now: NOW,
      }),
      approvalMessage({
        request: request({
          status: 'denied',
          decidedAt: NOW,
          decidedBy: 'UAPPROVER1',
          decisionNote: hostile,
        }),
        approvals: [],
        grant: undefined,
        resource: billing,
        now: NOW,
      }),
      requestDeniedDm(request({ status: 'denied', decidedBy: 'UAPPROVER1', decisionNote: hostile })),
      grantRevokedDm(grant({ status: 'revoked', endedBy: 'UAPPROVER1', endReason: hostile, endedAt: NOW })),
      anomalyAlert({
        resource: 'billing-api',
        rule: hostile,
        summary: hostile,
        userId: 'UREQ',
        grant: grant(),
        revoked: false,
        at: NOW,
      }),
      homeView(
        { pending: [request({ reason: hostile })], active: [] },
        { pending: [request({ reason: hostile })], active: [] },
        NOW,
      ),
    ];
    for (const view of views) {
      expect(text(view)).not.toContain(forbidden);
      expect(text(view)).toContain(escapeText(hostile).slice(0, 8));
    }
  });

  it('escapes the three control characters and nothing else', () => {
    expect(escapeText('<a & b>')).toBe('&lt;a &amp; b&gt;');
    expect(escapeText('*bold* _it_ `code`')).toBe('*bold* _it_ `code`');
  });

  it('mentions only real user ids', () => {
    expect(mention('UAPPROVER1')).toBe('<@UAPPROVER1>');
    expect(mention('timeout')).toBe('timeout');
    expect(mention('<!channel>')).toBe('&lt;!channel&gt;');
  });
});

describe('messages', () => {
  it('shows times in the reader’s zone with a UTC fallback', () => {
    expect(slackDate(NOW)).toBe('<!date^1767607200^{date_short_pretty} {time}|2026-01-05 10:00 UTC>');
  });

  it('pending approval: progress, Approve, Deny and shorter choices below the asked duration', () => {
    const message = approvalMessage({
      request: request({ approvalsRequired: 2 }),
      approvals: [{ approverId: 'UAPPROVER1', durationSeconds: null }],
      grant: undefined,
      resource: billing,
      now: NOW,
    });
    const json = text(message);
    expect(json).toContain('1 of 2 approvals (<@UAPPROVER1>)');
    expect(json).toContain('approve_request');
    expect(json).toContain('deny_request');
    expect(json).toContain(encodeValue(request().id, 3600));
    expect(json).not.toContain(encodeValue(request().id, 7200));
  });

  it('approved DM: proxy URL and curl, a Show token button, and no token', () => {
    const dm = grantApprovedDm({
      grant: grant(),
      proxyUrl: 'https://proxy.example',
      approvers: ['UAPPROVER1'],
    });
    const json = text(dm);
    expect(json).toContain('https://proxy.example/billing-api/');
    expect(json).toContain('$JITGATE_TOKEN');
    expect(json).toContain('show_token');
    expect(json).not.toMatch(/eyJ/);
  });

  it('the token modal carries the token', () => {
    expect(text(tokenModal(grant(), 'eyJ.token', 'https://proxy.example'))).toContain('eyJ.token');
  });

  it('reminder offers extensions within the policy and Give up', () => {
    const json = text(grantReminderDm(grant({ expiresAt: new Date(NOW.getTime() + 600_000) }), billing, NOW));
    expect(json).toContain('extend_grant');
    expect(json).toContain('give_up_grant');
    expect(json).toContain('10m left');
  });

  it('request modal offers every resource·scope and durations up to the longest max', () => {
    const json = text(requestModal(policy));
    expect(json).toContain('billing-api|read');
    expect(json).toContain('admin-api|admin');
    expect(json).toContain('"value":"28800"');
    expect(json).not.toContain('"value":"86400"');
  });

  it('button values round-trip and reject junk', () => {
    expect(decodeValue(encodeValue('abc', 60))).toEqual({ id: 'abc', seconds: 60 });
    expect(decodeValue('abc')).toBeUndefined();
    expect(decodeValue('abc|-1')).toBeUndefined();
    expect(decodeValue('a|1|2')).toBeUndefined();
  });
});
