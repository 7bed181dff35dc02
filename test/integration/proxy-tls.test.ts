import { copyFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import type { AddressInfo, Server } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { TLSSocket, Server as TlsServer } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TlsFiles } from '../../src/config.ts';
import { reloadTlsListeners } from '../../src/ops/tls.ts';
import { filePolicyStore, type PolicyStore } from '../../src/policy/store.ts';
import { createActiveGrantView, type ManagedActiveGrantView } from '../../src/proxy/active-grants.ts';
import { createProxyServer } from '../../src/proxy/server.ts';
import { manualClock } from '../../src/shared/clock.ts';
import { createMemoryKeyStore, createVerifier, type KeyStore } from '../../src/tokens/index.ts';
import {
  arraySink,
  eventually,
  heldByViews,
  insertGrantWithToken,
  openTestDatabase,
  rawRequest,
} from '../helpers/proxy-fixtures.ts';
import { makeCertificate, servedFingerprint, type TestCertificate, tempDir } from '../helpers/tls.ts';

/**
 * Issue 10 items 3 and 4 over real sockets on 127.0.0.1: the proxy listening with HTTPS and its
 * certificate swapped while calls are in flight; HTTPS upstreams verified against a resource's
 * ca_file; an upstream credential read from a file and rotated by a policy reload.
 */

const ISSUER = 'https://jitgate.test';
const OLD_CREDENTIAL = 'credential-before-rotation';
const NEW_CREDENTIAL = 'credential-after-rotation';

const clock = manualClock(new Date('2026-01-05T10:00:00Z'));
const dir = tempDir();
let certA: TestCertificate;
let certB: TestCertificate;
let upstreamCert: TestCertificate;
let proxyFiles: TlsFiles;
let credentialFile: string;

let database: Awaited<ReturnType<typeof openTestDatabase>>;
let keyStore: KeyStore;
let view: ManagedActiveGrantView;
let policy: PolicyStore;
let proxy: FastifyInstance;
let proxyPort: number;
let httpUpstream: Server;
let httpsUpstream: Server;
/** Serves a certificate for billing.internal.test only, on 127.0.0.1. */
let namedUpstream: Server;
let namedCert: TestCertificate;
/** The SNI each TLS upstream connection arrived with (undefined: none sent). */
const serverNamesSeen: (string | undefined)[] = [];
const logLines: string[] = [];
const logger = pino(
  { level: 'info' },
  new Writable({
    write(chunk: Buffer, _enc, cb) {
      logLines.push(chunk.toString('utf8'));
      cb();
    },
  }),
);

/** What the upstreams saw, and the slow calls they are holding open. */
const seen: { url: string; credential: string | undefined }[] = [];
const held: (() => void)[] = [];

/**
 * Echoes the credential it received. `/slow…` sends its headers and a first chunk at once and
 * the rest only when the test releases it, so the call is mid-response across a reload.
 */
