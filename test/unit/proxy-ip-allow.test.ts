import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createIpAllowList, normalizeIp, parseCidr } from '../../src/policy/ip-allow.ts';
import { resolveClientIp } from '../../src/proxy/client-ip.ts';

const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join('.'));
const toInt = (ip: string) => ip.split('.').reduce((n, part) => n * 256 + Number(part), 0);
const fromInt = (n: number) => [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');

describe('CIDR allowlists: edge cases', () => {
  it.each([
    ['10.0.0.0/8', '10.255.255.255', true],
    ['10.0.0.0/8', '11.0.0.0', false],
    ['10.0.0.0/8', '9.255.255.255', false],
    ['0.0.0.0/0', '203.0.113.9', true],
    ['192.0.2.1', '192.0.2.1', true], // bare address = /32
    ['192.0.2.1', '192.0.2.2', false],
    ['192.0.2.1/32', '::ffff:192.0.2.1', true], // v4-mapped v6 peer
    ['192.0.2.1/32', '::ffff:c000:201', true], // the same, hex spelling
    ['192.0.2.1/32', '0:0:0:0:0:ffff:c000:201', true], // and fully written out
    ['::ffff:192.0.2.0/120', '192.0.2.77', true], // mapped CIDR means the v4 /24
    ['::ffff:192.0.2.0/120', '192.0.3.1', false],
    ['2001:db8::/32', '2001:db8:ffff::1', true],
    ['2001:db8::/32', '2001:db9::1', false],
    ['2001:db8::1/128', '2001:0db8:0000::0001', true], // another spelling of the same address
    ['fe80::/10', 'fe80::1%eth0', true], // zone index ignored
    ['::/0', '2001:db8::1', true],
    ['::/0', '192.0.2.1', true], // ::/0 spans ::ffff:0:0/96, the mapped IPv4 space
    ['2001:db8::/32', '192.0.2.1', false], // other IPv6 blocks never cover IPv4 clients
    ['::1/128', '127.0.0.1', false],
    ['10.0.0.0/8', 'not-an-ip', false],
    ['10.0.0.0/8', '', false],
  ])('%s allows %s: %s', (cidr, address, expected) => {
    expect(createIpAllowList([cidr]).allows(address)).toBe(expected);
  });

  it.each([
    ['10.0.0.0/33', /prefix length outside 0–32/],
    ['2001:db8::/129', /prefix length outside 0–128/],
    ['10.0.0.0/-1', /prefix length/],
    ['10.0.0.0/', /prefix length/],
    ['10.0.0', /not an IPv4 or IPv6/],
    ['256.0.0.1/8', /not an IPv4 or IPv6/],
    ['fe80::1%eth0/64', /not an IPv4 or IPv6/],
    ['::ffff:10.0.0.0/95', /at least 96/],
  ])('refuses %s', (cidr, message) => {
    const parsed = parseCidr(cidr);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.message).toMatch(message);
  });

  it('normalises mapped and bracketed addresses', () => {
    expect(normalizeIp('::ffff:10.1.2.3')).toEqual({ address: '10.1.2.3', family: 'ipv4' });
    expect(normalizeIp('[2001:db8::1]')).toEqual({ address: '2001:db8::1', family: 'ipv6' });
    expect(normalizeIp('::ffff:1.2.3.999')).toBeUndefined();
  });
});

