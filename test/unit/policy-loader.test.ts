import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadPolicyFile, PolicyError, parsePolicy } from '../../src/policy/index.ts';
import { TEST_ENV, TEST_POLICY_YAML, testPolicy } from '../helpers/policy.ts';

function problemsOf(yaml: string, env: NodeJS.ProcessEnv = TEST_ENV): string[] {
  try {
    parsePolicy(yaml, { file: 'p.yml', env });
  } catch (error) {
    if (error instanceof PolicyError) return error.problems;
    throw error;
  }
  throw new Error('policy was accepted');
}

const minimal = (extra = '', scopes = '      read: { allow: ["GET /x/**"] }') => `
resources:
  api:
    upstream: http://127.0.0.1:1
    approvers: { users: [UAPP1] }
    approval_channel: CAPP1
${extra}    scopes:
${scopes}
`;

describe('policy file', () => {
  it('reads the test policy with defaults applied', () => {
    const policy = testPolicy();
    const billing = policy.resources['billing-api']!;
    expect(billing.credential).toEqual({ header: 'Authorization', value: 'Bearer upstream-secret-billing' });
    expect(billing.scopes.read!.autoApproveMaxSeconds).toBe(3600);
    expect(billing.scopes.read!.readOnly).toBe(true);
    expect(billing.scopes.write!.readOnly).toBe(false);
    expect(billing.alertChannel).toBe('CALERTS');
    expect(billing.rateLimit).toEqual({ requests: 600, perSeconds: 60 });
    expect(billing.anomalies.revokedTokenUse).toEqual({ action: 'alert' });
    const admin = policy.resources['admin-api']!;
    expect(admin.alertChannel).toBe('CADMIN');
    expect(admin.maxDurationSeconds).toBe(8 * 3600);
    expect(admin.remindBeforeSeconds).toBe(600);
    expect(admin.approvalsRequired).toBe(2);
    expect(policy.requesters).toBeUndefined();
  });

  it('reads the example policy shipped in examples/', () => {
    const policy = loadPolicyFile('examples/policy.yml', { BILLING_API_TOKEN: 't' });
    expect(policy.resources['billing-api']!.anomalies).toMatchObject({
      deniedBurst: { count: 10, windowSeconds: 60, action: 'alert' },
      rateFactor: { factor: 5 },
      newIp: { action: 'alert' },
      maxResponseBytes: { bytes: 10 * 1024 * 1024 },
      hours: { startMinute: 480, endMinute: 1200, timeZone: 'Europe/Berlin' },
    });
  });

  it('names file, line and path of a bad scope rule', () => {
    const problems = problemsOf(minimal('', '      read: { allow: ["GET /x/**", "GIT /y"] }'));
    expect(problems).toEqual([
      expect.stringMatching(/^p\.yml:8: resources\.api\.scopes\.read\.allow\[1\]: unknown method "GIT"/),
    ]);
  });

  it('refuses unknown keys, naming them', () => {
    const problems = problemsOf(minimal('    approverz: { users: [UAPP2] }\n'));
    expect(problems.join('\n')).toMatch(/p\.yml:7: resources\.api: unknown key "approverz"/);
  });

  it('refuses duplicate resources with the line', () => {
    const yaml = `${minimal()}  api:\n    upstream: http://x\n`;
    const problems = problemsOf(yaml.replace('resources:\n', 'resources:\n'));
    expect(problems.join('\n')).toMatch(/p\.yml:\d+: .*unique/i);
  });

  it('refuses a write scope that reaches every path unless it says so', () => {
    const broad = '      admin: { allow: ["* /**"] }';
    expect(problemsOf(minimal('', broad)).join('\n')).toMatch(
      /resources\.api\.scopes\.admin\.allow\[0\]: .*allow_any_path: true/,
    );
    expect(() =>
      parsePolicy(minimal('', '      admin: { allow: ["* /**"], allow_any_path: true }'), {
        file: 'p',
        env: {},
      }),
    ).not.toThrow();
  });

  it.each([
    ['    max_duration: 100d\n', /max_duration: expects a duration/],
    ['    max_duration: 2h\n    min_duration: 3h\n', /min_duration: is longer than max_duration/],
    ['    approvals_required: 0\n', /approvals_required/],
    ['    approval_channel: general\n', /approval_channel: expects a Slack channel ID/],
    ['    upstream: ftp://x\n', /upstream/],
    ['    anomalies: { hours: "8-20 Mars/Olympus" }\n', /hours/],
    ['    anomalies: { denied_burst: "ten" }\n', /denied_burst/],
    ['    rate_limit: { requests: 0, per: 1m }\n', /rate_limit\.requests/],
  ])('refuses %j', (extra, pattern) => {
    // Later keys win in YAML only when they are unique; these replace the defaults above.
    const yaml = minimal(extra).replace(/ {4}(upstream|approval_channel): .*\n(?=[\s\S]*\1)/, '');
    expect(problemsOf(yaml).join('\n')).toMatch(pattern);
  });

  it('says which environment variable a credential needs, without echoing secrets', () => {
    const problems = problemsOf(TEST_POLICY_YAML, {});
    expect(problems).toEqual([
      expect.stringMatching(
        /^p\.yml:\d+: resources\.billing-api\.credential\.value: environment variable BILLING_API_TOKEN is not set$/,
      ),
    ]);
  });

  it('reads a credential from a file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'jitgate-policy-'));
    writeFileSync(join(dir, 'token'), 'secret-from-file\n');
    writeFileSync(join(dir, 'policy.yml'), minimal('    credential: { header: X-Api-Key, file: token }\n'));
    const policy = loadPolicyFile(join(dir, 'policy.yml'), {});
    expect(policy.resources.api!.credential).toEqual({ header: 'X-Api-Key', value: 'secret-from-file' });
    writeFileSync(join(dir, 'bad.yml'), minimal('    credential: { header: X-Api-Key, file: missing }\n'));
    expect(() => loadPolicyFile(join(dir, 'bad.yml'), {})).toThrow(/credential\.file: cannot read .*ENOENT/);
  });

  it('reports YAML syntax errors with a line', () => {
    expect(problemsOf('resources:\n  api: [\n').join('\n')).toMatch(/^p\.yml:\d+: /);
  });

  it('refuses an empty file', () => {
    expect(problemsOf('').join('\n')).toMatch(/resources/);
  });
});

