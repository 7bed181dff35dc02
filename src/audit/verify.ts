import type postgres from 'postgres';
import type { Db } from '../db/client.ts';
import { auditChainPage, auditChainRowWithHash, copyAuditChainPage } from '../db/queries/audit-events.ts';
import { canonicalJson, canonicalRowText, chainHashAt, GENESIS_HASH, sha256Hex } from './chain.ts';
import type { ExportedRow } from './export.ts';

/** Why a row breaks the chain. */
export type ChainBreak = 'changed' | 'removed' | 'reordered' | 'inserted';

export type VerifyResult =
  | {
      ok: true;
      rows: number;
      /** The newest row; publish its hash elsewhere to make truncating the tail detectable too. */
      headSeq: number;
      headHash: string;
    }
  | {
      ok: false;
      /** Rows checked and found good before the bad one. */
      rows: number;
      /** The seq of the first row at fault. */
      seq: number;
      reason: ChainBreak;
      message: string;
    };

export interface VerifyOptions {
  /**
   * Rows per query. On Postgres through postgres.js at most three COPY pages are in
   * memory (default 10,000 rows, ~5 MB each); elsewhere two pages of row objects
   * (default 5,000 rows).
   */
  pageSize?: number;
  /** Called after each page, for progress output. */
  onProgress?: (rows: number) => void;
  /** Counts which reader checked how many rows (tests and benchmarks look at it). */
  stats?: VerifyStats;
}

export interface VerifyStats {
  /** Rows the COPY reader checked on bytes, its fast path. */
  byteRows: number;
  /** Rows the COPY reader decoded and checked as text (escapes, nested data, …). */
  textRows: number;
  /** Rows the row reader checked: the whole walk on PGlite, else past any row the COPY reader stopped at. */
  rowReaderRows: number;
}

type Failure = Extract<VerifyResult, { ok: false }>;

/** How far the chain has been checked: everything up to prevSeq is good. */
interface ChainState {
  prevSeq: number;
  prevHash: string;
  rows: number;
}

/**
 * Walk the whole chain in seq order and report the first row that is not where, or what,
 * the chain says it should be.
 *
 * Two readers share one definition of "good" (chain.ts):
 * - On Postgres through postgres.js, the fast reader: COPY pages of plain text, parsed and
 *   hashed without building an object per row (see CopyPageChecker). It only ever says
 *   "good"; at the first row it cannot vouch for, it stops and
 * - the row reader, which reads rows as objects and decides (and explains) every break,
 *   takes over from the last good row. It is also the whole walk on PGlite or a
 *   transaction handle. A break is thus always judged by one code path whichever reader
 *   found it, and the fast reader can only make verify faster, never change its answer.
 *
 * Memory stays constant either way: pages by seq (an index range scan on the primary key,
 * so page 200 costs what page 1 does, and no snapshot is held for the whole walk), with
 * the next pages under way while this one is checked so the database and the CPU work at
 * once.
 */
export async function verifyAuditChain(db: Db, options: VerifyOptions = {}): Promise<VerifyResult> {
  const state: ChainState = { prevSeq: 0, prevHash: GENESIS_HASH, rows: 0 };
  const stats = options.stats ?? { byteRows: 0, textRows: 0, rowReaderRows: 0 };
  const client = postgresClientOf(db);
  for (;;) {
    if (client) await walkCopyPages(client, state, stats, options.pageSize ?? 10_000, options.onProgress);
    // One page of the row reader past the point the fast reader stopped at (or the whole
    // walk without it): it finds the break, or the end, or hands back.
    const before = state.rows;
    const slow = await walkRowPages(
      db,
      state,
      options.pageSize ?? 5_000,
      options.onProgress,
      client ? 1 : Infinity,
    );
    stats.rowReaderRows += state.rows - before;
    if (slow === 'end')
      return { ok: true, rows: state.rows, headSeq: state.prevSeq, headHash: state.prevHash };
    if (slow !== 'more') return slow;
  }
}

// ---------------------------------------------------------------------------------------
// Fast reader: COPY text, no per-row objects.

/** postgres.js's client under a drizzle Db; undefined for PGlite or a transaction handle. */
function postgresClientOf(db: Db): postgres.Sql | undefined {
  const client: unknown = (db as unknown as { $client?: unknown }).$client;
  return typeof client === 'function' && typeof (client as { unsafe?: unknown }).unsafe === 'function'
    ? (client as postgres.Sql)
    : undefined;
}

/**
 * A COPY page being received. Until a checker takes it (`sink`), chunks are kept, so the
 * database can produce the next pages on the other core while this process checks the
 * current one instead of stalling on a full socket; memory stays bounded by the pages
 * ahead (PAGES_AHEAD).
 */
interface CopyPage {
  chunks: Buffer[];
  sink: ((chunk: Buffer) => void) | undefined;
  /** Settles when the page has been received in full, or failed. */
  done: Promise<void>;
}

/**
 * One page: the rows with `after < seq <= after + size`, in the COPY text layout that
 * copyAuditChainPage describes (the checker finds fields by position in it).
 */
