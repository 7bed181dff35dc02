import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { isPostgresNullSocketWrite } from '../../src/db/postgres-crash-guard.ts';

const run = promisify(execFile);

function nullSocketError(): TypeError {
  const error = new TypeError("Cannot read properties of null (reading 'write')");
  error.stack = `${error.message}\n    at Immediate.nextWrite (file:///app/node_modules/postgres/src/connection.js:255:22)`;
  return error;
}

describe('postgres crash guard', () => {
  it('recognises only the null-socket write of postgres.js', () => {
    expect(isPostgresNullSocketWrite(nullSocketError())).toBe(true);
    const elsewhere = new TypeError("Cannot read properties of null (reading 'write')");
    elsewhere.stack = `${elsewhere.message}\n    at nextWrite (file:///app/src/proxy/server.ts:1:1)`;
    expect(isPostgresNullSocketWrite(elsewhere)).toBe(false);
    expect(isPostgresNullSocketWrite(new Error("Cannot read properties of null (reading 'write')"))).toBe(
      false,
    );
    expect(isPostgresNullSocketWrite('boom')).toBe(false);
  });

  it('keeps the process alive for that fault and ends it for any other', async () => {
    const script = (thrown: string) => `
      import { installPostgresCrashGuard } from './src/db/postgres-crash-guard.ts';
      installPostgresCrashGuard({ warn: (m) => console.log('warn', m), fatal: () => console.log('fatal') });
      setImmediate(() => { ${thrown} });
      setTimeout(() => { console.log('alive'); }, 100);
    `;
    const survived = await run(process.execPath, [
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      script(
        `const e = new TypeError("Cannot read properties of null (reading 'write')"); e.stack = e.message + "\\n    at Immediate.nextWrite (file:///x/node_modules/postgres/src/connection.js:255:22)"; throw e;`,
      ),
    ]);
    expect(survived.stdout).toContain('alive');
    const died = await run(process.execPath, [
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      script(`throw new Error('something else');`),
    ]).catch((error: { code: number; stdout: string }) => error);
    expect(died).toMatchObject({ code: 1 });
    expect((died as { stdout: string }).stdout).toContain('fatal');
    expect((died as { stdout: string }).stdout).not.toContain('alive');
  });
});
