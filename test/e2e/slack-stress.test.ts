import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callAuditEvent } from '../../src/audit/call-row.ts';
import { appendAuditEvents } from '../../src/audit/chain-append.ts';
import type { Grant } from '../../src/db/schema/index.ts';
import type { RecordedCall } from '../../src/dev/slack-stand-in/web-api.ts';
import { refusalText } from '../../src/slack/blocks/refusals.ts';
import { slackUser } from '../helpers/actors.ts';
import { testPolicy } from '../helpers/policy.ts';
import { blockText, openedViewId, type SlackHarness, startSlackHarness } from '../helpers/slack-harness.ts';
import { hygieneProblems } from '../helpers/slack-text-hygiene.ts';

/**
 * Ordinary edge cases at their largest: long and escape-heavy reasons, emoji at the cut, a
 * policy of 120 resources with the longest names the policy allows, a person with 60 grants,
 * ten approvals of forty approvers, long audited paths. Every payload must be one Slack accepts
 * (the fake refuses the rest, and its close() fails the file on any refusal), nothing may carry
 * a cut escape or half an emoji, and whatever does not fit must be said ("N more") or paged.
 */

const RESOURCES = 120;
/** Resource names at the policy's limit (63 characters), sorted as the modal sorts them. */
const NAMES = Array.from({ length: RESOURCES }, (_, i) => `r${String(i).padStart(3, '0')}-`.padEnd(63, 'x'));
/** A scope name at the policy's limit (32 characters). */
const LONG_SCOPE = `w${'x'.repeat(31)}`;
const APPROVERS = Array.from({ length: 40 }, (_, i) => `UAPPR${String(i).padStart(2, '0')}`);
const [FIRST, SECOND] = [NAMES[0]!, NAMES[1]!];
const OWNER = APPROVERS[0]!;
const DECIDER = APPROVERS[1]!;
const ASKER = 'UASKER';

function policyYaml(): string {
  const resources = NAMES.map(
    (name, i) => `  ${name}:
    description: ${'Resource with a long description. '.repeat(5).trim()}
    upstream: http://127.0.0.1:9000
    approvers: { users: [${APPROVERS.join(', ')}] }
    approval_channel: CAPPROVALS
    approvals_required: ${i === 0 ? 10 : 1}
    min_duration: 1m
    max_duration: 8h
    scopes:
      read:
        allow: ["GET /**"]
        auto_approve: { max_duration: 8h }
      ${LONG_SCOPE}:
        allow: ["GET /**"]
        auto_approve: { max_duration: 30m }
`,
  );
  return `resources:\n${resources.join('')}`;
}

let h: SlackHarness;

beforeAll(async () => {
  h = await startSlackHarness({ policy: testPolicy(policyYaml()) });
});
afterAll(async () => {
  await h?.close();
});

/** The answer to `/access <text>` by `userId`. */
async function ask(userId: string, text: string): Promise<RecordedCall> {
  const { response, responseKey } = await h.command(userId, text);
  expect(response.status).toBe(200);
  const acked = await response.clone().text();
  if (acked.length > 0)
    return { method: 'ack', path: '', args: JSON.parse(acked), token: undefined, at: new Date() };
  return h.answer(responseKey);
}

/** What the approval channel shows for a request: the last post or update of its message. */
async function approvalMessageOf(requestId: string): Promise<RecordedCall> {
  await h.dispatcher.drain();
  const request = await h.access.getRequest(requestId);
  const ts = request?.approvalMessageTs;
  const calls = h.api.calls.filter(
    (c) =>
      (c.method === 'chat.postMessage' && c.answer?.ts === ts) ||
      (c.method === 'chat.update' && c.args.ts === ts),
  );
  const last = calls[calls.length - 1];
  if (!last) throw new Error(`no approval message for ${requestId}`);
  return last;
}

const sectionTexts = (call: RecordedCall): string[] =>
  ((call.args.blocks ?? []) as { type: string; text?: { text: string } }[])
    .filter((b) => b.type === 'section' && b.text)
    .map((b) => b.text?.text ?? '');

function expectCleanSoFar(): void {
  expect(h.api.payloadRefusals()).toEqual([]);
  expect(h.api.warnings).toEqual([]);
  expect(hygieneProblems(h.api.calls)).toEqual([]);
}

