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
   * The captured text, masked with the scope's rules when it is JSON. A complete JSON body is
   * parsed and masked exactly; a truncated one is masked lexically (`maskJsonPrefix`). A body
   * that is not JSON under a scope with `mask_required` is not kept at all: it could not be
   * masked, so keeping it would store what the client was never allowed to see unmasked.
   */
  result(contentType: string | undefined, mask: MaskRules | undefined, maskRequired: boolean): CapturedBody {
    const bytes = this.buffer ? this.buffer.subarray(0, this.length) : Buffer.alloc(0);
    const truncated = this.total > this.length;
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
