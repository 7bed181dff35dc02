import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createMaskRules, parseMaskPath, pathMatches } from '../../src/policy/mask-paths.ts';
import { BodyCapture } from '../../src/proxy/body-capture.ts';
import {
  MASKED,
  maskJsonPrefix,
  maskValue,
  stringifyJson,
  stringifyJsonIteratively,
} from '../../src/proxy/json-mask.ts';
import { planMask } from '../../src/proxy/response-mask.ts';

const rules = (paths: string[], style: 'replace' | 'remove' = 'replace') => createMaskRules(paths, style);
const tokens = (path: string) => {
  const parsed = parseMaskPath(path);
  if (!parsed.ok) throw new Error(parsed.message);
  return parsed.tokens;
};

describe('mask paths', () => {
  it.each([
    ['customers[*].email', ['customers', 0, 'email'], true],
    ['customers[*].email', ['customers', 'x', 'email'], false], // [*] is array elements only
    ['customers.email', ['customers', 0, 'email'], false], // arrays are never crossed implicitly
    ['customers[1].email', ['customers', 1, 'email'], true],
    ['customers[1].email', ['customers', 2, 'email'], false],
    ['**.ssn', ['ssn'], true], // ** includes zero levels
    ['**.ssn', ['a', 3, 'b', 'ssn'], true],
    ['**.ssn', ['a', 'ssn', 'x'], false],
    ['*.token', ['a', 'token'], true],
    ['*.token', [4, 'token'], true],
    ['*.token', ['a', 'b', 'token'], false],
    ['[*].email', [0, 'email'], true],
    ['a.**.b[*]', ['a', 'b', 9], true],
    ['a.**.b[*]', ['a', 'x', 'y', 'b', 0], true],
  ])('%s matches %j: %s', (path, location, expected) => {
    expect(pathMatches(tokens(path), location)).toBe(expected);
  });

  it('masks nested arrays, in place, keeping the shape', () => {
    const doc = {
      customers: [
        { email: 'a@example.com', name: 'A', cards: [{ number: '4111', ssn: '1' }] },
        { email: 'b@example.com', name: 'B', cards: [] },
      ],
      matrix: [[{ ssn: 'x' }], [{ ssn: 'y', ok: 1 }]],
      ssn: 'top',
    };
    expect(maskValue(doc, rules(['customers[*].email', '**.ssn', 'customers[*].cards[*].number']))).toEqual({
      customers: [
        { email: MASKED, name: 'A', cards: [{ number: MASKED, ssn: MASKED }] },
        { email: MASKED, name: 'B', cards: [] },
      ],
      matrix: [[{ ssn: MASKED }], [{ ssn: MASKED, ok: 1 }]],
      ssn: MASKED,
    });
  });

  it('removes keys with style remove, and replaces (never removes) array elements', () => {
    const doc = { a: { secret: 1, keep: 2 }, list: ['x', 'y'] };
    expect(maskValue(doc, rules(['a.secret', 'list[0]'], 'remove'))).toEqual({
      a: { keep: 2 },
      list: [MASKED, 'y'],
    });
  });

  it('masks a whole object or array when its path matches', () => {
    expect(maskValue({ card: { n: 1, m: [2] } }, rules(['card']))).toEqual({ card: MASKED });
  });

  it('masks a JSON prefix cut anywhere without leaking a matched value', () => {
    const doc = {
      customers: [{ email: 'secret@example.com', name: 'A' }],
      nested: { deep: { ssn: '123-45-6789' } },
    };
    const text = JSON.stringify(doc, null, 2);
    const r = rules(['customers[*].email', '**.ssn']);
    expect(JSON.parse(maskJsonPrefix(text, r))).toEqual(maskValue(structuredClone(doc), r));
    for (let cut = 0; cut <= text.length; cut++) {
      const masked = maskJsonPrefix(text.slice(0, cut), r);
      // No prefix of a secret longer than two characters survives (the cut may end inside it).
      expect(masked).not.toMatch(/secre|123-/);
    }
  });

  it('property: maskJsonPrefix on a whole document agrees with maskValue', () => {
    const key = fc.constantFrom('email', 'ssn', 'name', 'a', 'customers');
    const leaf = fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.constant(null));
    const tree = fc.letrec((tie) => ({
      node: fc.oneof(
        { depthSize: 'small' },
        leaf,
        fc.array(tie('node'), { maxLength: 3 }),
        fc.dictionary(key, tie('node'), { maxKeys: 3 }),
      ),
    })).node;
    const r = rules(['customers[*].email', '**.ssn', '*.name']);
    fc.assert(
      fc.property(fc.dictionary(key, tree, { maxKeys: 4 }), (doc) => {
        const expected = maskValue(structuredClone(doc), r);
        expect(JSON.parse(maskJsonPrefix(JSON.stringify(doc), r))).toEqual(expected);
      }),
    );
  });
});

