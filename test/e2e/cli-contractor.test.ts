import { createPublicKey, verify } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AccessService, createAccessService, staticDirectory } from '../../src/access/index.ts';
import { generateDeviceKey, importDeviceKey, makeProof } from '../../src/cli/contractor/device-key.ts';
import { devices } from '../../src/db/schema/index.ts';
import { type DeviceDeps, linkDeviceByCode, rejectPairing } from '../../src/devices/index.ts';
import { staticPolicyStore } from '../../src/policy/index.ts';
import { systemClock } from '../../src/shared/clock.ts';
import { accessTokenHash } from '../../src/tokens/dpop.ts';
import { verifyGrantToken } from '../../src/tokens/index.ts';
import { slackUser } from '../helpers/actors.ts';
import { type CliRun, freePort, runCli } from '../helpers/cli-process.ts';
import { TEST_POLICY_YAML, testPolicy } from '../helpers/policy.ts';
import { openProcessWorld, type ProcessWorld } from '../helpers/process-world.ts';
import { type SeenRequest, startEchoUpstream, startRecordingRelay } from '../helpers/proxy-fixtures.ts';
import { waitFor } from '../helpers/redis-fixtures.ts';

/**
 * The contractor CLI as a person runs it: `bin/jitgate.js` as a child process, with none of the
 * server's environment, against `jitgate serve` (device API and the real proxy, on PostgreSQL
 * and Redis) as a child too. Approvals and pairings are decided here through the access service
 * and device actions on the same database, so each CLI answer can be driven exactly. The proxy
 * sits behind a plain recording relay (its public URL), so the tokens and proofs the CLI sent
 * can be read; the upstream echoes what reached it.
 */
const ISSUER = 'jitgate';
// billing-api on the echo upstream, bound tokens only, the person named to the upstream.
const POLICY = (upstream: string) =>
  TEST_POLICY_YAML.replace(
    'upstream: http://127.0.0.1:9000',
    `upstream: ${upstream}\n    sender_constraint: dpop\n    identity_assertion: true`,
  );

let world: ProcessWorld;
let upstream: Awaited<ReturnType<typeof startEchoUpstream>>;
let relay: Awaited<ReturnType<typeof startRecordingRelay>>;
let access: AccessService;
let deviceDeps: DeviceDeps;
let home: string;
let serverUrl: string;

