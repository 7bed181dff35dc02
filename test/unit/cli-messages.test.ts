import { describe, expect, it } from 'vitest';
import { ALL_CODES, explain, sentenceFor } from '../../src/cli/contractor/messages.ts';
import { loadClientConfig } from '../../src/config.ts';
import { DPOP_REFUSAL_CODES } from '../../src/tokens/dpop.ts';

describe('CLI refusal sentences', () => {
  it('every code the proxy, the device API or the CLI can send has a sentence', () => {
    for (const code of ALL_CODES) {
      const sentence = sentenceFor(code);
      expect(sentence.length, code).toBeGreaterThan(10);
      expect(sentence, code).toMatch(/[.!]$/);
    }
    for (const code of DPOP_REFUSAL_CODES) expect(ALL_CODES).toContain(code);
  });

  it("a code the CLI does not know (a newer server) shows the server's own message", () => {
    expect(explain('some_future_code', 'The server says why.')).toBe('The server says why.');
    expect(explain('grant_revoked', 'ignored')).toBe('Your grant has been revoked.');
  });
});

describe('client configuration', () => {
  it('keeps the device under $XDG_CONFIG_HOME/jitgate, else ~/.config/jitgate; a relative XDG path is ignored', () => {
    expect(loadClientConfig({ XDG_CONFIG_HOME: '/x/conf' }, '/home/a').configDir).toBe('/x/conf/jitgate');
    expect(loadClientConfig({}, '/home/a').configDir).toBe('/home/a/.config/jitgate');
    expect(loadClientConfig({ XDG_CONFIG_HOME: 'rel' }, '/home/a').configDir).toBe('/home/a/.config/jitgate');
  });
});
