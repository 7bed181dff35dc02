import type { MaskRules, MaskToken } from '../policy/mask-paths.ts';

/** What a masked value is replaced by (style `replace`). */
export const MASKED = '[masked]';

/**
 * The walk below runs the mask paths as a small automaton instead of matching every path
 * against every node's full location (which cost ~8 ms for a 100 KB document): each node
 * carries the set of (path, next token) positions still alive, a child's set is computed from
 * its parent's and its key, and a subtree no path can reach any more is not visited at all.
 * A position is `path * 256 + token`; sets are tiny arrays.
 */
function addState(rules: MaskRules, into: number[], path: number, token: number): boolean {
  const tokens = rules.paths[path]!;
  if (token === tokens.length) return true;
  const id = path * 256 + token;
  if (into.includes(id)) return false;
  into.push(id);
  // `**` may match zero levels: the token after it is alive at the same node.
  return tokens[token]!.kind === 'deep' ? addState(rules, into, path, token + 1) : false;
}

function tokenMatches(t: MaskToken, seg: string | number): boolean {
  switch (t.kind) {
    case 'key':
      return seg === t.name;
    case 'index':
      return seg === t.index;
    case 'anyIndex':
      return typeof seg === 'number';
    case 'any':
      return true;
    case 'deep':
      return false;
  }
}

/** The child's live positions after `seg`; `masked` when some path ends exactly there. */
function step(
  rules: MaskRules,
  states: readonly number[],
  seg: string | number,
): { next: number[]; masked: boolean } {
  const next: number[] = [];
  let masked = false;
  for (const id of states) {
    const path = id >> 8;
    const token = id & 255;
    const t = rules.paths[path]![token]!;
    if (t.kind === 'deep') {
      // `**` consumes this level and stays alive below it.
      if (addState(rules, next, path, token)) masked = true;
    } else if (tokenMatches(t, seg) && addState(rules, next, path, token + 1)) masked = true;
  }
  return { next, masked };
}

/**
 * Masks a parsed JSON value in place (the root itself is never masked) and returns it.
 *
 * The walk keeps its own stack instead of recursing: a response (or a body a contractor wrote
 * and reads back) may nest as deep as its size allows, and a recursive walk of a few thousand
 * levels would throw out of the response path.
 */
export function maskValue(value: unknown, rules: MaskRules): unknown {
  const root: number[] = [];
  for (let p = 0; p < rules.paths.length; p++) addState(rules, root, p, 0);
  if (root.length === 0 || value === null || typeof value !== 'object') return value;
  // Two parallel stacks (node, its live positions): no object per pending node.
  const nodes: object[] = [value];
  const states: (readonly number[])[] = [root];
  while (nodes.length > 0) {
    const node = nodes.pop()!;
    const alive = states.pop()!;
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) {
        const { next, masked } = step(rules, alive, i);
        if (masked) node[i] = MASKED;
        else if (next.length > 0) pushContainer(nodes, states, node[i], next);
      }
    } else {
      const record = node as Record<string, unknown>;
      for (const key of Object.keys(record)) {
        const { next, masked } = step(rules, alive, key);
        if (masked) {
          if (rules.style === 'remove') delete record[key];
          else record[key] = MASKED;
        } else if (next.length > 0) pushContainer(nodes, states, record[key], next);
      }
    }
  }
  return value;
}

function pushContainer(
  nodes: object[],
  states: (readonly number[])[],
  child: unknown,
  next: readonly number[],
): void {
  if (child === null || typeof child !== 'object') return;
  nodes.push(child);
  states.push(next);
}

/**
 * Masks the start of a JSON text that may be cut off anywhere (a captured body truncated at
 * `max_bytes`), without parsing it whole: a lexical pass tracks where each value sits and
 * writes `"[masked]"` in place of every matched value — a matched string, number, literal,
 * object or array, even one cut off by the truncation. What is not JSON is returned as is
 * (the caller only calls this for a JSON content type). The style is always `replace` here:
 * removing a key from a fragment would leave it harder to read, not safer.
 *
 * Each open container carries the mask automaton's live positions (as `maskValue` does), so a
 * value costs one step whatever its depth: the text is walked once, never re-matched against
 * the whole path, and a container no mask path can reach is copied as it is.
 */
