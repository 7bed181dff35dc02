import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';

const problemsOf = (env: NodeJS.ProcessEnv): string[] => {
  try {
    loadConfig(env);
    return [];
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
};

const CONSOLE = {
  SLACK_CLIENT_ID: '123.456',
  SLACK_CLIENT_SECRET: 'client-secret',
  SLACK_TEAM_ID: 'T0123ABCD',
  JITGATE_SESSION_SECRET: 'x'.repeat(32),
  JITGATE_CONSOLE_URL: 'https://jitgate.example.com/',
};

describe('console configuration', () => {
  it('is off without SLACK_CLIENT_ID', () => {
    expect(loadConfig({}).console).toBeUndefined();
  });

  it('derives the redirect URI and Secure cookies from an https console URL; Slack is the default issuer', () => {
    const config = loadConfig(CONSOLE).console;
    expect(config?.publicUrl).toBe('https://jitgate.example.com');
    expect(config?.redirectUri).toBe('https://jitgate.example.com/console/auth/callback');
    expect(config?.secureCookies).toBe(true);
    expect(config?.issuer).toBe('https://slack.com');
  });

  it('names every missing piece once SLACK_CLIENT_ID is set', () => {
    const problems = problemsOf({ SLACK_CLIENT_ID: '123.456' });
    expect(problems.map((p) => p.split(':')[0])).toEqual([
      'SLACK_CLIENT_SECRET',
      'SLACK_TEAM_ID',
      'JITGATE_SESSION_SECRET',
    ]);
  });

  it('refuses a short session secret, a bad team id and a plain-http issuer off loopback, never echoing values', () => {
    const problems = problemsOf({
      ...CONSOLE,
      JITGATE_SESSION_SECRET: 'short-secret',
      SLACK_TEAM_ID: 'workspace',
      JITGATE_OIDC_ISSUER: 'http://idp.example.com',
    });
    expect(problems.map((p) => p.split(':')[0]).sort()).toEqual([
      'JITGATE_OIDC_ISSUER',
      'JITGATE_SESSION_SECRET',
      'SLACK_TEAM_ID',
    ]);
    expect(problems.join('\n')).not.toContain('short-secret');
  });

  it('takes a plain-http issuer on loopback (tests, the demo)', () => {
    const config = loadConfig({ ...CONSOLE, JITGATE_OIDC_ISSUER: 'http://127.0.0.1:4000' }).console;
    expect(config?.issuer).toBe('http://127.0.0.1:4000');
  });
});
