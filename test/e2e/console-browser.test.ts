import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_APPROVER, DEMO_AUDITOR, type Stack, startStack } from '../../src/demo/stack.ts';
import { issueTokenForGrant } from '../../src/tokens/index.ts';
import { slackUser } from '../helpers/actors.ts';
import { blockText } from '../helpers/slack-harness.ts';

/**
 * The console in Debian's Chromium (playwright-core, no browser download) against the whole
 * of jitgate: bot, proxy and worker on loopback, Slack's Web API fake, and a real OpenID
 * provider answering as Sign in with Slack. One browser for the file; pages are reused.
 */
const CONTRACTOR = 'UCONTRACTOR';
const SHOTS = 'test-results/console';
const axeSource = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

let stack: Stack;
let browser: Browser;
let approver: BrowserContext;
let page: Page;
let consoleUrl = '';

async function signIn(context: BrowserContext, userId: string): Promise<Page> {
  const p = await context.newPage();
  await p.goto(`${consoleUrl}/console`);
  await p.getByLabel('Slack user ID').fill(userId);
  await p.getByRole('button', { name: 'Sign in' }).click();
  await p.waitForURL(`${consoleUrl}/console`);
  return p;
}

async function requestWriteAccess(reason: string): Promise<string> {
  const response = await stack.command(CONTRACTOR, `request billing-api write 2h ${reason}`);
  expect(response.status).toBe(200);
  const posted = await stack.slackApi.waitFor(
    'chat.postMessage',
    (c) => c.args.channel === 'CAPPROVALS' && blockText(c).includes(reason),
    10_000,
  );
  const id = /"value":"([0-9a-f-]{36})"/.exec(blockText(posted))?.[1];
  if (!id) throw new Error('no request id in the approval message');
  return id;
}

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  stack = await startStack({ console: {} });
  consoleUrl = stack.consoleUrl ?? '';
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  approver = await browser.newContext();
  approver.setDefaultTimeout(5000);
  page = await signIn(approver, DEMO_APPROVER);
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await stack?.close();
});

