import { describe, expect, it } from 'vitest';
import type { Grant } from '../../src/db/schema/index.ts';
import { parseAccessCommand } from '../../src/slack/access-command-parser.ts';
import { lastUse, offboardedNote, weeklyReportMessage } from '../../src/slack/blocks/index.ts';
import { removedUsersOf } from '../../src/slack/listeners/events/index.ts';

describe('/access revoke-all parsing', () => {
  it('takes a picked mention, a mention with a name, or a bare user id, and an optional reason', () => {
    expect(parseAccessCommand('revoke-all <@U123ABC>')).toEqual({
      ok: true,
      command: { kind: 'revoke-all', userId: 'U123ABC', reason: undefined },
    });
    expect(parseAccessCommand('revoke-all <@U123ABC|alice> left the company')).toEqual({
      ok: true,
      command: { kind: 'revoke-all', userId: 'U123ABC', reason: 'left the company' },
    });
    expect(parseAccessCommand('REVOKE-ALL W9XYZ')).toMatchObject({ ok: true, command: { userId: 'W9XYZ' } });
  });

  it('refuses what is not a user, with a problem to show', () => {
    expect(parseAccessCommand('revoke-all')).toMatchObject({ ok: false });
    expect(parseAccessCommand('revoke-all @alice')).toMatchObject({
      ok: false,
      problem: expect.stringContaining('is not a Slack user'),
    });
    expect(parseAccessCommand('revoke-all <!channel>')).toMatchObject({ ok: false });
  });
});

describe('offboarding messages', () => {
  it('escapes the reason and mentions only real user ids', () => {
    const note = offboardedNote({
      resource: 'billing-api',
      userId: 'U1ABC',
      reason: 'bye <!channel>',
      by: 'slack:U2DEF',
      grantIds: ['g1'],
      requestIds: [],
      at: new Date('2026-01-05T10:00:00Z'),
    });
    const text = JSON.stringify(note.blocks);
    expect(text).toContain('<@U1ABC>');
    expect(text).toContain('<@U2DEF>');
    expect(text).toContain('&lt;!channel&gt;');
    expect(text).not.toContain('<!channel>');
    expect(text).toContain('1 grant revoked, 0 pending requests ended');
  });

  it('shows last use, or never used', () => {
    expect(lastUse({ lastUsedAt: null } as Pick<Grant, 'lastUsedAt'>)).toBe('never used');
    expect(lastUse({ lastUsedAt: new Date('2026-01-05T10:00:00Z') })).toContain('last used <!date^');
  });

  it('renders the weekly numbers', () => {
    const message = weeklyReportMessage({
      resource: 'billing-api',
      periodStart: new Date('2026-01-05T08:00:00Z'),
      periodEnd: new Date('2026-01-12T08:00:00Z'),
      grantsMade: 3,
      grantsUsed: 2,
      grantsUnused: 1,
      calls: 40,
      deniedCalls: 5,
      alerts: 1,
      idleRevoked: 1,
      offboarded: 0,
    });
    const text = JSON.stringify(message.blocks);
    expect(text).toContain('*Grants made:* 3 · *used:* 2 · *unused:* 1');
    expect(text).toContain('*denied:* 5 · *alerts:* 1');
  });

  it('reads removed users from a subteam_members_changed event defensively', () => {
    expect(removedUsersOf({ removed_users: ['U1AB', 42, 'nope', 'W2CD'] })).toEqual(['U1AB', 'W2CD']);
    expect(removedUsersOf({})).toEqual([]);
    expect(removedUsersOf(null)).toEqual([]);
  });
});
