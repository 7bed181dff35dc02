import { describe, expect, it } from 'vitest';
import type { AccessRequest, Grant } from '../../src/db/schema/index.ts';
import {
  type AnomalyInput,
  anomalyAlert,
  approvalMessage,
  type Block,
  cliTokenModal,
  codeText,
  devicesMessage,
  escapeText,
  grantApprovedDm,
  grantReminderDm,
  grantRevokedDm,
  homeView,
  linkDevicePrompt,
  lowerQuotaChoices,
  mention,
  requestDeniedDm,
  requestModal,
  slackDate,
  tokenModal,
} from '../../src/slack/blocks/index.ts';
import {
  decodeQuotaValue,
  decodeValue,
  encodeQuotaValue,
  encodeValue,
} from '../../src/slack/listeners/actions/values.ts';
import { TEST_POLICY_YAML, testPolicy } from '../helpers/policy.ts';

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
        evidence: {
          lastPath: `GET /x/${hostile}`,
          [hostile]: hostile,
          nested: { why: hostile },
          ips: [hostile],
        },
        call: {
          method: 'GET',
          path: `/x/${hostile}`,
          clientIp: hostile,
          decision: hostile,
          status: 403,
          requestId: hostile,
          at: NOW.toISOString(),
        },
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

  it('sender_constraint: dpop: the approved DM points at the CLI, not at a bearer curl', () => {
    const dm = text(
      grantApprovedDm({ grant: grant(), proxyUrl: 'https://proxy.example', approvers: [], boundOnly: true }),
    );
    expect(dm).toContain('jitgate connect billing-api --port 9000');
    expect(dm).not.toContain('JITGATE_TOKEN');
  });

  it('sender_constraint: dpop: the modal shows how to use the CLI with the server URL, never a token', () => {
    const modal = text(cliTokenModal(grant(), 'https://jitgate.example'));
    expect(modal).toContain('jitgate login --server https://jitgate.example');
    expect(modal).toContain('jitgate connect billing-api --port 9000');
    expect(modal).not.toMatch(/eyJ|JITGATE_TOKEN/);
  });

  it('devices: the Link prompt names the device (escaped) with Link and Not me; the list has Revoke per device', () => {
    const prompt = text(linkDevicePrompt({ name: '<!here> laptop', createdAt: NOW }, 'K7QF-3M9X'));
    expect(prompt).toContain("Link this device '*&lt;!here&gt; laptop*'?");
    expect(prompt).toContain('link_device');
    expect(prompt).toContain('reject_device');
    const device = {
      id: '22222222-2222-4222-8222-222222222222',
      name: 'alice-laptop',
      linkedAt: NOW,
    } as Parameters<typeof devicesMessage>[0][number];
    const list = text(devicesMessage([device]));
    expect(list).toContain('alice-laptop');
    expect(list).toContain('revoke_device');
    expect(text(devicesMessage([]))).toContain('no linked devices');
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

  it('request modal offers every resource, then its scopes, and durations up to the longest max', () => {
    const resources = (view: ReturnType<typeof requestModal>) =>
      (
        view.blocks.find((b) => b.block_id === 'resource') as { element: { options: { value: string }[] } }
      ).element.options.map((o) => o.value);
    const modal = requestModal(policy);
    expect(resources(modal).sort()).toEqual(['admin-api', 'billing-api']);
    expect(text(modal)).toContain('"value":"28800"');
    expect(text(modal)).not.toContain('"value":"86400"');
    expect(modal.blocks.some((b) => b.block_id === 'scope')).toBe(false);
    const billing = requestModal(policy, { resource: 'billing-api' });
    const scope = billing.blocks.find((b) => b.block_id === 'scope') as {
      element: { options: { value: string; text: { text: string } }[]; initial_option?: { value: string } };
    };
    expect(scope.element.options.map((o) => [o.value, o.text.text])).toEqual([
      ['read', 'read · instant ≤ 1h'],
      ['write', 'write'],
    ]);
    // The policy's default scope (the first) is chosen until the person picks another.
    expect(scope.element.initial_option?.value).toBe('read');
    expect(requestModal(policy, { resource: 'billing-api', scope: 'write' })).toMatchObject({
      blocks: expect.arrayContaining([
        expect.objectContaining({
          block_id: 'scope',
          element: expect.objectContaining({ initial_option: expect.objectContaining({ value: 'write' }) }),
        }),
      ]),
    });
  });

  it('request modal narrows the durations to the chosen resource and keeps the choice', () => {
    const mixed = testPolicy(
      TEST_POLICY_YAML.replace('    max_duration: 8h\n', '    max_duration: 2h\n').replace(
        '    approvals_required: 2\n    min_duration: 1s\n',
        '    approvals_required: 2\n    min_duration: 30m\n    max_duration: 1d\n',
      ),
    );
    const values = (view: ReturnType<typeof requestModal>) => {
      const duration = view.blocks.find((b) => b.block_id === 'duration') as {
        element: { options: { value: string }[] };
      };
      return duration.element.options.map((o) => Number(o.value));
    };
    const all = values(requestModal(mixed));
    expect(Math.max(...all)).toBe(86_400);
    expect(Math.min(...all)).toBeLessThan(1800);

    const billingOnly = requestModal(mixed, { resource: 'billing-api', scope: 'write' });
    expect(Math.max(...values(billingOnly))).toBe(7200);
    expect(JSON.stringify(billingOnly.blocks[0])).toContain('"initial_option"');
    expect(JSON.stringify(billingOnly.blocks[0])).toContain('"value":"billing-api"');
    expect(billingOnly.blocks[0]).toMatchObject({ dispatch_action: true });

    const adminOnly = values(requestModal(mixed, { resource: 'admin-api' }));
    expect(Math.min(...adminOnly)).toBe(1800);
    expect(Math.max(...adminOnly)).toBe(86_400);
    // A resource that is not in the policy changes nothing.
    expect(values(requestModal(mixed, { resource: 'nope' }))).toEqual(all);
  });

  it('button values round-trip and reject junk', () => {
    expect(decodeValue(encodeValue('abc', 60))).toEqual({ id: 'abc', seconds: 60 });
    expect(decodeValue('abc')).toBeUndefined();
    expect(decodeValue('abc|-1')).toBeUndefined();
    expect(decodeValue('a|1|2')).toBeUndefined();
  });
});

