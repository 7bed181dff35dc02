import { canonicalJson, canonicalRowText, sha256Hex } from '../chain.ts';
import {
  BACKSLASH,
  bytes,
  copyValue,
  NEWLINE,
  NINE,
  NULL,
  nullableEnd,
  plainEnd,
  QUOTE,
  TAB,
  valueEnd,
  ZERO,
} from './copy-text.ts';
import type { ChainState, VerifyStats } from './result.ts';

const ACTOR = bytes('{"actor":"');
const AT = bytes('","at":"');
const DATA = bytes('Z","data":');
const GRANT_ID = bytes(',"grantId":');
const KIND = bytes(',"kind":"');
const REQUEST_ID = bytes('","requestId":');
const RESOURCE = bytes(',"resource":');
const SEQ = bytes(',"seq":');

/**
 * A COPY page being received. Until a checker takes it (`sink`), chunks are kept, so the
 * database can produce the next pages on the other core while this process checks the
 * current one instead of stalling on a full socket; memory stays bounded by the pages
 * ahead (PAGES_AHEAD, copy-pages.ts).
 */
export interface CopyPage {
  chunks: Buffer[];
  sink: ((chunk: Buffer) => void) | undefined;
  /** Settles when the page has been received in full, or failed. */
  done: Promise<void>;
}

/**
 * A flat data object's key set as jsonb prints it, and how to print it canonically. jsonb
 * orders keys by (length, bytes), canonicalJson by UTF-16 code units, so the order is
 * worked out once per key set and reused: proxy rows all share a handful of shapes.
 */
interface JsonbShape {
  /** Each key token in jsonb's order with the `: ` after it, as UTF-8. */
  keys: Uint8Array[];
  /** For each member in canonical order, its index in jsonb's order. */
  order: Int32Array;
  /** For each member in canonical order, `{"key":` or `,"key":` as UTF-8. */
  heads: Uint8Array[];
}

/** Data objects with more members than this take the general path. */
const MAX_MEMBERS = 64;

/**
 * Checks COPY lines against the chain: seq continuity, the link to the previous row, and
 * the row's hash.
 *
 * The common row is handled on bytes (checkBytes): fields are located in the chunk and the
 * canonical row is copied together in a scratch buffer and hashed as is. jsonb's text of a
 * flat object differs from canonicalJson's only in key order and the spaces after `:` and
 * `,` (strings are escaped identically, and integers of up to 15 digits print the same),
 * so data is canonicalised by moving its values, with no JSON.parse and no strings per
 * row. A line that path cannot take (escapes anywhere, characters JSON must escape, nested
 * data, unusual numbers, odd widths) is decoded and checked by checkText instead, which
 * builds the canonical row exactly as chain.ts does for the row reader.
 */
export class CopyPageChecker {
  /** Set at the first line it cannot vouch for; later lines of the page are skipped. */
  stopped = false;
  /** An incomplete line carried over to the next chunk. */
  private rest: Buffer | undefined;
  /** The hash input being built: prev_hash ‖ canonical row. Grows with the longest row. */
  private out = new Uint8Array(4096);
  private outLength = 0;
  private shape: JsonbShape | undefined;
  private readonly shapes = new Map<string, JsonbShape>();
  private readonly valueStart = new Int32Array(MAX_MEMBERS);
  private readonly valueEnd = new Int32Array(MAX_MEMBERS);

  constructor(
    private readonly state: ChainState,
    private readonly stats: VerifyStats,
  ) {}

  /** Check a page's rows in order: those already received, then the rest as they come. */
  async read(page: CopyPage): Promise<void> {
    this.stopped = false;
    this.rest = undefined;
    const take = (chunk: Buffer) => {
      if (!this.stopped) this.chunk(chunk);
    };
    for (const chunk of page.chunks) take(chunk);
    page.chunks = [];
    page.sink = take;
    await page.done;
    // A trailing fragment without its newline is not a row we checked.
    if (this.pendingBytes() > 0) this.stopped = true;
  }

  private pendingBytes(): number {
    return this.rest?.length ?? 0;
  }

