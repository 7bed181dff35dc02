import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import postgres from 'postgres';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TEST_DATABASE_URL } from '../helpers/db.ts';

/** `jitgate keys …` as an operator runs it, on a PostgreSQL database of its own. */

const run = promisify(execFile);
const databaseName = `jitgate_keys_${randomBytes(4).toString('hex')}`;
const databaseUrl = Object.assign(new URL(TEST_DATABASE_URL), { pathname: `/${databaseName}` }).toString();
const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
const keys = async (...args: string[]) => {
  try {
    const { stdout, stderr } = await run(process.execPath, ['bin/jitgate.js', 'keys', ...args], {
      env: { PATH: process.env.PATH, DATABASE_URL: databaseUrl },
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
};
const KID = /^(\S+)\s+created \S+\s+(.*)$/;
const listed = (stdout: string) =>
  stdout
    .trim()
    .split('\n')
    .map((line) => {
      const match = KID.exec(line);
      if (!match) throw new Error(`unexpected keys list line: ${line}`);
      return { kid: match[1]!, state: match[2]! };
    });

beforeAll(async () => {
  await admin.unsafe(`create database ${databaseName}`);
});

afterAll(async () => {
  await admin.unsafe(`drop database if exists ${databaseName} with (force)`);
  await admin.end({ timeout: 5 });
});

it('lists, rotates, retires and purges keys; refuses what would break signing, with one line and exit 1', async () => {
  const first = await keys('list');
  expect(first.code).toBe(0);
  const [original] = listed(first.stdout);
  expect(original).toMatchObject({ state: 'signing' });
  // Never key material.
  expect(first.stdout).not.toMatch(/"d"|privateJwk|plain:/);

  const refusedRetire = await keys('retire', original!.kid);
  expect(refusedRetire).toMatchObject({ code: 1 });
  expect(refusedRetire.stderr.trim()).toBe(
    `jitgate keys retire: key ${original!.kid} is the only active signing key; rotate first`,
  );

  expect((await keys('rotate')).stdout).toMatch(/^new signing key \S+; older keys verify until retired/);
  const rotated = listed((await keys('list')).stdout);
  expect(rotated.map((k) => k.state)).toEqual(['verifying', 'signing']);

  const refusedPurge = await keys('purge', original!.kid);
  expect(refusedPurge).toMatchObject({ code: 1 });
  expect(refusedPurge.stderr.trim()).toBe(
    `jitgate keys purge: key ${original!.kid} is not retired; retire it first`,
  );

  expect((await keys('retire', original!.kid)).code).toBe(0);
  const retired = listed((await keys('list')).stdout);
  expect(retired[0]!.state).toMatch(/^retired \S+ \(private key still stored: keys purge /);

  expect((await keys('purge', original!.kid)).stdout.trim()).toBe(
    `purged ${original!.kid}; its private key is deleted`,
  );
  expect(listed((await keys('list')).stdout)).toEqual([{ kid: rotated[1]!.kid, state: 'signing' }]);
  expect((await keys('purge', original!.kid)).stderr).toContain('unknown signing key');
  expect((await keys('purge')).code).toBe(2);
  expect((await keys('bogus')).code).toBe(2);
}, 60_000);
