import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { callAuditEvent } from '../../src/audit/call-row.ts';
import {
  canonicalJson,
  canonicalRow,
  canonicalRowText,
  chainHash,
  GENESIS_HASH,
  sha256Hex,
} from '../../src/audit/chain.ts';
import { CSV_COLUMNS, csvField, csvLine, type ExportedRow } from '../../src/audit/export.ts';
import type { CallRecord } from '../../src/shared/call-record.ts';

const row = {
  seq: 7,
  at: new Date('2026-01-05T10:00:00.123Z'),
  kind: 'proxy.call',
  actor: 'slack:U1',
  resource: 'billing-api',
  requestId: null,
  grantId: '0b7d3f5e-8a41-4c1e-9d55-2c3b4a5e6f70',
  data: { z: 1, a: [{ y: 2, b: 'x' }], m: null },
};

describe('canonical form', () => {
  it('writes the row with sorted keys, same bytes as canonicalJson of the object', () => {
    const { at, ...rest } = row;
    expect(canonicalRow(row)).toBe(canonicalJson({ ...rest, at: at.toISOString() }));
    expect(canonicalRow(row)).toBe(
      '{"actor":"slack:U1","at":"2026-01-05T10:00:00.123Z","data":{"a":[{"b":"x","y":2}],"m":null,"z":1},' +
        '"grantId":"0b7d3f5e-8a41-4c1e-9d55-2c3b4a5e6f70","kind":"proxy.call","requestId":null,"resource":"billing-api","seq":7}',
    );
  });

  it('canonicalRowText (verify, with data already canonical) writes the same bytes as canonicalRow', () => {
    const { seq, at, kind, actor, resource, requestId, grantId, data } = row;
    const text = canonicalRowText(
      seq,
      at.toISOString(),
      kind,
      actor,
      resource,
      requestId,
      grantId,
      canonicalJson(data),
    );
    expect(text).toBe(canonicalRow(row));
    // Hashing the UTF-8 bytes (verify's COPY reader) is hashing the string.
    const unicode = canonicalRow({ ...row, actor: 'slack:Ü 😀' });
    expect(sha256Hex(Buffer.from(GENESIS_HASH + unicode, 'utf8'))).toBe(sha256Hex(GENESIS_HASH + unicode));
  });

  it('does not depend on key order, and equals JSON.parse round trips (as jsonb returns them)', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), (data) => {
        const reparsed = JSON.parse(JSON.stringify(data)) as Record<string, unknown>;
        const reversed = Object.fromEntries(Object.entries(reparsed).reverse());
        expect(canonicalJson(reversed)).toBe(canonicalJson(reparsed));
        expect(chainHash(GENESIS_HASH, { ...row, data: reversed })).toBe(
          chainHash(GENESIS_HASH, { ...row, data: reparsed }),
        );
      }),
    );
  });

  it('changes the hash when any field or the previous hash changes', () => {
    const base = chainHash(GENESIS_HASH, row);
    expect(base).toMatch(/^[0-9a-f]{64}$/);
    expect(chainHash('1'.repeat(64), row)).not.toBe(base);
    expect(chainHash(GENESIS_HASH, { ...row, seq: 8 })).not.toBe(base);
    expect(chainHash(GENESIS_HASH, { ...row, data: { ...row.data, z: 2 } })).not.toBe(base);
    expect(chainHash(GENESIS_HASH, { ...row, at: new Date(row.at.getTime() + 1) })).not.toBe(base);
  });
});

describe('call audit rows', () => {
  const record: CallRecord = {
    at: new Date('2026-01-05T10:00:00Z'),
    requestId: 'req-1',
    resource: 'billing-api',
    grantId: '0b7d3f5e-8a41-4c1e-9d55-2c3b4a5e6f70',
    userId: 'U1',
    scope: 'read',
    method: 'GET',
    path: '/invoices/1',
    clientIp: '10.0.0.1',
    decision: 'allowed',
    status: 200,
    responseBytes: 123,
    latencyMs: 4,
  };

  it('records an allowed call as proxy.call with everything asked for', () => {
    expect(callAuditEvent(record)).toEqual({
      kind: 'proxy.call',
      actor: { type: 'slack', userId: 'U1' },
      at: record.at,
      resource: 'billing-api',
      grantId: record.grantId,
      data: {
        method: 'GET',
        path: '/invoices/1',
        status: 200,
        bytes: 123,
        latencyMs: 4,
        clientIp: '10.0.0.1',
        requestId: 'req-1',
        decision: 'allowed',
        scope: 'read',
        userId: 'U1',
      },
    });
  });

  it('records a denial as proxy.denied; an unidentified caller is the proxy; a bad grant id stays in data', () => {
    const denied = callAuditEvent({
      ...record,
      decision: 'invalid_token',
      status: 401,
      userId: undefined,
      grantId: 'x',
    });
    expect(denied.kind).toBe('proxy.denied');
    expect(denied.actor).toEqual({ type: 'system', component: 'proxy' });
    expect(denied.grantId).toBeNull();
    expect(denied.data).toMatchObject({ rawGrantId: 'x', decision: 'invalid_token', status: 401 });
  });
});

describe('CSV', () => {
  it('quotes commas, quotes and line breaks, and keeps null apart from the empty string', () => {
    expect(csvField(null)).toBe('');
    expect(csvField('')).toBe('""');
    expect(csvField('plain')).toBe('plain');
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('two\nlines')).toBe('"two\nlines"');
    expect(csvField(12)).toBe('12');
  });

  it('writes one CRLF-terminated line per row in the header order', () => {
    const exported: ExportedRow = {
      seq: 1,
      at: '2026-01-05T10:00:00.000Z',
      kind: 'proxy.call',
      actor: 'slack:U1',
      resource: null,
      requestId: null,
      grantId: null,
      data: { path: '/a,b' },
      prevHash: GENESIS_HASH,
      hash: 'h',
    };
    const line = csvLine(exported);
    expect(line.endsWith('\r\n')).toBe(true);
    expect(line).toBe(
      `1,2026-01-05T10:00:00.000Z,proxy.call,slack:U1,,,,"{""path"":""/a,b""}",${GENESIS_HASH},h\r\n`,
    );
    expect(CSV_COLUMNS).toHaveLength(10);
  });
});
