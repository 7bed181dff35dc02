import { normalizeIp, type TrustProxy } from '../policy/ip-allow.ts';

/**
 * The address the allowlists and the audit log see.
 *
 * - `trust` undefined (the default): the TCP peer's address. `X-Forwarded-For` is ignored,
 *   so a client cannot choose its own address.
 * - `trust.hops = N`: walk from the socket peer leftwards through `X-Forwarded-For` (the
 *   right-most entry was appended by the nearest proxy). The peer and the N−1 right-most
 *   entries are the trusted proxies; the client is the N-th entry from the right. If the
 *   header has fewer entries, the left-most one is used; if that entry is not an IP
 *   address, the call has no usable client address (undefined: refused when an allowlist
 *   applies). Entries a client put in front of the real ones are never reached.
 */
export function resolveClientIp(
  socketAddress: string | undefined,
  forwardedFor: string | string[] | undefined,
  trust: TrustProxy | undefined,
): string | undefined {
  const peer =
    socketAddress === undefined ? undefined : (normalizeIp(socketAddress)?.address ?? socketAddress);
  if (!trust || forwardedFor === undefined || peer === undefined) return peer;
  if (trust.from && !trust.from.allows(peer)) return peer;
  const header = Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor;
  const entries = header.split(',');
  // entries[length-1] is hop 1 (appended by the proxy nearest to us), and so on leftwards.
  let index = entries.length - trust.hops;
  if (index < 0) index = 0;
  if (entries.length === 0) return peer;
  const chosen = normalizeIp(entries[index]!);
  return chosen?.address;
}