describe('deeply nested JSON (issue 14)', () => {
  const depth = 100_000;
  const deep = () =>
    JSON.parse(`${'{"ssn":"123-45-6789","next":'.repeat(depth)}null${'}'.repeat(depth)}`) as unknown;

  it('maskValue walks 100,000 levels without recursing, masking every one', () => {
    const masked = maskValue(deep(), rules(['**.ssn']));
    let node = masked as { ssn?: unknown; next?: unknown } | null;
    let levels = 0;
    while (node) {
      expect(node.ssn).toBe(MASKED);
      node = node.next as typeof node;
      levels++;
    }
    expect(levels).toBe(depth);
  });

  it('stringifyJson writes what JSON.stringify cannot (RangeError past a few thousand levels)', () => {
    const value = maskValue(deep(), rules(['**.ssn']));
    expect(() => JSON.stringify(value)).toThrow(RangeError);
    const text = stringifyJson(value);
    expect(text.startsWith('{"ssn":"[masked]","next":{"ssn":"[masked]"')).toBe(true);
    expect(text.endsWith(`"next":null${'}'.repeat(depth)}`)).toBe(true);
    expect(text.split(JSON.stringify(MASKED)).length - 1).toBe(depth);
    expect(text).not.toContain('123-45');
  });

  it('maskJsonPrefix masks a deep prefix in one pass', () => {
    const text = `${'[{"ssn":"123-45-6789","x":'.repeat(20_000)}1`;
    const masked = maskJsonPrefix(text, rules(['**.ssn']));
    expect(masked).not.toContain('123-45');
    expect(masked.split(JSON.stringify(MASKED)).length - 1).toBe(20_000);
  });

  it('property: the iterative writer gives exactly the text JSON.stringify gives', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        expect(stringifyJsonIteratively(value)).toBe(JSON.stringify(value));
      }),
      { numRuns: 300 },
    );
    // And for what masking with style `remove` leaves: keys deleted, never undefined written.
    const removed = maskValue({ a: 1, b: { c: 2, d: [3, { c: 4 }] } }, rules(['**.c'], 'remove'));
    expect(stringifyJsonIteratively(removed)).toBe(JSON.stringify(removed));
  });
});

describe('response mask plan', () => {
  it('refuses a response with two Content-Type or two Content-Encoding headers, mask_required or not', () => {
    for (const required of [false, true]) {
      expect(
        planMask({ 'content-type': ['text/plain', 'application/json'] } as never, required, 1024),
      ).toMatchObject({
        denial: { code: 'ambiguous_response', message: expect.stringContaining('Content-Type') },
      });
      expect(
        planMask(
          { 'content-type': 'application/json', 'content-encoding': ['identity', 'gzip'] } as never,
          required,
          1024,
        ),
      ).toMatchObject({
        denial: { code: 'ambiguous_response', message: expect.stringContaining('Content-Encoding') },
      });
    }
  });

  it('passes an answer that has no body (HEAD, 204, 304) whatever its headers', () => {
    expect(planMask({ 'content-type': 'application/json' }, true, 1024, true).kind).toBe('pass');
    expect(planMask({ 'content-type': 'text/csv' }, true, 1024, true).kind).toBe('pass');
  });

  it('passes non-JSON unless mask_required, refuses compressed and too-large JSON', () => {
    expect(planMask({ 'content-type': 'text/csv' }, false, 1024).kind).toBe('pass');
    expect(planMask({ 'content-type': 'text/csv' }, true, 1024)).toMatchObject({
      denial: { code: 'mask_unsupported' },
    });
    expect(planMask({}, true, 1024)).toMatchObject({ denial: { code: 'mask_unsupported' } });
    expect(
      planMask({ 'content-type': 'application/json', 'content-encoding': 'gzip' }, false, 1024),
    ).toMatchObject({
      denial: { code: 'mask_unsupported' },
    });
    expect(
      planMask({ 'content-type': 'application/json', 'content-length': '1025' }, false, 1024),
    ).toMatchObject({
      denial: { code: 'mask_too_large' },
    });
    expect(planMask({ 'content-type': 'application/problem+json; charset=utf-8' }, false, 1024).kind).toBe(
      'buffer',
    );
  });
});

describe('body capture', () => {
  it('keeps at most max_bytes, counts the rest, masks the kept JSON', () => {
    const capture = new BodyCapture(40);
    const body = Buffer.from(JSON.stringify({ password: 'hunter2', note: 'x'.repeat(100) }));
    for (let i = 0; i < body.length; i += 7) capture.push(body.subarray(i, i + 7));
    const result = capture.result('application/json', rules(['**.password']), false);
    expect(result.bytes).toBe(body.length);
    expect(result.truncated).toBe(true);
    expect(Buffer.byteLength(result.text)).toBeLessThanOrEqual(40);
    expect(result.text).not.toContain('hunter2');
    expect(result.text).toContain(MASKED);
  });

  it('keeps binary as base64 and omits non-JSON under mask_required', () => {
    const capture = new BodyCapture(8);
    capture.push(Buffer.from([0, 1, 2, 3]));
    expect(capture.result('application/octet-stream', undefined, false)).toMatchObject({
      encoding: 'base64',
      text: 'AAECAw==',
    });
    expect(capture.result('text/plain', rules(['a']), true)).toMatchObject({
      text: '',
      omitted: expect.any(String),
    });
  });
});
