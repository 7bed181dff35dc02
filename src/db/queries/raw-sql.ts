import { type SQL, sql } from 'drizzle-orm';

/**
 * A statement written once as text with one `$1`, for drizzle: the same text goes to
 * postgres.js as a prepared statement on the proxy's pipelined path, so each query is
 * written in one place whichever driver path runs it.
 */
export function withOneParameter(text: string, value: string): SQL {
  const at = text.indexOf('$1');
  if (at < 0 || text.indexOf('$1', at + 2) >= 0)
    throw new Error('withOneParameter: the text needs exactly one $1');
  return sql`${sql.raw(text.slice(0, at))}${value}${sql.raw(text.slice(at + 2))}`;
}