/** The mrkdwn of each section, in order. */
function sectionTexts(blocks: readonly Block[]): string[] {
  return blocks.flatMap((b) => (b.type === 'section' && b.text ? [b.text.text] : []));
}

/** Every button or select in `blocks`, with the text of the section it belongs to (or follows). */
function controls(blocks: readonly Block[]): { actionId: string; value: string; near: string }[] {
  const found: { actionId: string; value: string; near: string }[] = [];
  let near = '';
  for (const block of blocks) {
    if (block.type === 'section') {
      near = block.text?.text ?? '';
      const accessory = block.accessory;
      if (accessory?.type === 'button') {
        found.push({ actionId: accessory.action_id ?? '', value: accessory.value ?? '', near });
      }
    }
    if (block.type === 'actions') {
      for (const element of block.elements) {
        if (element.type === 'button')
          found.push({ actionId: element.action_id ?? '', value: element.value ?? '', near });
        if (element.type === 'static_select') {
          for (const option of element.options ?? [])
            found.push({
              actionId: element.action_id ?? '',
              value: option.value ?? '',
              near: option.text.text,
            });
        }
      }
    }
  }
  return found;
}

/** Slack types a home view's blocks loosely (`AnyBlock`); ours are all built as known blocks. */
const homeBlocks = (view: ReturnType<typeof homeView>) => view.blocks as Block[];

