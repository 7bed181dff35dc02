import type { IncomingHttpHeaders } from 'node:http';
import type { MaskRules } from '../policy/mask-paths.ts';
import { isJsonType } from './body-capture.ts';
import type { Denial } from './denial.ts';
import { maskValue, stringifyJson } from './json-mask.ts';

/**
 * Response masking (policy `mask` per scope). JSON bodies are buffered up to the resource's
 * `mask_max_bytes`, parsed, masked and re-serialised; the client receives the masked body
 * with a new length. A larger body is refused with 502 `mask_too_large` — by its
 * Content-Length before anything is read, or as soon as a streamed (chunked) body passes the
 * bound — and never sent unmasked or partly masked. The proxy asks upstream for an
 * uncompressed body (`accept-encoding: identity`); a compressed answer anyway is refused
 * (`mask_unsupported`), since it cannot be masked. Other content types pass untouched, unless
 * the scope says `mask_required: true`, then they are refused with 502 `mask_unsupported`.
 *
 * An answer that carries no body (to a HEAD, or a 204 or 304) has nothing to mask and passes.
 * An answer that says two things about its body — two Content-Type or two Content-Encoding
 * headers — is refused with 502 `ambiguous_response` on every masked scope, `mask_required` or
 * not: which one a client believes is up to the client, so neither can be trusted to say the
 * body needs no masking.
 */
export type MaskPlan = { kind: 'pass' } | { kind: 'buffer' } | { kind: 'refuse'; denial: Denial };

const PASS: MaskPlan = Object.freeze({ kind: 'pass' });
const BUFFER: MaskPlan = Object.freeze({ kind: 'buffer' });

export function planMask(
  headers: IncomingHttpHeaders,
  maskRequired: boolean,
  maxBytes: number,
  bodyless = false,
): MaskPlan {
  if (bodyless) return PASS;
  const type: unknown = headers['content-type'];
  const encoding: unknown = headers['content-encoding'];
  if (typeof type !== 'string' && type !== undefined) return ambiguous('Content-Type');
  if (typeof encoding !== 'string' && encoding !== undefined) return ambiguous('Content-Encoding');
  const encoded = encoding !== undefined && encoding.toLowerCase() !== 'identity';
  if (!isJsonType(type)) {
    if (!maskRequired) return PASS;
    return refuse(
      'mask_unsupported',
      `The upstream answered with ${type ?? 'no content type'}, which cannot be masked.`,
    );
  }
  if (encoded) {
    return refuse(
      'mask_unsupported',
      `The upstream answered with a ${encoding}-encoded body, which cannot be masked.`,
    );
  }
  const length = Number(headers['content-length']);
  if (Number.isFinite(length) && length > maxBytes) return tooLarge(maxBytes);
  return BUFFER;
}

const refuse = (code: Denial['code'], message: string): MaskPlan => ({
  kind: 'refuse',
  denial: { code, message },
});
const ambiguous = (header: string): MaskPlan =>
  refuse(
    'ambiguous_response',
    `The upstream sent more than one ${header} header; the response cannot be masked.`,
  );
const tooLarge = (maxBytes: number): MaskPlan =>
  refuse('mask_too_large', `The response is larger than the ${maxBytes} bytes this proxy masks.`);

/**
 * Reads `stream` whole (at most `maxBytes`) and masks it. Calls `done` exactly once: with the
 * masked body, or with a denial (too large, not valid JSON), or with the stream's error.
 */
export function bufferAndMask(
  stream: NodeJS.ReadableStream,
  maxBytes: number,
  rules: MaskRules,
  done: (
    result: { ok: true; body: Buffer } | { ok: false; denial: Denial } | { ok: false; error: Error },
  ) => void,
): void {
  const chunks: Buffer[] = [];
  let total = 0;
  let finished = false;
  const finish = (result: Parameters<typeof done>[0]) => {
    if (finished) return;
    finished = true;
    done(result);
  };
  stream.on('data', (chunk: Buffer) => {
    if (finished) return;
    total += chunk.length;
    if (total > maxBytes) {
      chunks.length = 0;
      // Stop reading: the rest of the body is never buffered.
      (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
      const plan = tooLarge(maxBytes);
      if (plan.kind === 'refuse') finish({ ok: false, denial: plan.denial });
      return;
    }
    chunks.push(chunk);
  });
  stream.on('error', (error: Error) => finish({ ok: false, error }));
  stream.on('end', () => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.concat(chunks, total).toString('utf8'));
    } catch {
      finish({
        ok: false,
        denial: {
          code: 'mask_unsupported',
          message: 'The upstream sent a JSON content type with a body that is not JSON.',
        },
      });
      return;
    }
    let masked: string;
    try {
      masked = stringifyJson(maskValue(parsed, rules));
    } catch {
      // Nothing a parsed document contains should get here; if it does, the body stays unsent.
      finish({
        ok: false,
        denial: { code: 'mask_unsupported', message: 'The response could not be masked.' },
      });
      return;
    }
    finish({ ok: true, body: Buffer.from(masked) });
  });
}

/** Whether a response to `method` with `status` carries a body at all (RFC 9110 §6.4.1). */
export function hasNoBody(method: string, status: number): boolean {
  return method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200);
}
