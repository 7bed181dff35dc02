import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { exportJWK, generateKeyPair } from 'jose';
import { type Database, openDatabase } from '../../src/db/client.ts';
import {
  blockActionsBody,
  signSlackRequest,
  slashCommandBody,
} from '../../src/dev/slack-stand-in/signed-requests.ts';
import { type FakeSlackApi, startFakeSlackApi } from '../../src/dev/slack-stand-in/web-api.ts';
import { systemClock } from '../../src/shared/clock.ts';
import { createMemoryKeyStore, issueGrantToken, type KeyStore } from '../../src/tokens/index.ts';
import { createScratchDatabase, type JitgateChild, startJitgate } from './jitgate-process.ts';
import { eventually, rawRequest, startCountingUpstream, type TestGrant } from './proxy-fixtures.ts';
import { type OwnRedis, startOwnRedis } from './redis-server.ts';

/**
 * A deployment in miniature for multi-process tests: `bin/jitgate.js` children of any role on
 * a PostgreSQL database of their own and a private redis-server (so a test may flush, stop or
 * kill it), the Slack Web API fake every bot and worker talks to, an upstream that counts the
 * calls it gets per grant, and the signing key the children verify with (so the test issues
 * tokens itself). Children can be stopped (SIGTERM), killed (SIGKILL), frozen (SIGSTOP) and
 * thawed (SIGCONT) one by one.
 */

const ISSUER = 'jitgate';
const BOT_TOKEN = 'xoxb-process-world';
const SIGNING_SECRET = 'process-world-signing-secret';

type ProcessRole = 'proxy' | 'worker' | 'bot' | 'serve';

interface CountingUpstream {
  url: string;
  /** Calls seen per `X-Test-Grant` header (the test sets it to the grant id). */
  hits: Map<string, number>;
}

export interface ProcessWorld {
  databaseUrl: string;
  /** The test's own connection to the children's database (the default schema). */
  database: Database;
  redis: OwnRedis;
  slack: FakeSlackApi;
  upstream: CountingUpstream;
  /** Children started and not yet stopped, by role, in start order. */
  readonly running: Record<ProcessRole, JitgateChild[]>;
  /** Starts one child; Slack settings for bots and workers. `env` adds to the world's environment. */
  start(role: ProcessRole, env?: NodeJS.ProcessEnv): Promise<JitgateChild>;
  /** Starts several children of each role at once. */
  startAll(counts: Partial<Record<ProcessRole, number>>, env?: NodeJS.ProcessEnv): Promise<void>;
  /** SIGTERM (and waits for the exit code), SIGKILL, or SIGSTOP / SIGCONT (the child stays listed). */
  signal(child: JitgateChild, signal: 'SIGTERM' | 'SIGKILL' | 'SIGSTOP' | 'SIGCONT'): Promise<number | null>;
  /** The key the children verify grant tokens with (and sign them with, when they issue one). */
  keys: KeyStore;
  /** A grant token the children accept. */
  token(grant: Pick<TestGrant, 'id' | 'userId' | 'resource' | 'scope' | 'expiresAt'>): Promise<string>;
  /** Headers for a call with `grant`'s token, naming the grant to the counting upstream. */
  callHeaders(
    grant: Pick<TestGrant, 'id' | 'userId' | 'resource' | 'scope' | 'expiresAt'>,
  ): Promise<Record<string, string>>;
  /**
   * Waits until every running proxy has `grantId` in its live view, using a path outside every
   * scope (refused at the scope check, before the rate limit and quota, so nothing is spent).
   */
  grantSeenByProxies(resource: string, headers: Record<string, string>): Promise<void>;
  /** Waits until the shared limits' epoch in Redis is past its recovery window. */
  limitsReady(): Promise<void>;
  /** Posts a signed `/access` command to a bot's `/slack/events`; resolves with the HTTP status. */
  slashCommand(bot: JitgateChild, userId: string, text: string): Promise<number>;
  /** Posts a signed button click (`block_actions`) to a bot's `/slack/events`; resolves with the status. */
  click(bot: JitgateChild, userId: string, actionId: string, value: string): Promise<number>;
  /** Kills every child still running, then removes the database, Redis, the fake and the files. */
  close(): Promise<void>;
}

export interface ProcessWorldOptions {
  /** Names the scratch database (`<name>_<random>`). */
  name: string;
  /** The policy file's YAML, given the counting upstream's URL. */
  policy(upstreamUrl: string): string;
  /** Added to every child's environment. */
  env?: NodeJS.ProcessEnv;
}

