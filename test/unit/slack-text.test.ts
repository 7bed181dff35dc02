import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  codeText,
  displayable,
  escapeText,
  inlineText,
  notificationText,
  quotedText,
} from '../../src/slack/blocks/index.ts';

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const BROKEN_ENTITY = /&(?!amp;|lt;|gt;)/;

/** Text people type, with what makes cutting hard: escapes, emoji, joiners, line breaks, controls. */
const typed = fc.string({
  unit: fc.oneof(
    fc.constantFrom(
      '&',
      '<',
      '>',
      '😀',
      '👩‍👩‍👧',
      'é',
      '\n',
      '\r\n',
      '\u202E',
      '\u0000',
      '\u0007',
      '*',
      '`',
      ' ',
    ),
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 3 }),
  ),
  maxLength: 400,
});

describe('user text in mrkdwn', () => {
  it('is escaped first and cut after: never longer than asked, never half an escape or an emoji', () => {
    fc.assert(
      fc.property(typed, fc.integer({ min: 60, max: 3000 }), (text, max) => {
        for (const shown of [
          inlineText(text, max),
          quotedText(text, max, 'reason'),
          notificationText(text),
        ]) {
          expect(shown.length).toBeLessThanOrEqual(Math.max(max, 3000));
          expect(shown).not.toMatch(LONE_SURROGATE);
          expect(shown).not.toMatch(BROKEN_ENTITY);
          expect(shown).not.toContain('<');
          expect(shown).not.toMatch(/[\u202A-\u202E\u2066-\u2069]|(?![\t\n])\p{Cc}/u);
        }
        expect(inlineText(text, max).length).toBeLessThanOrEqual(max);
        expect(quotedText(text, max, 'reason').length).toBeLessThanOrEqual(max);
      }),
    );
  });

  it('shown whole when it fits, with a cut said plainly when it does not', () => {
    expect(inlineText('a < b & c', 100)).toBe('a &lt; b &amp; c');
    // 1,500 ampersands are 7,500 characters escaped: cut on an escape's edge, with an ellipsis.
    const cut = inlineText('&'.repeat(1500), 2900);
    expect(cut.length).toBeLessThanOrEqual(2900);
    expect(cut.endsWith('&amp;…')).toBe(true);
    const quoted = quotedText('&'.repeat(1500), 2900, 'reason');
    expect(quoted).toMatch(/…\n_\(cut; the full reason is in the audit log\)_$/);
    // 1,499 letters and an emoji: the emoji stays whole or goes whole.
    expect(inlineText(`${'a'.repeat(1499)}😀`, 1500)).toBe(`${'a'.repeat(1499)}…`);
  });

  it('keeps each line of a quote a quote, and puts one-line text on one line', () => {
    const forged = 'INC-1\n*Duration:* 5m\r\n\n\n\n*Resource:* x';
    expect(quotedText(forged, 500, 'reason')).toBe('>INC-1\n>*Duration:* 5m\n>\n>*Resource:* x');
    expect(inlineText(forged, 500)).toBe('INC-1 *Duration:* 5m *Resource:* x');
    expect(codeText('a`b\nc', 100)).toBe('`aˋb c`');
  });

  it('drops bidi controls and shows other controls as spaces', () => {
    expect(displayable('pay \u202Eevil\u202C\u0007now')).toBe('pay evil now');
    expect(escapeText(displayable('<\u2066x\u2069>'))).toBe('&lt;x&gt;');
  });
});
