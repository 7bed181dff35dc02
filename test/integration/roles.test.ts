import { spawn } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Database, openDatabase } from '../../src/db/client.ts';
import { type FakeSlackApi, startFakeSlackApi } from '../../src/dev/slack-stand-in/web-api.ts';
import { createScratchDatabase, type JitgateChild, startJitgate } from '../helpers/jitgate-process.ts';
import { TEST_ENV } from '../helpers/policy.ts';
import { eventually, insertGrant, rawRequest } from '../helpers/proxy-fixtures.ts';
import { makeCertificate, servedFingerprint, tempDir } from '../helpers/tls.ts';

let scratch: Awaited<ReturnType<typeof createScratchDatabase>>;
let databaseUrl = '';
/** The test's own connection to the children's database, for reading what they wrote. */
let sql: postgres.Sql;

beforeAll(async () => {
  scratch = await createScratchDatabase('jitgate_roles');
  databaseUrl = scratch.url;
  sql = postgres(databaseUrl, { max: 2, onnotice: () => {} });
});

afterAll(async () => {
  await sql?.end({ timeout: 5 });
  await scratch?.drop();
});

const start = (role: string, env: NodeJS.ProcessEnv = {}) =>
  startJitgate(role, { DATABASE_URL: databaseUrl, ...env });

/** The child stopped on SIGTERM the way an operator expects: exit 0, logged, every step done. */
async function expectCleanShutdown(child: JitgateChild): Promise<void> {
  const code = await child.stop('SIGTERM');
  expect(code, child.log()).toBe(0);
  expect(child.logLines('shutting down')).toEqual([expect.objectContaining({ signal: 'SIGTERM' })]);
  expect(child.log()).not.toContain('shutdown step failed');
}

/** One sample of a Prometheus text exposition: `name{labels} value`, labels in any order. */
function sample(metrics: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of metrics.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)\{(.*)\} (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = new Map([...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) return Number(match[3]);
  }
  return undefined;
}