  private chunk(chunk: Buffer): void {
    let buffer = this.rest === undefined ? chunk : Buffer.concat([this.rest, chunk]);
    this.rest = undefined;
    // postgres.js hands over one row per chunk, but split on newlines regardless.
    const last = buffer.lastIndexOf(NEWLINE);
    if (last < buffer.length - 1) {
      this.rest = Buffer.from(buffer.subarray(last + 1));
      if (last < 0) return;
      buffer = buffer.subarray(0, last + 1);
    }
    let start = 0;
    while (start < buffer.length) {
      let end = this.checkBytes(buffer, start);
      if (end < 0) {
        end = buffer.indexOf(NEWLINE, start);
        // A newline byte never occurs inside a multi-byte UTF-8 character: decoding a line is safe.
        if (!this.checkText(buffer.toString('utf8', start, end))) {
          this.stopped = true;
          return;
        }
      }
      start = end + 1;
    }
  }

  /**
   * The common row, on bytes. Returns the index of the line's newline once the row is
   * checked good and the state advanced, or -1 (state untouched) to leave the line to
   * checkText.
   */
  private checkBytes(b: Buffer, s: number): number {
    const state = this.state;
    let i = s;
    let seq = 0;
    let c = b[i]!;
    while (c >= ZERO && c <= NINE) {
      seq = seq * 10 + c - ZERO;
      c = b[++i]!;
    }
    // At most 15 digits: exact as a double, and printed the same by JS.
    if (c !== TAB || i === s || i - s > 15 || seq !== state.prevSeq + 1) return -1;
    const seqEnd = i;
    const prevHashAt = i + 1;
    const prevHash = state.prevHash;
    for (let k = 0; k < 64; k++) if (b[prevHashAt + k] !== prevHash.charCodeAt(k)) return -1;
    const hashAt = prevHashAt + 65;
    const atAt = hashAt + 65;
    const kindAt = atAt + 28;
    if (b[hashAt - 1] !== TAB || b[atAt - 1] !== TAB || b[kindAt - 1] !== TAB) return -1;
    // Honest rows are written in milliseconds: the last three microsecond digits are 000.
    if (b[atAt + 23] !== ZERO || b[atAt + 24] !== ZERO || b[atAt + 25] !== ZERO) return -1;
    const kindEnd = plainEnd(b, kindAt);
    if (kindEnd < 0) return -1;
    const actorEnd = plainEnd(b, kindEnd + 1);
    if (actorEnd < 0) return -1;
    const resourceAt = actorEnd + 1;
    const resourceEnd = nullableEnd(b, resourceAt);
    if (resourceEnd < 0) return -1;
    const requestIdAt = resourceEnd + 1;
    const requestIdEnd = nullableEnd(b, requestIdAt);
    if (requestIdEnd < 0) return -1;
    const grantIdAt = requestIdEnd + 1;
    const grantIdEnd = nullableEnd(b, grantIdAt);
    if (grantIdEnd < 0) return -1;
    const dataAt = grantIdEnd + 1;
    const shape = this.scanData(b, dataAt);
    if (shape === null) return -1;
    // scanData left the data's end (its closing brace) in valueEnd's last slot.
    const dataEnd = shape === undefined ? dataAt + 2 : this.valueEnd[MAX_MEMBERS - 1]!;
    if (b[dataEnd] !== NEWLINE) return -1;

    // Every byte of the line appears at most once in the output, plus fixed text.
    this.reserve(dataEnd - s + 256);
    this.outLength = 0;
    this.copy(b, prevHashAt, prevHashAt + 64);
    this.put(ACTOR);
    this.copy(b, kindEnd + 1, actorEnd);
    this.put(AT);
    this.copy(b, atAt, atAt + 23);
    this.put(DATA);
    if (shape === undefined) {
      this.copy(b, dataAt, dataEnd);
    } else {
      const { order, heads } = shape;
      for (let m = 0; m < order.length; m++) {
        const member = order[m]!;
        this.put(heads[m]!);
        this.copy(b, this.valueStart[member]!, this.valueEnd[member]!);
      }
      this.out[this.outLength++] = 0x7d;
    }
    this.put(GRANT_ID);
    this.quotedOrNull(b, grantIdAt, grantIdEnd);
    this.put(KIND);
    this.copy(b, kindAt, kindEnd);
    this.put(REQUEST_ID);
    this.quotedOrNull(b, requestIdAt, requestIdEnd);
    this.put(RESOURCE);
    this.quotedOrNull(b, resourceAt, resourceEnd);
    this.put(SEQ);
    this.copy(b, s, seqEnd);
    this.out[this.outLength++] = 0x7d;

    const hash = sha256Hex(this.out.subarray(0, this.outLength));
    for (let k = 0; k < 64; k++) if (b[hashAt + k] !== hash.charCodeAt(k)) return -1;
    state.prevSeq = seq;
    state.prevHash = hash;
    state.rows += 1;
    this.stats.byteRows += 1;
    return dataEnd;
  }

