import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

/** The Slack app manifest people create the app from: what it asks for must match what jitgate does. */
const manifest = parse(readFileSync(new URL('../../manifest.yml', import.meta.url), 'utf8')) as {
  features: { slash_commands: { command: string; should_escape: boolean }[] };
  oauth_config: { redirect_urls: string[]; scopes: { bot: string[]; user: string[] } };
};

describe('manifest.yml', () => {
  it('/access gets people as <@U…|name>, which revoke-all needs to know whom they mean', () => {
    const access = manifest.features.slash_commands.find((c) => c.command === '/access');
    expect(access?.should_escape).toBe(true);
  });

  it('asks only for the bot scopes jitgate uses (DMs go to the user id with chat:write; nothing opens a conversation)', () => {
    expect(manifest.oauth_config.scopes.bot.sort()).toEqual([
      'chat:write',
      'commands',
      'usergroups:read',
      'users:read',
    ]);
  });

  it('has what Sign in with Slack needs: the console callback as redirect URL, and openid + profile', () => {
    expect(manifest.oauth_config.redirect_urls.every((u) => u.endsWith('/console/auth/callback'))).toBe(true);
    expect(manifest.oauth_config.redirect_urls.length).toBeGreaterThan(0);
    expect(manifest.oauth_config.scopes.user.sort()).toEqual(['openid', 'profile']);
  });
});
