import { pino } from 'pino';
import { verifyAuditChain } from '../audit/verify.ts';
import { MissingDevDependency } from '../dev/load-openid-provider.ts';
import type { RecordedCall } from '../dev/slack-stand-in/web-api.ts';
import { createLogger } from '../shared/logger.ts';
import { findButton, renderBlocks } from './render.ts';
import { DEMO_APPROVER, DEMO_UPSTREAM_SECRET, type Stack, startStack } from './stack.ts';

/**
 * `npm run demo`: the whole story on embedded defaults, with the real code paths. Only
 * Slack's Web API is local — the same recording stand-in the tests use — and Slack's
 * inbound requests are signed exactly as Slack signs them, so Bolt verifies them for real.
 * Exits 0 only if every step behaved as expected.
 */

export interface DemoOptions {
  stdout: NodeJS.WritableStream;
  /** Run on real PostgreSQL instead of the embedded database (the end-to-end test does). */
  databaseUrl?: string;
  schemaName?: string;
  /** Lifetime of the second grant, which the demo watches expire. */
  shortGrantSeconds?: number;
  /**
   * Serve the web console too, signing the demo approver in through a local OpenID provider
   * (no Slack), and print its URL.
   */
  console?: boolean;
  /** After the story, keep everything running (the console stays usable) until this settles (Ctrl-C at a terminal). */
  keepOpen?: () => Promise<void>;
  /** Where jitgate's own logs go (default: nowhere); tests read them for leaked secrets. */
  log?: { destination: NodeJS.WritableStream; level: 'debug' | 'info' | 'trace' };
}

const CONTRACTOR = 'UCONTRACTOR';
const APPROVER = DEMO_APPROVER;

class StepFailed extends Error {}

function expectThat(condition: boolean, what: string): void {
  if (!condition) throw new StepFailed(what);
}

