/** The rows of a raw `execute`: postgres.js returns the row list itself, PGlite `{ rows }`. */
export const resultRows = (result: unknown): Record<string, unknown>[] =>
  (Array.isArray(result) ? result : (result as { rows: unknown[] }).rows) as Record<string, unknown>[];
