import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import postgres from 'postgres';
import { TEST_DATABASE_URL } from './db.ts';
import { TEST_ENV } from './policy.ts';

/**
 * A database of its own for tests that run `bin/jitgate.js` as a child: the child migrates the
 * default schema, so it cannot share a database with another file's child.
 */
export async function createScratchDatabase(prefix: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      try {
        await admin.unsafe(`drop database if exists ${name} with (force)`);
      } finally {
        await admin.end({ timeout: 5 });
      }
    },
  };
}

export interface JitgateChild {
  child: ChildProcess;
  /** PORT: `/slack/events`, and `/healthz`, `/readyz` (status only) for probes. */
  port: number;
  /** ADMIN_PORT: `/healthz`, `/readyz` naming each check, `/metrics`. */
  adminPort: number;
  /** The proxy port, when the role runs the proxy. */
  proxyPort: number | undefined;
  /** Everything the child wrote to stdout and stderr so far. */
  log(): string;
  /** The parsed JSON log lines whose `msg` is `msg`. */
  logLines(msg: string): Record<string, unknown>[];
  /** Polls the log until a line with this `msg` appears (and matches `where`); returns it. */
  waitForLog(
    msg: string,
    where?: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  /** Sends `signal` (SIGTERM by default) and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

function parseLines(output: string): Record<string, unknown>[] {
  const lines: Record<string, unknown>[] = [];
  for (const line of output.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // A line still being written.
    }
  }
  return lines;
}

/**
 * Starts `jitgate <role>` on free ports (PORT, ADMIN_PORT, PROXY_PORT = 0) and resolves once it logs that
 * it started. `env` adds to (or overrides) TEST_ENV and the ports.
 */
export async function startJitgate(
  role: string,
  env: NodeJS.ProcessEnv & { DATABASE_URL: string },
): Promise<JitgateChild> {
  const child = spawn(process.execPath, ['bin/jitgate.js', role], {
    env: {
      PATH: process.env.PATH,
      ...TEST_ENV,
      PORT: '0',
      ADMIN_PORT: '0',
      PROXY_PORT: '0',
      HOST: '127.0.0.1',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk) => {
    output += String(chunk);
  });
  child.stderr?.on('data', (chunk) => {
    output += String(chunk);
  });
  // 'close', not 'exit': it comes once stdout and stderr are drained, so the log is complete.
  const exited = once(child, 'close').then(([code]) => code as number | null);
  const logLines = (msg: string) => parseLines(output).filter((line) => line.msg === msg);

  async function waitForLog(
    msg: string,
    where: (line: Record<string, unknown>) => boolean = () => true,
    timeoutMs = 15_000,
  ): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = logLines(msg).find(where);
      if (line) return line;
      if (child.exitCode !== null)
        throw new Error(`exited (${child.exitCode}) before logging "${msg}":\n${output}`);
      if (Date.now() > deadline) throw new Error(`no "${msg}" log line in time:\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  let started: Record<string, unknown>;
  try {
    started = await waitForLog('jitgate started', undefined, 30_000);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  const listening = logLines('proxy listening')[0];
  return {
    child,
    port: started.port as number,
    adminPort: started.adminPort as number,
    proxyPort: listening ? (listening.port as number) : undefined,
    log: () => output,
    logLines,
    waitForLog,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
