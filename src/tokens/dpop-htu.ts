/** Comparing a DPoP proof's `htu` with the URL a call reached (RFC 9449 §4.3). */

const UNRESERVED = /^[A-Za-z0-9._~-]$/;

/**
 * An `htu` as compared (RFC 9449 §4.3): scheme, host and path, without query or fragment, after
 * RFC 3986 syntax- and scheme-based normalisation — lower-case scheme and host, no default port,
 * dot segments resolved, an empty path as `/`, percent-encodings in upper case and unreserved
 * characters decoded. Undefined for anything that is not an absolute http(s) URL without user info.
 */
export function normalizeHtu(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return undefined;
  if (url.username !== '' || url.password !== '') return undefined;
  const path = url.pathname.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => {
    const char = String.fromCharCode(Number.parseInt(hex, 16));
    return UNRESERVED.test(char) ? char : `%${hex.toUpperCase()}`;
  });
  return `${url.protocol}//${url.host}${path}`;
}

/**
 * The URL a client called, as the server forms it to compare with `htu`: the server's configured
 * public base URL (scheme, host and any path prefix an ingress strips) followed by the request
 * target's path as received. Never the `Host` header: a proof made for another server (one that
 * received it, say) must not become valid here by naming that server in `Host`. An absolute-form
 * request target gives no match (undefined).
 */
export function expectedHtu(publicBaseUrl: string, requestTarget: string): string | undefined {
  if (!requestTarget.startsWith('/')) return undefined;
  const queryAt = requestTarget.search(/[?#]/);
  const path = queryAt === -1 ? requestTarget : requestTarget.slice(0, queryAt);
  return `${publicBaseUrl.replace(/\/+$/, '')}${path}`;
}
