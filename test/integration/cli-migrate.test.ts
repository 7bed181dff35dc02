import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { TEST_DATABASE_URL } from '../helpers/db.ts';

const run = promisify(execFile);
const jitgate = (args: string[], env: NodeJS.ProcessEnv) =>
  run(process.execPath, ['bin/jitgate.js', ...args], {
    env: { PATH: process.env.PATH, ...env },
    timeout: 60_000,
  });

const databaseName = `jitgate_cli_${randomBytes(4).toString('hex')}`;
const dataDir = mkdtempSync(join(tmpdir(), 'jitgate-embedded-'));
const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });

afterAll(async () => {
  await admin.unsafe(`drop database if exists ${databaseName} with (force)`);
  await admin.end({ timeout: 5 });
  rmSync(dataDir, { recursive: true, force: true });
});

describe('jitgate migrate', () => {
  it('migrates real PostgreSQL, twice without harm', async () => {
    await admin.unsafe(`create database ${databaseName}`);
    const url = new URL(TEST_DATABASE_URL);
    url.pathname = `/${databaseName}`;
    for (let i = 0; i < 2; i++) {
      const { stdout } = await jitgate(['migrate'], { DATABASE_URL: url.toString() });
      expect(stdout).toContain('migrations applied (PostgreSQL)');
    }
    const db = postgres(url.toString(), { max: 1, onnotice: () => {} });
    try {
      const tables =
        await db`select table_name from information_schema.tables where table_schema = 'public' order by 1`;
      expect(tables.map((t) => t.table_name)).toEqual(
        expect.arrayContaining([
          'access_requests',
          'approvals',
          'audit_events',
          'grants',
          'outbox',
          'signing_keys',
        ]),
      );
    } finally {
      await db.end({ timeout: 5 });
    }
  });

  it('migrates the embedded default', async () => {
    const { stdout } = await jitgate(['migrate'], { JITGATE_DATA_DIR: dataDir });
    expect(stdout).toContain(`migrations applied (embedded database in ${dataDir})`);
  });

  it('the build (npm run build) runs without tsx and finds the migrations from dist/', async () => {
    await run('npm', ['run', 'build'], { timeout: 120_000 });
    const builtDataDir = mkdtempSync(join(tmpdir(), 'jitgate-built-'));
    try {
      const { stdout } = await run(process.execPath, ['dist/src/main.js', 'migrate'], {
        env: { PATH: process.env.PATH, JITGATE_DATA_DIR: builtDataDir },
        timeout: 60_000,
      });
      expect(stdout).toContain(`migrations applied (embedded database in ${builtDataDir})`);
    } finally {
      rmSync(builtDataDir, { recursive: true, force: true });
    }
  });

  it('stops with one line per bad variable and exit code 2', async () => {
    const failed = await jitgate(['migrate'], { DATABASE_URL: 'mysql://secret@x/y' }).catch(
      (error: { code: number; stderr: string }) => error,
    );
    expect(failed).toMatchObject({ code: 2 });
    expect((failed as { stderr: string }).stderr).toContain(
      'DATABASE_URL: expects a postgres:// connection URL',
    );
    expect((failed as { stderr: string }).stderr).not.toContain('secret');
  });
});