describe('the console in a browser', () => {
  let grantId = '';

  it('signs in with Slack (the local provider), lands on the overview by name, and signs out for good', async () => {
    const context = await browser.newContext();
    const signedIn = await signIn(context, DEMO_APPROVER);
    expect(await signedIn.locator('header .who').textContent()).toContain('Ada Approver');
    expect(await signedIn.locator('h1').textContent()).toBe('Overview');
    await signedIn.screenshot({ path: `${SHOTS}/signed-in.png`, fullPage: true });
    const cookies = await context.cookies();
    await signedIn.getByRole('button', { name: 'Sign out' }).click();
    await signedIn.waitForURL(`${consoleUrl}/console/auth/signed-out`);
    // The cookies as they were before signing out, put back: the session is over all the same.
    await context.addCookies(cookies);
    const after = await signedIn.request.get(`${consoleUrl}/api/v1/session`);
    expect(after.status()).toBe(401);
    await context.close();
  });

  it('approving a request updates the Slack message in place', async () => {
    const requestId = await requestWriteAccess('Reconcile INV-42 totals');
    await page.goto(`${consoleUrl}/console/requests`);
    const card = page.locator('article', { hasText: 'Reconcile INV-42 totals' });
    await page.screenshot({ path: `${SHOTS}/requests.png`, fullPage: true });
    await card.getByLabel('Approve for').selectOption('1h');
    await card.getByRole('button', { name: 'Approve' }).click();
    expect(await page.getByRole('status').textContent()).toContain('Approved');
    const request = await stack.running.core.access.getRequest(requestId);
    const update = await stack.slackApi.waitFor(
      'chat.update',
      (c) => c.args.ts === request?.approvalMessageTs && blockText(c).includes('Approved by'),
      10_000,
    );
    expect(blockText(update)).toContain(`<@${DEMO_APPROVER}>`);
    await stack.slackApi.waitFor(
      'chat.postMessage',
      (c) => c.args.channel === CONTRACTOR && blockText(c).includes('is approved'),
      10_000,
    );
    const grant = (await stack.running.core.access.listForUser(CONTRACTOR)).active[0];
    expect(grant?.expiresAt.getTime()).toBe((grant?.startsAt.getTime() ?? 0) + 3600_000);
    grantId = grant?.id ?? '';
  });

  it('revoking a grant makes the proxy deny within 1 s', async () => {
    const { running } = stack;
    const grant = await running.core.access.getGrant(grantId);
    if (!grant) throw new Error('no grant');
    const token = await issueTokenForGrant(running.core.keys, grant, running.core.config.issuer);
    const call = () =>
      fetch(`${stack.proxyUrl}/billing-api/invoices/INV-42`, {
        headers: { authorization: `Bearer ${token}` },
      });
    expect((await call()).status).toBe(200);
    await page.goto(`${consoleUrl}/console/grants/${grantId}`);
    await page.screenshot({ path: `${SHOTS}/grant-detail.png`, fullPage: true });
    await page.getByLabel('Reason').first().fill('done with INV-42');
    await page.getByRole('button', { name: 'Revoke grant' }).click();
    const revokedAt = Date.now();
    let status = 200;
    let body = '';
    while (Date.now() - revokedAt < 2000) {
      const response = await call();
      status = response.status;
      body = await response.text();
      if (status === 403) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const elapsed = Date.now() - revokedAt;
    console.info(`console revoke → proxy 403 after ${elapsed} ms`);
    expect(status).toBe(403);
    expect(body).toContain('grant_revoked');
    expect(elapsed).toBeLessThan(1000);
    // The refused call after the revocation is in the grant's calls-over-time chart data
    // (audit rows land within the appender's flush interval, hence the short wait).
    const detail = await page.request.get(`${consoleUrl}/api/v1/grants/${grantId}`);
    const overTime = ((await detail.json()) as { calls: { overTime: { buckets: { denied: number }[] } } })
      .calls.overTime;
    const deadline = Date.now() + 3000;
    let denied = overTime.buckets.reduce((n, b) => n + b.denied, 0);
    while (denied === 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const again = await page.request.get(`${consoleUrl}/api/v1/grants/${grantId}`);
      denied = (
        (await again.json()) as { calls: { overTime: { buckets: { denied: number }[] } } }
      ).calls.overTime.buckets.reduce((n, b) => n + b.denied, 0);
    }
    expect(denied).toBe(1);
    expect(await page.getByRole('status').textContent()).toContain('Revoked');
  });

  it('an audit search shows its chart and rows', async () => {
    await page.goto(`${consoleUrl}/console/audit?user=${CONTRACTOR}`);
    const chart = page.locator('figure.chart svg.chart-svg');
    await chart.waitFor({ state: 'visible' });
    expect(await chart.locator('rect').count()).toBeGreaterThan(0);
    expect(await page.locator('table.audit tbody tr').first().textContent()).toContain(CONTRACTOR);
    await page.locator('figure.chart summary').click();
    await page.locator('figure.chart table').waitFor({ state: 'visible' });
    await page.screenshot({ path: `${SHOTS}/audit.png`, fullPage: true });
  });

  it('an auditor is offered no revoke and is refused one', async () => {
    await requestWriteAccess('Audit-refusal fixture');
    const context = await browser.newContext();
    const auditor = await signIn(context, DEMO_AUDITOR);
    const granted = await stack.running.core.access.createRequest({
      actor: slackUser(CONTRACTOR),
      resource: 'billing-api',
      scope: 'read',
      durationSeconds: 600,
      reason: 'auditor fixture',
    });
    const id = granted.ok ? granted.value.grant?.id : undefined;
    await auditor.goto(`${consoleUrl}/console/grants/${id}`);
    expect(await auditor.getByRole('button', { name: /Revoke/ }).count()).toBe(0);
    const session = (await (await auditor.request.get(`${consoleUrl}/api/v1/session`)).json()) as {
      csrfToken: string;
    };
    const refused = await auditor.request.post(`${consoleUrl}/api/v1/grants/${id}/revoke`, {
      headers: { 'x-csrf-token': session.csrfToken, origin: consoleUrl },
      data: { reason: 'not mine to revoke' },
    });
    expect(refused.status()).toBe(403);
    expect(((await refused.json()) as { error: string }).error).toBe('not_allowed_to_revoke');
    expect((await stack.running.core.access.getGrant(id ?? ''))?.status).toBe('active');
    await context.close();
  });

  it('a form post without its CSRF token is refused', async () => {
    const live = (await stack.running.core.access.listForUser(CONTRACTOR)).active[0];
    const response = await page.request.post(`${consoleUrl}/console/grants/${live?.id}/revoke`, {
      form: { reason: 'forged' },
    });
    expect(response.status()).toBe(403);
    expect((await stack.running.core.access.getGrant(live?.id ?? ''))?.status).toBe('active');
  });

  it('every page, for each role, has no serious or critical accessibility violation; screenshots are saved', async () => {
    const problems: string[] = [];
    // The approver sees the decision forms (a request is pending from the test above), the
    // contractor a requester's pages; the auditor's run is the one screenshotted.
    for (const person of [DEMO_APPROVER, CONTRACTOR, DEMO_AUDITOR]) {
      problems.push(...(await axeEveryPage(person, person === DEMO_AUDITOR)));
    }
    expect(problems).toEqual([]);
  }, 120_000);

  async function axeEveryPage(person: string, screenshots: boolean): Promise<string[]> {
    const context = await browser.newContext({ bypassCSP: true });
    const viewerPage = await signIn(context, person);
    const pages = [
      '',
      '/grants',
      `/grants/${grantId}`,
      '/requests',
      '/people',
      '/alerts',
      '/audit',
      '/chain',
      '/policy',
    ];
    const problems: string[] = [];
    for (const path of pages) {
      const response = await viewerPage.goto(`${consoleUrl}/console${path}`);
      // Pages a requester may not see answer 403/404 with a page of their own, checked too.
      expect(response?.status(), `${person} ${path}`).toBeLessThan(500);
      await viewerPage.addScriptTag({ path: axeSource });
      const violations = (await viewerPage.evaluate(async () => {
        const axe = (globalThis as unknown as { axe: { run(): Promise<{ violations: unknown[] }> } }).axe;
        return (await axe.run()).violations;
      })) as { id: string; impact: string; nodes: { target: string[] }[] }[];
      for (const v of violations) {
        if (v.impact === 'serious' || v.impact === 'critical') {
          problems.push(
            `${person} ${path || '/'}: ${v.id} (${v.impact}) at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`,
          );
        }
      }
      const name =
        path === ''
          ? 'overview'
          : path.replace(/^\//, '').replace(/\/.*/, (m) => (m.length > 1 ? '-detail' : ''));
      if (screenshots) await viewerPage.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
    }
    await context.close();
    return problems;
  }

  it('the page keyboard path starts with a skip link to the content', async () => {
    await page.goto(`${consoleUrl}/console`);
    await page.keyboard.press('Tab');
    expect(await page.locator(':focus').textContent()).toBe('Skip to content');
    await page.keyboard.press('Enter');
    expect(
      await page.evaluate(
        () =>
          (globalThis as unknown as { document: { activeElement: { id: string } | null } }).document
            .activeElement?.id,
      ),
    ).toBe('main');
  });
});
