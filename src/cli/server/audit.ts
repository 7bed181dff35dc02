import { parseArgs } from 'node:util';
import { type ExportFormat, type ExportSink, exportAuditEvents } from '../../audit/export.ts';
import { verifyAuditChain } from '../../audit/verify.ts';
import type { Db } from '../../db/client.ts';
import { isUuid } from '../../shared/ids.ts';

export interface AuditCliDeps {
  db: Db;
  stdout: ExportSink;
  stderr: { write(chunk: string): boolean };
}

const AUDIT_USAGE = `usage:
  jitgate audit verify
  jitgate audit export [--since <ISO time>] [--until <ISO time>] [--grant <grant id>] [--user <Slack user id>] [--format jsonl|csv]
`;

/** Exit codes: 0 fine, 1 the chain is broken, 2 bad command line. */
const EXIT_OK = 0;
const EXIT_CHAIN_BROKEN = 1;
const EXIT_USAGE = 2;

function parseTime(flag: string, text: string | undefined): Date | undefined | Error {
  if (text === undefined) return undefined;
  const at = new Date(text);
  return Number.isNaN(at.getTime())
    ? new Error(`--${flag} expects an ISO 8601 time, like 2026-01-05T10:00:00Z`)
    : at;
}

/**
 * `jitgate audit verify|export …`. Takes argv after `audit` (a leading `audit` is also
 * accepted) and returns the exit code; main.ts only sets process.exitCode.
 */
export async function runAuditCommand(argv: readonly string[], deps: AuditCliDeps): Promise<number> {
  const args = argv[0] === 'audit' ? argv.slice(1) : [...argv];
  const [command, ...rest] = args;
  const fail = (message: string) => {
    deps.stderr.write(`${message}\n${AUDIT_USAGE}`);
    return EXIT_USAGE;
  };
  if (command === 'verify') {
    if (rest.length > 0) return fail(`audit verify takes no arguments (got ${rest.join(' ')})`);
    const result = await verifyAuditChain(deps.db);
    if (result.ok) {
      deps.stdout.write(
        result.rows === 0
          ? 'audit chain ok: the log is empty\n'
          : `audit chain ok: ${result.rows} rows, head seq ${result.headSeq} hash ${result.headHash}\n`,
      );
      return EXIT_OK;
    }
    deps.stdout.write(
      `audit chain BROKEN at seq ${result.seq} (${result.reason}): ${result.message}\n` +
        `${result.rows} rows before it verified\n`,
    );
    return EXIT_CHAIN_BROKEN;
  }
  if (command === 'export') {
    let values: { since?: string; until?: string; grant?: string; user?: string; format?: string };
    try {
      ({ values } = parseArgs({
        args: rest,
        strict: true,
        allowPositionals: false,
        options: {
          since: { type: 'string' },
          until: { type: 'string' },
          grant: { type: 'string' },
          user: { type: 'string' },
          format: { type: 'string', default: 'jsonl' },
        },
      }));
    } catch (error) {
      return fail(error instanceof Error ? error.message : String(error));
    }
    const since = parseTime('since', values.since);
    const until = parseTime('until', values.until);
    if (since instanceof Error) return fail(since.message);
    if (until instanceof Error) return fail(until.message);
    if (since && until && since >= until) return fail('--since must be before --until');
    if (values.format !== 'jsonl' && values.format !== 'csv') return fail('--format expects jsonl or csv');
    if (values.grant !== undefined && !isUuid(values.grant))
      return fail('--grant expects a grant id (a UUID)');
    if (values.user !== undefined && !/^[A-Z0-9]{2,32}$/.test(values.user)) {
      return fail('--user expects a Slack user id, like U123ABC');
    }
    const format: ExportFormat = values.format;
    const count = await exportAuditEvents(deps.db, deps.stdout, {
      format,
      ...(since ? { since } : {}),
      ...(until ? { until } : {}),
      ...(values.grant ? { grantId: values.grant } : {}),
      ...(values.user ? { userId: values.user } : {}),
    });
    deps.stderr.write(`exported ${count} rows\n`);
    return EXIT_OK;
  }
  return fail(command === undefined ? 'audit needs a command' : `unknown audit command: ${command}`);
}