/** Text with every inline code span removed: what Slack would format. */
const outsideCode = (mrkdwn: string) => mrkdwn.replace(/`[^`\n]*`/g, '');

describe('anomaly alerts', () => {
  const REQUEST_ID = 'req-7f3a';
  const alert = (over: Partial<AnomalyInput> = {}) =>
    anomalyAlert({
      resource: 'billing-api',
      rule: 'denied_burst',
      summary: '3 denied calls within 60s',
      userId: 'UREQ',
      grantId: grant().id,
      grant: grant(),
      evidence: {
        denied: 3,
        windowSeconds: 60,
        firstAt: '2026-01-05T09:59:58.000Z',
        lastDecision: 'out_of_scope',
        lastPath: 'DELETE /invoices/1',
        requestId: REQUEST_ID,
      },
      call: {
        method: 'DELETE',
        path: '/invoices/1',
        clientIp: '203.0.113.9',
        at: '2026-01-05T09:59:59.000Z',
        decision: 'out_of_scope',
        status: 403,
        requestId: REQUEST_ID,
      },
      revoked: false,
      at: NOW,
      ...over,
    });

  it('says who (person and grant), what (call, IP, time, decision, request id) and the evidence', () => {
    const [head, facts, evidence] = sectionTexts(alert().blocks);
    expect(head).toContain('*Unusual activity* on *billing-api* by <@UREQ>');
    expect(facts).toContain(
      `*Who:* <@UREQ> with grant \`${grant().id}\` (\`write\`, until ${slackDate(grant().expiresAt)})`,
    );
    expect(facts).toContain('*Call:* `DELETE /invoices/1` → 403 `out_of_scope`');
    expect(facts).toContain(
      `*From:* \`203.0.113.9\` at ${slackDate(new Date('2026-01-05T09:59:59Z'), '{date_short_pretty} {time_secs}')}`,
    );
    expect(facts).toContain(`*Request id:* \`${REQUEST_ID}\``);
    expect(evidence).toContain('*Evidence*');
    expect(evidence).toContain('• *denied:* 3');
    expect(evidence).toContain('• *window seconds:* 60');
    expect(evidence).toContain('• *last path:* `DELETE /invoices/1`');
    expect(evidence).toContain(`• *first at:* <!date^${Date.parse('2026-01-05T09:59:58Z') / 1000}^`);
    // The request id is already in the call lines.
    expect(evidence).not.toContain(REQUEST_ID);
  });

  it('a hostile request path cannot mention, link or format, in the call or in the evidence', () => {
    const path =
      '/inv/<!channel>/<@UOTHER9>/<https://evil.example|click>/*bold*/_it_/~gone~/`x`\n*Who:* <@UFAKE> <!here>';
    const message = alert({
      call: { method: 'GET', path, clientIp: '10.0.0.1\n<!everyone>', decision: 'out_of_scope', status: 403 },
      evidence: { lastPath: `GET ${path}`, '<@UKEY>*k*': path, nested: { path }, ips: [path, '10.0.0.2'] },
    });
    const json = text(message);
    for (const forbidden of [
      '<!channel>',
      '<@UOTHER9>',
      '<https://evil',
      '<@UFAKE>',
      '<!here>',
      '<!everyone>',
      '<@UKEY>',
    ]) {
      expect(json).not.toContain(forbidden);
    }
    const [, facts, evidence] = sectionTexts(message.blocks);
    for (const section of [facts!, evidence!]) {
      // Backticks and line breaks from the path cannot close a code span: nothing of it is formatted.
      const formatted = outsideCode(section);
      for (const leak of ['bold', '_it_', 'gone', 'UFAKE', 'evil', 'UOTHER9'])
        expect(formatted).not.toContain(leak);
    }
    expect(facts).toContain(
      '`GET /inv/&lt;!channel&gt;/&lt;@UOTHER9&gt;/&lt;https://evil.example|click&gt;/*bold*',
    );
    // A line break in the path cannot start a line of its own.
    expect(facts!.split('\n').filter((line) => line.startsWith('*Who:*'))).toHaveLength(1);
    expect(facts!.split('\n')).toHaveLength(3);
    expect(evidence).toContain('• *ukeyk:* `/inv/&lt;!channel&gt;');
    // Sections holding request data are verbatim: Slack auto-links and auto-mentions nothing in them.
    const verbatim = message.blocks.filter(
      (b) => b.type === 'section' && b.text?.type === 'mrkdwn' && b.text.verbatim === true,
    );
    // Every section is, since no text jitgate shows relies on Slack's auto-parsing.
    expect(verbatim).toHaveLength(message.blocks.filter((b) => b.type === 'section').length);
    expect(verbatim.length).toBeGreaterThanOrEqual(2);
    expect(codeText('a`b\nc')).toBe('`a\u02cbb c`');
  });

  it('stays within Slack limits however long the path and the evidence', () => {
    const huge = 'p'.repeat(10_000);
    const evidence: Record<string, unknown> = {};
    for (let i = 0; i < 200; i++) evidence[`key${i}`] = `/${huge}`;
    const message = alert({
      resource: 'r'.repeat(5000),
      rule: 'x'.repeat(5000),
      summary: 's'.repeat(10_000),
      call: { method: 'GET', path: `/${huge}`, clientIp: huge, requestId: huge, decision: huge, status: 200 },
      evidence,
    });
    const sections = sectionTexts(message.blocks);
    expect(sections).toHaveLength(3);
    for (const section of sections) expect(section.length).toBeLessThanOrEqual(3000);
    expect(sections[2]).toContain('…and');
    expect(message.text.length).toBeLessThanOrEqual(300);
    expect(message.blocks.length).toBeLessThanOrEqual(6);
  });

  it('an alert without call or evidence (queued by an older version) still says who', () => {
    const message = alert({ call: undefined, evidence: undefined, grant: undefined });
    const sections = sectionTexts(message.blocks);
    expect(sections).toHaveLength(2);
    expect(sections[1]).toBe(`*Who:* <@UREQ> with grant \`${grant().id}\``);
    const anonymous = alert({ userId: null, grantId: null, grant: undefined, call: undefined });
    expect(sectionTexts(anonymous.blocks)[1]).toBe('*Who:* an unidentified caller (no grant identified)');
  });

  it('offers Revoke for an active grant only', () => {
    expect(controls(alert().blocks)).toEqual([
      expect.objectContaining({ actionId: 'revoke_grant', value: grant().id }),
    ]);
    const revoked = alert({ grant: grant({ status: 'revoked' }), revoked: true });
    expect(controls(revoked.blocks)).toEqual([]);
    expect(text(revoked)).toContain('is revoked');
  });
});

