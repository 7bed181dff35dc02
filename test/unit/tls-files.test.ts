import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, type TlsFiles } from '../../src/config.ts';
import { readTlsMaterial } from '../../src/ops/tls.ts';
import { loadPolicyFile, PolicyError } from '../../src/policy/index.ts';
import { makeCertificate, type TestCertificate, tempDir } from '../helpers/tls.ts';

/** The file checks behind issue 10 item 3: listener certificates and a resource's ca_file. */

const dir = tempDir();
let a: TestCertificate;
let b: TestCertificate;

beforeAll(() => {
  a = makeCertificate(dir.path, 'a');
  b = makeCertificate(dir.path, 'b');
  writeFileSync(join(dir.path, 'garbage.pem'), 'not a certificate\n');
  writeFileSync(
    join(dir.path, 'broken.pem'),
    `${a.cert}-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n`,
  );
  writeFileSync(join(dir.path, 'bundle.pem'), a.cert + b.cert);
});

afterAll(() => dir.remove());

function problemsOf(read: () => unknown): string[] {
  try {
    read();
  } catch (error) {
    if (error instanceof ConfigError || error instanceof PolicyError) return error.problems;
    throw error;
  }
  throw new Error('accepted');
}

describe('listener TLS files', () => {
  const files = (certFile: string, keyFile: string): TlsFiles => ({
    certFile,
    keyFile,
    certVariable: 'PROXY_TLS_CERT',
    keyVariable: 'PROXY_TLS_KEY',
  });

  it('reads a certificate and its key, with the leaf fingerprint', () => {
    const material = readTlsMaterial(files(a.certFile, a.keyFile));
    expect(material.fingerprint).toBe(a.fingerprint);
    expect(material.key.toString('utf8')).toBe(a.key);
  });

  it('names the variable at fault, never the file contents', () => {
    const missing = join(dir.path, 'missing.crt');
    expect(problemsOf(() => readTlsMaterial(files(missing, a.keyFile)))).toEqual([
      `PROXY_TLS_CERT: cannot read ${missing} (ENOENT)`,
    ]);
    expect(problemsOf(() => readTlsMaterial(files(join(dir.path, 'garbage.pem'), a.keyFile)))).toEqual([
      expect.stringMatching(/^PROXY_TLS_CERT: .*garbage\.pem holds no PEM certificate$/),
    ]);
    expect(problemsOf(() => readTlsMaterial(files(a.certFile, a.certFile)))).toEqual([
      expect.stringMatching(/^PROXY_TLS_KEY: .*a\.crt holds no PEM private key/),
    ]);
    const mismatch = problemsOf(() => readTlsMaterial(files(a.certFile, b.keyFile)));
    expect(mismatch).toEqual([expect.stringMatching(/^PROXY_TLS_KEY: the key in .*b\.key does not belong/)]);
    expect(mismatch.join('')).not.toContain('PRIVATE KEY');
  });
});