  /**
   * Locate a flat jsonb object's values at `at` (valueStart/valueEnd, in jsonb's order) and
   * return its shape; undefined for `{}`; null when the general path must take the row. The
   * object's closing brace is left in valueEnd's last slot.
   */
  private scanData(b: Buffer, at: number): JsonbShape | undefined | null {
    if (b[at] !== 0x7b) return null;
    if (b[at + 1] === 0x7d) return undefined;
    let shape = this.shape;
    if (shape === undefined || !this.scanWithShape(b, at, shape)) {
      shape = this.shapeOf(b, at);
      if (shape === undefined || !this.scanWithShape(b, at, shape)) return null;
      this.shape = shape;
    }
    return shape;
  }

  /** Records where each value lies if the object at `at` has exactly `shape`'s keys, in order. */
  private scanWithShape(b: Buffer, at: number, shape: JsonbShape): boolean {
    const keys = shape.keys;
    let pos = at + 1;
    for (let m = 0; m < keys.length; m++) {
      const key = keys[m]!;
      for (let k = 0; k < key.length; k++) if (b[pos + k] !== key[k]) return false;
      pos += key.length;
      const end = valueEnd(b, pos);
      if (end < 0) return false;
      this.valueStart[m] = pos;
      this.valueEnd[m] = end;
      pos = end;
      if (m < keys.length - 1) {
        if (b[pos] !== 0x2c || b[pos + 1] !== 0x20) return false;
        pos += 2;
      }
    }
    if (b[pos] !== 0x7d) return false;
    this.valueEnd[MAX_MEMBERS - 1] = pos + 1;
    return true;
  }

  /** The shape of the flat jsonb object at `at`, from the cache or worked out; undefined if not flat. */
  private shapeOf(b: Buffer, at: number): JsonbShape | undefined {
    const tokens: string[] = [];
    let pos = at + 1;
    for (;;) {
      if (tokens.length === MAX_MEMBERS - 1 || b[pos] !== QUOTE) return undefined;
      const keyEnd = valueEnd(b, pos);
      if (keyEnd < 0 || b[keyEnd] !== 0x3a || b[keyEnd + 1] !== 0x20) return undefined;
      tokens.push(b.toString('utf8', pos, keyEnd));
      const end = valueEnd(b, keyEnd + 2);
      if (end < 0) return undefined;
      if (b[end] === 0x7d) break;
      if (b[end] !== 0x2c || b[end + 1] !== 0x20) return undefined;
      pos = end + 2;
    }
    // Key tokens are self-delimiting JSON strings, so their concatenation identifies the set.
    const id = tokens.join('');
    let shape = this.shapes.get(id);
    if (shape === undefined) {
      const names = tokens.map((t) => JSON.parse(t) as string);
      const order = names.map((_, i) => i).sort((x, y) => (names[x]! < names[y]! ? -1 : 1));
      // jsonb never repeats a key; JSON.parse would keep only the last, so do not guess.
      if (order.some((m, i) => i > 0 && names[m] === names[order[i - 1]!])) return undefined;
      shape = {
        keys: tokens.map((t) => bytes(`${t}: `)),
        order: Int32Array.from(order),
        heads: order.map((m, i) => bytes(`${i === 0 ? '{' : ','}${JSON.stringify(names[m])}:`)),
      };
      // Bounded: odd data with ever-new key sets must not grow it without limit.
      if (this.shapes.size < 1024) this.shapes.set(id, shape);
    }
    return shape;
  }

