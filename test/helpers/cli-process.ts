import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';

/** The contractor CLI run as a person runs it: `bin/jitgate.js` as a child, output collected. */
export interface CliRun {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** The JSON lines it printed so far (`--json`). */
  lines(): Record<string, unknown>[];
  exit: Promise<number | null>;
}

/**
 * Starts `jitgate <args>` with only what a laptop has: PATH and a HOME (config under
 * `<home>/config`), no DATABASE_URL, no Slack tokens, no policy. `env` adds to that.
 */
export function runCli(home: string, args: string[], env: Record<string, string> = {}): CliRun {
  const child = spawn(process.execPath, ['bin/jitgate.js', ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: home, XDG_CONFIG_HOME: join(home, 'config'), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    lines: () =>
      out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    exit,
  };
}

/** A port free on 127.0.0.1 now, for a child whose URLs must be known before it starts. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