describe('policy file: proxy policy depth (ip_allow, trust_proxy, quota, mask, identity, capture)', () => {
  const full = `
trust_proxy: { hops: 1, from: ["10.0.0.0/8"] }
resources:
  api:
    upstream: http://127.0.0.1:1
    approvers: { users: [UAPP1] }
    approval_channel: CAPP1
    ip_allow: ["203.0.113.0/24", "2001:db8::/32", "::ffff:198.51.100.0/120"]
    quota: { requests: 1000, response_bytes: 10MB }
    mask_max_bytes: 2MB
    identity_assertion: true
    capture: { bodies: true, max_bytes: 4KB }
    scopes:
      read:
        allow: ["GET /x/**"]
        ip_allow: ["203.0.113.7"]
        mask: ["customers[*].email", "**.ssn"]
        mask_required: true
      write:
        allow: ["GET /x/**", "POST /x"]
        quota: { requests: 10 }
        mask: ["token"]
        mask_style: remove
`;

  it('reads every key with its defaults', () => {
    const policy = parsePolicy(full, { file: 'p.yml', env: {} });
    const api = policy.resources.api!;
    expect(policy.trustProxy?.hops).toBe(1);
    expect(policy.trustProxy?.from?.allows('10.1.2.3')).toBe(true);
    expect(api.ipAllow?.allows('203.0.113.9')).toBe(true);
    expect(api.ipAllow?.allows('198.51.100.4')).toBe(true);
    expect(api.ipAllow?.allows('::ffff:198.51.100.4')).toBe(true);
    expect(api.ipAllow?.allows('192.0.2.1')).toBe(false);
    expect(api.maskMaxBytes).toBe(2 * 1024 * 1024);
    expect(api.identityAssertion).toEqual({ header: 'X-Jitgate-Identity', ttlSeconds: 60 });
    expect(api.capture).toEqual({ maxBytes: 4096 });
    const read = api.scopes.read!;
    expect(read.quota).toEqual({ requests: 1000, responseBytes: 10 * 1024 * 1024 });
    expect(read.ipAllow?.allows('203.0.113.7')).toBe(true);
    expect(read.ipAllow?.allows('203.0.113.8')).toBe(false);
    expect(read.mask?.source).toEqual(['customers[*].email', '**.ssn']);
    expect(read.mask?.style).toBe('replace');
    expect(read.maskRequired).toBe(true);
    const write = api.scopes.write!;
    // A scope's quota fields override the resource's one by one.
    expect(write.quota).toEqual({ requests: 10, responseBytes: 10 * 1024 * 1024 });
    expect(write.mask?.style).toBe('remove');
    expect(write.maskRequired).toBe(false);
  });

  it('sender_constraint: bearer by default; dpop on a resource applies to every scope, on a scope to that scope; a bad value names its line', () => {
    const scopes =
      '      read: { allow: ["GET /x/**"] }\n      secret: { allow: ["GET /y/**"], sender_constraint: dpop }';
    const plain = parsePolicy(minimal('', scopes), { file: 'p.yml', env: {} }).resources.api!;
    expect(plain.scopes.read!.senderConstraint).toBe('bearer');
    expect(plain.scopes.secret!.senderConstraint).toBe('dpop');
    const bound = parsePolicy(minimal('    sender_constraint: dpop\n'), { file: 'p.yml', env: {} }).resources
      .api!;
    expect(bound.scopes.read!.senderConstraint).toBe('dpop');
    // A scope cannot lift its resource's constraint.
    const lifted = parsePolicy(
      minimal(
        '    sender_constraint: dpop\n',
        '      read: { allow: ["GET /x/**"], sender_constraint: bearer }',
      ),
      { file: 'p.yml', env: {} },
    ).resources.api!;
    expect(lifted.scopes.read!.senderConstraint).toBe('dpop');
    expect(problemsOf(minimal('    sender_constraint: mtls\n')).join('\n')).toMatch(
      /p\.yml:\d+: resources\.api\.sender_constraint: /,
    );
  });

  it('leaves every feature off by default', () => {
    const policy = parsePolicy(minimal(), { file: 'p.yml', env: {} });
    const api = policy.resources.api!;
    expect(policy.trustProxy).toBeUndefined();
    expect(api.ipAllow).toBeUndefined();
    expect(api.identityAssertion).toBeUndefined();
    expect(api.capture).toBeUndefined();
    expect(api.maskMaxBytes).toBe(1024 * 1024);
    expect(api.scopes.read!).toMatchObject({
      ipAllow: undefined,
      quota: undefined,
      mask: undefined,
      maskRequired: false,
    });
    expect(
      parsePolicy(`trust_proxy: false\n${minimal()}`, { file: 'p.yml', env: {} }).trustProxy,
    ).toBeUndefined();
    expect(parsePolicy(`trust_proxy: 2\n${minimal()}`, { file: 'p.yml', env: {} }).trustProxy?.hops).toBe(2);
  });

  it.each([
    ['    ip_allow: ["10.0.0.0/33"]\n', /ip_allow\[0\]: "10\.0\.0\.0\/33" has a prefix length outside 0–32/],
    ['    ip_allow: ["10.0.0"]\n', /ip_allow\[0\]: "10\.0\.0" is not an IPv4 or IPv6 address or CIDR/],
    ['    ip_allow: ["::ffff:10.0.0.0/64"]\n', /needs a prefix of at least 96/],
    ['    ip_allow: []\n', /ip_allow: expects at least one CIDR/],
    ['    quota: {}\n', /quota: expects requests and\/or response_bytes/],
    ['    quota: { requests: 0 }\n', /quota\.requests: expects a whole number of calls, at least 1/],
    ['    quota: { response_bytes: lots }\n', /quota\.response_bytes: expects a size like 512, 4KB or 10MB/],
    ['    mask_max_bytes: 10\n', /mask_max_bytes: expects a size between 1KB and 64MB/],
    ['    identity_assertion: { ttl: 1h }\n', /identity_assertion\.ttl: is longer than 5m/],
    [
      '    capture: { bodies: true, max_bytes: 1MB }\n',
      /capture\.max_bytes: expects a size between 1 and 64KB/,
    ],
  ])('refuses a bad resource key: %s', (extra, message) => {
    expect(problemsOf(minimal(extra)).join('\n')).toMatch(message);
  });

  it.each([
    ['      read: { allow: ["GET /x/**"], mask: ["a..b"] }', /mask\[0\]: "a\.\.b" has an empty segment/],
    ['      read: { allow: ["GET /x/**"], mask: ["a.**"] }', /cannot end with \*\*/],
    ['      read: { allow: ["GET /x/**"], mask: ["a[x]"] }', /cannot read "a\[x\]"/],
    ['      read: { allow: ["GET /x/**"], mask_required: true }', /mask_required: needs a mask list/],
    ['      read: { allow: ["GET /x/**"], mask_style: hide, mask: ["a"] }', /mask_style/],
  ])('refuses a bad scope key: %s', (scopes, message) => {
    expect(problemsOf(minimal('', scopes)).join('\n')).toMatch(message);
  });

  it('refuses a bad trust_proxy', () => {
    expect(problemsOf(`trust_proxy: true\n${minimal()}`).join('\n')).toMatch(/trust_proxy/);
    expect(problemsOf(`trust_proxy: 11\n${minimal()}`).join('\n')).toMatch(/trust_proxy/);
    expect(problemsOf(`trust_proxy: { hops: 1, from: ["nope"] }\n${minimal()}`).join('\n')).toMatch(
      /trust_proxy\.from\[0\]: "nope" is not an IPv4/,
    );
  });
});
