import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type UpstreamCache, upstreamTarget } from '../../src/proxy/direct-forward.ts';

/** The direct forward parses a resource's upstream once; each call's target must be what `new URL` gives. */
const viaUrl = (upstream: string, path: string) => {
  const url = new URL(upstream + path);
  return { origin: url.origin, host: url.host, path: url.pathname };
};

const upstreams = fc.constantFrom(
  'http://127.0.0.1:8080',
  'http://127.0.0.1:8080/',
  'https://api.example.com/base',
  'https://api.example.com/base/',
  'http://Example.COM:80/v1/a%20b',
  'http://h/./x',
  'http://h/a/../b',
  'http://h/%2E',
  'http://h/p?q=1',
  'http://h/p#f',
);
const segment = fc.oneof(
  fc.string({
    unit: fc.constantFrom(...'aZ09-._~!$&\'()*+,;=:@%2eE/ "<>`{}|\\^[]?#é'.split('')),
    maxLength: 10,
  }),
  fc.constantFrom('.', '..', '%2e', '%2E%2e', 'a.b', '%41', '%zz', ''),
);
const paths = fc.array(segment, { maxLength: 5 }).map((s) => `/${s.join('/')}`);

describe('upstreamTarget', () => {
  it('gives what new URL(upstream + path) gives, for any path, parsing the upstream once', () => {
    const cache: UpstreamCache = new Map();
    fc.assert(
      fc.property(upstreams, fc.oneof(paths, fc.constantFrom('', '/', '//x', '/a/./b')), (upstream, path) => {
        expect(upstreamTarget(cache, upstream, path)).toEqual(viaUrl(upstream, path));
      }),
      { numRuns: 5_000 },
    );
    expect(cache.size).toBeLessThanOrEqual(10);
  });
});
