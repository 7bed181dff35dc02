/**
 * Path normalisation for the proxy: the one place that turns what a client sent into
 * the path the scope is checked against and the path the upstream receives.
 *
 * The rule that makes this safe: decode exactly once, refuse anything whose meaning
 * could differ between us and the upstream, and forward a canonical re-encoding of
 * exactly the segments that were checked. So the upstream never sees a path we did
 * not check, whatever its own decoding rules are.
 *
 * Refused (denial `bad_path`, 400):
 * - `.` and `..` segments, raw or encoded (`%2e%2e`, `%2E.`), and segments that begin
 *   or end with `..` (`..;`, `foo..`): some servers treat those as traversal and
 *   @fastify/reply-from refuses them anyway;
 * - encoded `/` and `\` (`%2f`, `%5c`) and raw backslashes: upstreams disagree on
 *   whether they separate segments;
 * - empty segments (`//`), except one trailing slash;
 * - NUL, C0/C1 control characters and DEL, raw or encoded;
 * - `;` raw or encoded: Tomcat/Spring-style path parameters (`/admin;x=1`) make the
 *   upstream see a different path than the matcher; refused rather than stripped so
 *   what we check is what we send;
 * - a decoded `%` (`%25`): it only serves double encoding, which an upstream that
 *   decodes twice would turn into a second path;
 * - invalid or overlong UTF-8 (`%c0%ae`, `%c0%af`), lone surrogates, bad escapes (`%zz`);
 * - raw non-ASCII bytes (clients must percent-encode them), `#`;
 * - a path longer than MAX_PATH_LENGTH.
 *
 * The query string is passed through unchanged (scopes do not look at it); it is only
 * refused when it holds characters no valid request line carries.
 */

export const MAX_PATH_LENGTH = 2048;

export type NormalizedPath =
  | {
      ok: true;
      /** Decoded segments joined by `/`: what the scope matcher sees (and audit records). */
      path: string;
      /** The canonical re-encoding of `path`: exactly what the upstream receives. */
      upstreamPath: string;
      /** `?…` as sent, or ''. */
      query: string;
    }
  | { ok: false; code: 'bad_path'; message: string };

const refuse = (message: string): NormalizedPath => ({ ok: false, code: 'bad_path', message });

// Characters that stay raw in a canonical segment: RFC 3986 unreserved, sub-delims minus
// `;`, plus `:` and `@`. Anything else is percent-encoded (uppercase hex, UTF-8).
const CANONICAL_PATH = /^(?:\/[A-Za-z0-9\-._~!$&'()*+,=:@]+)*\/?$/;
// Printable ASCII a raw segment may carry (escaped on output if not canonical). Excludes
// `\`, `#`, `;`, space and everything outside 0x21–0x7e.
const RAW_SEGMENT = /^[!-"$-:<-[\]-~]*$/;
const QUERY_CHARS = /^\?[!-~]*$/;
const HEX = /^[0-9A-Fa-f]{2}$/;
// Re-escaping with encodeURIComponent, then putting back the sub-delims it escapes but a
// canonical segment keeps raw, so the output is a fixed point of this function.
const KEEP_RAW = /%(24|26|2B|2C|3D|3A|40)/g;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Normalise the part of the request target after `/<resource>` (`/a/b?x=1`, or '' for the
 * resource root). Pure; no I/O.
 */
export function normalizePath(target: string): NormalizedPath {
  const queryAt = target.indexOf('?');
  const rawPath = queryAt === -1 ? target : target.slice(0, queryAt);
  const query = queryAt === -1 ? '' : target.slice(queryAt);
  if (rawPath.length > MAX_PATH_LENGTH)
    return refuse(`the path is longer than ${MAX_PATH_LENGTH} characters`);
  if (query !== '' && !QUERY_CHARS.test(query)) return refuse('the query string has characters a URL cannot');
  if (rawPath === '') return { ok: true, path: '/', upstreamPath: '/', query };
  if (rawPath.charCodeAt(0) !== 0x2f) return refuse('the path must start with "/"');

  // Fast path: already canonical (the common case); only dot segments need checking.
  if (CANONICAL_PATH.test(rawPath)) {
    if (rawPath.includes('..') || rawPath.includes('/./') || rawPath.endsWith('/.')) {
      const problem = checkDots(rawPath);
      if (problem) return refuse(problem);
    }
    return { ok: true, path: rawPath, upstreamPath: rawPath, query };
  }

  const rawSegments = rawPath.slice(1).split('/');
  const decoded: string[] = [];
  const encoded: string[] = [];
  for (let i = 0; i < rawSegments.length; i++) {
    const raw = rawSegments[i]!;
    if (raw === '') {
      // One trailing slash is meaningful (`/invoices/`); any other empty segment is `//`.
      if (i === rawSegments.length - 1) {
        decoded.push('');
        encoded.push('');
        continue;
      }
      return refuse('the path has an empty segment ("//")');
    }
    if (!RAW_SEGMENT.test(raw)) {
      if (raw.includes('\\')) return refuse('the path has a backslash');
      if (raw.includes(';')) return refuse('the path has ";" (path parameters are not supported)');
      return refuse('the path has characters that must be percent-encoded');
    }
    const segment = raw.includes('%') ? decodeSegment(raw) : raw;
    if (segment === undefined) return refuse('the path has an invalid percent-escape or invalid UTF-8');
    const problem = checkSegment(segment);
    if (problem) return refuse(problem);
    decoded.push(segment);
    encoded.push(
      encodeURIComponent(segment).replace(KEEP_RAW, (_m, hex: string) =>
        String.fromCharCode(parseInt(hex, 16)),
      ),
    );
  }
  return { ok: true, path: `/${decoded.join('/')}`, upstreamPath: `/${encoded.join('/')}`, query };
}

function checkDots(path: string): string | undefined {
  for (const segment of path.slice(1).split('/')) {
    if (segment === '.' || segment === '..') return 'the path has a "." or ".." segment';
    if (segment.startsWith('..') || segment.endsWith('..'))
      return 'the path has a segment beginning or ending in ".."';
  }
  return undefined;
}

function checkSegment(segment: string): string | undefined {
  if (segment === '') return 'the path has an empty segment';
  if (segment === '.' || segment === '..') return 'the path has a "." or ".." segment';
  if (segment.startsWith('..') || segment.endsWith('..'))
    return 'the path has a segment beginning or ending in ".."';
  for (let i = 0; i < segment.length; i++) {
    const c = segment.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) return 'the path has a NUL or control character';
    if (c === 0x2f) return 'the path has an encoded slash (%2F)';
    if (c === 0x5c) return 'the path has a backslash';
    if (c === 0x3b) return 'the path has ";" (path parameters are not supported)';
    if (c === 0x25) return 'the path has an encoded "%" (double encoding is not supported)';
  }
  return undefined;
}

/** Percent-decode one segment to UTF-8; undefined for a bad escape or invalid/overlong UTF-8. */
function decodeSegment(raw: string): string | undefined {
  const bytes = new Uint8Array(raw.length);
  let n = 0;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 0x25) {
      const hex = raw.slice(i + 1, i + 3);
      if (!HEX.test(hex)) return undefined;
      bytes[n++] = parseInt(hex, 16);
      i += 2;
    } else {
      bytes[n++] = c;
    }
  }
  try {
    // fatal: overlong forms (%c0%ae), surrogates (%ed%a0%80) and truncated sequences throw.
    return utf8.decode(bytes.subarray(0, n));
  } catch {
    return undefined;
  }
}