export async function runDemo(options: DemoOptions): Promise<number> {
  const out = (line = '') => options.stdout.write(`${line}\n`);
  let stack: Stack | undefined;
  let passed = 0;
  let failed = 0;
  let kept = false;

  const step = async (title: string, work: () => Promise<string[] | undefined>) => {
    out(`\n▶ ${title}`);
    try {
      const lines = (await work()) ?? [];
      for (const line of lines) out(`  ${line}`);
      out('  ✓ as expected');
      passed++;
    } catch (error) {
      failed++;
      out(`  ✗ ${error instanceof Error ? error.message : String(error)}`);
      throw error;
    }
  };

  try {
    stack = await startStack({
      ...(options.databaseUrl ? { databaseUrl: options.databaseUrl } : {}),
      ...(options.schemaName ? { schemaName: options.schemaName } : {}),
      ...(options.console ? { console: { autoSignIn: APPROVER } } : {}),
      logger: options.log
        ? createLogger(options.log.level, options.log.destination)
        : pino({ level: 'silent' }),
    });
    const { running, slackUrl, proxyUrl } = stack;
    const api = stack.slackApi;
    const sample = stack.upstream;
    out('jitgate demo — the whole story, locally. Slack is a local stand-in; everything else is real.');
    out(`  database: ${options.databaseUrl ? 'PostgreSQL' : `embedded (${stack.dataDir})`}`);
    out(`  Slack events: ${slackUrl}/slack/events   proxy: ${proxyUrl}   sample API: ${sample.url}`);
    if (stack.consoleUrl) {
      out(
        `  web console: ${stack.consoleUrl}/console  (signs you in as ${APPROVER}, the approver, through a local`,
      );
      out('               OpenID provider standing in for Sign in with Slack)');
    }
    const signed = stack;
    const command = async (userId: string, text: string) => {
      const response = await signed.command(userId, text);
      expectThat(response.status === 200, `Slack command answered HTTP ${response.status}`);
    };
    const click = async (userId: string, actionId: string, value: string, at: RecordedCall) => {
      const response = await signed.click(userId, actionId, value, at);
      expectThat(response.status === 200, `Slack action answered HTTP ${response.status}`);
    };
    const posted = (channel: string, contains: string) =>
      api.waitFor(
        'chat.postMessage',
        (c) => c.args.channel === channel && JSON.stringify(c.args).includes(contains),
        10_000,
      );
    const render = (call: RecordedCall, where: string) => [
      `${where}:`,
      ...renderBlocks(call.args.blocks).map((line) => `  │ ${line}`),
    ];
    const revealToken = async (grantDm: RecordedCall) => {
      const button = findButton(grantDm.args.blocks, 'show_token');
      expectThat(button !== undefined, 'the DM has a Show token button');
      const before = api.callsTo('views.open').length;
      await click(CONTRACTOR, 'show_token', button?.value ?? '', grantDm);
      const view = await api.waitFor('views.open', (_c) => api.callsTo('views.open').length > before, 10_000);
      const token = /eyJ[\w-]+\.[\w-]+\.[\w-]+/.exec(JSON.stringify(view.args.view))?.[0];
      expectThat(token !== undefined, 'the modal shows a token');
      return token ?? '';
    };
    const call = (method: string, path: string, token: string) =>
      fetch(`${proxyUrl}${path}`, { method, headers: { authorization: `Bearer ${token}` } });
    const pollStatus = async (
      method: string,
      path: string,
      token: string,
      status: number,
      timeoutMs: number,
    ) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const response = await call(method, path, token);
        const body = await response.text();
        if (response.status === status || Date.now() > deadline) return { status: response.status, body };
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };

    let approvalMessage: RecordedCall | undefined;
    await step('A contractor asks for write access in Slack', async () => {
      await command(CONTRACTOR, 'request billing-api write 2h Fix the totals of invoice INV-42');
      approvalMessage = await posted('CAPPROVALS', 'Approve');
      return [
        `@${CONTRACTOR}: /access request billing-api write 2h Fix the totals of invoice INV-42`,
        ...render(approvalMessage, '#approvals'),
      ];
    });

    let grantDm: RecordedCall | undefined;
    await step('An approver clicks Approve', async () => {
      const message = approvalMessage as RecordedCall;
      const approve = findButton(message.args.blocks, 'approve_request');
      expectThat(approve !== undefined, 'the approval message has an Approve button');
      await click(APPROVER, 'approve_request', approve?.value ?? '', message);
      const updated = await api.waitFor(
        'chat.update',
        (c) => JSON.stringify(c.args).includes('pproved'),
        10_000,
      );
      grantDm = await posted(CONTRACTOR, 'Show token');
      return [
        ...render(updated, '#approvals (updated in place)'),
        ...render(grantDm, `DM to @${CONTRACTOR}`),
      ];
    });

    let token = '';
    await step('The contractor opens the token (shown in a modal, never in message history)', async () => {
      token = await revealToken(grantDm as RecordedCall);
      const history = JSON.stringify(api.callsTo('chat.postMessage').concat(api.callsTo('chat.update')));
      expectThat(!history.includes(token), 'the token appears in no message');
      return [`token: ${token.slice(0, 24)}… (a JWT signed with Ed25519, jti = grant id)`];
    });

    await step('An allowed call goes through the proxy with the upstream credential injected', async () => {
      const response = await call('GET', '/billing-api/invoices/INV-42', token);
      const body = await response.text();
      expectThat(response.status === 200, `expected 200, got ${response.status} ${body}`);
      const seen = sample.received.at(-1);
      expectThat(
        seen?.headers.authorization === `Bearer ${DEMO_UPSTREAM_SECRET}`,
        'the upstream got its credential',
      );
      expectThat(!JSON.stringify(seen?.headers).includes(token), 'the upstream never sees the grant token');
      return [
        `GET /billing-api/invoices/INV-42 → ${response.status} ${body}`,
        'upstream saw: Authorization: Bearer <upstream credential>, no grant token',
      ];
    });

    await step('Calls outside the scope are denied, and the burst raises an alert', async () => {
      const lines: string[] = [];
      for (let i = 0; i < 3; i++) {
        const response = await call('DELETE', '/billing-api/invoices/INV-42', token);
        const body = await response.text();
        expectThat(
          response.status === 403 && body.includes('out_of_scope'),
          `expected 403 out_of_scope, got ${response.status} ${body}`,
        );
        lines.push(`DELETE /billing-api/invoices/INV-42 → ${response.status} ${body}`);
      }
      const alert = await posted('CALERTS', 'Revoke');
      return [...lines, ...render(alert, '#alerts')];
    });

    await step('The approver revokes from the alert; the proxy denies at once', async () => {
      const alert = await posted('CALERTS', 'Revoke');
      const revoke = findButton(alert.args.blocks, 'revoke_grant');
      expectThat(revoke !== undefined, 'the alert has a Revoke button');
      await click(APPROVER, 'revoke_grant', revoke?.value ?? '', alert);
      const denied = await pollStatus('GET', '/billing-api/invoices/INV-42', token, 403, 5000);
      expectThat(
        denied.status === 403 && denied.body.includes('grant_revoked'),
        `expected 403 grant_revoked, got ${denied.status} ${denied.body}`,
      );
      const dm = await posted(CONTRACTOR, 'revoked');
      return [
        `GET /billing-api/invoices/INV-42 → ${denied.status} ${denied.body}`,
        ...render(dm, `DM to @${CONTRACTOR}`),
      ];
    });

    const seconds = options.shortGrantSeconds ?? 3;
    await step(`A second, read-only grant is auto-approved and expires on time (${seconds}s)`, async () => {
      await command(CONTRACTOR, `request billing-api read ${seconds}s Check one invoice`);
      const dm = await posted(CONTRACTOR, 'read');
      const readToken = await revealToken(
        await api.waitFor(
          'chat.postMessage',
          (c) =>
            c.args.channel === CONTRACTOR && JSON.stringify(c.args).includes('Show token') && c !== grantDm,
          10_000,
        ),
      );
      const ok = await call('GET', '/billing-api/invoices/INV-43', readToken);
      expectThat(ok.status === 200, `expected 200 before expiry, got ${ok.status}`);
      const denied = await pollStatus(
        'GET',
        '/billing-api/invoices/INV-43',
        readToken,
        403,
        (seconds + 5) * 1000,
      );
      const deniedAt = Date.now();
      expectThat(
        denied.status === 403 && denied.body.includes('token_expired'),
        `expected 403 token_expired, got ${denied.status} ${denied.body}`,
      );
      const expired = await posted(CONTRACTOR, 'expired');
      return [
        ...render(dm, `DM to @${CONTRACTOR}`),
        `GET /billing-api/invoices/INV-43 → 200 while the grant lives`,
        `GET /billing-api/invoices/INV-43 → ${denied.status} ${denied.body} (after expiry)`,
        ...render(expired, `DM to @${CONTRACTOR} (${Date.now() - deniedAt} ms after the first denial)`),
      ];
    });

    await step('The audit log holds every step, and its hash chain verifies', async () => {
      const result = await verifyAuditChain(running.core.database.db);
      expectThat(result.ok, `audit chain broken: ${JSON.stringify(result)}`);
      return [`${result.rows} audit rows, chain intact`];
    });
  } catch (error) {
    if (!(error instanceof StepFailed) && failed === 0) {
      failed++;
      out(`\n✗ the demo could not run: ${describeFailure(error)}`);
    }
  } finally {
    kept = options.keepOpen !== undefined && stack?.consoleUrl !== undefined;
    if (options.keepOpen && stack?.consoleUrl) {
      out(`\n${failed === 0 ? '✓' : '✗'} ${passed} steps passed, ${failed} failed`);
      out(`\nThe console stays open at ${stack.consoleUrl}/console — press Ctrl-C to stop.`);
      await options.keepOpen();
    }
    await stack?.close();
  }
  if (!kept) {
    out(`\n${failed === 0 ? '✓' : '✗'} ${passed} steps passed, ${failed} failed`);
  }
  return failed === 0 ? 0 : 1;
}

/** A missing development package is the reader's to fix, so its sentence alone; anything else with its stack. */
function describeFailure(error: unknown): string {
  if (error instanceof MissingDevDependency) return error.message;
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}
