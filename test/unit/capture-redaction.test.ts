import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BodyCapture, redactSecrets } from '../../src/proxy/body-capture.ts';

// Without brackets: "[redacted]" next to text could spell a secret made of its own letters.
const secretArb = fc
  .string({ minLength: 4, maxLength: 40, unit: 'grapheme-ascii' })
  .filter((secret) => !/[[\]]/.test(secret));
const textArb = fc.string({ maxLength: 60 });

/** Captures `text` at `maxBytes` as the proxy would, with `secrets` injected upstream. */
function captured(text: string, maxBytes: number, secrets: string[], type = 'text/plain'): string {
  const capture = new BodyCapture(maxBytes);
  capture.push(Buffer.from(text));
  return capture.result(type, undefined, false, secrets).text;
}

describe('captured bodies never keep what the proxy injected', () => {
  it('takes out every occurrence of a secret, wherever it lies', () => {
    fc.assert(
      fc.property(secretArb, textArb, textArb, textArb, (secret, a, b, c) => {
        const text = captured(`${a}${secret}${b}${secret}${c}`, 4096, [secret]);
        expect(text).not.toContain(secret);
        expect(text).toContain('[redacted]');
      }),
    );
  });

  it('takes out a secret cut off by max_bytes, down to its first four bytes', () => {
    fc.assert(
      fc.property(secretArb, textArb, fc.integer({ min: 4, max: 40 }), (secret, before, keep) => {
        const cut = Math.min(keep, secret.length - 1);
        fc.pre(cut >= 4);
        const prefix = Buffer.from(before);
        const bytes = Buffer.concat([prefix, Buffer.from(secret)]);
        const out = redactSecrets(bytes.subarray(0, prefix.length + cut), [secret], true);
        expect(out.subarray(out.length - cut).equals(Buffer.from(secret).subarray(0, cut))).toBe(false);
        expect(out.toString()).toContain('[redacted]');
      }),
    );
  });

  it('takes out the JSON-escaped form, and the token of a "<scheme> <token>" value', () => {
    fc.assert(
      fc.property(secretArb, (secret) => {
        const value = `Bearer ${secret}-0123456789`;
        const asJson = JSON.stringify({ echoed: value, alone: `${secret}-0123456789` });
        const text = captured(asJson, 4096, [value], 'application/json');
        expect(text).not.toContain(JSON.stringify(value).slice(1, -1));
        expect(text).not.toContain(JSON.stringify(`${secret}-0123456789`).slice(1, -1));
      }),
    );
  });

  it('leaves a body without the secrets as it was, binary ones too', () => {
    expect(captured('nothing to see', 4096, ['up-secret-123'])).toBe('nothing to see');
    const capture = new BodyCapture(64);
    capture.push(Buffer.concat([Buffer.from([0, 1]), Buffer.from('up-secret-123'), Buffer.from([2])]));
    const binary = capture.result('application/octet-stream', undefined, false, ['up-secret-123']);
    expect(Buffer.from(binary.text, 'base64').toString('latin1')).toBe('\u0000\u0001[redacted]\u0002');
  });
});