export function maskJsonPrefix(text: string, rules: MaskRules): string {
  type Frame = {
    array: boolean;
    index: number;
    key: string | undefined;
    expectKey: boolean;
    /** The automaton positions alive for this container's children. */
    states: readonly number[];
  };
  const root: number[] = [];
  for (let p = 0; p < rules.paths.length; p++) addState(rules, root, p, 0);
  const stack: Frame[] = [];
  let out = '';
  let i = 0;
  const n = text.length;

  const readString = (from: number): number => {
    // Returns the index after the closing quote (or n if cut off).
    let j = from + 1;
    while (j < n) {
      const c = text.charCodeAt(j);
      if (c === 0x5c) j += 2;
      else if (c === 0x22) return j + 1;
      else j++;
    }
    return n;
  };
  const skipValue = (from: number): number => {
    // Skips one value starting at `from` (any kind), returning the index after it.
    const c = text[from];
    if (c === '"') return readString(from);
    if (c === '{' || c === '[') {
      let depth = 0;
      let j = from;
      while (j < n) {
        const d = text[j];
        if (d === '"') {
          j = readString(j);
          continue;
        }
        if (d === '{' || d === '[') depth++;
        else if (d === '}' || d === ']') {
          depth--;
          if (depth === 0) return j + 1;
        }
        j++;
      }
      return n;
    }
    let j = from;
    while (j < n && !/[,}\]\s]/.test(text[j]!)) j++;
    return j;
  };
  while (i < n) {
    const c = text[i]!;
    const top = stack.at(-1);
    if (c === ' ' || c === '\n' || c === '\r' || c === '\t' || c === ':') {
      out += c;
      i++;
      continue;
    }
    if (c === ',') {
      out += c;
      i++;
      if (top) {
        if (top.array) top.index++;
        else top.expectKey = true;
      }
      continue;
    }
    if (c === '}' || c === ']') {
      out += c;
      i++;
      stack.pop();
      continue;
    }
    if (top && !top.array && top.expectKey) {
      // A key: read it, remember it for the value that follows.
      const end = readString(i);
      const raw = text.slice(i, end);
      out += raw;
      i = end;
      let key: string;
      try {
        key = JSON.parse(raw) as string;
      } catch {
        key = raw.slice(1, -1);
      }
      top.key = key;
      top.expectKey = false;
      continue;
    }
    // A value: at the root (never masked), or at the location its container's states describe.
    let states: readonly number[] = root;
    if (top) {
      const { next, masked } = step(rules, top.states, top.array ? top.index : (top.key ?? ''));
      if (masked) {
        out += JSON.stringify(MASKED);
        i = skipValue(i);
        continue;
      }
      states = next;
    }
    if (c === '{' || c === '[') {
      if (states.length === 0) {
        // Nothing inside can be masked: copy it whole (up to the cut).
        const end = skipValue(i);
        out += text.slice(i, end);
        i = end;
        continue;
      }
      out += c;
      i++;
      stack.push({ array: c === '[', index: 0, key: undefined, expectKey: c === '{', states });
      continue;
    }
    const end = skipValue(i);
    out += text.slice(i, end);
    i = end === i ? i + 1 : end;
  }
  return out;
}

/**
 * `JSON.stringify`, which recurses: past a few thousand levels it throws RangeError. Such a
 * document is written out by `stringifyJsonIteratively` instead, to the same text.
 */
export function stringifyJson(value: unknown): string {
  try {
    return JSON.stringify(value);
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    return stringifyJsonIteratively(value);
  }
}

type OpenContainer =
  | { array: true; items: readonly unknown[]; index: number }
  | { array: false; record: Record<string, unknown>; keys: string[]; index: number; written: number };

/**
 * The text `JSON.stringify` gives for a parsed JSON value (objects, arrays, strings, numbers,
 * booleans, null — and `undefined` where a masked key was removed), with a stack of its own.
 */
export function stringifyJsonIteratively(value: unknown): string {
  const out: string[] = [];
  const stack: OpenContainer[] = [];
  const open = (v: unknown): void => {
    if (Array.isArray(v)) {
      out.push('[');
      stack.push({ array: true, items: v, index: 0 });
    } else if (v !== null && typeof v === 'object') {
      out.push('{');
      const record = v as Record<string, unknown>;
      stack.push({ array: false, record, keys: Object.keys(record), index: 0, written: 0 });
    } else {
      // As JSON.stringify does inside an array: what has no JSON form is written as null.
      out.push(JSON.stringify(v) ?? 'null');
    }
  };
  open(value);
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.array) {
      if (top.index === top.items.length) {
        out.push(']');
        stack.pop();
        continue;
      }
      if (top.index > 0) out.push(',');
      open(top.items[top.index++]);
    } else {
      if (top.index === top.keys.length) {
        out.push('}');
        stack.pop();
        continue;
      }
      const key = top.keys[top.index++]!;
      const v = top.record[key];
      if (v === undefined || typeof v === 'function' || typeof v === 'symbol') continue;
      if (top.written++ > 0) out.push(',');
      out.push(JSON.stringify(key), ':');
      open(v);
    }
  }
  return out.join('');
}
