import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  isUnrestrictedWrite,
  parseScopeRule,
  pathSegments,
  rulesAllow,
  type ScopeRule,
} from '../../src/policy/scope-rules.ts';

function rule(source: string): ScopeRule {
  const parsed = parseScopeRule(source);
  if (!parsed.ok) throw new Error(parsed.message);
  return parsed.rule;
}

const allows = (source: string, method: string, path: string) => rulesAllow([rule(source)], method, path);

describe('scope rules', () => {
  it.each([
    ['GET /invoices/**', 'GET', '/invoices', true],
    ['GET /invoices/**', 'GET', '/invoices/', true],
    ['GET /invoices/**', 'GET', '/invoices/1/lines/2', true],
    ['GET /invoices/**', 'GET', '/invoicesX', false],
    ['GET /invoices/**', 'GET', '/customers/1', false],
    ['GET /invoices/**', 'POST', '/invoices/1', false],
    ['GET /invoices/**', 'HEAD', '/invoices/1', true],
    ['GET /customers/*', 'GET', '/customers/42', true],
    ['GET /customers/*', 'GET', '/customers', false],
    ['GET /customers/*', 'GET', '/customers/42/orders', false],
    ['POST /invoices', 'POST', '/invoices', true],
    ['POST /invoices', 'POST', '/invoices/1', false],
    ['PATCH /invoices/*', 'PATCH', '/invoices/7', true],
    ['* /users/**', 'DELETE', '/users/1', true],
    ['* /users/**', 'DELETE', '/groups/1', false],
    ['GET /reports/*.csv', 'GET', '/reports/may.csv', true],
    ['GET /reports/*.csv', 'GET', '/reports/may.json', false],
    ['GET /a/**/z', 'GET', '/a/z', true],
    ['GET /a/**/z', 'GET', '/a/b/c/z', true],
    ['GET /a/**/z', 'GET', '/a/b/c', false],
    ['GET /', 'GET', '/', true],
    ['GET /', 'GET', '/x', false],
  ])('%s allows %s %s: %s', (source, method, path, expected) => {
    expect(allows(source, method, path)).toBe(expected);
  });

  it.each([
    ['GET invoices', 'expects "METHOD /path"'],
    ['FETCH /x', 'unknown method'],
    ['GET /a//b', 'no empty segments'],
    ['GET /a/../b', '"." or ".."'],
    ['GET /a/**b', 'whole segment'],
    ['GET /a/%2f', 'characters a path cannot'],
    ['GET /a\\b', 'characters a path cannot'],
  ])('refuses %j', (source, message) => {
    const parsed = parseScopeRule(source);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.message).toContain(message);
  });

  it('flags writes to paths the rule does not name', () => {
    for (const source of ['POST /**', '* /**', 'POST /*/**', 'DELETE /**/*', '* /*', 'PATCH /*/*']) {
      expect(isUnrestrictedWrite(rule(source)), source).toBe(true);
    }
    for (const source of [
      'GET /**',
      'HEAD /*/**',
      'POST /invoices/**',
      'DELETE /*/items/*',
      'PUT /inv*/**',
    ]) {
      expect(isUnrestrictedWrite(rule(source)), source).toBe(false);
    }
  });

  it('property: a writing rule is flagged exactly when none of its segments names anything', () => {
    const wild = fc.constantFrom('*', '**');
    const named = fc.oneof(fc.stringMatching(/^[a-z]{1,5}$/), fc.stringMatching(/^[a-z]{1,3}\*$/));
    const method = fc.constantFrom('POST', 'PUT', 'PATCH', 'DELETE', '*');
    fc.assert(
      fc.property(method, fc.array(fc.oneof(wild, named), { minLength: 1, maxLength: 5 }), (m, segments) => {
        const parsed = rule(`${m} /${segments.join('/')}`);
        const namesSomething = segments.some((s) => s !== '*' && s !== '**');
        expect(isUnrestrictedWrite(parsed)).toBe(!namesSomething);
      }),
    );
  });

  const segment = fc.stringMatching(/^[a-z0-9]{1,6}$/);
  const path = fc.array(segment, { maxLength: 6 }).map((s) => `/${s.join('/')}`);

  it('a literal rule allows exactly its own path', () => {
    fc.assert(
      fc.property(path, path, (a, b) => {
        expect(allows(`GET ${a}`, 'GET', b)).toBe(pathSegments(a).join('/') === pathSegments(b).join('/'));
      }),
    );
  });

  it('prefix/** allows exactly the paths under the prefix', () => {
    fc.assert(
      fc.property(
        fc.array(segment, { maxLength: 3 }),
        fc.array(segment, { maxLength: 4 }),
        path,
        (prefix, rest, other) => {
          const prefixPath = `/${prefix.join('/')}`;
          const source = prefix.length === 0 ? 'GET /**' : `GET ${prefixPath}/**`;
          expect(allows(source, 'GET', `/${[...prefix, ...rest].join('/')}`)).toBe(true);
          const otherSegments = pathSegments(other);
          const underPrefix = prefix.every((s, i) => otherSegments[i] === s);
          expect(allows(source, 'GET', other)).toBe(underPrefix);
        },
      ),
    );
  });

  it('* matches one segment and only one', () => {
    fc.assert(
      fc.property(
        fc.array(segment, { maxLength: 3 }),
        fc.array(segment, { maxLength: 3 }),
        (prefix, tail) => {
          const source = `GET /${[...prefix, '*'].join('/')}`;
          const candidate = `/${[...prefix, ...tail].join('/')}`;
          expect(allows(source, 'GET', candidate)).toBe(tail.length === 1);
        },
      ),
    );
  });

  it('never throws on arbitrary rule text or paths', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (source, candidate) => {
        const parsed = parseScopeRule(source);
        if (parsed.ok) rulesAllow([parsed.rule], 'GET', `/${candidate}`);
      }),
    );
  });
});