export async function openProcessWorld(options: ProcessWorldOptions): Promise<ProcessWorld> {
  const scratch = await createScratchDatabase(options.name);
  const redis = await startOwnRedis();
  const slack = await startFakeSlackApi();
  const upstream = await startCountingUpstream();
  const dir = mkdtempSync(join(tmpdir(), 'jitgate-world-'));
  const policyFile = join(dir, 'policy.yml');
  writeFileSync(policyFile, options.policy(upstream.url));
  const pair = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
  const signingKey = JSON.stringify({
    ...(await exportJWK(pair.privateKey)),
    kid: randomBytes(6).toString('hex'),
  });
  const keys: KeyStore = createMemoryKeyStore({ clock: systemClock, configuredKey: signingKey });
  await keys.load();
  let database: Database | undefined;
  const running: Record<ProcessRole, JitgateChild[]> = { proxy: [], worker: [], bot: [], serve: [] };
  const baseEnv: NodeJS.ProcessEnv = {
    REDIS_URL: redis.url,
    JITGATE_POLICY: policyFile,
    JITGATE_SIGNING_KEY: signingKey,
    JITGATE_OFFBOARDING_RECHECK: 'off',
    ...options.env,
  };
  const slackEnv = {
    SLACK_BOT_TOKEN: BOT_TOKEN,
    SLACK_SIGNING_SECRET: SIGNING_SECRET,
    SLACK_API_URL: slack.url,
  };

  const world: ProcessWorld = {
    databaseUrl: scratch.url,
    get database(): Database {
      if (!database) throw new Error('no child has migrated the database yet');
      return database;
    },
    redis,
    slack,
    upstream,
    running,
    keys,
    async start(role, env = {}) {
      const child = await startJitgate(role, {
        ...baseEnv,
        ...(role === 'bot' || role === 'serve' ? slackEnv : {}),
        ...env,
        DATABASE_URL: scratch.url,
      });
      running[role].push(child);
      // The children migrate at start; the test's connection opens once the tables exist.
      database ??= await openDatabase({
        databaseUrl: scratch.url,
        dataDir: '.jitgate-test',
        maxConnections: 4,
      });
      return child;
    },
    async startAll(counts, env) {
      // One child first: it migrates under the advisory lock while the others would only wait.
      const roles = Object.entries(counts).flatMap(([role, n]) =>
        Array.from({ length: n ?? 0 }, () => role as ProcessRole),
      );
      const [first, ...rest] = roles;
      if (first) await world.start(first, env);
      await Promise.all(rest.map((role) => world.start(role, env)));
    },
    async signal(child, signal) {
      if (signal === 'SIGSTOP' || signal === 'SIGCONT') {
        child.child.kill(signal);
        return null;
      }
      for (const list of Object.values(running)) {
        const at = list.indexOf(child);
        if (at !== -1) list.splice(at, 1);
      }
      return child.stop(signal);
    },
    token: (grant) =>
      issueGrantToken(keys, {
        grantId: grant.id,
        userId: grant.userId,
        resource: grant.resource,
        scope: grant.scope,
        expiresAt: grant.expiresAt,
        issuer: ISSUER,
      }),
    async callHeaders(grant) {
      return { authorization: `Bearer ${await world.token(grant)}`, 'x-test-grant': grant.id };
    },
    async grantSeenByProxies(resource, headers) {
      for (const proxy of running.proxy) {
        await eventually(async () => {
          const res = await rawRequest(
            proxy.proxyPort!,
            'DELETE',
            `/${resource}/no-scope-allows-this`,
            headers,
          );
          return res.status === 403 && res.json().error === 'out_of_scope';
        }, 10_000);
      }
    },
    async limitsReady() {
      const client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
      try {
        await eventually(async () => {
          const epoch = await client.get('jitgate:limits:epoch');
          const [seconds, micros] = await client.time();
          const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
          return epoch !== null && Number(epoch.slice(epoch.indexOf(':') + 1)) <= now;
        }, 15_000);
      } finally {
        client.disconnect();
      }
    },
    async slashCommand(bot, userId, text) {
      const body = slashCommandBody({ text, userId, responseUrl: slack.responseUrl() });
      const response = await fetch(`http://127.0.0.1:${bot.port}/slack/events`, {
        method: 'POST',
        headers: { ...signSlackRequest(SIGNING_SECRET, body) },
        body,
      });
      await response.arrayBuffer();
      return response.status;
    },
    async click(bot, userId, actionId, value) {
      const body = blockActionsBody({ userId, actionId, value, responseUrl: slack.responseUrl() });
      const response = await fetch(`http://127.0.0.1:${bot.port}/slack/events`, {
        method: 'POST',
        headers: { ...signSlackRequest(SIGNING_SECRET, body) },
        body,
      });
      await response.arrayBuffer();
      return response.status;
    },
    async close() {
      const children = Object.values(running).flat();
      for (const list of Object.values(running)) list.splice(0);
      await Promise.all(children.map((child) => child.stop('SIGKILL')));
      await database?.close();
      await upstream.close();
      await slack.close();
      await redis.stop();
      await scratch.drop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return world;
}
