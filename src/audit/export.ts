import type { Db } from '../db/client.ts';
import { type AuditSearchFilter, auditEventsPage } from '../db/queries/audit-events/reads.ts';
import type { AuditEventRow } from '../db/schema/index.ts';
import type { ChainedFields } from './chain.ts';

export type ExportFormat = 'jsonl' | 'csv';

/** What to export: the CLI's filter (time, grant, person) or the console's wider search. */
export interface ExportOptions extends AuditSearchFilter {
  format: ExportFormat;
  pageSize?: number;
}

/** One exported row: the stored row with `at` as ISO 8601, every field kept so the chain can be re-checked. */
export interface ExportedRow extends Omit<ChainedFields, 'at'> {
  at: string;
  prevHash: string;
  hash: string;
}

export const CSV_COLUMNS = [
  'seq',
  'at',
  'kind',
  'actor',
  'resource',
  'request_id',
  'grant_id',
  'data',
  'prev_hash',
  'hash',
] as const;

/** The minimal writable both `process.stdout` and a file or pass-through stream satisfy. */
export interface ExportSink {
  write(chunk: string): boolean;
  once(event: 'drain', listener: () => void): unknown;
}

export function toExportedRow(row: AuditEventRow): ExportedRow {
  return {
    seq: row.seq,
    at: row.at.toISOString(),
    kind: row.kind,
    actor: row.actor,
    resource: row.resource,
    requestId: row.requestId,
    grantId: row.grantId,
    data: row.data,
    prevHash: row.prevHash,
    hash: row.hash,
  };
}

/**
 * Text a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR) gets a leading `'`,
 * and so does text already starting with `'`, so the escape reverses exactly: a reader drops
 * one leading `'` (csvText). Caller-chosen values reach the log (an unknown resource's name
 * is recorded as asked), and an analyst opening the export must not execute them.
 */
const SPREADSHEET_TRIGGER = /^[=+\-@\t\r']/;

/**
 * RFC 4180: a field holding a comma, quote, CR or LF is quoted and its quotes doubled.
 * NULL is an empty field and the empty string is `""`, so the two stay apart.
 */
export function csvField(value: string | number | null): string {
  if (value === null) return '';
  if (typeof value === 'number') return String(value);
  if (value === '') return '""';
  const text = SPREADSHEET_TRIGGER.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** A text field's value from a parsed CSV field: csvField's formula escape undone. */
export function csvText(field: string): string {
  return field.startsWith("'") ? field.slice(1) : field;
}

export function csvLine(row: ExportedRow): string {
  return `${[
    row.seq,
    row.at,
    row.kind,
    row.actor,
    row.resource,
    row.requestId,
    row.grantId,
    JSON.stringify(row.data),
    row.prevHash,
    row.hash,
  ]
    .map(csvField)
    .join(',')}\r\n`;
}

/**
 * Stream the matching rows in seq order to `out`, page by page (keyset on seq), waiting
 * for `drain` when the writable is full, so a year of log costs a page of memory.
 * Returns the number of rows written.
 */
export async function exportAuditEvents(db: Db, out: ExportSink, options: ExportOptions): Promise<number> {
  const pageSize = options.pageSize ?? 5_000;
  const write = async (chunk: string) => {
    if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', resolve));
  };
  if (options.format === 'csv') await write(`${CSV_COLUMNS.join(',')}\r\n`);
  let after = 0;
  let count = 0;
  for (;;) {
    const page = await auditEventsPage(db, options, after, pageSize);
    let chunk = '';
    for (const row of page) {
      const exported = toExportedRow(row);
      chunk += options.format === 'csv' ? csvLine(exported) : `${JSON.stringify(exported)}\n`;
    }
    if (chunk) await write(chunk);
    count += page.length;
    const last = page[page.length - 1];
    if (page.length < pageSize || !last) return count;
    after = last.seq;
  }
}