function openCopyPage(client: postgres.Sql, after: number, size: number): CopyPage {
  const page: CopyPage = { chunks: [], sink: undefined, done: Promise.resolve() };
  page.done = copyAuditChainPage(client, after, size).then(
    (stream) =>
      new Promise<void>((resolve, reject) => {
        stream.on('data', (chunk: Buffer) => {
          if (page.sink) page.sink(chunk);
          else page.chunks.push(chunk);
        });
        stream.once('end', () => {
          // postgres.js pauses the connection's socket when a COPY stream's buffer is full
          // and resumes it only from the stream's _read, which Node never calls once the
          // stream has ended. A small page received whole before this listener was attached
          // ends that way and leaves its pooled connection deaf; resume it here.
          stream._read(0);
          resolve();
        });
        stream.once('error', reject);
      }),
  );
  return page;
}

/**
 * COPY pages requested beyond the one being checked. One already overlaps the database with
 * this process; a second kept both cores busy (~225k → ~245k rows/s on the 2-core bench
 * machine) because one backend producing a page is slower than this process checking it.
 */
const PAGES_AHEAD = 2;

/**
 * Check COPY pages from state.prevSeq on, advancing state over every good row, until the
 * row reader must look: a row the checker cannot vouch for, or a short page (the end of the
 * log, or a gap). The row reader then re-reads from state.prevSeq.
 */
async function walkCopyPages(
  client: postgres.Sql,
  state: ChainState,
  stats: VerifyStats,
  pageSize: number,
  onProgress: ((rows: number) => void) | undefined,
): Promise<void> {
  const checker = new CopyPageChecker(state, stats);
  let after = state.prevSeq;
  // This page and the next ones, each on a connection of its own, so the database
  // produces them while this one is checked.
  const pages = [openCopyPage(client, after, pageSize)];
  for (let k = 1; k <= PAGES_AHEAD; k++) pages.push(openCopyPage(client, after + k * pageSize, pageSize));
  const drainAll = () => Promise.all(pages.map(drain));
  for (;;) {
    const page = pages.shift()!;
    const expected = after + pageSize;
    try {
      await checker.read(page);
    } catch (error) {
      await drainAll();
      throw error;
    }
    onProgress?.(state.rows);
    if (checker.stopped || state.prevSeq !== expected) {
      // The pages ahead are not needed; let them finish so their connections are free again.
      await drainAll();
      return;
    }
    after = expected;
    pages.push(openCopyPage(client, after + PAGES_AHEAD * pageSize, pageSize));
  }
}

/** Discard the rest of a page and wait for its query to end; errors included. */
async function drain(page: CopyPage): Promise<void> {
  page.chunks = [];
  page.sink = () => undefined;
  await page.done.catch(() => undefined);
}

const TAB = 0x09;
const NEWLINE = 0x0a;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const ZERO = 0x30;
const NINE = 0x39;

