import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_PATH_LENGTH, normalizePath } from '../../src/proxy/normalize-path.ts';

describe('normalizePath', () => {
  it.each([
    ['', '/', '/', ''],
    ['/', '/', '/', ''],
    ['/invoices/42', '/invoices/42', '/invoices/42', ''],
    ['/invoices/42/', '/invoices/42/', '/invoices/42/', ''],
    ['/invoices/42?a=1&b=%2F', '/invoices/42', '/invoices/42', '?a=1&b=%2F'],
    ['/%69nvoices/%41', '/invoices/A', '/invoices/A', ''],
    ['/caf%c3%a9', '/café', '/caf%C3%A9', ''],
    ['/a%20b', '/a b', '/a%20b', ''],
    ['/a{b}', '/a{b}', '/a%7Bb%7D', ''],
    ["/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,=", ''],
    ['/v1.2/x.json', '/v1.2/x.json', '/v1.2/x.json', ''],
  ])('accepts %s', (input, path, upstreamPath, query) => {
    expect(normalizePath(input)).toEqual({ ok: true, path, upstreamPath, query });
  });

  it.each([
    '/..',
    '/a/..',
    '/a/../b',
    '/a/./b',
    '/.',
    '/a/%2e%2e/b',
    '/a/%2E./b',
    '/a/.%2E/b',
    '/a/%2e',
    '/a%2fb',
    '/a%2Fb',
    '/a%5cb',
    '/a\\b',
    '//a',
    '/a//b',
    '/a;b',
    '/a%3bb',
    '/a%00',
    '/a%0a',
    '/a%7f',
    '/a%c2%85',
    '/%c0%ae%c0%ae',
    '/%c0%af',
    '/%e0%80%ae',
    '/%ed%a0%80',
    '/%ff',
    '/%c3',
    '/a%zz',
    '/a%4',
    '/a%252e',
    '/...',
    '/a..',
    '/..a',
    '/a#b',
    'a/b',
    'http://evil/x',
    '*',
    '/caf\u00e9',
    `/${'a'.repeat(MAX_PATH_LENGTH)}`,
    '/a?b c',
  ])('refuses %s', (input) => {
    const result = normalizePath(input);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.code).toBe('bad_path');
  });

  const raw = fc
    .array(
      fc.constantFrom(
        'a',
        'B',
        '.',
        '..',
        '%2e',
        '%2E',
        '%2f',
        '%5c',
        '%25',
        '%41',
        '%c3%a9',
        '%c0%ae',
        ';',
        '\\',
        '',
        '~',
        '%20',
        'x.y',
        '*',
        '%00',
      ),
      { maxLength: 6 },
    )
    .map((segments) => `/${segments.join('/')}`);

  it('never outputs dot segments or empty segments, and is a fixed point on its output', () => {
    fc.assert(
      fc.property(raw, (input) => {
        const result = normalizePath(input);
        if (!result.ok) return;
        for (const out of [result.path, result.upstreamPath]) {
          const segments = out.slice(1).split('/');
          expect(segments.slice(0, -1).every((s) => s !== '')).toBe(true);
          expect(segments.every((s) => s !== '.' && s !== '..')).toBe(true);
          expect(out.includes('//')).toBe(false);
        }
        // Decoding happens once: normalising what the upstream receives changes nothing.
        expect(normalizePath(result.upstreamPath)).toEqual(result);
        // What the upstream decodes is exactly what was checked.
        expect(
          result.upstreamPath
            .split('/')
            .map((s) => decodeURIComponent(s))
            .join('/'),
        ).toBe(result.path);
      }),
      { numRuns: 2000 },
    );
  });
});
