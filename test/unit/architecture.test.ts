import { describe, expect, it } from 'vitest';
import { type Import, importCycles, reachableFrom, readModuleGraph } from '../helpers/module-graph.ts';

/**
 * The map in README ("Where things are") as tests over the import graph of src/: no cycle, no
 * file past MAX_LINES, and none of the arrows that must never exist. Type-only and lazy
 * (`import()`) imports count like any other: knowing a type is knowing the part.
 */

const graph = readModuleGraph('src');
const MAX_LINES = 450;

const inFolder = (folder: string) => (file: string) => file.startsWith(`src/${folder}/`);

/** Each file under `folders` that reaches a file `forbidden` accepts: the nearest one, and the way there. */
function forbiddenReach(folders: string[], forbidden: (file: string) => boolean): string[] {
  const own = (file: string) => folders.some((folder) => inFolder(folder)(file));
  return graph.files.filter(own).flatMap((file) => {
    const reached = [...reachableFrom(file, graph.imports)].filter((r) => forbidden(r) && !own(r));
    if (reached.length === 0) return [];
    const nearest = reached
      .map((r) => pathBetween(file, r))
      .reduce((best, path) => (path.length < best.length ? path : best));
    return [`${file} reaches ${nearest.at(-1)} (${nearest.join(' → ')})`];
  });
}

/** The shortest import path from one file to another (breadth-first). */
function pathBetween(from: string, to: string): string[] {
  const cameFrom = new Map<string, string>([[from, from]]);
  const queue = [from];
  while (queue.length > 0) {
    const node = queue.shift()!;
    if (node === to) break;
    for (const edge of graph.imports) {
      if (edge.from !== node || !edge.local || cameFrom.has(edge.to)) continue;
      cameFrom.set(edge.to, node);
      queue.push(edge.to);
    }
  }
  const path = [to];
  for (let at = to; at !== from; at = cameFrom.get(at)!) path.unshift(cameFrom.get(at)!);
  return path;
}

/** Packages and builtins imported by `folders` or anything they reach, that `forbidden` refuses. */
function forbiddenPackages(folders: string[], forbidden: (edge: Import) => boolean): string[] {
  const own = graph.files.filter((file) => folders.some((folder) => inFolder(folder)(file)));
  const reached = new Set(own.flatMap((file) => [file, ...reachableFrom(file, graph.imports)]));
  return graph.imports
    .filter((edge) => !edge.local && reached.has(edge.from) && forbidden(edge))
    .map(
      (edge) =>
        `${edge.from} imports ${edge.to}${edge.names.length > 0 ? ` (${edge.names.join(', ')})` : ''}`,
    );
}

/** What talks to a database, a queue, Slack or the network; `node:net` only for its address helpers. */
const IO_PACKAGE =
  /^(postgres|drizzle-orm(\/.*)?|@electric-sql\/pglite.*|ioredis|bullmq|@slack\/.*|fastify.*|@fastify\/.*|undici|openid-client|node:(http|https|http2|dns|dgram|tls))$/;
const PURE_NET_NAMES = new Set(['BlockList', 'isIP', 'isIPv4', 'isIPv6']);
const doesIo = (edge: Import) =>
  IO_PACKAGE.test(edge.to) ||
  (edge.to === 'node:net' && !edge.names.every((name) => PURE_NET_NAMES.has(name)));

describe('the map of src/ (README, "Where things are")', () => {
  it('reads the whole graph: every local import names a file of src/', () => {
    expect(graph.files.length).toBeGreaterThan(100);
    const unresolved = graph.imports.filter((i) => i.local && !graph.files.includes(i.to));
    expect(unresolved.map((i) => `${i.from} → ${i.to}`)).toEqual([]);
  });

  it('has no import cycle', () => {
    expect(importCycles(graph.files, graph.imports).map((cycle) => cycle.join(' → '))).toEqual([]);
  });

  it(`has no file over ${MAX_LINES} lines but generated ones`, () => {
    const long = [...graph.lines]
      .filter(([file, lines]) => lines > MAX_LINES && !graph.generated.has(file))
      .map(([file, lines]) => `${file}: ${lines} lines`);
    expect(long).toEqual([]);
  });

  it('domain knows no chat: access and policy reach nothing in slack/', () => {
    expect(forbiddenReach(['access', 'policy'], inFolder('slack'))).toEqual([]);
  });

  it("the proxy never waits on Slack: it reaches nothing in slack/ (the outbox's delivery), and of outbox/ only the grant feed", () => {
    const outboxButFeed = (file: string) => inFolder('outbox')(file) && file !== 'src/outbox/grant-feed.ts';
    expect(forbiddenReach(['proxy'], (file) => inFolder('slack')(file) || outboxButFeed(file))).toEqual([]);
  });

  it('policy is pure: no database, no network, no other part but shared/', () => {
    expect(forbiddenReach(['policy'], inFolder('db'))).toEqual([]);
    expect(forbiddenPackages(['policy'], doesIo)).toEqual([]);
    // The proxy, say, uses the policy's parsers; the policy never uses the proxy's.
    const outside = graph.imports.filter(
      (edge) =>
        inFolder('policy')(edge.from) &&
        edge.local &&
        !inFolder('policy')(edge.to) &&
        !inFolder('shared')(edge.to),
    );
    expect(outside.map((edge) => `${edge.from} imports ${edge.to}`)).toEqual([]);
  });

  it('tables know no behaviour: db/schema imports drizzle and itself only', () => {
    const schema = graph.imports.filter((edge) => inFolder('db/schema')(edge.from));
    const outside = schema.filter((edge) =>
      edge.local ? !inFolder('db/schema')(edge.to) : !/^drizzle-orm(\/pg-core)?$/.test(edge.to),
    );
    expect(outside.map((edge) => `${edge.from} imports ${edge.to}`)).toEqual([]);
  });
});

describe('the checks themselves', () => {
  const edge = (from: string, to: string): Import => ({
    from,
    to,
    local: true,
    typeOnly: false,
    dynamic: false,
    names: [],
  });

  it('find a cycle, a self-import, and none in a chain', () => {
    const files = ['a.ts', 'b.ts', 'c.ts', 'd.ts'];
    expect(importCycles(files, [edge('a.ts', 'b.ts'), edge('b.ts', 'c.ts'), edge('c.ts', 'a.ts')])).toEqual([
      ['a.ts', 'b.ts', 'c.ts', 'a.ts'],
    ]);
    expect(importCycles(files, [edge('d.ts', 'd.ts')])).toEqual([['d.ts', 'd.ts']]);
    expect(importCycles(files, [edge('a.ts', 'b.ts'), edge('b.ts', 'c.ts'), edge('a.ts', 'c.ts')])).toEqual(
      [],
    );
  });

  it('tell a network import from node:net address helpers', () => {
    const external = (to: string, names: string[]): Import => ({ ...edge('x.ts', to), local: false, names });
    expect(doesIo(external('node:net', ['BlockList', 'isIPv4']))).toBe(false);
    expect(doesIo(external('node:net', ['createConnection']))).toBe(true);
    expect(doesIo(external('drizzle-orm', ['sql']))).toBe(true);
    expect(doesIo(external('zod', ['z']))).toBe(false);
  });
});