describe('policy ca_file and tls_server_name', () => {
  const policyWith = (resources: string): string => {
    const file = join(dir.path, `policy-${Math.random().toString(36).slice(2)}.yml`);
    writeFileSync(file, `resources:\n${resources}`);
    return file;
  };
  const resource = (name: string, upstream: string, caFile?: string, serverName?: string) => `  ${name}:
    upstream: ${upstream}
${caFile ? `    ca_file: ${caFile}\n` : ''}${serverName ? `    tls_server_name: ${serverName}\n` : ''}    approvers: { users: [UAPP1] }
    approval_channel: CAPP1
    scopes:
      read: { allow: ["GET /**"] }
`;

  it('reads the bundle relative to the policy file, for https upstreams', () => {
    const policy = loadPolicyFile(policyWith(resource('api', 'https://10.0.0.1:8443', 'bundle.pem')), {});
    expect(policy.resources.api!.upstreamCa).toBe(a.cert + b.cert);
    const plain = loadPolicyFile(policyWith(resource('api', 'https://10.0.0.1:8443')), {});
    expect(plain.resources.api!.upstreamCa).toBeUndefined();
  });

  it('refuses an unreadable or unparsable bundle at load, naming the line', () => {
    const file = policyWith(
      resource('gone', 'https://10.0.0.1', 'missing.pem') +
        resource('junk', 'https://10.0.0.2', 'garbage.pem') +
        resource('broken', 'https://10.0.0.3', 'broken.pem'),
    );
    expect(problemsOf(() => loadPolicyFile(file, {}))).toEqual([
      expect.stringMatching(/:4: resources\.gone\.ca_file: cannot read .*missing\.pem \(ENOENT\)$/),
      expect.stringMatching(/:11: resources\.junk\.ca_file: .*garbage\.pem holds no PEM certificate$/),
      expect.stringMatching(/:18: resources\.broken\.ca_file: .*broken\.pem certificate 2 is not a valid/),
    ]);
  });

  it('refuses ca_file on an http upstream, and resources that disagree about one origin', () => {
    expect(
      problemsOf(() => loadPolicyFile(policyWith(resource('api', 'http://10.0.0.1', 'a.crt')), {})),
    ).toEqual([expect.stringMatching(/resources\.api\.ca_file: applies only to an https:\/\/ upstream$/)]);
    const shared = policyWith(
      resource('one', 'https://10.0.0.1:8443/v1', 'a.crt') + resource('two', 'https://10.0.0.1:8443/v2'),
    );
    expect(problemsOf(() => loadPolicyFile(shared, {}))).toEqual([
      expect.stringMatching(
        /resources\.two\.ca_file: resources one and two share the upstream https:\/\/10\.0\.0\.1:8443 and must name the same CA bundle/,
      ),
    ]);
    // The same bundle under two names is the same CA.
    const same = policyWith(
      resource('one', 'https://10.0.0.1:8443/v1', 'a.crt') +
        resource('two', 'https://10.0.0.1:8443/v2', join(dir.path, 'a.crt')),
    );
    expect(Object.keys(loadPolicyFile(same, {}).resources)).toEqual(['one', 'two']);
  });

  it('takes tls_server_name for https upstreams, lower-cased; refuses IPs, junk, http and disagreement', () => {
    const policy = loadPolicyFile(
      policyWith(resource('api', 'https://10.0.0.1:8443', undefined, 'Billing.Internal.example')),
      {},
    );
    expect(policy.resources.api!.upstreamServerName).toBe('billing.internal.example');
    expect(
      loadPolicyFile(policyWith(resource('api', 'https://10.0.0.1')), {}).resources.api!.upstreamServerName,
    ).toBeUndefined();
    for (const bad of [
      '10.0.0.1',
      'billing..internal',
      '-billing.internal',
      'billing_internal',
      "'*.internal'",
    ]) {
      expect(
        problemsOf(() => loadPolicyFile(policyWith(resource('api', 'https://10.0.0.1', undefined, bad)), {})),
        bad,
      ).toEqual([expect.stringMatching(/resources\.api\.tls_server_name: expects a DNS host name/)]);
    }
    expect(
      problemsOf(() =>
        loadPolicyFile(policyWith(resource('api', 'http://10.0.0.1', undefined, 'billing.internal')), {}),
      ),
    ).toEqual([
      expect.stringMatching(/resources\.api\.tls_server_name: applies only to an https:\/\/ upstream$/),
    ]);
    const shared = policyWith(
      resource('one', 'https://10.0.0.1:8443/v1', undefined, 'billing.internal') +
        resource('two', 'https://10.0.0.1:8443/v2', undefined, 'ledger.internal'),
    );
    expect(problemsOf(() => loadPolicyFile(shared, {}))).toEqual([
      expect.stringMatching(
        /:\d+: resources\.two\.tls_server_name: resources one and two share the upstream https:\/\/10\.0\.0\.1:8443 and must name the same tls_server_name/,
      ),
    ]);
  });
});
