import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';

function problems(env: NodeJS.ProcessEnv): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('config was accepted');
}

describe('config', () => {
  it('runs on embedded defaults with an empty environment', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      databaseUrl: undefined,
      redisUrl: undefined,
      dataDir: './.jitgate',
      port: 3000,
      proxyPort: 8080,
      logLevel: 'info',
      policyPath: 'examples/policy.yml',
      publicProxyUrl: 'http://localhost:8080',
    });
  });

  it('reads every variable', () => {
    const config = loadConfig({
      DATABASE_URL: 'postgres://u@db:5432/j',
      REDIS_URL: 'redis://r:6379',
      SLACK_BOT_TOKEN: 'xoxb-1',
      SLACK_SIGNING_SECRET: 's',
      SLACK_APP_TOKEN: 'xapp-1',
      SLACK_API_URL: 'http://127.0.0.1:9/api/',
      JITGATE_POLICY: '/etc/jitgate/policy.yml',
      JITGATE_SIGNING_KEY: JSON.stringify(
        generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' }),
      ),
      JITGATE_MASTER_KEY: 'a'.repeat(64),
      JITGATE_PUBLIC_URL: 'https://gate.example.com/',
      PORT: '3001',
      PROXY_PORT: '8081',
      LOG_LEVEL: 'debug',
    });
    expect(config).toMatchObject({
      databaseUrl: 'postgres://u@db:5432/j',
      redisUrl: 'redis://r:6379',
      slack: {
        botToken: 'xoxb-1',
        signingSecret: 's',
        appToken: 'xapp-1',
        apiUrl: 'http://127.0.0.1:9/api/',
      },
      policyPath: '/etc/jitgate/policy.yml',
      publicProxyUrl: 'https://gate.example.com',
      port: 3001,
      proxyPort: 8081,
      logLevel: 'debug',
    });
  });

  it('names each bad variable once, with what it expects, and never echoes values', () => {
    const secret = 'hunter2-secret-value';
    const found = problems({
      DATABASE_URL: `mysql://${secret}@x/y`,
      PORT: 'eighty',
      PROXY_PORT: '70000',
      LOG_LEVEL: 'loud',
      SLACK_BOT_TOKEN: secret,
      SLACK_API_URL: 'http://127.0.0.1:9/api',
      JITGATE_SIGNING_KEY: JSON.stringify({ kty: 'RSA', d: secret }),
    });
    expect(found.map((p) => p.split(':')[0]).sort()).toEqual(
      [
        'DATABASE_URL',
        'JITGATE_SIGNING_KEY',
        'LOG_LEVEL',
        'PORT',
        'PROXY_PORT',
        'SLACK_API_URL',
        'SLACK_BOT_TOKEN',
      ].sort(),
    );
    expect(found).toContain(
      'JITGATE_SIGNING_KEY: is not an OKP Ed25519 key; expects a private Ed25519 JWK as JSON, like {"kty":"OKP","crv":"Ed25519","x":"<base64url>","d":"<base64url>"}',
    );
    expect(found.join('\n')).not.toContain(secret);
  });

  it('requires a signing secret in HTTP mode and a bot token in Socket Mode', () => {
    expect(problems({ SLACK_BOT_TOKEN: 'xoxb-1' })).toEqual([
      expect.stringMatching(/^SLACK_SIGNING_SECRET: /),
    ]);
    expect(problems({ SLACK_APP_TOKEN: 'xapp-1' })).toEqual([expect.stringMatching(/^SLACK_BOT_TOKEN: /)]);
  });

  it('reads TLS file pairs for both listeners and defaults the public URL to https', () => {
    const config = loadConfig({
      PROXY_TLS_CERT: '/tls/proxy.crt',
      PROXY_TLS_KEY: '/tls/proxy.key',
      TLS_CERT: '/tls/admin.crt',
      TLS_KEY: '/tls/admin.key',
      PROXY_PORT: '8443',
    });
    expect(config.proxyTls).toEqual({
      certFile: '/tls/proxy.crt',
      keyFile: '/tls/proxy.key',
      certVariable: 'PROXY_TLS_CERT',
      keyVariable: 'PROXY_TLS_KEY',
    });
    expect(config.adminTls).toMatchObject({ certFile: '/tls/admin.crt', keyFile: '/tls/admin.key' });
    expect(config.publicProxyUrl).toBe('https://localhost:8443');
    expect(loadConfig({})).toMatchObject({ proxyTls: undefined, adminTls: undefined });
  });

  it('refuses TLS half-configured, one line naming the missing variable', () => {
    expect(problems({ PROXY_TLS_CERT: '/tls/proxy.crt' })).toEqual([
      'PROXY_TLS_KEY: expects the private key file (PEM) for PROXY_TLS_CERT; set both or neither (TLS is half-configured)',
    ]);
    expect(problems({ PROXY_TLS_KEY: '/tls/proxy.key' })).toEqual([
      expect.stringMatching(/^PROXY_TLS_CERT: expects the certificate file \(PEM\) for PROXY_TLS_KEY; /),
    ]);
    expect(problems({ TLS_CERT: '/tls/admin.crt' })).toEqual([expect.stringMatching(/^TLS_KEY: /)]);
    expect(problems({ TLS_KEY: '/tls/admin.key', TLS_CERT: ' ' })).toEqual([
      expect.stringMatching(/^TLS_CERT: /),
    ]);
  });

  it('puts the admin listener on loopback port 9090 without a token unless told (issue 14)', () => {
    expect(loadConfig({}).admin).toEqual({ host: '127.0.0.1', port: 9090, token: undefined });
    expect(
      loadConfig({ ADMIN_HOST: '0.0.0.0', ADMIN_PORT: '9191', ADMIN_TOKEN: 'scrape-token-0123456789' }).admin,
    ).toEqual({ host: '0.0.0.0', port: 9191, token: 'scrape-token-0123456789' });
    expect(loadConfig({ ADMIN_TOKEN: ' ', ADMIN_HOST: '' }).admin).toMatchObject({
      host: '127.0.0.1',
      token: undefined,
    });
    // Port 0 (any free port) never collides.
    expect(loadConfig({ PORT: '0', PROXY_PORT: '0', ADMIN_PORT: '0' }).admin.port).toBe(0);
  });

  it('names a bad admin setting, a port it shares with another listener, and never echoes the token', () => {
    const token = 'short-token';
    expect(problems({ ADMIN_PORT: 'ninety', ADMIN_HOST: 'local host', ADMIN_TOKEN: token })).toEqual([
      'ADMIN_PORT: expects a TCP port number',
      'ADMIN_HOST: expects an interface address like 127.0.0.1 (the default) or 0.0.0.0',
      'ADMIN_TOKEN: expects a bearer token of at least 16 characters without spaces',
    ]);
    expect(problems({ ADMIN_TOKEN: 'has spaces in the middle of it' })).toEqual([
      expect.stringMatching(/^ADMIN_TOKEN: /),
    ]);
    expect(problems({ ADMIN_PORT: '3000' })).toEqual([
      'ADMIN_PORT: expects a port other than PORT (both are 3000)',
    ]);
    expect(problems({ ADMIN_PORT: '8080' })).toEqual([
      'ADMIN_PORT: expects a port other than PROXY_PORT (both are 8080)',
    ]);
    expect(problems({ ADMIN_TOKEN: token }).join('\n')).not.toContain(token);
  });

  it('JITGATE_QUOTA_WHEN_REDIS_DOWN: fail_closed unless told local; anything else is named (issue 18)', () => {
    expect(loadConfig({}).quotaWhenRedisDown).toBe('fail_closed');
    expect(loadConfig({ JITGATE_QUOTA_WHEN_REDIS_DOWN: 'local' }).quotaWhenRedisDown).toBe('local');
    expect(loadConfig({ JITGATE_QUOTA_WHEN_REDIS_DOWN: ' ' }).quotaWhenRedisDown).toBe('fail_closed');
    expect(problems({ JITGATE_QUOTA_WHEN_REDIS_DOWN: 'open' })).toEqual([
      'JITGATE_QUOTA_WHEN_REDIS_DOWN: expects one of fail_closed, local',
    ]);
  });

  it('JITGATE_DPOP_NONCE_SECRET: nonces off unless set; a short one is named and never echoed (issue 17)', () => {
    expect(loadConfig({}).dpopNonceSecret).toBeUndefined();
    const secret = 'n'.repeat(32);
    expect(loadConfig({ JITGATE_DPOP_NONCE_SECRET: secret }).dpopNonceSecret).toBe(secret);
    const short = problems({ JITGATE_DPOP_NONCE_SECRET: 'too-short-secret' });
    expect(short).toEqual([
      'JITGATE_DPOP_NONCE_SECRET: expects at least 32 characters, the same on every proxy and bot (e.g. openssl rand -base64 32)',
    ]);
    expect(short.join('\n')).not.toContain('too-short-secret');
  });

  it('treats empty values as unset', () => {
    expect(loadConfig({ DATABASE_URL: '', REDIS_URL: ' ' })).toMatchObject({
      databaseUrl: undefined,
      redisUrl: undefined,
    });
  });
});
