import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { runDemo } from '../../src/demo/run-demo.ts';
import { TEST_DATABASE_URL } from '../helpers/db.ts';

const run = promisify(execFile);

function transcript(): { stream: Writable; text(): string } {
  let text = '';
  const stream = new Writable({
    write(chunk, _encoding, done) {
      text += String(chunk);
      done();
    },
  });
  return { stream, text: () => text };
}

const schemaName = `t_flow_${randomBytes(5).toString('hex')}`;

afterAll(async () => {
  const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`drop schema if exists "${schemaName}" cascade`);
  await admin.end({ timeout: 5 });
});

describe('the whole flow', () => {
  it('signed Slack request → approval → token → proxied call → alert → revoke → expiry, on PostgreSQL', async () => {
    const out = transcript();
    const logs = transcript();
    const code = await runDemo({
      stdout: out.stream,
      databaseUrl: TEST_DATABASE_URL,
      schemaName,
      shortGrantSeconds: 2,
      log: { destination: logs.stream, level: 'trace' },
    });
    const text = out.text();
    expect(text, text).toContain('8 steps passed, 0 failed');
    expect(code).toBe(0);
    expect(text).toContain('GET /billing-api/invoices/INV-42 → 200');
    expect(text).toContain('"error":"out_of_scope"');
    expect(text).toContain('"error":"grant_revoked"');
    expect(text).toContain('chain intact');
    // The upstream credential is never shown to anyone.
    expect(text).not.toContain('upstream-secret-never-shown');

    // Invariant 3: no token, credential or Slack secret in the logs of a whole flow, or in audit rows.
    const logText = logs.text();
    expect(logText.length).toBeGreaterThan(1000);
    for (const secret of ['upstream-secret-never-shown', 'xoxb-demo', 'demo-signing-secret']) {
      expect(logText).not.toContain(secret);
    }
    expect(logText).not.toMatch(/eyJ[\w-]{10,}\.[\w-]{10,}\./);
    const db = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
    try {
      const rows = await db.unsafe(`select data::text as data from "${schemaName}".audit_events`);
      expect(rows.length).toBeGreaterThan(20);
      const all = rows.map((r) => String(r.data)).join('\n');
      expect(all).not.toMatch(/eyJ[\w-]{10,}\./);
      expect(all).not.toContain('upstream-secret-never-shown');
    } finally {
      await db.end({ timeout: 5 });
    }
  });

  it('npm run demo exits 0 on embedded defaults', async () => {
    const { stdout } = await run(process.execPath, ['bin/jitgate.js', 'demo'], {
      env: { PATH: process.env.PATH },
      timeout: 120_000,
    });
    expect(stdout).toContain('8 steps passed, 0 failed');
    // It names the console's address (served while it runs; kept open at a terminal).
    expect(stdout).toMatch(/web console: http:\/\/127\.0\.0\.1:\d+\/console /);
  }, 130_000);
});