describe('App Home', () => {
  const myRequest = request({ id: '33333333-3333-4333-8333-333333333333', reason: 'INC-9' });
  const myGrant = grant({
    id: '44444444-4444-4444-8444-444444444444',
    expiresAt: new Date(NOW.getTime() + 90 * 60_000),
    quotaRequests: 1000,
    usedRequests: 412,
  });
  const toDecide = request({
    id: '55555555-5555-4555-8555-555555555555',
    requesterId: 'UOTHER',
    reason: 'INC-10',
  });
  const theirGrant = grant({
    id: '66666666-6666-4666-8666-666666666666',
    userId: 'UOTHER',
    lastUsedAt: new Date(NOW.getTime() - 600_000),
  });

  it("the requester's half: a pending request with Cancel, an active grant with time left and Give up", () => {
    const view = homeView({ pending: [myRequest], active: [myGrant] }, undefined, NOW);
    expect(view.type).toBe('home');
    const found = controls(homeBlocks(view));
    const cancel = found.find((c) => c.actionId === 'cancel_request');
    expect(cancel).toMatchObject({ value: myRequest.id });
    expect(cancel?.near).toContain('Pending: *billing-api* · `write` for 2h');
    const giveUp = found.find((c) => c.actionId === 'give_up_grant');
    expect(giveUp).toMatchObject({ value: myGrant.id });
    expect(giveUp?.near).toContain('1h 30m left');
    expect(giveUp?.near).toContain('412 of 1,000 calls used');
    expect(giveUp?.near).toContain(myGrant.id);
    expect(found.map((c) => c.actionId)).toEqual([
      'open_request_modal',
      'cancel_request',
      'show_token',
      'extend_grant',
      'give_up_grant',
    ]);
    // Giving up asks first: the token stops at once.
    expect(text(view)).toContain('Give up access?');
    expect(text(view)).not.toContain('To decide');
  });

  it("the approver's half: requests to decide with Approve and Deny, active grants with Revoke", () => {
    const view = homeView({ pending: [], active: [] }, { pending: [toDecide], active: [theirGrant] }, NOW);
    const json = text(view);
    expect(json).toContain('You have no pending requests and no active grants');
    expect(json).toContain('To decide');
    expect(json).toContain('Active grants');
    const found = controls(homeBlocks(view));
    const approve = found.find((c) => c.actionId === 'approve_request');
    expect(approve).toMatchObject({ value: toDecide.id });
    expect(approve?.near).toContain('by <@UOTHER>');
    expect(approve?.near).toContain('*Reason:* INC-10');
    expect(found.find((c) => c.actionId === 'deny_request')).toMatchObject({ value: toDecide.id });
    const revoke = found.find((c) => c.actionId === 'revoke_grant');
    expect(revoke).toMatchObject({ value: theirGrant.id });
    expect(revoke?.near).toContain('<@UOTHER>');
    expect(revoke?.near).toContain('2h left');
    expect(revoke?.near).toContain(`last used ${slackDate(theirGrant.lastUsedAt!)}`);
  });

  it('an approver with nothing to do is told so; a non-approver sees no approver half', () => {
    const idle = text(homeView({ pending: [], active: [] }, { pending: [], active: [] }, NOW));
    expect(idle).toContain('Nothing is waiting for a decision.');
    expect(idle).toContain('No active grants on the resources you approve.');
    const requesterOnly = controls(
      homeBlocks(homeView({ pending: [], active: [theirGrant] }, undefined, NOW)),
    );
    expect(
      requesterOnly.some((c) => ['revoke_grant', 'approve_request', 'deny_request'].includes(c.actionId)),
    ).toBe(false);
  });
});

