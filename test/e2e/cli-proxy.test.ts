import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { and, eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDeviceKey, importDeviceKey, makeProof } from '../../src/cli/contractor/device-key.ts';
import { accessRequests, auditEvents, devices } from '../../src/db/schema/index.ts';
import { type CliRun, freePort, runCli } from '../helpers/cli-process.ts';
import type { JitgateChild } from '../helpers/jitgate-process.ts';
import { openProcessWorld, type ProcessWorld } from '../helpers/process-world.ts';
import { waitFor } from '../helpers/redis-fixtures.ts';

/**
 * Issue 17 end to end, every part real: `jitgate serve` (bot, device API, proxy, worker) as a
 * child on PostgreSQL and Redis, Slack's requests signed as Slack signs them, and the contractor
 * CLI as a person runs it (`bin/jitgate.js`, none of the server's environment): login pairing
 * confirmed with `/access link` and the Link button, a request approved in Slack, `jitgate
 * connect` and calls through its local port, a stolen token refused from another process, and
 * the device revoked in Slack → its calls refused within a second. Server nonces are on.
 */
const POLICY = (upstream: string) => `
resources:
  billing-api:
    upstream: ${upstream}
    approvers: { users: [UAPPROVER] }
    approval_channel: CAPPROVALS
    sender_constraint: dpop
    scopes:
      read: { allow: ["GET /invoices/**"] }
`;

let world: ProcessWorld;
let serve: JitgateChild;
let home: string;
let serverUrl: string;
let proxyUrl: string;

beforeAll(async () => {
  world = await openProcessWorld({ name: 'cli_proxy', policy: POLICY });
  const [port, proxyPort] = [await freePort(), await freePort()];
  serverUrl = `http://127.0.0.1:${port}`;
  proxyUrl = `http://127.0.0.1:${proxyPort}`;
  serve = await world.start('serve', {
    PORT: String(port),
    PROXY_PORT: String(proxyPort),
    JITGATE_PUBLIC_URL: proxyUrl,
    JITGATE_CONSOLE_URL: serverUrl,
    // Nonces on (RFC 9449 §8): every proof the CLI makes, to the device API and to the proxy,
    // must carry one the server issued, so the CLI's answers to the challenge run end to end.
    JITGATE_DPOP_NONCE_SECRET: 'cli-proxy-e2e-nonce-secret-of-32-chars-or-more',
  });
  home = await mkdtemp(join(tmpdir(), 'jitgate-cli-proxy-'));
}, 60_000);

