/**
 * Reading COPY text on bytes: column ends, jsonb scalars that print canonically as they are,
 * and COPY's escapes for the lines that must be decoded.
 */

export const TAB = 0x09;
export const NEWLINE = 0x0a;
export const QUOTE = 0x22;
export const BACKSLASH = 0x5c;
export const ZERO = 0x30;
export const NINE = 0x39;
export const bytes = (text: string) => new Uint8Array(Buffer.from(text, 'utf8'));
export const NULL = bytes('null');
const TRUE = bytes('true');
const FALSE = bytes('false');
/**
 * End of a text column that JSON.stringify would print as is, in quotes: the index of the
 * tab after it, or -1 if it holds a quote, a backslash (a COPY escape, so `\N` too) or a
 * control character.
 */
export function plainEnd(b: Buffer, at: number): number {
  let i = at;
  for (;;) {
    const c = b[i]!;
    if (c === TAB) return i;
    if (c < 0x20 || c === QUOTE || c === BACKSLASH || c === undefined) return -1;
    i++;
  }
}

/** As plainEnd, for a column that may be null (`\N`). */
export function nullableEnd(b: Buffer, at: number): number {
  if (b[at] === BACKSLASH && b[at + 1] === 0x4e && b[at + 2] === TAB) return at + 2;
  return plainEnd(b, at);
}

/**
 * End (exclusive) of the jsonb scalar at `pos` if it is copied verbatim into the canonical
 * form, else -1: strings without escapes (COPY doubles any backslash, so none are in the
 * bytes), integers of at most 15 digits, fractions that JS prints the same, true, false,
 * null, `{}` and `[]`. Anything else (nested values, exponents, trailing zeros) leaves the
 * row to the general path.
 */
export function valueEnd(b: Buffer, pos: number): number {
  const c = b[pos]!;
  if (c === QUOTE) {
    let i = pos + 1;
    for (;;) {
      const d = b[i]!;
      if (d === QUOTE) return i + 1;
      if (d === BACKSLASH || d === NEWLINE || d === undefined) return -1;
      i++;
    }
  }
  if (c === 0x2d || (c >= ZERO && c <= NINE)) {
    const digits = c === 0x2d ? pos + 1 : pos;
    let end = digits;
    let d = b[end]!;
    while (d >= ZERO && d <= NINE) d = b[++end]!;
    if (d !== 0x2e && d !== 0x65 && d !== 0x45) {
      const n = end - digits;
      if (n === 0 || n > 15) return -1;
      // No leading zeros, and no -0 (JS prints 0).
      if (b[digits] === ZERO) return n === 1 && c !== 0x2d ? end : -1;
      return end;
    }
    // A fraction (latencies are): compare with JS's own printing of the value.
    while ((d >= ZERO && d <= NINE) || d === 0x2e || d === 0x2b || d === 0x2d || d === 0x65 || d === 0x45) {
      d = b[++end]!;
    }
    const token = b.toString('latin1', pos, end);
    return String(Number(token)) === token ? end : -1;
  }
  if (c === 0x74) return startsWith(b, pos, TRUE) ? pos + 4 : -1;
  if (c === 0x66) return startsWith(b, pos, FALSE) ? pos + 5 : -1;
  if (c === 0x6e) return startsWith(b, pos, NULL) ? pos + 4 : -1;
  if (c === 0x7b) return b[pos + 1] === 0x7d ? pos + 2 : -1;
  if (c === 0x5b) return b[pos + 1] === 0x5d ? pos + 2 : -1;
  return -1;
}

function startsWith(b: Buffer, pos: number, word: Uint8Array): boolean {
  for (let k = 0; k < word.length; k++) if (b[pos + k] !== word[k]) return false;
  return true;
}

/** A COPY text value: `\N` is null, other backslashes are escapes. */
export function copyValue(text: string, from: number, to: number): string | null {
  const value = text.slice(from, to);
  return value.indexOf('\\') < 0 ? value : unescapeCopy(value);
}

const COPY_ESCAPES: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };

/**
 * Undo COPY TO's escapes: a backslash before b f n r t v stands for that control
 * character, before anything else for that character itself (COPY TO writes `\\` for a
 * backslash). Its octal and hex forms are only ever read, never written, so not handled.
 */
function unescapeCopy(value: string): string | null {
  if (value === '\\N') return null;
  return value.replace(/\\(.)/gs, (_, c: string) => COPY_ESCAPES[c] ?? c);
}