function upstreamHandler(req: IncomingMessage, res: ServerResponse): void {
  req.resume();
  req.on('end', () => {
    const credential = req.headers['x-api-key'] as string | undefined;
    seen.push({ url: req.url ?? '', credential });
    const body = JSON.stringify({ url: req.url, credential });
    if (!req.url?.startsWith('/slow')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(body);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('first part|');
    held.push(() => res.end(body));
  });
}

async function listenOn(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

async function tokenFor(resource: string): Promise<string> {
  const setup = { database, keys: keyStore, issuer: ISSUER, seen: heldByViews(view) };
  return (await insertGrantWithToken(setup, { resource, scope: 'read', now: clock.now() })).token;
}

interface HttpsResult {
  status: number;
  body: string;
}

/** One call on a fresh connection (no keep-alive), trusting `ca` (or Node's public roots if unset). */
function callProxy(path: string, token: string, ca: string | string[] | undefined): Promise<HttpsResult> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port: proxyPort,
        path,
        headers: { authorization: `Bearer ${token}` },
        agent: false,
        ...(ca ? { ca } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function installProxyCertificate(cert: TestCertificate): void {
  copyFileSync(cert.certFile, proxyFiles.certFile);
  copyFileSync(cert.keyFile, proxyFiles.keyFile);
}

beforeAll(async () => {
  certA = makeCertificate(dir.path, 'a');
  certB = makeCertificate(dir.path, 'b');
  upstreamCert = makeCertificate(dir.path, 'upstream');
  namedCert = makeCertificate(dir.path, 'named', ['billing.internal.test']);
  proxyFiles = {
    certFile: join(dir.path, 'proxy.crt'),
    keyFile: join(dir.path, 'proxy.key'),
    certVariable: 'PROXY_TLS_CERT',
    keyVariable: 'PROXY_TLS_KEY',
  };
  installProxyCertificate(certA);
  credentialFile = join(dir.path, 'credential.txt');
  writeFileSync(credentialFile, `${OLD_CREDENTIAL}\n`);

  httpUpstream = createHttpServer(upstreamHandler);
  httpsUpstream = createHttpsServer({ key: upstreamCert.key, cert: upstreamCert.cert }, upstreamHandler);
  const httpPort = await listenOn(httpUpstream);
  const httpsPort = await listenOn(httpsUpstream);
  namedUpstream = createHttpsServer({ key: namedCert.key, cert: namedCert.cert }, upstreamHandler);
  namedUpstream.on('secureConnection', (socket: TLSSocket) => {
    serverNamesSeen.push(socket.servername || undefined);
  });
  const namedPort = await listenOn(namedUpstream);

  const resource = (upstream: string, extra: string) => `
    upstream: ${upstream}
${extra}
    approvers: { users: [U0APPROVER] }
    approval_channel: C0APPROVAL
    scopes:
      read: { allow: ["GET /**"] }`;
  const policyFile = join(dir.path, 'policy.yml');
  writeFileSync(
    policyFile,
    `resources:
  echo-api:${resource(`http://127.0.0.1:${httpPort}`, '    credential: { header: X-Api-Key, file: credential.txt }')}
  private-api:${resource(`https://127.0.0.1:${httpsPort}`, '    ca_file: upstream.crt')}
  untrusted-api:${resource(`https://localhost:${httpsPort}`, '')}
  named-api:${resource(`https://127.0.0.1:${namedPort}`, '    ca_file: named.crt\n    tls_server_name: billing.internal.test')}
  misnamed-api:${resource(`https://localhost:${namedPort}`, '    ca_file: named.crt')}
`,
  );
  policy = filePolicyStore(policyFile, {});

  database = await openTestDatabase();
  keyStore = createMemoryKeyStore({ clock });
  await keyStore.load();
  view = createActiveGrantView({ database, logger: pino({ level: 'silent' }) });
  await view.start();
  proxy = createProxyServer({
    policy,
    grants: view,
    verifier: createVerifier(keyStore, { issuer: ISSUER, clock }),
    keyStore,
    clock,
    sink: arraySink(),
    logger,
    tls: { key: certA.key, cert: certA.cert },
  });
  await proxy.listen({ port: 0, host: '127.0.0.1' });
  proxyPort = (proxy.server.address() as AddressInfo).port;
});

afterAll(async () => {
  for (const release of held.splice(0)) release();
  await proxy?.close();
  await view?.close();
  for (const server of [httpUpstream, httpsUpstream, namedUpstream]) {
    if (!server) continue;
    const closing = new Promise<void>((resolve) => server.close(() => resolve()));
    (server as Server & { closeAllConnections?(): void }).closeAllConnections?.();
    await closing;
  }
  await database?.drop();
  dir.remove();
});

describe('proxy listener over TLS', () => {
  it('completes a handshake with a client that trusts the certificate and forwards the call', async () => {
    expect(await servedFingerprint(proxyPort, certA.cert)).toBe(certA.fingerprint);
    const token = await tokenFor('echo-api');
    const res = await callProxy('/echo-api/things/1', token, certA.cert);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ url: '/things/1', credential: OLD_CREDENTIAL });
  });

  it('refuses a client that does not trust the certificate, and plain HTTP on the TLS port', async () => {
    const token = await tokenFor('echo-api');
    const before = seen.length;
    await expect(callProxy('/echo-api/things/1', token, undefined)).rejects.toMatchObject({
      code: 'DEPTH_ZERO_SELF_SIGNED_CERT',
    });
    // The TLS layer cannot parse an HTTP request line as a ClientHello and drops the connection.
    await expect(
      rawRequest(proxyPort, 'GET', '/echo-api/things/1', { authorization: `Bearer ${token}` }),
    ).rejects.toThrow();
    expect(seen.length).toBe(before);
  });

  it('swaps the certificate on reload: new connections get B, a call in flight on A completes', async () => {
    const token = await tokenFor('echo-api');
    const slow = callProxy('/echo-api/slow/tls', token, certA.cert);
    await eventually(() => held.length === 1);

    installProxyCertificate(certB);
    const results = reloadTlsListeners(
      [{ name: 'proxy', server: proxy.server as unknown as TlsServer, files: proxyFiles }],
      logger,
    );
    expect(results).toEqual([{ listener: 'proxy', ok: true, fingerprint: certB.fingerprint }]);
    expect(await servedFingerprint(proxyPort, [certA.cert, certB.cert])).toBe(certB.fingerprint);
    const fresh = await callProxy('/echo-api/things/2', token, certB.cert);
    expect(fresh.status).toBe(200);

    held.shift()!();
    const finished = await slow;
    expect(finished.status).toBe(200);
    expect(finished.body).toBe(
      `first part|${JSON.stringify({ url: '/slow/tls', credential: OLD_CREDENTIAL })}`,
    );
  });

  it('keeps serving the previous certificate when the new files are bad, and says why', async () => {
    // B's certificate with A's key: both files read, but they do not belong together.
    copyFileSync(certA.keyFile, proxyFiles.keyFile);
    const results = reloadTlsListeners(
      [{ name: 'proxy', server: proxy.server as unknown as TlsServer, files: proxyFiles }],
      logger,
    );
    expect(results).toEqual([
      {
        listener: 'proxy',
        ok: false,
        error: expect.stringMatching(/^PROXY_TLS_KEY: the key in .* does not belong/),
      },
    ]);
    expect(logLines.join('')).toContain('TLS certificate reload failed; keeping the previous certificate');
    expect(await servedFingerprint(proxyPort, [certA.cert, certB.cert])).toBe(certB.fingerprint);

    rmSync(proxyFiles.certFile);
    const missing = reloadTlsListeners(
      [{ name: 'proxy', server: proxy.server as unknown as TlsServer, files: proxyFiles }],
      logger,
    );
    expect(missing[0]).toMatchObject({
      ok: false,
      error: expect.stringMatching(/^PROXY_TLS_CERT: cannot read .*ENOENT/),
    });
    expect(await servedFingerprint(proxyPort, [certA.cert, certB.cert])).toBe(certB.fingerprint);
    // No key material in what was logged.
    expect(logLines.join('')).not.toContain('PRIVATE KEY');
    installProxyCertificate(certB);
  });
});

describe('HTTPS upstreams', () => {
  it('verifies an upstream against the resource ca_file (a private CA)', async () => {
    const token = await tokenFor('private-api');
    const res = await callProxy('/private-api/reports/1', token, [certA.cert, certB.cert]);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ url: '/reports/1' });
  });

  it('refuses the same upstream without a ca_file: 502 upstream_unreachable, nothing reaches it', async () => {
    const token = await tokenFor('untrusted-api');
    const before = seen.length;
    const res = await callProxy('/untrusted-api/reports/1', token, [certA.cert, certB.cert]);
    expect(res.status).toBe(502);
    expect(JSON.parse(res.body)).toMatchObject({ error: 'upstream_unreachable' });
    expect(seen.length).toBe(before);
  });

  it('checks the certificate against tls_server_name, and sends it as SNI, for an upstream reached by IP', async () => {
    const token = await tokenFor('named-api');
    const res = await callProxy('/named-api/reports/2', token, [certA.cert, certB.cert]);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ url: '/reports/2' });
    expect(serverNamesSeen).toContain('billing.internal.test');
  });

  it('refuses a trusted certificate that does not name the host called: 502, nothing reaches it', async () => {
    // Same CA, same server, but called as localhost with no tls_server_name: the name is wrong.
    const token = await tokenFor('misnamed-api');
    const before = seen.length;
    const res = await callProxy('/misnamed-api/reports/3', token, [certA.cert, certB.cert]);
    expect(res.status).toBe(502);
    expect(JSON.parse(res.body)).toMatchObject({ error: 'upstream_unreachable' });
    expect(seen.length).toBe(before);
  });
});

describe('credential file rotation', () => {
  it('a reload picks up the new credential without dropping the call in flight', async () => {
    const token = await tokenFor('echo-api');
    const ca = [certA.cert, certB.cert];
    const slow = callProxy('/echo-api/slow/credential', token, ca);
    await eventually(() => held.length === 1);

    writeFileSync(credentialFile, `${NEW_CREDENTIAL}\n`);
    expect(policy.reload()).toEqual({ ok: true });

    const next = await callProxy('/echo-api/after', token, ca);
    expect(JSON.parse(next.body)).toEqual({ url: '/after', credential: NEW_CREDENTIAL });

    held.shift()!();
    const finished = await slow;
    expect(finished.status).toBe(200);
    expect(finished.body).toBe(
      `first part|${JSON.stringify({ url: '/slow/credential', credential: OLD_CREDENTIAL })}`,
    );
  });

  it('a reload with an unreadable credential file keeps the previous policy and credential', async () => {
    const token = await tokenFor('echo-api');
    rmSync(credentialFile);
    const result = policy.reload();
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.error.message).toMatch(/resources\.echo-api\.credential\.file: cannot read .*ENOENT/);
      expect(result.error.message).not.toContain(NEW_CREDENTIAL);
    }
    const res = await callProxy('/echo-api/still', token, [certA.cert, certB.cert]);
    expect(JSON.parse(res.body)).toEqual({ url: '/still', credential: NEW_CREDENTIAL });
  });
});
