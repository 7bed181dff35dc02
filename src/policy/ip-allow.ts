import { BlockList, isIPv4, isIPv6 } from 'node:net';

/**
 * IP allowlists (CIDR, IPv4 and IPv6) as the policy writes them, compiled for the proxy, which
 * checks each call's client address against them (src/proxy/client-ip.ts finds that address).
 *
 * Matching uses Node's native `net.BlockList`. Addresses are normalised first so that one
 * written form never slips past another: an IPv4-mapped IPv6 address (`::ffff:10.1.2.3`, what
 * a dual-stack socket reports for an IPv4 peer) is checked as the IPv4 address it carries, and
 * a mapped CIDR (`::ffff:10.0.0.0/104`) is stored as the IPv4 CIDR it means (`10.0.0.0/8`).
 */

export type CidrParse =
  | { ok: true; address: string; prefix: number; family: 'ipv4' | 'ipv6' }
  | { ok: false; message: string };

const MAPPED = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i;
const MAPPED_HEX = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i;

/**
 * The canonical form of a client address: IPv4 for IPv4 and IPv4-mapped IPv6, IPv6 otherwise
 * (zone index dropped); undefined when it is not an IP address at all.
 */
export function normalizeIp(raw: string): { address: string; family: 'ipv4' | 'ipv6' } | undefined {
  let text = raw.trim();
  // `[2001:db8::1]` as some proxies write IPv6 in X-Forwarded-For.
  if (text.startsWith('[') && text.endsWith(']')) text = text.slice(1, -1);
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  if (isIPv4(text)) return { address: text, family: 'ipv4' };
  if (!isIPv6(text)) return undefined;
  const dotted = MAPPED.exec(text);
  if (dotted && isIPv4(dotted[1]!)) return { address: dotted[1]!, family: 'ipv4' };
  const hex = MAPPED_HEX.exec(text);
  if (hex) {
    const hi = Number.parseInt(hex[1]!, 16);
    const lo = Number.parseInt(hex[2]!, 16);
    return { address: `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`, family: 'ipv4' };
  }
  // Other spellings of a mapped address (`0:0:0:0:0:ffff:a01:203`): expand and look.
  const groups = expandIPv6(text);
  if (groups?.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    const hi = groups[6]!;
    const lo = groups[7]!;
    return { address: `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`, family: 'ipv4' };
  }
  return { address: text.toLowerCase(), family: 'ipv6' };
}

/** Eight 16-bit groups of a valid IPv6 address (embedded dotted IPv4 allowed). */
function expandIPv6(text: string): number[] | undefined {
  let body = text;
  let tail: number[] = [];
  const lastColon = body.lastIndexOf(':');
  const last = body.slice(lastColon + 1);
  if (last.includes('.')) {
    const parts = last.split('.').map(Number);
    tail = [(parts[0]! << 8) | parts[1]!, (parts[2]! << 8) | parts[3]!];
    body = `${body.slice(0, lastColon + 1)}0`;
  }
  const [left, right] = body.includes('::') ? body.split('::') : [body, undefined];
  const parse = (s: string | undefined) => (s ? s.split(':').map((g) => Number.parseInt(g, 16)) : []);
  const head = parse(left);
  const rest = parse(right);
  if (tail.length > 0) (rest.length > 0 ? rest : head).pop();
  const fill = 8 - head.length - rest.length - tail.length;
  if (fill < 0) return undefined;
  return [...head, ...(right !== undefined ? new Array<number>(fill).fill(0) : []), ...rest, ...tail];
}

/** Parse `10.0.0.0/8`, `2001:db8::/32`, a bare address (a /32 or /128), or a mapped CIDR. */
export function parseCidr(text: string): CidrParse {
  const slash = text.indexOf('/');
  const addressText = slash >= 0 ? text.slice(0, slash) : text;
  const prefixText = slash >= 0 ? text.slice(slash + 1) : undefined;
  const ip = normalizeIp(addressText);
  if (!ip || addressText.includes('%')) {
    return { ok: false, message: `"${text}" is not an IPv4 or IPv6 address or CIDR` };
  }
  // Written as IPv6 (`::ffff:a.b.c.d`) but meaning IPv4: its prefix counts 128 bits.
  const mapped = ip.family === 'ipv4' && !isIPv4(addressText.trim());
  const max = ip.family === 'ipv4' && !mapped ? 32 : 128;
  let prefix = max;
  if (prefixText !== undefined) {
    if (!/^[0-9]{1,3}$/.test(prefixText) || Number(prefixText) > max) {
      return { ok: false, message: `"${text}" has a prefix length outside 0–${max}` };
    }
    prefix = Number(prefixText);
  }
  if (mapped) {
    // `::ffff:a.b.c.d/n` covers IPv4 addresses only when n ≥ 96; below that it spans non-mapped space.
    if (prefix < 96) {
      return { ok: false, message: `"${text}": an IPv4-mapped CIDR needs a prefix of at least 96` };
    }
    prefix -= 96;
  }
  return { ok: true, address: ip.address, prefix, family: ip.family };
}

/** A compiled allowlist. `source` keeps the CIDRs as written, for messages and the audit log. */
export interface IpAllowList {
  readonly source: readonly string[];
  allows(address: string): boolean;
}

/** Throws on an invalid entry; the policy schema validates each entry with `parseCidr` first. */
export function createIpAllowList(cidrs: readonly string[]): IpAllowList {
  const list = new BlockList();
  for (const text of cidrs) {
    const cidr = parseCidr(text);
    if (!cidr.ok) throw new Error(cidr.message);
    list.addSubnet(cidr.address, cidr.prefix, cidr.family);
  }
  return {
    source: cidrs,
    allows(address) {
      const ip = normalizeIp(address);
      return ip !== undefined && list.check(ip.address, ip.family);
    },
  };
}

/**
 * Which `X-Forwarded-For` entry is the client, when the proxy sits behind load balancers.
 * `hops` is how many trusted proxies stand in front of jitgate; `from` (optional) limits the
 * trust to connections whose peer is in that list (a request from elsewhere is taken at its
 * socket address, whatever it claims).
 */
export interface TrustProxy {
  hops: number;
  from: IpAllowList | undefined;
}
