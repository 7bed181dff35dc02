import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { pino } from 'pino';
import { type Running, startRoles } from '../composition/roles.ts';
import { loadConfig } from '../config.ts';
import { loadOpenIdProviderStandIn } from '../dev/load-openid-provider.ts';
import type { SlackOpenIdProvider } from '../dev/slack-stand-in/openid-provider.ts';
import {
  blockActionsBody,
  issueTriggerId,
  postSigned,
  slashCommandBody,
} from '../dev/slack-stand-in/signed-requests.ts';
import { type FakeSlackApi, type RecordedCall, startFakeSlackApi } from '../dev/slack-stand-in/web-api.ts';
import { type SampleUpstream, startSampleUpstream } from './sample-upstream.ts';

/**
 * All of jitgate (bot, proxy, worker) on loopback with a sample upstream and the local Slack
 * stand-in, driven the way Slack drives it: signed commands and clicks. The demo plays its
 * story on it; the end-to-end tests attack it.
 */

export const DEMO_SIGNING_SECRET = 'demo-signing-secret';
const DEMO_BOT_TOKEN = 'xoxb-demo';
export const DEMO_UPSTREAM_SECRET = 'upstream-secret-never-shown';
export const DEMO_APPROVER = 'UAPPROVER';
export const DEMO_AUDITOR = 'UAUDITOR';
const DEMO_TEAM = 'TDEMO';
/** The demo's people as Slack (users.info) and Sign in with Slack (the ID token) name them. */
const DEMO_NAMES = {
  [DEMO_APPROVER]: 'Ada Approver',
  [DEMO_AUDITOR]: 'Audrey Auditor',
  UCONTRACTOR: 'Cory Contractor',
};

const demoPolicyYaml = (upstream: string) => `
resources:
  billing-api:
    description: Invoices and customers (the demo's sample API)
    upstream: ${upstream}
    credential: { header: Authorization, value: "Bearer \${DEMO_BILLING_TOKEN}" }
    approvers: { users: [${DEMO_APPROVER}] }
    approval_channel: CAPPROVALS
    alert_channel: CALERTS
    min_duration: 1s
    max_duration: 8h
    remind_before: 1s
    scopes:
      read:
        allow: ["GET /invoices/**", "GET /customers/*"]
        auto_approve: { max_duration: 1h }
      write:
        allow: ["GET /**", "POST /invoices", "PATCH /invoices/*"]
    rate_limit: { requests: 100, per: 1m }
    anomalies: { denied_burst: 3/1m }
console:
  auditors: { users: [${DEMO_AUDITOR}] }
`;

export interface StackOptions {
  /** Real PostgreSQL instead of the embedded database. */
  databaseUrl?: string;
  schemaName?: string;
  logger?: Logger;
  /**
   * Serve the web console, signing people in through a local OpenID provider that answers
   * as Sign in with Slack; `autoSignIn` names who is signed in without a form (the demo).
   */
  console?: { autoSignIn?: string };
}

export interface Stack {
  running: Running;
  slackApi: FakeSlackApi;
  upstream: SampleUpstream;
  /** The console's address, when `console` was asked for. */
  consoleUrl: string | undefined;
  dataDir: string;
  slackUrl: string;
  proxyUrl: string;
  /** Posts a signed `/access <text>`; returns Bolt's HTTP answer. */
  command(userId: string, text: string): Promise<Response>;
  /** Clicks a button on a recorded message, signed like Slack. */
  click(userId: string, actionId: string, value: string, on: RecordedCall): Promise<Response>;
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no free port');
  return address.port;
}

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const dataDir = await mkdtemp(join(tmpdir(), 'jitgate-demo-'));
  const slackApi = await startFakeSlackApi({ realNames: DEMO_NAMES });
  const upstream = await startSampleUpstream();
  let provider: SlackOpenIdProvider | undefined;
  const closeAll = async (running?: Running) => {
    await running?.stop();
    await provider?.close();
    await slackApi.close();
    await upstream.close();
    await rm(dataDir, { recursive: true, force: true });
  };
  try {
    const policyFile = join(dataDir, 'policy.yml');
    await writeFile(policyFile, demoPolicyYaml(upstream.url));
    // Chosen before start, so DMs can name the proxy's real address.
    const proxyPort = await freePort();
    // The console's redirect URI names the admin port, so it is chosen before start too.
    const adminPort = options.console ? await freePort() : 0;
    const consoleUrl = options.console ? `http://127.0.0.1:${adminPort}` : undefined;
    if (options.console && consoleUrl) {
      const { startSlackOpenIdProvider } = await loadOpenIdProviderStandIn();
      provider = await startSlackOpenIdProvider({
        redirectUri: `${consoleUrl}/console/auth/callback`,
        teamId: DEMO_TEAM,
        names: DEMO_NAMES,
        ...(options.console.autoSignIn ? { defaultUser: options.console.autoSignIn, autoSignIn: true } : {}),
      });
    }
    const config = loadConfig({
      JITGATE_DATA_DIR: dataDir,
      JITGATE_POLICY: policyFile,
      DEMO_BILLING_TOKEN: DEMO_UPSTREAM_SECRET,
      SLACK_BOT_TOKEN: DEMO_BOT_TOKEN,
      SLACK_SIGNING_SECRET: DEMO_SIGNING_SECRET,
      SLACK_API_URL: slackApi.url,
      PORT: String(adminPort),
      ADMIN_PORT: '0',
      ...(provider && consoleUrl
        ? {
            SLACK_CLIENT_ID: provider.clientId,
            SLACK_CLIENT_SECRET: provider.clientSecret,
            SLACK_TEAM_ID: DEMO_TEAM,
            JITGATE_CONSOLE_URL: consoleUrl,
            JITGATE_OIDC_ISSUER: provider.issuer,
            JITGATE_SESSION_SECRET: 'demo-session-secret-not-for-production-0123',
          }
        : {}),
      PROXY_PORT: String(proxyPort),
      HOST: '127.0.0.1',
      JITGATE_PUBLIC_URL: `http://127.0.0.1:${proxyPort}`,
      LOG_LEVEL: 'silent',
      ...(options.databaseUrl ? { DATABASE_URL: options.databaseUrl } : {}),
    });
    const running = await startRoles(config, {
      roles: new Set(['bot', 'proxy', 'worker']),
      overrides: {
        logger: options.logger ?? pino({ level: 'silent' }),
        ...(options.schemaName ? { schemaName: options.schemaName } : {}),
      },
    });
    const slackUrl = `http://127.0.0.1:${running.port}`;
    let answers = 0;
    return {
      running,
      slackApi,
      upstream,
      consoleUrl,
      dataDir,
      slackUrl,
      proxyUrl: `http://127.0.0.1:${proxyPort}`,
      command(userId, text) {
        const key = `answer-${++answers}`;
        const body = slashCommandBody({
          userId,
          text,
          responseUrl: slackApi.responseUrl(key),
          triggerId: issueTriggerId(),
        });
        return postSigned(slackUrl, '/slack/events', body, DEMO_SIGNING_SECRET);
      },
      click(userId, actionId, value, on) {
        const key = `answer-${++answers}`;
        const body = blockActionsBody({
          userId,
          actionId,
          value,
          channelId: String(on.args.channel),
          messageTs: typeof on.args.ts === 'string' ? on.args.ts : undefined,
          responseUrl: slackApi.responseUrl(key),
          triggerId: issueTriggerId(),
        });
        return postSigned(slackUrl, '/slack/events', body, DEMO_SIGNING_SECRET);
      },
      close: () => closeAll(running),
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}
