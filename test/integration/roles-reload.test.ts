import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Database, openDatabase } from '../../src/db/client.ts';
import { systemClock } from '../../src/shared/clock.ts';
import { createMemoryKeyStore, issueTokenForGrant, type KeyStore } from '../../src/tokens/index.ts';
import { createScratchDatabase, type JitgateChild, startJitgate } from '../helpers/jitgate-process.ts';
import {
  eventually,
  insertGrant,
  type RawResponse,
  rawRequest,
  startEchoUpstream,
} from '../helpers/proxy-fixtures.ts';
import { tempDir } from '../helpers/tls.ts';

/**
 * SIGHUP in a running `jitgate serve`: the policy file, and the credential files it names, are
 * read again; a bad new file leaves the running policy in force. The calls go through the real
 * proxy to a recording upstream, with tokens signed by the key the child was given.
 */

const OLD_CREDENTIAL = 'file-credential-old';
const NEW_CREDENTIAL = 'file-credential-new';

let scratch: Awaited<ReturnType<typeof createScratchDatabase>>;
let database: Database;
let upstream: Awaited<ReturnType<typeof startEchoUpstream>>;
let dir: ReturnType<typeof tempDir>;
let keys: KeyStore;
let signingKey = '';
let policyFile = '';
let credentialFile = '';

beforeAll(async () => {
  scratch = await createScratchDatabase('jitgate_reload');
  database = await openDatabase({ databaseUrl: scratch.url, dataDir: '.jitgate-test', maxConnections: 2 });
  upstream = await startEchoUpstream();
  dir = tempDir('jitgate-reload-');
  policyFile = join(dir.path, 'policy.yml');
  credentialFile = join(dir.path, 'echo.credential');
  // JITGATE_SIGNING_KEY for the child; the test signs grant tokens with the same key.
  signingKey = JSON.stringify(generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' }));
  keys = createMemoryKeyStore({ clock: systemClock, configuredKey: signingKey });
  await keys.load();
});

afterAll(async () => {
  await database?.close();
  await upstream?.close();
  await scratch?.drop();
  dir?.remove();
});

function resourceYaml(name: string): string {
  return `
  ${name}:
    upstream: ${upstream.url}
    credential: { header: X-Api-Key, file: ${credentialFile} }
    approvers: { users: [U0APPROVER] }
    approval_channel: C0APPROVAL
    scopes:
      read: { allow: ["GET /**"] }`;
}

const writePolicy = (...resources: string[]) =>
  writeFileSync(policyFile, `resources:${resources.map(resourceYaml).join('')}\n`);

let serve: JitgateChild;

beforeEach(async () => {
  writeFileSync(credentialFile, `${OLD_CREDENTIAL}\n`);
  writePolicy('echo-api');
  serve = await startJitgate('serve', {
    DATABASE_URL: scratch.url,
    JITGATE_POLICY: policyFile,
    JITGATE_SIGNING_KEY: signingKey,
  });
  return async () => {
    await serve.stop('SIGTERM');
  };
});

/** An active grant on `resource` and a token for it. */
async function grantToken(resource: string): Promise<string> {
  const now = Date.now();
  const grant = await insertGrant(database, {
    resource,
    scope: 'read',
    startsAt: new Date(now - 60_000),
    expiresAt: new Date(now + 3_600_000),
  });
  return issueTokenForGrant(keys, grant, 'jitgate');
}

function call(path: string, token: string) {
  const port = serve.proxyPort;
  if (port === undefined) throw new Error('serve runs a proxy');
  return rawRequest(port, 'GET', path, { authorization: `Bearer ${token}` });
}

/** A call that is forwarded once the proxy's grant view has the (just inserted) grant. */
async function forwarded(path: string, token: string) {
  let response: RawResponse | undefined;
  await eventually(async () => {
    response = await call(path, token);
    return response.status !== 403;
  });
  return response as RawResponse;
}

/** Sends SIGHUP and waits for the child to log the outcome (`msg`), the n-th line of its kind. */
async function hangUp(msg: string): Promise<Record<string, unknown>> {
  const before = serve.logLines(msg).length;
  serve.child.kill('SIGHUP');
  await eventually(() => serve.logLines(msg).length > before);
  return serve.logLines(msg)[before] ?? {};
}

describe('SIGHUP in a running serve', () => {
  it('reloads the policy: a new resource is served; a broken file keeps the old policy and says why', async () => {
    const echo = await grantToken('echo-api');
    const later = await grantToken('later-api');
    expect((await forwarded('/echo-api/one', echo)).status).toBe(200);
    // A valid token, but the running policy has no such resource.
    const before = await call('/later-api/first', later);
    expect(before.status).toBe(404);
    expect(before.json().error).toBe('unknown_resource');

    writePolicy('echo-api', 'later-api');
    await hangUp('policy reloaded');
    const after = await forwarded('/later-api/second', later);
    expect(after.status).toBe(200);
    expect(upstream.seen.at(-1)).toMatchObject({ url: '/second' });

    // A misspelt key: the file no longer parses.
    writeFileSync(policyFile, `resources:${resourceYaml('echo-api').replace('upstream:', 'upstreem:')}\n`);
    const failed = await hangUp('policy reload failed; keeping the previous policy');
    expect(String(failed.err)).toContain(policyFile);
    expect(String(failed.err)).toContain('upstreem');
    expect(serve.logLines('policy reloaded')).toHaveLength(1);
    // The previous policy, later-api included, is still the one in force.
    expect((await call('/later-api/third', later)).status).toBe(200);
    expect((await call('/echo-api/two', echo)).status).toBe(200);
    expect(upstream.seen.at(-2)).toMatchObject({ url: '/third' });
  });

  it('re-reads a credential file: after a rewrite and SIGHUP the upstream gets the new credential', async () => {
    const token = await grantToken('echo-api');
    expect((await forwarded('/echo-api/before', token)).status).toBe(200);
    expect(upstream.seen.at(-1)).toMatchObject({ url: '/before', headers: { 'x-api-key': OLD_CREDENTIAL } });

    writeFileSync(credentialFile, `${NEW_CREDENTIAL}\n`);
    // Until the signal the file is not read again.
    expect((await call('/echo-api/unsignalled', token)).status).toBe(200);
    expect(upstream.seen.at(-1)?.headers['x-api-key']).toBe(OLD_CREDENTIAL);

    await hangUp('policy reloaded');
    expect((await call('/echo-api/after', token)).status).toBe(200);
    expect(upstream.seen.at(-1)).toMatchObject({ url: '/after', headers: { 'x-api-key': NEW_CREDENTIAL } });
    // The credential value itself never reaches the log.
    expect(serve.log()).not.toContain(OLD_CREDENTIAL);
    expect(serve.log()).not.toContain(NEW_CREDENTIAL);
  });
});