describe('long, escape-heavy and hostile reasons', () => {
  const cases: [string, string][] = [
    ['1,500 ampersands', '&'.repeat(1500)],
    ['700 < and prose', `${'<'.repeat(700)} then an ordinary sentence about INC-7 and what I will do`],
    ['1,499 letters and an emoji', `${'a'.repeat(1499)}😀 and more`],
    ['escapes then emoji, odd', `${'&'.repeat(499)}${'😀'.repeat(700)}`],
    ['escapes then emoji, even', `${'&'.repeat(500)}${'😀'.repeat(700)}`],
  ];

  it.each(cases)('%s: the approval message is accepted, and a cut reason says so', async (_name, reason) => {
    const created = await h.access.createRequest({
      actor: slackUser(ASKER),
      resource: SECOND,
      scope: 'read',
      durationSeconds: 9 * 3600 - 3600,
      reason,
    });
    expect(created.ok).toBe(true);
    if (!created.ok) return;
    const message = await approvalMessageOf(created.value.request.id);
    const shown = sectionTexts(message).join('\n');
    expect(shown).toContain('*Reason:*');
    // Either the whole reason is there (escaped) or the message says it was cut.
    const whole = reason.replace(/&/g, '&amp;').replace(/</g, '&lt;');
    if (!shown.includes(whole)) expect(shown).toMatch(/cut; the full reason is in the audit log/);
    expectCleanSoFar();
  });

  it('reasons of 3,500 and 10,000 characters are refused with a clear answer, and nothing is stored', async () => {
    const before = await h.counts();
    for (const length of [3500, 10_000]) {
      const answer = await ask(ASKER, `request ${SECOND} read 1h ${'r'.repeat(length)}`);
      expect(blockText(answer)).toMatch(/\d+ characters[^;]*; keep it under/);
      const direct = await h.access.createRequest({
        actor: slackUser(ASKER),
        resource: SECOND,
        scope: 'read',
        durationSeconds: 3600,
        reason: 'r'.repeat(length),
      });
      expect(direct).toMatchObject({ ok: false, code: 'reason_too_long' });
    }
    expect(await h.counts()).toEqual(before);
    expectCleanSoFar();
  });

  it('a deny note of 2,000 < reaches the requester and the message, escaped, in full or said to be cut', async () => {
    const created = await h.access.createRequest({
      actor: slackUser(ASKER),
      resource: SECOND,
      scope: LONG_SCOPE,
      durationSeconds: 3600,
      reason: 'needs a decision',
    });
    if (!created.ok) throw new Error(created.code);
    const denied = await h.access.deny({
      requestId: created.value.request.id,
      actor: slackUser(DECIDER),
      note: '<'.repeat(2000),
    });
    expect(denied.ok).toBe(true);
    const message = await approvalMessageOf(created.value.request.id);
    expect(blockText(message)).toContain('Denied by');
    const dm = await h.api.waitFor(
      'chat.postMessage',
      (c) => c.args.channel === ASKER && blockText(c).includes('was denied'),
    );
    for (const call of [message, dm]) {
      const text = blockText(call);
      if (!text.includes('&lt;'.repeat(2000))) expect(text).toMatch(/cut; the full note is in the audit log/);
    }
    expectCleanSoFar();
  });
});

describe('a policy of 120 resources with the longest names', () => {
  it('the request modal offers every resource and, once one is chosen, its scopes within the limits', async () => {
    const { triggerId } = await h.command(ASKER, '');
    const opened = await h.api.waitFor('views.open', (c) => c.args.trigger_id === triggerId);
    const view = opened.args.view as { blocks: { block_id?: string; element?: Record<string, unknown> }[] };
    const resourceSelect = view.blocks.find((b) => b.block_id === 'resource')?.element ?? {};
    const groups = (resourceSelect.option_groups ?? [{ options: resourceSelect.options }]) as {
      options: { value: string; text: { text: string } }[];
    }[];
    const offered = groups.flatMap((g) => g.options.map((o) => o.value));
    expect(offered.sort()).toEqual([...NAMES].sort());

    const viewId = openedViewId(opened);
    const mark = h.api.calls.length;
    await h.select(ASKER, 'resource', { text: FIRST, value: FIRST }, { viewId });
    const updated = await h.api.waitFor(
      'views.update',
      (c) => c.args.view_id === viewId && h.api.calls.indexOf(c) >= mark,
    );
    const scopes = (
      (
        updated.args.view as {
          blocks: {
            block_id?: string;
            element?: { options?: { value: string; text: { text: string } }[] };
          }[];
        }
      ).blocks.find((b) => b.block_id === 'scope')?.element?.options ?? []
    ).map((o) => o.value);
    expect(scopes.sort()).toEqual(['read', LONG_SCOPE].sort());
    expectCleanSoFar();
  });
});