afterAll(async () => {
  await world?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

const jitgate = (args: string[]): CliRun => runCli(home, args);

const responsesSaying = (text: string) =>
  world.slack.calls.filter((c) => c.method === 'response_url' && JSON.stringify(c.args).includes(text));

describe('jitgate CLI against jitgate serve', () => {
  let local: string;
  let connect: CliRun;

  it('login pairs through /access link and the Link button, signed as Slack signs them', async () => {
    const login = jitgate(['login', '--server', serverUrl, '--name', 'alice-laptop', '--json']);
    const pairing = await waitFor(() => login.lines().find((l) => l.event === 'pairing'), {
      what: 'the pairing code',
      timeoutMs: 20_000,
    });
    const code = String(pairing.code);
    expect(await world.slashCommand(serve, 'UALICE', `link ${code}`)).toBe(200);
    await waitFor(() => responsesSaying("Link this device 'alice-laptop'?")[0], { what: 'the Link prompt' });
    expect(await world.click(serve, 'UALICE', 'link_device', code)).toBe(200);
    expect(await login.exit).toBe(0);
    expect(login.lines().at(-1)).toMatchObject({ ok: true, status: 'linked', userId: 'UALICE', proxyUrl });
  }, 40_000);

  it('request waits for the approver, who approves in Slack', async () => {
    const ask = jitgate(['request', 'billing-api', 'read', '1h', 'checking', 'INV-42', '--json']);
    const pending = await waitFor(
      async () =>
        (
          await world.database.db
            .select()
            .from(accessRequests)
            .where(and(eq(accessRequests.requesterId, 'UALICE'), eq(accessRequests.status, 'pending')))
        )[0],
      { what: 'the pending request', timeoutMs: 20_000 },
    );
    expect(await world.click(serve, 'UAPPROVER', 'approve_request', pending.id)).toBe(200);
    expect(await ask.exit).toBe(0);
    expect(ask.lines().at(-1)).toMatchObject({ ok: true, status: 'approved', resource: 'billing-api' });
  }, 40_000);

  it('connect forwards calls through the real proxy with a fresh proof each', async () => {
    connect = jitgate(['connect', 'billing-api', '--port', '0', '--json']);
    const ready = await waitFor(() => connect.lines().find((l) => l.ok === true), {
      what: 'connect to listen',
      timeoutMs: 20_000,
    });
    local = String(ready.url);
    for (const path of ['/invoices/1', '/invoices/2', '/invoices/1']) {
      const response = await fetch(`${local}${path}`);
      expect(response.status).toBe(200);
      await response.arrayBuffer();
    }
    const outOfScope = await fetch(`${local}/customers/1`);
    expect(outOfScope.status).toBe(403);
    expect(((await outOfScope.json()) as { error: string }).error).toBe('out_of_scope');
    // The proxy asked for a nonce (JITGATE_DPOP_NONCE_SECRET) and the CLI answered it unseen: the
    // challenge is in the audit, and every call above still went through.
    await waitFor(
      async () =>
        (
          await world.database.db
            .select({ id: auditEvents.seq })
            .from(auditEvents)
            .where(
              and(
                eq(auditEvents.kind, 'proxy.denied'),
                sql`${auditEvents.data}->>'decision' = 'dpop_nonce_required'`,
              ),
            )
        ).length > 0,
      { what: 'the nonce challenge in the audit' },
    );
  }, 40_000);

  it('a stolen token is refused from another process: as Bearer, or with a proof by another key', async () => {
    const printed = jitgate(['token', 'billing-api', '--json']);
    expect(await printed.exit).toBe(0);
    const token = String(printed.lines()[0]!.token);
    const url = `${proxyUrl}/billing-api/invoices/1`;
    const asBearer = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
    expect(asBearer.status).toBe(401);
    expect(((await asBearer.json()) as { error: string }).error).toBe('dpop_required');
    const thief = await importDeviceKey(await generateDeviceKey('ES256'));
    const withThiefKey = await fetch(url, {
      headers: {
        authorization: `DPoP ${token}`,
        dpop: await makeProof(thief, { method: 'GET', url, accessToken: token }),
      },
    });
    expect(withThiefKey.status).toBe(401);
    expect(((await withThiefKey.json()) as { error: string }).error).toBe('dpop_wrong_key');
  }, 30_000);

  it('/access devices lists the device; Revoke there refuses its calls at the proxy within a second', async () => {
    expect(await world.slashCommand(serve, 'UALICE', 'devices')).toBe(200);
    await waitFor(() => responsesSaying('alice-laptop')[1], { what: 'the device list' });
    const file = JSON.parse(await readFile(join(home, 'config', 'jitgate', 'device.json'), 'utf8'));
    const [row] = await world.database.db.select().from(devices).where(eq(devices.id, file.deviceId));
    expect(row).toMatchObject({ status: 'linked', userId: 'UALICE' });
    const clicked = performance.now();
    expect(await world.click(serve, 'UALICE', 'revoke_device', file.deviceId)).toBe(200);
    let refusedAfterMs = Number.POSITIVE_INFINITY;
    for (;;) {
      const response = await fetch(`${local}/invoices/1`);
      // Until the revocation lands the upstream answers, in its own words (not JSON).
      const text = await response.text();
      const body = response.status === 200 ? {} : (JSON.parse(text) as { error?: string });
      if (response.status === 403 && body.error === 'device_revoked') {
        refusedAfterMs = performance.now() - clicked;
        break;
      }
      if (performance.now() - clicked > 5_000) break;
    }
    expect(refusedAfterMs).toBeLessThan(1_000);
    connect.child.kill('SIGTERM');
    expect(await connect.exit).toBe(0);
  }, 30_000);
});
