/**
 * `npm run bench` (tsx test/bench/run.ts [name…]): runs each bench module in turn and prints
 * its table. To add a bench, export a BenchModule from `test/bench/<part>.bench.ts` and add
 * a line to BENCHES. Benches run on loopback only and keep their loops bounded.
 */
import { execFileSync } from 'node:child_process';

export interface BenchTable {
  title: string;
  columns: string[];
  rows: (string | number)[][];
  notes?: string[];
}

export interface BenchContext {
  /** Whether `taskset` exists, so servers and load generator can get a core each. */
  taskset: boolean;
  cores: number;
  log(message: string): void;
}

export interface BenchModule {
  name: string;
  run(ctx: BenchContext): Promise<BenchTable[]>;
}

const BENCHES: Record<string, () => Promise<BenchModule>> = {
  'proxy-audit': async () => (await import('./proxy-audit.bench.ts')).proxyAuditBench,
  proxy: async () => (await import('./proxy.bench.ts')).proxyBench,
  intent: async () => (await import('./intent.bench.ts')).intentBench,
  limits: async () => (await import('./limits.bench.ts')).limitsBench,
  // Before `audit`, whose million-row log would leave PostgreSQL busy (checkpoints, vacuum).
  'audit-load': async () => (await import('./audit-load.bench.ts')).auditLoadBench,
  scheduler: async () => (await import('./scheduler.bench.ts')).schedulerBench,
  audit: async () => (await import('./audit.bench.ts')).auditBench,
  dpop: async () => (await import('./dpop.bench.ts')).dpopBench,
  'proxy-dpop': async () => (await import('./proxy-dpop.bench.ts')).proxyDpopBench,
  'console-audit': async () => (await import('./console-audit.bench.ts')).consoleAuditBench,
};

function hasTaskset(): boolean {
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function formatTable(table: BenchTable): string {
  const cells = [table.columns, ...table.rows.map((r) => r.map(String))];
  const widths = table.columns.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  const out = [
    `\n## ${table.title}\n`,
    line(cells[0]!),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
  ];
  for (const r of cells.slice(1)) out.push(line(r));
  for (const n of table.notes ?? []) out.push(`\n${n}`);
  return out.join('\n');
}

async function main(): Promise<void> {
  const wanted = process.argv.slice(2);
  const names = wanted.length > 0 ? wanted : Object.keys(BENCHES);
  const { availableParallelism, cpus } = await import('node:os');
  const ctx: BenchContext = {
    taskset: hasTaskset(),
    cores: availableParallelism(),
    log: (m) => process.stderr.write(`[bench] ${m}\n`),
  };
  console.log(
    `# jitgate bench — ${cpus()[0]?.model ?? 'cpu'} × ${ctx.cores}, node ${process.version}, taskset: ${ctx.taskset}`,
  );
  for (const name of names) {
    const load = BENCHES[name];
    if (!load) throw new Error(`unknown bench ${name}; known: ${Object.keys(BENCHES).join(', ')}`);
    const started = performance.now();
    const tables = await (await load()).run(ctx);
    for (const t of tables) console.log(formatTable(t));
    ctx.log(`${name} took ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