describe('a person with 60 grants', () => {
  let grants: Grant[] = [];
  const pending: string[] = [];

  beforeAll(async () => {
    for (const name of NAMES.slice(0, 60)) {
      const made = await h.access.createRequest({
        actor: slackUser(OWNER),
        resource: name,
        scope: 'read',
        durationSeconds: 4 * 3600,
        reason: `work on ${name.slice(0, 4)}`,
      });
      if (!made.ok) throw new Error(made.code);
    }
    // Requests for the owner (an approver) to decide, beside their own grants.
    for (const name of NAMES.slice(60, 66)) {
      const made = await h.access.createRequest({
        actor: slackUser(ASKER),
        resource: name,
        scope: LONG_SCOPE,
        durationSeconds: 2 * 3600,
        reason: `${'please '.repeat(60)}decide`,
      });
      if (!made.ok) throw new Error(made.code);
      pending.push(made.value.request.id);
    }
    await h.dispatcher.drain();
    grants = (await h.access.listForUser(OWNER)).active;
    expect(grants).toHaveLength(60);
  });

  /** Every grant id an answer shows, following its "next page" buttons to the end. */
  async function allPages(userId: string, first: RecordedCall): Promise<{ ids: Set<string>; pages: number }> {
    const ids = new Set<string>();
    let page: RecordedCall | undefined = first;
    let pages = 0;
    while (page) {
      pages += 1;
      for (const grant of grants) if (blockText(page).includes(grant.id)) ids.add(grant.id);
      const next = ((page.args.blocks ?? []) as { elements?: { action_id?: string; value?: string }[] }[])
        .flatMap((b) => b.elements ?? [])
        .find((e) => e.action_id === 'list_page');
      if (!next?.value || pages > 20) break;
      const { responseKey } = await h.click(userId, 'list_page', next.value);
      page = await h.answer(responseKey);
      expect(page.args.replace_original).toBe(true);
    }
    return { ids, pages };
  }

  it('/access list pages through all of them', async () => {
    const first = await ask(OWNER, 'list');
    expect(blockText(first)).toMatch(/60 active grants/);
    const { ids, pages } = await allPages(OWNER, first);
    expect(pages).toBeGreaterThan(1);
    expect(ids.size).toBe(60);
    expectCleanSoFar();
  });

  it('/access active pages through all of them, and the requests to decide', async () => {
    const first = await ask(DECIDER, 'active');
    expect(blockText(first)).toMatch(/6 requests to decide/);
    const { ids } = await allPages(DECIDER, first);
    expect(ids.size).toBe(60);
    expectCleanSoFar();
  });

  it('App Home shows both halves, and says how many more there are and where to see them', async () => {
    const home = await h.openHome(OWNER);
    const text = blockText(home);
    expect(text).toContain('Your access');
    expect(text).toContain('To decide');
    expect(text).toContain('Active grants');
    const shownOwn = grants.filter(
      (g) => text.indexOf(g.id) >= 0 && text.indexOf(g.id) < text.indexOf('To decide'),
    );
    const moreOwn = Number(/(\d+) more of your grants/.exec(text)?.[1] ?? 0);
    expect(shownOwn.length + moreOwn).toBe(60);
    for (const id of pending) expect(text).toContain(id);
    expectCleanSoFar();
  });

  it('revoke-all names what it ended, and how many more it did not list', async () => {
    const answer = await ask(DECIDER, `revoke-all <@${OWNER}> leaving the team`);
    const text = blockText(answer);
    expect(text).toContain('Revoked 60 grants');
    const listed = grants.filter((g) => text.includes(g.id)).length;
    const more = Number(/and (\d+) more/.exec(text)?.[1] ?? 0);
    expect(listed + more).toBe(60);
    await h.dispatcher.drain();
    expectCleanSoFar();
  });
});

describe('ten approvals of forty approvers', () => {
  it('every step of the approval message is accepted and the last one names all ten', async () => {
    const created = await h.access.createRequest({
      actor: slackUser(ASKER),
      resource: FIRST,
      scope: LONG_SCOPE,
      durationSeconds: 2 * 3600,
      reason: 'ten people must agree',
    });
    if (!created.ok) throw new Error(created.code);
    for (const approver of APPROVERS.slice(0, 10)) {
      const approved = await h.access.approve({
        requestId: created.value.request.id,
        actor: slackUser(approver),
      });
      expect(approved.ok).toBe(true);
    }
    const message = await approvalMessageOf(created.value.request.id);
    for (const approver of APPROVERS.slice(0, 10)) expect(blockText(message)).toContain(`<@${approver}>`);
    expectCleanSoFar();
  });
});

