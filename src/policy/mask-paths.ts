/**
 * The policy's JSON field mask paths (`mask:` per scope), parsed and compiled; the proxy
 * applies them to responses and captured bodies (src/proxy/json-mask.ts).
 *
 * A mask path is written like `customers[*].email`, `**.ssn`, `items[0].card.number`, `*.token`:
 * - `name` an object key; `*` any object key or array index, one level;
 * - `[*]` any array element; `[3]` element 3; `**` any number of levels, zero included.
 * A path matches a value by its concrete location from the document root; arrays are never
 * crossed implicitly (`customers.email` does not look inside an array — write `customers[*].email`).
 *
 * A matched value is replaced by the string `"[masked]"` (style `replace`, the default: the
 * document keeps its shape, so clients that expect the key still parse it) or its key is
 * removed (style `remove`; an array element is then replaced, never removed, so indices of
 * the other elements do not shift). A matched object or array is masked whole.
 */

export type MaskToken =
  | { kind: 'key'; name: string }
  | { kind: 'any' }
  | { kind: 'index'; index: number }
  | { kind: 'anyIndex' }
  | { kind: 'deep' };

export type MaskStyle = 'replace' | 'remove';

export interface MaskRules {
  readonly source: readonly string[];
  readonly paths: readonly (readonly MaskToken[])[];
  readonly style: MaskStyle;
}

export type MaskPathParse = { ok: true; tokens: MaskToken[] } | { ok: false; message: string };

const NAME = /^[A-Za-z0-9_$@-]+$/;

export function parseMaskPath(text: string): MaskPathParse {
  const tokens: MaskToken[] = [];
  if (text.length === 0 || text.length > 200)
    return { ok: false, message: 'expects a field path like customers[*].email' };
  for (const part of text.split('.')) {
    // `name[*][2]`: a key (or none, for a top-level array) followed by brackets.
    const match = /^([^[\]]*)((?:\[(?:\*|[0-9]{1,6})\])*)$/.exec(part);
    if (!match) return { ok: false, message: `"${text}": cannot read "${part}"` };
    const [, name = '', brackets = ''] = match;
    if (name === '**') tokens.push({ kind: 'deep' });
    else if (name === '*') tokens.push({ kind: 'any' });
    else if (name !== '') {
      if (!NAME.test(name)) return { ok: false, message: `"${text}": "${name}" is not a plain key` };
      tokens.push({ kind: 'key', name });
    } else if (brackets === '') return { ok: false, message: `"${text}" has an empty segment` };
    for (const b of brackets.match(/\[[^\]]+\]/g) ?? []) {
      const inner = b.slice(1, -1);
      tokens.push(inner === '*' ? { kind: 'anyIndex' } : { kind: 'index', index: Number(inner) });
    }
  }
  if (tokens.at(-1)?.kind === 'deep') return { ok: false, message: `"${text}" cannot end with **` };
  return { ok: true, tokens };
}

export function createMaskRules(source: readonly string[], style: MaskStyle): MaskRules {
  const paths = source.map((text) => {
    const parsed = parseMaskPath(text);
    if (!parsed.ok) throw new Error(parsed.message);
    return parsed.tokens;
  });
  return { source, paths, style };
}

/** Whether the concrete location `path` is matched by `tokens` (small backtracking match). */
export function pathMatches(tokens: readonly MaskToken[], path: readonly (string | number)[]): boolean {
  const go = (ti: number, pi: number): boolean => {
    if (ti === tokens.length) return pi === path.length;
    const t = tokens[ti]!;
    if (t.kind === 'deep') return go(ti + 1, pi) || (pi < path.length && go(ti, pi + 1));
    if (pi === path.length) return false;
    const seg = path[pi]!;
    switch (t.kind) {
      case 'key':
        if (typeof seg !== 'string' || seg !== t.name) return false;
        break;
      case 'index':
        if (seg !== t.index) return false;
        break;
      case 'anyIndex':
        if (typeof seg !== 'number') return false;
        break;
      case 'any':
        break;
    }
    return go(ti + 1, pi + 1);
  };
  return go(0, 0);
}
