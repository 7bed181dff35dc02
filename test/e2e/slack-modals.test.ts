import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TRIGGER_LIFETIME_MS, triggerIssuedAt } from '../../src/dev/slack-stand-in/signed-requests.ts';
import { slackUser } from '../helpers/actors.ts';
import { TEST_POLICY_YAML, testPolicy } from '../helpers/policy.ts';
import { blockText, openedViewId, type SlackHarness, startSlackHarness } from '../helpers/slack-harness.ts';

/**
 * Modals against Slack's two clocks: a trigger id is good for 3 s and one use, and a view's
 * hash changes with every update. A slow lookup (a user group asked of a Slack that answers
 * 429 with Retry-After 4) must not make the modal miss its trigger, and two quick choices in
 * the request form must not end in "Something went wrong".
 */

const REQUESTER = 'UREQUESTER';
const GROUP_APPROVER = 'UGROUPIE';

let h: SlackHarness;

beforeAll(async () => {
  h = await startSlackHarness({
    policy: testPolicy(`requesters: { groups: [SREQUESTERS] }\n${TEST_POLICY_YAML}`),
    userGroups: { SREQUESTERS: [REQUESTER], SAPPROVERS: [GROUP_APPROVER] },
  });
});
afterAll(async () => {
  await h?.close();
});

const somethingWentWrong = () =>
  h.api.calls.filter(
    (c) =>
      blockText(c).includes('Something went wrong') || String(c.args.text).includes('Something went wrong'),
  );

describe('a trigger id lives 3 s', () => {
  it('/access opens a loading modal in time when the requester-group lookup is rate-limited, then shows the form', async () => {
    h.directory.invalidate();
    h.api.failNext('usergroups.users.list', { status: 429, retryAfter: 4 });
    const { triggerId } = await h.command(REQUESTER, '');
    const opened = await h.api.waitFor('views.open', (c) => c.args.trigger_id === triggerId, 5000);
    expect(opened.at.getTime() - (triggerIssuedAt(triggerId) ?? 0)).toBeLessThan(TRIGGER_LIFETIME_MS);
    const viewId = openedViewId(opened);
    const form = await h.api.waitFor(
      'views.update',
      (c) => c.args.view_id === viewId && blockText(c).includes('request_access'),
      8000,
    );
    expect(blockText(form)).toContain('"value":"billing-api"');
    expect(h.api.refusals.filter((r) => r.error === 'expired_trigger_id')).toEqual([]);
    expect(somethingWentWrong()).toEqual([]);
  }, 15_000);

  it('Deny opens in time when the approver-group lookup is rate-limited, then shows the deny form', async () => {
    const created = await h.access.createRequest({
      actor: slackUser(REQUESTER),
      resource: 'billing-api',
      scope: 'write',
      durationSeconds: 3600,
      reason: 'deny me through a group T-1',
    });
    if (!created.ok) throw new Error(created.code);
    await h.dispatcher.drain();
    h.directory.invalidate();
    h.api.failNext('usergroups.users.list', { status: 429, retryAfter: 4 });
    const mark = h.api.calls.length;
    const { responseKey } = await h.click(GROUP_APPROVER, 'deny_request', created.value.request.id);
    const opened = await h.api.waitFor(
      'views.open',
      (c) => h.api.calls.indexOf(c) >= mark && blockText(c).includes('One moment'),
      5000,
    );
    expect(opened.at.getTime() - (triggerIssuedAt(String(opened.args.trigger_id)) ?? 0)).toBeLessThan(
      TRIGGER_LIFETIME_MS,
    );
    const deny = await h.api.waitFor('views.update', (c) => c.args.view_id === openedViewId(opened), 8000);
    expect(blockText(deny)).toContain('deny_reason');
    expect(h.api.callsTo('response_url').filter((c) => c.path.endsWith(responseKey))).toEqual([]);
    expect(h.api.refusals.filter((r) => r.error === 'expired_trigger_id')).toEqual([]);
  }, 15_000);

  it('with the lookup cached, the form opens straight away', async () => {
    const { triggerId } = await h.command(REQUESTER, '');
    const opened = await h.api.waitFor('views.open', (c) => c.args.trigger_id === triggerId);
    expect(blockText(opened)).toContain('request_access');
  });
});

describe('two quick choices in the request form', () => {
  it('the second, sent with the hash from before the first landed, still wins; nobody is told something went wrong', async () => {
    const { triggerId } = await h.command(REQUESTER, '');
    const viewId = openedViewId(await h.api.waitFor('views.open', (c) => c.args.trigger_id === triggerId));
    const before = h.api.viewHash(viewId);
    const mark = h.api.calls.length;
    await h.select(
      REQUESTER,
      'resource',
      { text: 'billing-api', value: 'billing-api' },
      { viewId, viewHash: before },
    );
    await h.api.waitFor('views.update', (c) => c.args.view_id === viewId && h.api.calls.indexOf(c) >= mark);
    await h.select(
      REQUESTER,
      'resource',
      { text: 'admin-api', value: 'admin-api' },
      { viewId, viewHash: before },
    );
    await h.api.waitFor(
      'views.update',
      (c) => c.args.view_id === viewId && blockText(c).includes('"value":"admin"'),
    );
    expect(h.api.refusals.filter((r) => r.error === 'hash_conflict')).toHaveLength(1);
    expect(somethingWentWrong()).toEqual([]);
  });

  it('a choice older than one already shown is dropped quietly', async () => {
    const { triggerId } = await h.command(REQUESTER, '');
    const viewId = openedViewId(await h.api.waitFor('views.open', (c) => c.args.trigger_id === triggerId));
    const before = h.api.viewHash(viewId);
    const older = `${Math.floor(Date.now() / 1000) - 5}.000001`;
    await h.select(REQUESTER, 'resource', { text: 'admin-api', value: 'admin-api' }, { viewId });
    await h.api.waitFor(
      'views.update',
      (c) => c.args.view_id === viewId && blockText(c).includes('"value":"admin"'),
    );
    const updates = h.api.callsTo('views.update').length;
    const { response } = await h.select(
      REQUESTER,
      'resource',
      { text: 'billing-api', value: 'billing-api' },
      { viewId, viewHash: before, actionTs: older },
    );
    expect(response.status).toBe(200);
    await h.dispatcher.drain();
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(h.api.callsTo('views.update')).toHaveLength(updates);
    expect(somethingWentWrong()).toEqual([]);
  });
});