describe('approving with a smaller quota', () => {
  const MB = 1024 ** 2;
  const quotaPolicy = testPolicy(`
resources:
  billing-api:
    upstream: http://127.0.0.1:9000
    approvers: { users: [UAPPROVER1] }
    approval_channel: CAPPROVALS
    quota: { response_bytes: 10MB }
    scopes:
      read: { allow: ["GET /**"] }
      write: { allow: ["GET /**"], quota: { requests: 1000 } }
`);
  const quoted = quotaPolicy.resources['billing-api']!;

  it('offers round fractions of every cap the grant would have', () => {
    expect(lowerQuotaChoices({ requests: 1000 })).toEqual([
      { requests: 500 },
      { requests: 250 },
      { requests: 100 },
      { requests: 10 },
    ]);
    expect(lowerQuotaChoices({ responseBytes: 10 * MB })).toEqual([
      { responseBytes: 5 * MB },
      { responseBytes: 2.5 * MB },
      { responseBytes: MB },
      { responseBytes: Math.floor(0.1 * MB) },
    ]);
    expect(lowerQuotaChoices({ requests: 1000, responseBytes: 10 * MB })[1]).toEqual({
      requests: 250,
      responseBytes: 2.5 * MB,
    });
    // A fraction that would leave a cap at 0 is not offered; nothing to lower, nothing offered.
    expect(lowerQuotaChoices({ requests: 3, responseBytes: 10 * MB })).toEqual([
      { requests: 1, responseBytes: 5 * MB },
    ]);
    expect(lowerQuotaChoices({ requests: 1 })).toEqual([]);
    expect(lowerQuotaChoices({ requests: null, responseBytes: null })).toEqual([]);
  });

  it('select values round-trip, old `id|calls` values still decode, junk does not', () => {
    const id = request().id;
    expect(decodeQuotaValue(encodeQuotaValue(id, { requests: 250, responseBytes: 5 * MB }))).toEqual({
      id,
      quota: { requests: 250, responseBytes: 5 * MB },
    });
    expect(decodeQuotaValue(encodeQuotaValue(id, { responseBytes: 5 * MB }))).toEqual({
      id,
      quota: { responseBytes: 5 * MB },
    });
    expect(decodeQuotaValue(`${id}|250`)).toEqual({ id, quota: { requests: 250 } });
    for (const junk of [
      id,
      `${id}|-|-`,
      `${id}|0|-`,
      `${id}|1.5|-`,
      `${id}|-1`,
      `${id}|2|x`,
      `${id}|1|2|3`,
      `${id}|1e3`,
    ]) {
      expect(decodeQuotaValue(junk)).toBeUndefined();
    }
  });

  it('a bytes-only quota offers less data, and the choice shows on the message', () => {
    const pending = approvalMessage({
      request: request({ scope: 'read' }),
      approvals: [],
      grant: undefined,
      resource: quoted,
      now: NOW,
    });
    const offered = controls(pending.blocks).filter((c) => c.actionId === 'approve_lower_quota');
    expect(offered.map((c) => c.near)).toEqual([
      'Approve for 5 MB',
      'Approve for 2.5 MB',
      'Approve for 1 MB',
      'Approve for 102.4 KB',
    ]);
    expect(decodeQuotaValue(offered[0]!.value)).toEqual({
      id: request().id,
      quota: { responseBytes: 5 * MB },
    });

    const lowered = approvalMessage({
      request: request({ scope: 'read', approvalsRequired: 2 }),
      approvals: [{ approverId: 'UAPPROVER1', durationSeconds: null, quotaResponseBytes: MB }],
      grant: undefined,
      resource: quoted,
      now: NOW,
    });
    expect(text(lowered)).toContain("*Quota:* 1 MB over the grant's life (lowered from the policy's 10 MB)");
    expect(lowered.text).toContain('read, 2h, 1 MB');

    const approved = approvalMessage({
      request: request({ scope: 'write', status: 'approved', decidedAt: NOW, decidedBy: 'UAPPROVER1' }),
      approvals: [
        { approverId: 'UAPPROVER1', durationSeconds: null, quotaRequests: 250, quotaResponseBytes: null },
      ],
      grant: grant({ quotaRequests: 250, quotaResponseBytes: 10 * MB }),
      resource: quoted,
      now: NOW,
    });
    expect(text(approved)).toContain(
      "*Quota:* 250 calls, 10 MB over the grant's life (lowered from the policy's 1,000 calls, 10 MB)",
    );
    expect(controls(approved.blocks)).toEqual([]);
  });
});