const bytes = (text: string) => new Uint8Array(Buffer.from(text, 'utf8'));
const ACTOR = bytes('{"actor":"');
const AT = bytes('","at":"');
const DATA = bytes('Z","data":');
const GRANT_ID = bytes(',"grantId":');
const KIND = bytes(',"kind":"');
const REQUEST_ID = bytes('","requestId":');
const RESOURCE = bytes(',"resource":');
const SEQ = bytes(',"seq":');
const NULL = bytes('null');
const TRUE = bytes('true');
const FALSE = bytes('false');

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
class CopyPageChecker {
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

/**
 * End of a text column that JSON.stringify would print as is, in quotes: the index of the
 * tab after it, or -1 if it holds a quote, a backslash (a COPY escape, so `\N` too) or a
 * control character.
 */
function plainEnd(b: Buffer, at: number): number {
  let i = at;
  for (;;) {
    const c = b[i]!;
    if (c === TAB) return i;
    if (c < 0x20 || c === QUOTE || c === BACKSLASH || c === undefined) return -1;
    i++;
  }
}

/** As plainEnd, for a column that may be null (`\N`). */
function nullableEnd(b: Buffer, at: number): number {
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
function valueEnd(b: Buffer, pos: number): number {
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
function copyValue(text: string, from: number, to: number): string | null {
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

// ---------------------------------------------------------------------------------------
// Row reader: rows as objects, on any Db; judges and explains every break.

/** A row as the row reader reads it: `at` already in ISO form, ids as text — the exported shape. */
type ChainRow = ExportedRow;

const hashOf = (row: ChainRow, seq = row.seq) =>
  chainHashAt(row.prevHash, seq === row.seq ? row : { ...row, seq }, row.at);

/**
 * `at` is read with microseconds (`…SS.ffffffZ`). Rows are written with milliseconds, so
 * the last three digits are always 000 on an honest row; anything else means `at` was
 * edited in a way the millisecond hash alone could not see. Returns the hashed ISO form,
 * or undefined for such a row, which then hashes with its full text and fails as changed.
 */
function millisecondIso(at: string): string | undefined {
  if (at.length !== 27 || at.slice(23, 26) !== '000') return undefined;
  return `${at.slice(0, 23)}Z`;
}

/**
 * Columns are aliased to ChainRow's names in SQL so rows are used as they come; only seq
 * (bigint, which may arrive as text or BigInt) and `at` are fixed up in place.
 */
function rowsOf(list: Record<string, unknown>[]): ChainRow[] {
  for (const r of list) {
    r.seq = Number(r.seq);
    r.at = millisecondIso(r.at as string) ?? r.at;
    if (typeof r.data === 'string') r.data = JSON.parse(r.data);
  }
  return list as unknown as ChainRow[];
}

/** `at` comes as text in Date#toISOString's layout (UTC) plus microseconds, see millisecondIso. */
async function readPage(db: Db, after: number, limit: number): Promise<ChainRow[]> {
  return rowsOf(await auditChainPage(db, after, limit));
}

/**
 * Check up to `maxPages` pages of rows from state.prevSeq on (`seq > last ORDER BY seq
 * LIMIT n`). Returns the first break, 'end' after a short page, or 'more' when it stopped
 * after maxPages full pages.
 */
async function walkRowPages(
  db: Db,
  state: ChainState,
  pageSize: number,
  onProgress: ((rows: number) => void) | undefined,
  maxPages: number,
): Promise<Failure | 'end' | 'more'> {
  const fetchPage = (after: number) => readPage(db, after, pageSize);
  let next = fetchPage(state.prevSeq);
  for (let pages = 1; ; pages++) {
    const page = await next;
    const last = page[page.length - 1];
    const more = page.length === pageSize && last !== undefined;
    // Start the next query before checking this page.
    if (more && pages < maxPages) next = fetchPage(last.seq);
    // Drain the prefetch so no query is left running against a caller who closes the pool.
    const settle = async () => {
      if (more && pages < maxPages) await next.catch(() => undefined);
    };
    for (const row of page) {
      const expectedSeq = state.prevSeq + 1;
      if (row.seq !== expectedSeq) {
        await settle();
        const missing =
          row.seq - 1 === expectedSeq ? `row ${expectedSeq} is` : `rows ${expectedSeq}–${row.seq - 1} are`;
        return {
          ok: false,
          rows: state.rows,
          seq: expectedSeq,
          reason: 'removed',
          message: `${missing} missing: row ${row.seq} follows row ${state.prevSeq}`,
        };
      }
      if (row.prevHash !== state.prevHash) {
        await settle();
        return { ok: false, rows: state.rows, ...(await explainBrokenLink(db, row)) };
      }
      if (hashOf(row) !== row.hash) {
        await settle();
        return {
          ok: false,
          rows: state.rows,
          seq: row.seq,
          reason: 'changed',
          message: `row ${row.seq} was changed: its contents do not hash to its stored hash`,
        };
      }
      state.prevSeq = row.seq;
      state.prevHash = row.hash;
      state.rows += 1;
    }
    onProgress?.(state.rows);
    if (!more) return 'end';
    if (pages >= maxPages) return 'more';
  }
}

/**
 * Row `row.seq` does not link to the row before it. Which tampering explains it? Every
 * hash commits to its row's original seq and predecessor, so find the row whose hash
 * this one names as its predecessor (one scan, run only once a break is found) and where
 * this row's hash says it originally stood.
 */
async function explainBrokenLink(
  db: Db,
  row: ChainRow,
): Promise<{ seq: number; reason: ChainBreak; message: string }> {
  const p = row.seq;
  const owner =
    row.prevHash === GENESIS_HASH ? 0 : rowsOf(await auditChainRowWithHash(db, row.prevHash))[0]?.seq;
  if (owner !== undefined) {
    if (owner >= p) {
      return {
        seq: p,
        reason: 'reordered',
        message: `row ${p} was moved: it was chained after row ${owner}, which now comes later`,
      };
    }
    // owner < p - 1: rows owner+1 … p-1 were not in the chain when this row was written.
    const inserted = owner + 1;
    return {
      seq: inserted,
      reason: 'inserted',
      message:
        inserted === p - 1
          ? `row ${inserted} was inserted: row ${p} was chained directly after row ${owner}`
          : `rows ${inserted}–${p - 1} were inserted: row ${p} was chained directly after row ${owner}`,
    };
  }
  if (hashOf(row, p + 1) === row.hash) {
    return {
      seq: p,
      reason: 'removed',
      message: `a row before row ${p} was removed and later rows renumbered: row ${p} was written as row ${p + 1}`,
    };
  }
  if (hashOf(row) === row.hash) {
    return {
      seq: p,
      reason: 'inserted',
      message: `row ${p} does not link to row ${p - 1}: row ${p} was forged, or row ${p - 1} was changed and re-hashed`,
    };
  }
  return {
    seq: p,
    reason: 'changed',
    message: `row ${p} was changed: its prev_hash does not match row ${p - 1} and its contents do not hash to its stored hash`,
  };
}