describe('long audited paths', () => {
  it('/access audit shows the top paths cut, and says how many more there are', async () => {
    const made = await h.access.createRequest({
      actor: slackUser(ASKER),
      resource: NAMES[100]!,
      scope: 'read',
      durationSeconds: 3600,
      reason: 'audited',
    });
    if (!made.ok || !made.value.grant) throw new Error('no grant');
    const grant = made.value.grant;
    const events = Array.from({ length: 14 }, (_, i) =>
      callAuditEvent({
        at: new Date(),
        requestId: `req-${i}`,
        resource: grant.resource,
        grantId: grant.id,
        userId: ASKER,
        scope: 'read',
        method: 'GET',
        path: `/p${i}/${'<&>'.repeat(600)}`,
        clientIp: `10.0.0.${i}`,
        decision: 'allowed',
        status: 200,
        responseBytes: 10,
        latencyMs: 1,
      }),
    );
    await h.database.db.transaction((tx) => appendAuditEvents(tx, events));
    const answer = await ask(DECIDER, `audit ${grant.id}`);
    const text = blockText(answer);
    expect(text).toContain('*Calls:* 14');
    expect(text).toMatch(/and \d+ more/);
    expectCleanSoFar();
  });
});

describe('user text that tries to pass for jitgate', () => {
  it('a reason with newlines cannot draw a second *Duration:* line under the real one', async () => {
    const created = await h.access.createRequest({
      actor: slackUser(ASKER),
      resource: NAMES[110]!,
      scope: 'read',
      durationSeconds: 2 * 3600,
      reason: 'INC-9\n*Duration:* 5m\n*Resource:* harmless',
    });
    if (!created.ok) throw new Error(created.code);
    const text = sectionTexts(await approvalMessageOf(created.value.request.id)).join('\n');
    expect(text.match(/^\*Duration:\*/gm)).toHaveLength(1);
    expect(text.match(/^\*Resource:\*/gm)).toHaveLength(1);
    expectCleanSoFar();
  });

  it('NUL and control characters are refused with a clear answer and nothing stored; bidi controls are dropped', async () => {
    const before = await h.counts();
    for (const reason of ['fix\u0000it', 'bell\u0007', 'esc\u001b[31m']) {
      const refused = await h.access.createRequest({
        actor: slackUser(ASKER),
        resource: NAMES[111]!,
        scope: 'read',
        durationSeconds: 3600,
        reason,
      });
      expect(refused).toMatchObject({ ok: false, code: 'text_has_control_characters' });
      if (!refused.ok) expect(refusalText(refused)).toMatch(/control character/);
    }
    const answer = await ask(ASKER, `request ${NAMES[111]} read 1h fix\u0007it`);
    expect(blockText(answer)).toMatch(/control character/);
    // What was typed is refused with the usage beside it, whichever command it was.
    expect(blockText(answer)).toContain('/access list');
    for (const typed of [`revoke ${randomUUID()} bell\u0007`, `revoke-all <@${ASKER}> esc\u001b[31m`]) {
      const refusal = blockText(await ask(ASKER, typed));
      expect(refusal).toMatch(/control character/);
      expect(refusal).toContain('/access list');
    }
    expect(await h.counts()).toEqual(before);

    const created = await h.access.createRequest({
      actor: slackUser(ASKER),
      resource: NAMES[111]!,
      scope: 'read',
      durationSeconds: 3600,
      reason: 'pay \u202Eevil\u202C invoice',
    });
    if (!created.ok) throw new Error(created.code);
    expect(created.value.request.reason).toBe('pay evil invoice');
    expect(blockText(await approvalMessageOf(created.value.request.id))).not.toMatch(
      /[\u202A-\u202E\u2066-\u2069]/,
    );
    expectCleanSoFar();
  });

  it('help and usage show <resource> and <grant> as typed, not as Slack control sequences', async () => {
    for (const text of ['help', 'bogus']) {
      const answer = await ask(ASKER, text);
      expect(blockText(answer)).toContain('&lt;resource&gt;');
      expect(hygieneProblems([answer])).toEqual([]);
    }
  });
});