beforeAll(async () => {
  upstream = await startEchoUpstream();
  relay = await startRecordingRelay();
  world = await openProcessWorld({ name: 'cli_contractor', policy: () => POLICY(upstream.url) });
  const port = await freePort();
  serverUrl = `http://127.0.0.1:${port}`;
  const serve = await world.start('serve', {
    PORT: String(port),
    JITGATE_PUBLIC_URL: relay.url,
    JITGATE_CONSOLE_URL: serverUrl,
  });
  relay.target = serve.proxyPort;
  access = createAccessService({
    db: world.database.db,
    policy: staticPolicyStore(testPolicy(POLICY(upstream.url))),
    clock: systemClock,
    directory: staticDirectory({}),
    grantChannel: world.database.channel('grants'),
  });
  deviceDeps = {
    db: world.database.db,
    clock: systemClock,
    grantFeedChannel: world.database.channel('grants'),
  };
  home = await mkdtemp(join(tmpdir(), 'jitgate-cli-'));
}, 60_000);
afterAll(async () => {
  await world?.close();
  await relay?.close();
  await upstream?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

const configDir = () => join(home, 'config', 'jitgate');

const jitgate = (args: string[], env?: Record<string, string>): CliRun => runCli(home, args, env);

/** The person the proxy named to the upstream: the `sub` of its identity assertion. */
function assertedUser(seen: SeenRequest): unknown {
  const assertion = String(seen.headers['x-jitgate-identity'] ?? '');
  return JSON.parse(Buffer.from(assertion.split('.')[1] ?? '', 'base64url').toString()).sub;
}

async function finished(args: string[], env?: Record<string, string>) {
  const run = jitgate(args, env);
  const code = await run.exit;
  return { code, stdout: run.stdout(), stderr: run.stderr(), lines: run.lines() };
}

let token: string;

describe('jitgate login', { timeout: 40_000 }, () => {
  it('makes a key in a 0700 dir and 0600 file, shows a code, and waits until the person links it', async () => {
    const run = jitgate(['login', '--server', serverUrl, '--name', 'alice-laptop', '--json']);
    const pairing = await waitFor(() => run.lines().find((l) => l.event === 'pairing'), { what: 'the code' });
    expect(pairing.code).toMatch(/^[0-9A-Z]{4}-[0-9A-Z]{4}$/);
    expect((await stat(configDir())).mode & 0o777).toBe(0o700);
    expect((await stat(join(configDir(), 'device.json'))).mode & 0o777).toBe(0o600);
    expect(
      await linkDeviceByCode(deviceDeps, { code: String(pairing.code), userId: 'UALICE' }),
    ).toMatchObject({ ok: true });
    expect(await run.exit).toBe(0);
    expect(run.lines().at(-1)).toMatchObject({
      ok: true,
      status: 'linked',
      userId: 'UALICE',
      proxyUrl: relay.url,
    });

    const file = JSON.parse(await readFile(join(configDir(), 'device.json'), 'utf8'));
    expect(file).toMatchObject({ status: 'linked', userId: 'UALICE', alg: 'ES256', server: serverUrl });
    expect(typeof file.privateJwk.d).toBe('string');
    const [row] = await world.database.db.select().from(devices).where(eq(devices.id, file.deviceId));
    const key = await importDeviceKey({ alg: file.alg, privateJwk: file.privateJwk });
    expect(row).toMatchObject({ status: 'linked', thumbprint: key.thumbprint, name: 'alice-laptop' });
    // Only the public key went to the server.
    expect(row!.publicJwk).not.toHaveProperty('d');
  });

  it('says plainly when the pairing is refused', async () => {
    const other = join(home, 'other');
    const run = jitgate(['login', '--server', serverUrl, '--name', 'bob'], { XDG_CONFIG_HOME: other });
    const shown = await waitFor(() => /\/access link ([0-9A-Z-]{9})/.exec(run.stdout()) ?? undefined, {
      what: 'the code',
    });
    expect(run.stderr()).toContain('Waiting for you to confirm in Slack…');
    expect(await rejectPairing(deviceDeps, { code: shown[1]!, userId: 'UBOB' })).toMatchObject({
      ok: true,
    });
    expect(await run.exit).toBe(1);
    expect(run.stderr()).toContain(
      'This device has been revoked; run `jitgate login` to pair it again. (device_revoked)',
    );
    const file = JSON.parse(await readFile(join(other, 'jitgate', 'device.json'), 'utf8'));
    expect(file.status).toBe('revoked');
  });
});

describe('jitgate request', { timeout: 40_000 }, () => {
  it('an auto-approved request returns at once', async () => {
    const run = await finished(['request', 'billing-api', 'read', '30m', 'checking', 'INV-42', '--json']);
    expect(run.code).toBe(0);
    expect(run.lines.at(-1)).toMatchObject({
      ok: true,
      status: 'approved',
      resource: 'billing-api',
      scope: 'read',
    });
  });

  it('waits (plain lines off a terminal) until an approver decides: approved → 0, denied → 3', async () => {
    const approved = jitgate(['request', 'billing-api', 'write', '1h', 'fix', 'INV-7']);
    const pendingOf = async () =>
      (await access.listForApprover()).pending.find((r) => r.requesterId === 'UALICE');
    const ask = await waitFor(pendingOf, { what: 'the pending request' });
    // The row is committed before the CLI has its answer: wait for what it says, then decide.
    await waitFor(() => approved.stderr().includes('Waiting for approval of billing-api (1h) in Slack'), {
      what: 'the CLI to say it waits',
    });
    await access.approve({ requestId: ask.id, actor: slackUser('UAPPROVER1') });
    expect(await approved.exit).toBe(0);
    expect(approved.stdout()).toContain('Approved: billing-api (write)');

    const denied = jitgate(['request', 'admin-api', '1h', 'look', 'around']);
    const second = await waitFor(pendingOf, { what: 'the second request' });
    await access.deny({ requestId: second.id, actor: slackUser('UAPPROVER1'), note: 'not today' });
    expect(await denied.exit).toBe(3);
    expect(denied.stdout()).toContain('Denied by UAPPROVER1: not today');
  });

  it('refusals and usage mistakes get sentences and their exit codes', async () => {
    expect(await finished(['request', 'billing-api', 'read', '30d', 'x'])).toMatchObject({
      code: 1,
      stderr: expect.stringContaining(
        'That duration is longer than the resource allows. (duration_too_long)',
      ),
    });
    expect(await finished(['request', 'billing-api'])).toMatchObject({ code: 2 });
    expect(await finished(['token', 'admin-api', '--json'])).toMatchObject({
      code: 1,
      lines: [{ ok: false, error: 'no_active_grant' }],
    });
  });
});

describe('jitgate token, curl and connect', () => {
  it('token prints a grant token bound to the device key', async () => {
    const run = await finished(['token', 'billing-api', '--json']);
    expect(run.code).toBe(0);
    token = String(run.lines[0]!.token);
    const file = JSON.parse(await readFile(join(configDir(), 'device.json'), 'utf8'));
    const key = await importDeviceKey({ alg: file.alg, privateJwk: file.privateJwk });
    expect(await verifyGrantToken(world.keys, token, { issuer: ISSUER, clock: systemClock })).toMatchObject({
      ok: true,
      claims: { userId: 'UALICE', resource: 'billing-api', boundKey: key.thumbprint },
    });
    expect(run.lines[0]).toMatchObject({ tokenType: 'DPoP', scope: 'write' });
  });

  it('curl goes through with a fresh proof per call, the method curl really uses, and no token in its arguments', async () => {
    const before = relay.calls.length;
    const get = await finished(['curl', 'billing-api', '/invoices/1?page=2', '-s']);
    expect(get.code).toBe(0);
    // What reached the upstream, echoed: the call as curl made it, for the person of the grant.
    const got = JSON.parse(get.stdout) as SeenRequest;
    expect(got).toMatchObject({ method: 'GET', url: '/invoices/1?page=2' });
    expect(assertedUser(got)).toBe('UALICE');
    const post = await finished([
      'curl',
      'billing-api',
      '/invoices',
      '-s',
      '-d',
      '{"amount":5}',
      '-H',
      'content-type: application/json',
    ]);
    const posted = JSON.parse(post.stdout) as SeenRequest;
    expect(posted).toMatchObject({ method: 'POST', url: '/invoices', body: '{"amount":5}' });
    // The proxy keeps the token and the proof to itself.
    for (const seen of [got, posted]) {
      expect(seen.headers).not.toHaveProperty('dpop');
      expect(String(seen.headers.authorization)).not.toContain('DPoP');
    }
    const sent = relay.calls.slice(before);
    expect(sent.map((c) => [c.method, c.status])).toEqual([
      ['GET', 200],
      ['POST', 200],
    ]);
    expect(new Set(sent.map((c) => c.proof)).size).toBe(2);
  });

  it("the CLI's proofs verify by a second route: node:crypto and the RFC's claim rules, no jose", async () => {
    const accepted = relay.calls.filter((c) => c.status === 200 && c.proof !== undefined);
    expect(accepted.length).toBeGreaterThanOrEqual(2);
    for (const call of accepted) {
      const [h, p, s] = call.proof!.split('.');
      const header = JSON.parse(Buffer.from(h!, 'base64url').toString());
      const claims = JSON.parse(Buffer.from(p!, 'base64url').toString());
      expect(header).toMatchObject({ typ: 'dpop+jwt', alg: 'ES256', jwk: { kty: 'EC', crv: 'P-256' } });
      const publicKey = createPublicKey({ key: header.jwk, format: 'jwk' });
      const signed = verify(
        'sha256',
        Buffer.from(`${h}.${p}`),
        { key: publicKey, dsaEncoding: 'ieee-p1363' },
        Buffer.from(s!, 'base64url'),
      );
      expect(signed).toBe(true);
      expect(claims.htm).toBe(call.method);
      expect(claims.htu).toBe(`${relay.url}${call.path.split('?')[0]}`);
      expect(claims.ath).toBe(accessTokenHash(call.authorization!.slice('DPoP '.length)));
      expect(Math.abs(claims.iat - Date.now() / 1000)).toBeLessThan(60);
    }
  });

  it('connect forwards every tool call with a fresh proof, and refuses what a browser or DNS rebinding sends', async () => {
    const run = jitgate(['connect', 'billing-api', '--port', '0', '--json']);
    const ready = await waitFor(() => run.lines().find((l) => l.ok === true), { what: 'connect to listen' });
    const local = String(ready.url);
    for (const path of ['/invoices/1', '/invoices/2', '/invoices/1']) {
      const response = await fetch(`${local}${path}`);
      expect(response.status).toBe(200);
      const seen = (await response.json()) as SeenRequest;
      expect(seen).toMatchObject({ method: 'GET', url: path });
      expect(assertedUser(seen)).toBe('UALICE');
    }
    const raw = (headers: Record<string, string>) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = httpRequest(`${local}/invoices/1`, { headers }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => {
            body += d.toString();
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        req.end();
      });
    expect(await raw({ host: 'attacker.example:80' })).toMatchObject({
      status: 403,
      body: expect.stringContaining('not_local'),
    });
    expect(await raw({ origin: 'https://attacker.example' })).toMatchObject({
      status: 403,
      body: expect.stringContaining('browser_refused'),
    });
    run.child.kill('SIGTERM');
    expect(await run.exit).toBe(0);
  });

  it('a stolen token is useless without the key: as Bearer, or with a proof by another key', async () => {
    const url = `${relay.url}/billing-api/invoices/1`;
    const asBearer = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
    expect(((await asBearer.json()) as { error: string }).error).toBe('dpop_required');
    const thief = await importDeviceKey(await generateDeviceKey('ES256'));
    const withThiefProof = await fetch(url, {
      headers: {
        authorization: `DPoP ${token}`,
        dpop: await makeProof(thief, { method: 'GET', url, accessToken: token }),
      },
    });
    expect(withThiefProof.status).toBe(401);
    expect(((await withThiefProof.json()) as { error: string }).error).toBe('dpop_wrong_key');
  });
});

describe('jitgate key file', () => {
  it('refuses a key file others can read, and says what to do without one', async () => {
    const file = join(configDir(), 'device.json');
    await chmod(file, 0o644);
    const loose = await finished(['token', 'billing-api']);
    expect(loose.code).toBe(1);
    expect(loose.stderr).toContain('can be read by other users (mode 644)');
    await chmod(file, 0o600);
    await writeFile(file.replace('device.json', 'device.json.bak'), await readFile(file));
    await writeFile(file, '{ half a file', { mode: 0o600 });
    expect(await finished(['token', 'billing-api'])).toMatchObject({
      code: 1,
      stderr: expect.stringContaining('is not a jitgate device file'),
    });
    const none = await finished(['token', 'billing-api'], { XDG_CONFIG_HOME: join(home, 'nobody') });
    expect(none).toMatchObject({
      code: 1,
      stderr: expect.stringContaining('run `jitgate login --server <url>` first'),
    });
  });
});