describe('block ids across updates', () => {
  const quotaPolicy = testPolicy(`
resources:
  billing-api:
    upstream: http://127.0.0.1:9000
    approvers: { users: [UAPPROVER1, UAPPROVER2] }
    approval_channel: CAPPROVALS
    approvals_required: 2
    scopes:
      write: { allow: ["GET /**"], quota: { requests: 1000 } }
`);
  const billingQuota = quotaPolicy.resources['billing-api']!;
  const ids = (message: { blocks: readonly Block[] }) =>
    new Map(message.blocks.flatMap((b) => (b.block_id ? [[b.block_id, JSON.stringify(b)] as const] : [])));

  it('an updated approval message gives a changed block a new block_id, and keeps it for an unchanged one', () => {
    const render = (approvals: Parameters<typeof approvalMessage>[0]['approvals']) =>
      approvalMessage({
        request: request({ approvalsRequired: 2 }),
        approvals,
        grant: undefined,
        resource: billingQuota,
        now: NOW,
      });
    const before = ids(render([]));
    // The first approver lowered the quota: the choices left to the second one change.
    const after = ids(render([{ approverId: 'UAPPROVER1', durationSeconds: null, quotaRequests: 250 }]));
    expect(before.size).toBeGreaterThan(0);
    for (const [id, block] of after) if (before.has(id)) expect(before.get(id)).toBe(block);
    expect([...after.keys()].some((id) => !before.has(id))).toBe(true);
    expect(ids(render([]))).toEqual(before);
  });
});
