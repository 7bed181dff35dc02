import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_DATABASE_URL } from '../helpers/db.ts';
import { TEST_ENV } from '../helpers/policy.ts';
import { eventually } from '../helpers/proxy-fixtures.ts';
import { makeCertificate, servedFingerprint, tempDir } from '../helpers/tls.ts';

const databaseName = `jitgate_roles_${randomBytes(4).toString('hex')}`;
const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
let databaseUrl = '';

beforeAll(async () => {
  await admin.unsafe(`create database ${databaseName}`);
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${databaseName}`;
  databaseUrl = url.toString();
});

afterAll(async () => {
  await admin.unsafe(`drop database if exists ${databaseName} with (force)`);
  await admin.end({ timeout: 5 });
});

/** Starts `jitgate <role>` and resolves with its ports once it logs that it started. */
async function start(
  role: string,
  env: NodeJS.ProcessEnv,
): Promise<{ child: ChildProcess; port: number; log: () => string }> {
  const child = spawn(process.execPath, ['bin/jitgate.js', role], {
    env: {
      PATH: process.env.PATH,
      ...TEST_ENV,
      DATABASE_URL: databaseUrl,
      PORT: '0',
      PROXY_PORT: '0',
      HOST: '127.0.0.1',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk) => {
    output += String(chunk);
  });
  child.stderr?.on('data', (chunk) => {
    output += String(chunk);
  });
  const deadline = Date.now() + 30_000;
  while (!output.includes('jitgate started')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`did not start:\n${output}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const started = output.split('\n').find((line) => line.includes('jitgate started')) ?? '{}';
  return { child, port: (JSON.parse(started) as { port: number }).port, log: () => output };
}

describe('roles', () => {
  it('serve answers health and readiness, and shuts down cleanly on SIGTERM', async () => {
    const { child, port, log } = await start('serve', {});
    try {
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
      expect(await ready.json()).toMatchObject({
        status: 'ready',
        checks: { database: true, policy: true, grant_feed: true, audit: true },
      });
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(metrics).toContain('jitgate_active_grants');
      expect(metrics).toContain('jitgate_pending_requests');
      // A fresh database: nothing overdue, nothing undelivered.
      expect(metrics).toMatch(/^jitgate_scheduler_lag_seconds\{service="jitgate"\} 0$/m);
      expect(metrics).toMatch(/^jitgate_outbox_lag_seconds\{service="jitgate"\} 0$/m);
      expect(metrics).toContain('nodejs_eventloop_lag_seconds');
    } finally {
      child.kill('SIGTERM');
    }
    const [code] = await once(child, 'exit');
    expect(code, log()).toBe(0);
    expect(log()).toContain('shutting down');
  });

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

  it('serves both listeners over HTTPS and swaps their certificates on SIGHUP', async () => {
    const dir = tempDir();
    const a = makeCertificate(dir.path, 'a');
    const b = makeCertificate(dir.path, 'b');
    const certFile = join(dir.path, 'served.crt');
    const keyFile = join(dir.path, 'served.key');
    const install = (cert: typeof a) => {
      copyFileSync(cert.certFile, certFile);
      copyFileSync(cert.keyFile, keyFile);
    };
    install(a);
    const { child, port, log } = await start('serve', {
      PROXY_TLS_CERT: certFile,
      PROXY_TLS_KEY: keyFile,
      TLS_CERT: certFile,
      TLS_KEY: keyFile,
    });
    try {
      const listening = log()
        .split('\n')
        .find((line) => line.includes('proxy listening'));
      const proxyPort = (JSON.parse(listening ?? '{}') as { port: number }).port;
      const both = [a.cert, b.cert];
      expect(await servedFingerprint(port, both)).toBe(a.fingerprint);
      expect(await servedFingerprint(proxyPort, both)).toBe(a.fingerprint);
      // Plain HTTP to the admin port gets no answer: the TLS layer drops it.
      await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();

      install(b);
      child.kill('SIGHUP');
      await eventually(async () => (await servedFingerprint(port, both)) === b.fingerprint);
      await eventually(async () => (await servedFingerprint(proxyPort, both)) === b.fingerprint);
      expect(log()).toContain('TLS certificate reloaded');
    } finally {
      child.kill('SIGTERM');
    }
    const [code] = await once(child, 'exit');
    dir.remove();
    expect(code, log()).toBe(0);
  });
});