describe('serve', () => {
  let serve: JitgateChild;

  beforeAll(async () => {
    serve = await start('serve');
  });

  afterAll(async () => {
    await serve?.stop('SIGKILL');
  });

  it('answers health and readiness; without REDIS_URL readiness does not ask Redis', async () => {
    const { adminPort } = serve;
    expect((await fetch(`http://127.0.0.1:${adminPort}/healthz`)).status).toBe(200);
    const ready = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
    expect(ready.status).toBe(200);
    const body = (await ready.json()) as { status: string; checks: Record<string, boolean> };
    expect(body).toMatchObject({
      status: 'ready',
      checks: { database: true, policy: true, grant_feed: true, audit: true },
    });
    expect(body.checks).not.toHaveProperty('redis');
    const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
    expect(metrics).toContain('jitgate_active_grants');
    expect(metrics).toContain('jitgate_pending_requests');
    // A fresh database: nothing overdue, nothing undelivered.
    expect(metrics).toMatch(/^jitgate_scheduler_lag_seconds\{service="jitgate"\} 0$/m);
    expect(metrics).toMatch(/^jitgate_outbox_lag_seconds\{service="jitgate"\} 0$/m);
    expect(metrics).toMatch(/^jitgate_outbox_dead_letters\{service="jitgate"\} 0$/m);
    expect(metrics).toContain('nodejs_eventloop_lag_seconds');
  });

  it('PORT, public for Slack in HTTP mode, answers probes with a status only and serves no metrics (issue 14)', async () => {
    const { port } = serve;
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready' });
    const metrics = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(metrics.status).toBe(404);
    expect(await metrics.text()).not.toContain('jitgate_');
    // And the admin listener is on loopback: the start line says where.
    expect(serve.logLines('jitgate started')).toEqual([
      expect.objectContaining({ adminHost: '127.0.0.1', adminToken: false }),
    ]);
  });

  it('/metrics counts real proxy traffic by resource and decision, with latency', async () => {
    const { adminPort: port, proxyPort } = serve;
    if (proxyPort === undefined) throw new Error('serve runs a proxy');
    const scrape = async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const calls = { resource: 'billing-api', decision: 'missing_token' };
    expect(sample(await scrape(), 'jitgate_proxy_calls_total', calls)).toBeUndefined();

    for (const n of [1, 2]) {
      const denied = await rawRequest(proxyPort, 'GET', `/billing-api/invoices/${n}`);
      expect(denied.status).toBe(401);
      expect(denied.json().error).toBe('missing_token');
    }
    // Counted in the proxy's onResponse hook, which may run just after the client has the answer.
    let metrics = '';
    await eventually(async () => {
      metrics = await scrape();
      return sample(metrics, 'jitgate_proxy_calls_total', calls) === 2;
    });
    const resource = { resource: 'billing-api' };
    expect(sample(metrics, 'jitgate_proxy_latency_seconds_count', resource)).toBe(2);
    expect(sample(metrics, 'jitgate_proxy_latency_seconds_bucket', { ...resource, le: '+Inf' })).toBe(2);
    expect(sample(metrics, 'jitgate_proxy_latency_seconds_sum', resource)).toBeGreaterThan(0);
    expect(metrics).toMatch(/^# TYPE jitgate_proxy_latency_seconds histogram$/m);
    expect(metrics).toMatch(/^jitgate_audit_backlog\{service="jitgate"\} \d+$/m);
    // No Slack here, so no failures to count: the counter is declared, without samples yet.
    expect(metrics).toMatch(/^# TYPE jitgate_slack_api_errors_total counter$/m);
  });

  it('shuts down cleanly on SIGTERM', async () => {
    await expectCleanShutdown(serve);
  });
});

describe('ADMIN_TOKEN (issue 14)', () => {
  it('when set, every admin request needs it as a bearer token; PORT still answers probes without it', async () => {
    const token = 'admin-token-for-the-roles-test';
    const proxy = await start('proxy', { ADMIN_TOKEN: token });
    try {
      const admin = (path: string, headers: Record<string, string> = {}) =>
        fetch(`http://127.0.0.1:${proxy.adminPort}${path}`, { headers });
      for (const path of ['/healthz', '/readyz', '/metrics']) {
        const refused = await admin(path);
        expect(refused.status, path).toBe(401);
        expect(refused.headers.get('www-authenticate')).toBe('Bearer');
        expect(await refused.json()).toEqual({ error: 'unauthorized', message: expect.any(String) });
        expect((await admin(path, { authorization: 'Bearer not-the-admin-token' })).status, path).toBe(401);
        expect((await admin(path, { authorization: `Bearer ${token}` })).status, path).toBe(200);
      }
      expect(await (await admin('/metrics', { authorization: `Bearer ${token}` })).text()).toContain(
        'jitgate_audit_backlog',
      );
      expect((await fetch(`http://127.0.0.1:${proxy.port}/readyz`)).status).toBe(200);
      expect(proxy.log()).not.toContain(token);
    } finally {
      await expectCleanShutdown(proxy);
    }
  });
});

describe('each role alone stops cleanly on SIGTERM', () => {
  let slackApi: FakeSlackApi;
  const slackEnv = () => ({
    SLACK_BOT_TOKEN: 'xoxb-roles-test',
    SLACK_SIGNING_SECRET: 'roles-test-secret',
    SLACK_API_URL: slackApi.url,
  });

  beforeAll(async () => {
    slackApi = await startFakeSlackApi();
  });

  afterAll(async () => {
    await slackApi?.close();
  });

  it('bot', async () => {
    const bot = await start('bot', slackEnv());
    try {
      expect(bot.proxyPort).toBeUndefined();
      expect((await fetch(`http://127.0.0.1:${bot.port}/readyz`)).status).toBe(200);
    } finally {
      await expectCleanShutdown(bot);
    }
  });

  it('worker', async () => {
    const worker = await start('worker');
    try {
      expect(worker.proxyPort).toBeUndefined();
      expect((await fetch(`http://127.0.0.1:${worker.port}/readyz`)).status).toBe(200);
    } finally {
      await expectCleanShutdown(worker);
    }
  });

  it('proxy: a call record still queued at SIGTERM is in audit_events after exit', async () => {
    const proxy = await start('proxy');
    const proxyPort = proxy.proxyPort;
    if (proxyPort === undefined) throw new Error('no proxy port');
    const tag = randomBytes(4).toString('hex');
    const first = `sigterm-first-${tag}`;
    const queued = `sigterm-queued-${tag}`;
    // Hold the audit chain's lock (the appender takes it in every batch's transaction), so the
    // first record's batch waits in the database and the second record waits in the queue.
    let release = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let locked = () => {};
    const lockTaken = new Promise<void>((resolve) => {
      locked = resolve;
    });
    const holder = sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(hashtext('jitgate_audit:' || current_schema()))`;
      locked();
      await released;
    });
    try {
      await lockTaken;
      const call = (requestId: string) =>
        rawRequest(proxyPort, 'GET', '/billing-api/invoices/9', { 'x-request-id': requestId });
      expect((await call(first)).status).toBe(401);
      // The first batch is blocked on the lock…
      await eventually(async () => {
        const [row] = await sql`
          select count(*)::int as waiting from pg_locks
          where locktype = 'advisory' and not granted
            and database = (select oid from pg_database where datname = current_database())`;
        return row?.waiting === 1;
      });
      // …so this record is queued behind it, not written, when the signal arrives.
      expect((await call(queued)).status).toBe(401);
      const exit = proxy.stop('SIGTERM');
      await proxy.waitForLog('shutting down');
      release();
      await holder;
      // Every shutdown step is bounded to 10 s; a hang past that is a failure, not a test time-out.
      const bound = new Promise<string>((resolve) =>
        setTimeout(() => resolve('still running'), 20_000).unref(),
      );
      expect(await Promise.race([exit, bound]), proxy.log()).toBe(0);
    } finally {
      release();
      await holder.catch(() => {});
      await proxy.stop('SIGKILL');
    }
    expect(proxy.log()).not.toContain('shutdown step failed');
    const rows = await sql<{ kind: string; requestId: string; decision: string }[]>`
      select kind, data->>'requestId' as "requestId", data->>'decision' as decision
      from audit_events where data->>'requestId' in (${first}, ${queued})
      order by seq`;
    expect(rows).toEqual([
      { kind: 'proxy.denied', requestId: first, decision: 'missing_token' },
      { kind: 'proxy.denied', requestId: queued, decision: 'missing_token' },
    ]);
  });
});

describe('the bot role', () => {
  it('the bot role refuses to start without Slack credentials', async () => {
    const child = spawn(process.execPath, ['bin/jitgate.js', 'bot'], {
      env: { PATH: process.env.PATH, ...TEST_ENV, DATABASE_URL: databaseUrl, PORT: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (chunk) => {
      stderr += String(chunk);
    });
    const [code] = await once(child, 'exit');
    expect(code).not.toBe(0);
    expect(stderr).toContain('SLACK_BOT_TOKEN');
  });
});

describe('the periodic offboarding re-check (JITGATE_OFFBOARDING_RECHECK)', () => {
  let slackApi: FakeSlackApi;
  let database: Database;

  beforeAll(async () => {
    slackApi = await startFakeSlackApi({ deactivated: ['UGONE'] });
    database = await openDatabase({ databaseUrl, dataDir: '.jitgate-test', maxConnections: 2 });
  });

  afterAll(async () => {
    await database?.close();
    await slackApi?.close();
  });

  it('runs in the worker role on its timer: a deactivated account loses its grant with nobody asking', async () => {
    const worker = await start('worker', {
      SLACK_BOT_TOKEN: 'xoxb-roles-test',
      SLACK_SIGNING_SECRET: 'roles-test-secret',
      SLACK_API_URL: slackApi.url,
      JITGATE_OFFBOARDING_RECHECK: '1s',
    });
    try {
      const now = Date.now();
      const window = { startsAt: new Date(now - 60_000), expiresAt: new Date(now + 3_600_000) };
      const gone = await insertGrant(database, {
        resource: 'billing-api',
        scope: 'read',
        userId: 'UGONE',
        ...window,
      });
      const kept = await insertGrant(database, {
        resource: 'billing-api',
        scope: 'read',
        userId: 'UHERE',
        ...window,
      });
      const status = async (id: string) =>
        (
          await sql<{ status: string; endReason: string | null; endedBy: string | null }[]>`
          select status, end_reason as "endReason", ended_by as "endedBy" from grants where id = ${id}`
        )[0];
      await eventually(async () => (await status(gone.id))?.status === 'revoked', 10_000);
      expect(await status(gone.id)).toEqual({
        status: 'revoked',
        endReason: 'offboarded: account deactivated',
        endedBy: 'offboarding',
      });
      // UHERE was asked about too (maybe on a later tick: the grants were made a moment apart).
      await slackApi.waitFor('users.info', (c) => c.args.user === 'UHERE', 10_000);
      expect((await status(kept.id))?.status).toBe('active');
      // And again on the next tick: a second deactivation is caught without a restart.
      slackApi.deactivated.add('UHERE');
      await eventually(async () => (await status(kept.id))?.status === 'revoked', 10_000);
    } finally {
      await expectCleanShutdown(worker);
    }
  });
});

describe('roles with TLS (issue 10, item 3)', () => {
  /** Runs `jitgate serve` expecting it to refuse; resolves with its exit code and stderr. */
  async function refusal(env: NodeJS.ProcessEnv): Promise<{ code: unknown; stderr: string }> {
    const child = spawn(process.execPath, ['bin/jitgate.js', 'serve'], {
      env: {
        PATH: process.env.PATH,
        ...TEST_ENV,
        DATABASE_URL: databaseUrl,
        PORT: '0',
        PROXY_PORT: '0',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (chunk) => {
      stderr += String(chunk);
    });
    const [code] = await once(child, 'exit');
    return { code, stderr };
  }

  it('refuses to start with TLS half-configured: exit 2 and one line naming the variable', async () => {
    const { code, stderr } = await refusal({ PROXY_TLS_CERT: '/tls/proxy.crt' });
    expect(code).toBe(2);
    expect(stderr).toBe(
      'jitgate: configuration is not valid:\n  PROXY_TLS_KEY: expects the private key file (PEM) for PROXY_TLS_CERT; set both or neither (TLS is half-configured)\n',
    );
  });

  it('refuses to start when a certificate file cannot be read: exit 2 naming the variable', async () => {
    const { code, stderr } = await refusal({
      TLS_CERT: '/nonexistent/admin.crt',
      TLS_KEY: '/nonexistent/admin.key',
    });
    expect(code).toBe(2);
    expect(stderr).toContain('  TLS_CERT: cannot read /nonexistent/admin.crt (ENOENT)\n');
  });

  it('serves both listeners over HTTPS, logs fingerprint and expiry, and swaps certificates on SIGHUP', async () => {
    const dir = tempDir();
    const a = makeCertificate(dir.path, 'a');
    const b = makeCertificate(dir.path, 'b');
    const certFile = join(dir.path, 'served.crt');
    const keyFile = join(dir.path, 'served.key');
    const install = (cert: typeof a) => {
      copyFileSync(cert.certFile, certFile);
      copyFileSync(cert.keyFile, keyFile);
    };
    const expiry = (cert: typeof a) => new Date(new X509Certificate(cert.cert).validTo).toISOString();
    install(a);
    const serve = await start('serve', {
      PROXY_TLS_CERT: certFile,
      PROXY_TLS_KEY: keyFile,
      TLS_CERT: certFile,
      TLS_KEY: keyFile,
    });
    try {
      const { port, proxyPort } = serve;
      if (proxyPort === undefined) throw new Error('no proxy port');
      // Each listener's start line says which certificate it serves and until when.
      const served = { fingerprint: a.fingerprint, validTo: expiry(a) };
      expect(serve.logLines('proxy listening')).toEqual([expect.objectContaining({ tls: served })]);
      expect(serve.logLines('jitgate started')).toEqual([expect.objectContaining({ tls: served })]);
      const both = [a.cert, b.cert];
      expect(await servedFingerprint(port, both)).toBe(a.fingerprint);
      expect(await servedFingerprint(proxyPort, both)).toBe(a.fingerprint);
      // Plain HTTP to the admin port gets no answer: the TLS layer drops it.
      await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();

      install(b);
      serve.child.kill('SIGHUP');
      await eventually(async () => (await servedFingerprint(port, both)) === b.fingerprint);
      await eventually(async () => (await servedFingerprint(proxyPort, both)) === b.fingerprint);
      // The log arrives through a pipe, possibly after the new certificate is already served.
      await eventually(() => serve.logLines('TLS certificate reloaded').length === 2);
      const reloaded = serve.logLines('TLS certificate reloaded');
      for (const line of reloaded) {
        expect(line).toMatchObject({ fingerprint: b.fingerprint, validTo: expiry(b) });
      }
    } finally {
      await expectCleanShutdown(serve);
      dir.remove();
    }
  });
});