describe('CIDR allowlists: properties', () => {
  it('an IPv4 CIDR holds exactly the addresses that share its prefix, in both spellings', () => {
    fc.assert(
      fc.property(v4, fc.integer({ min: 0, max: 32 }), v4, (base, prefix, probe) => {
        const list = createIpAllowList([`${base}/${prefix}`]);
        const size = 2 ** (32 - prefix);
        const inside = Math.floor(toInt(base) / size) === Math.floor(toInt(probe) / size);
        expect(list.allows(probe)).toBe(inside);
        expect(list.allows(`::ffff:${probe}`)).toBe(inside);
      }),
    );
  });

  it('the first and last address of a block are in it, their neighbours outside are not', () => {
    fc.assert(
      fc.property(v4, fc.integer({ min: 1, max: 31 }), (base, prefix) => {
        const size = 2 ** (32 - prefix);
        const first = Math.floor(toInt(base) / size) * size;
        const list = createIpAllowList([`${base}/${prefix}`]);
        expect(list.allows(fromInt(first))).toBe(true);
        expect(list.allows(fromInt(first + size - 1))).toBe(true);
        if (first > 0) expect(list.allows(fromInt(first - 1))).toBe(false);
        if (first + size < 2 ** 32) expect(list.allows(fromInt(first + size))).toBe(false);
      }),
    );
  });

  it('a mapped CIDR ::ffff:a.b.c.d/(96+n) is the same list as a.b.c.d/n', () => {
    fc.assert(
      fc.property(v4, fc.integer({ min: 0, max: 32 }), v4, (base, prefix, probe) => {
        const mapped = createIpAllowList([`::ffff:${base}/${96 + prefix}`]);
        const plain = createIpAllowList([`${base}/${prefix}`]);
        expect(mapped.allows(probe)).toBe(plain.allows(probe));
      }),
    );
  });
});

describe('client address and X-Forwarded-For', () => {
  const oneHop = { hops: 1, from: undefined };

  it('trust off (the default): the socket peer, whatever the header claims', () => {
    expect(resolveClientIp('198.51.100.7', '203.0.113.1', undefined)).toBe('198.51.100.7');
    expect(resolveClientIp('::ffff:198.51.100.7', undefined, undefined)).toBe('198.51.100.7');
  });

  it('one trusted hop: the right-most entry (what our load balancer appended), not what the client wrote', () => {
    // The client sent "X-Forwarded-For: 203.0.113.1"; the balancer appended the real peer.
    expect(resolveClientIp('10.0.0.2', '203.0.113.1, 198.51.100.7', oneHop)).toBe('198.51.100.7');
    expect(resolveClientIp('10.0.0.2', ['203.0.113.1', '198.51.100.7'], oneHop)).toBe('198.51.100.7');
  });

  it('two hops: the second entry from the right; fewer entries: the left-most', () => {
    const two = { hops: 2, from: undefined };
    expect(resolveClientIp('10.0.0.2', '1.1.1.1, 198.51.100.7, 10.0.0.9', two)).toBe('198.51.100.7');
    expect(resolveClientIp('10.0.0.2', '198.51.100.7', two)).toBe('198.51.100.7');
  });

  it('trust limited by `from`: a peer outside it is taken at its socket address', () => {
    const trust = { hops: 1, from: createIpAllowList(['10.0.0.0/8']) };
    expect(resolveClientIp('10.0.0.2', '198.51.100.7', trust)).toBe('198.51.100.7');
    expect(resolveClientIp('192.0.2.50', '198.51.100.7', trust)).toBe('192.0.2.50');
  });

  it('a trusted entry that is not an address gives no address (refused where a list applies)', () => {
    expect(resolveClientIp('10.0.0.2', 'unknown', oneHop)).toBeUndefined();
    expect(resolveClientIp('10.0.0.2', '[2001:db8::5]', oneHop)).toBe('2001:db8::5');
  });
});

describe('anomaly detectors see allowlist denials', () => {
  it('a burst of ip_not_allowed calls fires denied_burst', async () => {
    const { detectDeniedBurst, emptyState } = await import('../../src/anomaly/detectors.ts');
    let state = emptyState();
    const rule = { count: 3, windowSeconds: 60, action: 'alert' as const };
    const findings = [0, 1, 2].map((i) => {
      const out = detectDeniedBurst(
        state,
        {
          at: new Date(1_000_000 + i * 1000),
          requestId: `r${i}`,
          resource: 'closed-api',
          grantId: undefined,
          userId: undefined,
          scope: undefined,
          method: 'GET',
          path: '',
          clientIp: '192.0.2.99',
          decision: 'ip_not_allowed',
          status: 403,
          responseBytes: 0,
          latencyMs: 1,
        },
        rule,
      );
      state = out.state;
      return out.finding;
    });
    expect(findings[2]).toMatchObject({ rule: 'denied_burst', evidence: { lastDecision: 'ip_not_allowed' } });
  });
});