  private reserve(size: number): void {
    if (this.out.length < size) this.out = new Uint8Array(Math.max(size, this.out.length * 2));
  }

  private put(fixed: Uint8Array): void {
    // A loop, not out.set: these are a few bytes, and set's call cost dominated.
    const out = this.out;
    let o = this.outLength;
    for (let k = 0; k < fixed.length; k++) out[o++] = fixed[k]!;
    this.outLength = o;
  }

  private copy(b: Buffer, from: number, to: number): void {
    const out = this.out;
    let o = this.outLength;
    for (let k = from; k < to; k++) out[o++] = b[k]!;
    this.outLength = o;
  }

  /** A nullable plain column: `null`, or the value in quotes. */
  private quotedOrNull(b: Buffer, from: number, to: number): void {
    if (to - from === 2 && b[from] === BACKSLASH) {
      this.put(NULL);
      return;
    }
    this.out[this.outLength++] = QUOTE;
    this.copy(b, from, to);
    this.out[this.outLength++] = QUOTE;
  }

  /** Checks one decoded line (without its newline) and advances the state; false if it cannot vouch for it. */
  private checkText(text: string): boolean {
    const state = this.state;
    const end = text.length;
    const seqEnd = text.indexOf('\t');
    const prevHashAt = seqEnd + 1;
    const hashAt = prevHashAt + 65;
    const atAt = hashAt + 65;
    const kindAt = atAt + 28;
    if (seqEnd < 0 || kindAt > end) return false;
    if (text[hashAt - 1] !== '\t' || text[atAt - 1] !== '\t' || text[kindAt - 1] !== '\t') return false;
    const seq = Number(text.slice(0, seqEnd));
    if (seq !== state.prevSeq + 1) return false;
    if (!text.startsWith(state.prevHash, prevHashAt)) return false;
    if (text.slice(atAt + 23, atAt + 26) !== '000') return false;
    const actorAt = text.indexOf('\t', kindAt) + 1;
    const resourceAt = text.indexOf('\t', actorAt) + 1;
    const requestIdAt = text.indexOf('\t', resourceAt) + 1;
    const grantIdAt = text.indexOf('\t', requestIdAt) + 1;
    const dataAt = text.indexOf('\t', grantIdAt) + 1;
    // indexOf gives -1 (so 0 here) when a tab is missing.
    if (actorAt <= kindAt || resourceAt <= actorAt || requestIdAt <= resourceAt) return false;
    if (grantIdAt <= requestIdAt || dataAt <= grantIdAt) return false;
    const kind = copyValue(text, kindAt, actorAt - 1);
    const actor = copyValue(text, actorAt, resourceAt - 1);
    const dataText = copyValue(text, dataAt, end);
    if (kind === null || actor === null || dataText === null) return false;
    let dataJson: string;
    try {
      // The row reader's own computation: postgres.js also JSON.parses jsonb's text.
      dataJson = canonicalJson(JSON.parse(dataText));
    } catch {
      return false;
    }
    const canonical = canonicalRowText(
      seq,
      `${text.slice(atAt, atAt + 23)}Z`,
      kind,
      actor,
      copyValue(text, resourceAt, requestIdAt - 1),
      copyValue(text, requestIdAt, grantIdAt - 1),
      copyValue(text, grantIdAt, dataAt - 1),
      dataJson,
    );
    const hash = sha256Hex(state.prevHash + canonical);
    if (!text.startsWith(hash, hashAt)) return false;
    state.prevSeq = seq;
    state.prevHash = hash;
    state.rows += 1;
    this.stats.textRows += 1;
    return true;
  }
}
