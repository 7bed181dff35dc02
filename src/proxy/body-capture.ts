import type { MaskRules } from '../policy/mask-paths.ts';
import type { CapturedBody } from '../shared/call-record.ts';
import { maskJsonPrefix, maskValue, stringifyJson } from './json-mask.ts';

/**
 * Call capture (policy `capture: { bodies: true, max_bytes }`): the first `max_bytes` of a
 * body as it streams past. The buffer is allocated once at `max_bytes` and chunks are copied
 * into it, so no more than that is ever held per body (a `subarray` of a chunk would keep the
 * whole chunk alive); the rest of the body is only counted.
 */
export class BodyCapture {
  private buffer: Buffer | undefined;
  private length = 0;
  total = 0;

  constructor(private readonly maxBytes: number) {}

  push(chunk: Buffer): void {
    this.total += chunk.length;
    const room = this.maxBytes - this.length;
    if (room <= 0) return;
    this.buffer ??= Buffer.allocUnsafe(this.maxBytes);
    const n = Math.min(room, chunk.length);
    chunk.copy(this.buffer, this.length, 0, n);
    this.length += n;
  }

  /**
   * The captured text, masked with the scope's rules when it is JSON, with `secrets` (what the
   * proxy injected upstream) taken out first whatever the type: an upstream that echoes its
   * request (a debug endpoint, an error page quoting headers) must not put its own credential
   * into the audit log. A complete JSON body is
   * parsed and masked exactly; a truncated one is masked lexically (`maskJsonPrefix`). A body
   * that is not JSON under a scope with `mask_required` is not kept at all: it could not be
   * masked, so keeping it would store what the client was never allowed to see unmasked.
   */
  result(
    contentType: string | undefined,
    mask: MaskRules | undefined,
    maskRequired: boolean,
    secrets: readonly string[] = [],
  ): CapturedBody {
    const truncated = this.total > this.length;
    const captured = this.buffer ? this.buffer.subarray(0, this.length) : Buffer.alloc(0);
    const bytes = secrets.length > 0 ? redactSecrets(captured, secrets, truncated) : captured;
    const json = isJsonType(contentType);
    if (mask && !json && maskRequired && this.total > 0) {
      return {
        text: '',
        encoding: 'utf8',
        bytes: this.total,
        truncated: true,
        omitted: 'not JSON; cannot be masked',
      };
    }
    if (!json && !isTextType(contentType)) {
      return { text: bytes.toString('base64'), encoding: 'base64', bytes: this.total, truncated };
    }
    let text = bytes.toString('utf8');
    if (mask && json) {
      if (truncated) text = maskJsonPrefix(text, mask);
      else {
        try {
          text = stringifyJson(maskValue(JSON.parse(text), mask));
        } catch {
          text = maskJsonPrefix(text, mask);
        }
      }
      // "[masked]" can be longer than what it replaced; the stored text stays within max_bytes.
      if (Buffer.byteLength(text) > this.maxBytes) {
        text = Buffer.from(text).subarray(0, this.maxBytes).toString('utf8');
        return { text, encoding: 'utf8', bytes: this.total, truncated: true };
      }
    }
    return { text, encoding: 'utf8', bytes: this.total, truncated };
  }
}

const JSON_TYPE = /^\s*(?:application\/(?:[a-z0-9.!#$&^_-]+\+)?json|text\/json)\s*(?:;|$)/i;
const TEXT_TYPE =
  /^\s*(?:text\/|application\/(?:x-www-form-urlencoded|xml|javascript)|[a-z]+\/[a-z0-9.+-]*\+xml)/i;

export function isJsonType(contentType: string | undefined): boolean {
  return contentType !== undefined && JSON_TYPE.test(contentType);
}

function isTextType(contentType: string | undefined): boolean {
  return contentType !== undefined && TEXT_TYPE.test(contentType);
}

const REDACTED = Buffer.from('[redacted]');
/** A secret's tail shorter than this, cut off by `max_bytes`, is left: it could be any text. */
const MIN_PARTIAL = 4;

/**
 * `bytes` with every occurrence of each secret replaced by `[redacted]`, as injected and as JSON
 * would escape it, and the token alone for a `<scheme> <token>` value (an upstream may echo
 * just the token). When the capture was cut at `max_bytes`, a secret's beginning at the very
 * end is cut off too: the part of a secret is still a part of it.
 */
export function redactSecrets(bytes: Buffer, secrets: readonly string[], truncated: boolean): Buffer {
  const needles = [...new Set(secrets.flatMap(secretForms))]
    .map((form) => Buffer.from(form))
    // Longest first, so a whole value goes before the token inside it.
    .sort((a, b) => b.length - a.length);
  let out = bytes;
  for (const needle of needles) {
    if (out.indexOf(needle) < 0) continue;
    const parts: Buffer[] = [];
    let from = 0;
    for (let at = out.indexOf(needle); at >= 0; at = out.indexOf(needle, from)) {
      parts.push(out.subarray(from, at), REDACTED);
      from = at + needle.length;
    }
    parts.push(out.subarray(from));
    out = Buffer.concat(parts);
  }
  if (!truncated) return out;
  for (const needle of needles) {
    for (let keep = Math.min(needle.length - 1, out.length); keep >= MIN_PARTIAL; keep--) {
      if (out.subarray(out.length - keep).equals(needle.subarray(0, keep))) {
        return Buffer.concat([out.subarray(0, out.length - keep), REDACTED]);
      }
    }
  }
  return out;
}

function secretForms(secret: string): string[] {
  if (secret.length < MIN_PARTIAL) return secret.length > 0 ? [secret] : [];
  const forms = [secret, JSON.stringify(secret).slice(1, -1)];
  const token = /^[A-Za-z][A-Za-z0-9+.-]* +(\S.*)$/.exec(secret)?.[1];
  if (token && token.length >= 8) forms.push(token, JSON.stringify(token).slice(1, -1));
  return forms;
}
