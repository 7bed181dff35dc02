import { createHash, hash } from 'node:crypto';

/** The first row's prev_hash: 64 zeros, so every row has the same shape. */
export const GENESIS_HASH = '0'.repeat(64);

export interface ChainedFields {
  seq: number;
  at: Date;
  kind: string;
  actor: string;
  resource: string | null;
  requestId: string | null;
  grantId: string | null;
  data: Record<string, unknown>;
}

/**
 * JSON with object keys sorted at every depth, so the bytes hashed do not depend on
 * the order keys were written in or on how jsonb stored them.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) return 'null';
    return JSON.stringify(value) ?? 'null';
  }
  // Plain loops and string concatenation: this runs for every row `audit verify` checks,
  // and allocating entry arrays per object was most of its cost.
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) out += (i === 0 ? '' : ',') + canonicalJson(value[i]);
    return `${out}]`;
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record).sort();
  let out = '{';
  let first = true;
  for (const key of keys) {
    const v = record[key];
    if (v === undefined) continue;
    out += `${first ? '' : ','}${quotedKey(key)}:${typeof v === 'string' ? JSON.stringify(v) : canonicalJson(v)}`;
    first = false;
  }
  return `${out}}`;
}

// The same few keys (method, path, status, …) recur in every row; quote each once. Bounded
// so odd data with ever-new keys cannot grow it without limit.
const keyCache = new Map<string, string>();
function quotedKey(key: string): string {
  let quoted = keyCache.get(key);
  if (quoted === undefined) {
    quoted = JSON.stringify(key);
    if (keyCache.size < 4096) keyCache.set(key, quoted);
  }
  return quoted;
}

export function canonicalRow(row: ChainedFields): string {
  return canonicalRowAt(row, row.at.toISOString());
}

/** canonicalRow with `at` already as ISO 8601 (milliseconds, `Z`), as verify reads it. */
function canonicalRowAt(row: Omit<ChainedFields, 'at'>, atIso: string): string {
  return canonicalRowText(
    row.seq,
    atIso,
    row.kind,
    row.actor,
    row.resource,
    row.requestId,
    row.grantId,
    canonicalJson(row.data),
  );
}

/**
 * The canonical row from its fields, with `data` already in canonical JSON, so verify can
 * derive that from jsonb's text without building an object per row. The one place the row
 * layout is written: same bytes as canonicalJson({ seq, at, kind, … }), keys in sorted order
 * (actor, at, data, grantId, kind, requestId, resource, seq), without sorting per row.
 */
export function canonicalRowText(
  seq: number,
  atIso: string,
  kind: string,
  actor: string,
  resource: string | null,
  requestId: string | null,
  grantId: string | null,
  dataJson: string,
): string {
  return `${canonicalRowPrefix(atIso, kind, actor, resource, requestId, grantId, dataJson)}${seq}}`;
}

/**
 * The canonical row up to its seq, which sorts last: `prefix + seq + '}'` is canonicalRowText.
 * A row's prefix can be built before the chain's tail is known, so the appender builds it
 * outside the chain's lock and the chained part is two concatenations and a hash per row.
 */
export function canonicalRowPrefix(
  atIso: string,
  kind: string,
  actor: string,
  resource: string | null,
  requestId: string | null,
  grantId: string | null,
  dataJson: string,
): string {
  return (
    `{"actor":${JSON.stringify(actor)},"at":"${atIso}","data":${dataJson},` +
    `"grantId":${JSON.stringify(grantId)},"kind":${JSON.stringify(kind)},` +
    `"requestId":${JSON.stringify(requestId)},"resource":${JSON.stringify(resource)},"seq":`
  );
}

// One-shot crypto.hash (Node ≥ 20.12) skips a Hash object per row; older Node 20 falls back.
// Either way the bytes are prev_hash followed by the canonical row (UTF-8 when a string).
export const sha256Hex: (data: string | Uint8Array) => string =
  typeof hash === 'function'
    ? (data) => hash('sha256', data, 'hex')
    : (data) => createHash('sha256').update(data).digest('hex');

/** hash = sha256(prev_hash ‖ canonical row), hex. */
export function chainHash(prevHash: string, row: ChainedFields): string {
  return chainHashAt(prevHash, row, row.at.toISOString());
}

export function chainHashAt(prevHash: string, row: Omit<ChainedFields, 'at'>, atIso: string): string {
  return sha256Hex(prevHash + canonicalRowAt(row, atIso));
}
