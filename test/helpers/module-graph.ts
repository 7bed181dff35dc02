import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { parseSync } from 'oxc-parser';

/**
 * The import graph of src/, read with a real TypeScript parser (oxc): every static import and
 * re-export (type-only ones marked), and every `import('…')` with a literal specifier.
 */

export interface Import {
  /** Repo-relative path of the importing file (`src/proxy/server.ts`). */
  from: string;
  /** Repo-relative path of the imported file, or the package / builtin as written (`node:net`, `zod`). */
  to: string;
  /** Whether `to` is a file of the repository (a relative specifier). */
  local: boolean;
  /** Only types are imported: erased at run time. */
  typeOnly: boolean;
  /** `import('…')`: loaded when first needed. */
  dynamic: boolean;
  /** The names imported (`*` for a namespace or `export *`; empty for a bare or dynamic import). */
  names: string[];
}

export interface ModuleGraph {
  root: string;
  files: string[];
  imports: Import[];
  /** Lines per file, every file under the folder (styles and assets too). */
  lines: Map<string, number>;
  /** Files whose first line says `@generated`: written by a tool, not by hand. */
  generated: Set<string>;
}

function allFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? allFiles(path) : [path];
  });
}

const isModule = (file: string) => /\.(ts|mts|js|mjs)$/.test(file) && !file.endsWith('.d.ts');

/** Every source file under `dir` (repo-relative) with its imports; `repo` is the repository root. */
export function readModuleGraph(dir = 'src', repo = process.cwd()): ModuleGraph {
  const everything = allFiles(resolve(repo, dir)).map((f) => relative(repo, f));
  const files = everything.filter(isModule);
  const imports: Import[] = [];
  const lines = new Map<string, number>();
  const generated = new Set<string>();
  for (const file of everything) {
    const text = readFileSync(resolve(repo, file), 'utf8');
    lines.set(file, text.split('\n').length - (text.endsWith('\n') ? 1 : 0));
    if (text.slice(0, text.indexOf('\n')).includes('@generated')) generated.add(file);
  }
  for (const file of files) {
    const text = readFileSync(resolve(repo, file), 'utf8');
    const parsed = parseSync(file, text);
    if (parsed.errors.length > 0) throw new Error(`${file}: ${parsed.errors[0]?.message}`);
    const add = (specifier: string, typeOnly: boolean, dynamic: boolean, names: string[]) => {
      const local = specifier.startsWith('.');
      const to = local ? relative(repo, resolve(repo, dirname(file), specifier)) : specifier;
      imports.push({ from: file, to, local, typeOnly, dynamic, names });
    };
    for (const statement of parsed.module.staticImports) {
      const entries = statement.entries;
      add(
        statement.moduleRequest.value,
        entries.length > 0 && entries.every((e) => e.isType),
        false,
        entries.map((e) => (e.importName.kind === 'Name' ? (e.importName.name ?? '') : '*')),
      );
    }
    for (const statement of parsed.module.staticExports) {
      for (const entry of statement.entries) {
        if (!entry.moduleRequest) continue;
        add(entry.moduleRequest.value, entry.isType, false, [
          entry.importName.kind === 'Name' ? (entry.importName.name ?? '') : '*',
        ]);
      }
    }
    for (const call of parsed.module.dynamicImports) {
      const literal = /^['"`]([^'"`$]+)['"`]$/.exec(
        text.slice(call.moduleRequest.start, call.moduleRequest.end),
      );
      if (literal?.[1]) add(literal[1], false, true, []);
    }
  }
  return { root: dir, files, imports, lines, generated };
}

/**
 * The import cycles among `files` over `edges`: each strongly connected component of more
 * than one file (or a file importing itself), given as one cycle through it, `a → b → … → a`.
 */
export function importCycles(files: readonly string[], edges: readonly Import[]): string[][] {
  const next = new Map<string, string[]>(files.map((f) => [f, []]));
  for (const edge of edges) if (edge.local && next.has(edge.to)) next.get(edge.from)?.push(edge.to);
  // Tarjan's algorithm, iterative: the graph is small, but recursion depth need not be a limit.
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  for (const start of files) {
    if (index.has(start)) continue;
    const work: { node: string; child: number }[] = [{ node: start, child: 0 }];
    index.set(start, counter);
    low.set(start, counter++);
    stack.push(start);
    onStack.add(start);
    while (work.length > 0) {
      const top = work[work.length - 1]!;
      const children = next.get(top.node) ?? [];
      if (top.child < children.length) {
        const child = children[top.child++]!;
        if (!index.has(child)) {
          index.set(child, counter);
          low.set(child, counter++);
          stack.push(child);
          onStack.add(child);
          work.push({ node: child, child: 0 });
        } else if (onStack.has(child)) {
          low.set(top.node, Math.min(low.get(top.node)!, index.get(child)!));
        }
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent) low.set(parent.node, Math.min(low.get(parent.node)!, low.get(top.node)!));
      if (low.get(top.node) === index.get(top.node)) {
        const component: string[] = [];
        for (;;) {
          const member = stack.pop()!;
          onStack.delete(member);
          component.push(member);
          if (member === top.node) break;
        }
        const selfLoop = (next.get(top.node) ?? []).includes(top.node);
        if (component.length > 1 || selfLoop) components.push(component);
      }
    }
  }
  return components.map((component) => cycleThrough(component, next));
}

/** One cycle through a strongly connected component, found by a breadth-first walk from its first file. */
function cycleThrough(component: string[], next: Map<string, string[]>): string[] {
  const members = new Set(component);
  const start = [...component].sort()[0]!;
  const cameFrom = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const node = queue.shift()!;
    for (const child of next.get(node) ?? []) {
      if (!members.has(child)) continue;
      if (child === start) {
        const path = [start];
        for (let at = node; at !== start; at = cameFrom.get(at)!) path.splice(1, 0, at);
        return [...path, start];
      }
      if (!cameFrom.has(child)) {
        cameFrom.set(child, node);
        queue.push(child);
      }
    }
  }
  return [...component, component[0]!];
}

/** Every file `from` reaches through `edges` (itself excluded), following local imports only. */
export function reachableFrom(from: string, edges: readonly Import[]): Set<string> {
  const seen = new Set<string>();
  const queue = [from];
  while (queue.length > 0) {
    const node = queue.shift()!;
    for (const edge of edges) {
      if (edge.from !== node || !edge.local || seen.has(edge.to)) continue;
      seen.add(edge.to);
      queue.push(edge.to);
    }
  }
  seen.delete(from);
  return seen;
}
