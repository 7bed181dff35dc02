import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseAccessCommand, plainCommandText } from '../../src/slack/access-command-parser.ts';
import { escapeText } from '../../src/slack/blocks/index.ts';

const GRANT = '3f2b6c1e-1a2b-4c3d-8e9f-0123456789ab';

describe('parseAccessCommand', () => {
  it.each([
    ['', { kind: 'modal' }],
    ['   ', { kind: 'modal' }],
    ['help', { kind: 'help' }],
    ['HELP', { kind: 'help' }],
    ['list', { kind: 'list' }],
    ['active', { kind: 'active' }],
    [
      'request billing-api read 30m INC-1 look at invoices',
      {
        kind: 'request',
        resource: 'billing-api',
        scope: 'read',
        durationSeconds: 1800,
        reason: 'INC-1 look at invoices',
      },
    ],
    [
      'request billing-api 2h fix   it',
      { kind: 'request', resource: 'billing-api', scope: undefined, durationSeconds: 7200, reason: 'fix it' },
    ],
    [
      'request Billing-API 1d why',
      { kind: 'request', resource: 'billing-api', scope: undefined, durationSeconds: 86_400, reason: 'why' },
    ],
    [`revoke ${GRANT}`, { kind: 'revoke', grantId: GRANT, reason: undefined }],
    [
      `revoke ${GRANT.toUpperCase()} leaked in a log`,
      { kind: 'revoke', grantId: GRANT, reason: 'leaked in a log' },
    ],
    [`extend ${GRANT} 30m`, { kind: 'extend', grantId: GRANT, durationSeconds: 1800 }],
    [`audit ${GRANT}`, { kind: 'audit', grantId: GRANT }],
    ['link K7QF-3M9X', { kind: 'link', code: 'K7QF-3M9X' }],
    ['LINK k7qf3m9x', { kind: 'link', code: 'k7qf3m9x' }],
    ['devices', { kind: 'devices' }],
  ])('%j → %j', (text, command) => {
    expect(parseAccessCommand(text)).toEqual({ ok: true, command });
  });

  it.each([
    ['frobnicate', /Unknown command "frobnicate"/],
    ['list everything', /takes no arguments/],
    ['request', /needs a resource/],
    ['request billing-api', /needs a duration/],
    ['request billing-api read', /needs a duration/],
    ['request billing-api read 30m', /Say why/],
    ['request billing-api 30m', /Say why/],
    ['request billing-api read soon why', /"soon" is not a duration/],
    ['request billing-api Read! 30m why', /neither a scope nor a duration/],
    ['request bill$ 30m why', /not a resource name/],
    ['request billing-api read 0m why', /not a duration/],
    ['request billing-api read 100d why', /not a duration/],
    ['revoke', /needs a grant id/],
    ['revoke 42', /"42" is not a grant id/],
    ['extend', /needs a grant id/],
    [`extend ${GRANT}`, /needs a duration/],
    [`extend ${GRANT} forever`, /not a duration/],
    [`extend ${GRANT} 1h more`, /takes a grant id and a duration/],
    [`audit ${GRANT} x`, /takes one grant id/],
    ['link', /takes the code `jitgate login` shows/],
    ['link K7QF 3M9X', /takes the code/],
    ['devices mine', /takes no arguments/],
  ])('%j is refused: %s', (text, problem) => {
    const parsed = parseAccessCommand(text);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.problem).toMatch(problem);
  });

  it('refuses absurdly long text', () => {
    expect(parseAccessCommand('x'.repeat(5000))).toMatchObject({
      ok: false,
      problem: expect.stringMatching(/keep it under/),
    });
  });

  it('never throws, and always says what was wrong', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.string({ unit: 'binary' }),
          fc
            .tuple(
              fc.constantFrom('request', 'revoke', 'extend', 'audit', 'list', 'help'),
              fc.array(fc.string()),
            )
            .map(([verb, words]) => [verb, ...words].join(' ')),
        ),
        (text) => {
          const parsed = parseAccessCommand(text);
          if (!parsed.ok) expect(parsed.problem.length).toBeGreaterThan(0);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('parses any well-formed request back to its parts', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/),
        fc.integer({ min: 1, max: 999 }),
        fc.constantFrom('s', 'm', 'h'),
        fc.array(fc.stringMatching(/^[^\s]{1,10}$/), { minLength: 1, maxLength: 5 }),
        (resource, n, unit, words) => {
          const parsed = parseAccessCommand(`request ${resource} ${n}${unit} ${words.join(' ')}`);
          expect(parsed).toMatchObject({
            ok: true,
            command: { kind: 'request', resource, reason: words.join(' ') },
          });
        },
      ),
    );
  });
});

describe('command text as Slack sends it (should_escape on)', () => {
  it('decodes the entities Slack sends for what was typed, and keeps its own sequences as they came', () => {
    expect(plainCommandText('fix &lt;b&gt; &amp; ping <@U123ABC|alice> in <#C42|ops>')).toBe(
      'fix <b> & ping <@U123ABC|alice> in <#C42|ops>',
    );
  });

  it('stores a reason as typed', () => {
    expect(parseAccessCommand('request billing-api read 30m a &lt; b, cc <@U123ABC|alice>')).toMatchObject({
      ok: true,
      command: { reason: 'a < b, cc <@U123ABC|alice>' },
    });
    expect(parseAccessCommand('revoke-all <@U123ABC|alice> left &amp; gone')).toMatchObject({
      ok: true,
      command: { userId: 'U123ABC', reason: 'left & gone' },
    });
  });

  it('reads back anything Slack escaped, exactly', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 200 }), (typed) => {
        expect(plainCommandText(escapeText(typed))).toBe(typed);
      }),
    );
  });

  it('never cuts a quoted word inside an emoji', () => {
    const problem = parseAccessCommand(`request a${'😀'.repeat(30)} 1h x`);
    expect(problem.ok).toBe(false);
    if (!problem.ok) expect(problem.problem).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/);
  });
});
