import { type Role, runRoles } from '../../composition/roles.ts';
import type { Config } from '../../config.ts';
import { openDatabase } from '../../db/client.ts';
import { runAuditCommand } from './audit.ts';
import { keys } from './keys.ts';

/**
 * The server's commands (`jitgate serve | bot | proxy | worker | migrate | demo | audit | keys`),
 * once src/main.ts has read the configuration; the contractor's are in src/cli/contractor/.
 */

const ROLE_COMMANDS: Readonly<Record<string, readonly Role[]>> = {
  serve: ['bot', 'proxy', 'worker'],
  bot: ['bot'],
  proxy: ['proxy'],
  worker: ['worker'],
};

/** How long a stopped service may wait for the event loop to empty before it exits anyway. */
const EXIT_GRACE_MS = 3_000;

/**
 * A service has flushed or timed out everything that matters in its graceful stop. A library
 * can still leave a socket open (seen in a standalone script: BullMQ's Worker.close() after a
 * Redis outage never settling), and a service that never exits after SIGTERM is worse than one
 * that exits with it open. Other commands end when their output is written.
 */
function exitEvenIfHeldOpen(): void {
  setTimeout(() => {
    process.stderr.write(`jitgate: handles still open ${EXIT_GRACE_MS} ms after shutting down; exiting\n`);
    process.exit();
  }, EXIT_GRACE_MS).unref();
}

/** Runs one CLI command; returns the exit code. Roles return only after a clean shutdown. */
export async function runCommand(command: string, args: string[], config: Config): Promise<number> {
  const roles = Object.hasOwn(ROLE_COMMANDS, command) ? ROLE_COMMANDS[command] : undefined;
  if (roles) {
    const code = await runRoles(config, { roles: new Set(roles), requireSlack: command === 'bot' });
    exitEvenIfHeldOpen();
    return code;
  }
  switch (command) {
    case 'audit':
      return audit(args, config);
    case 'demo': {
      const { runDemo } = await import('../../demo/run-demo.ts');
      // At a terminal the demo then keeps serving the console until Ctrl-C; in CI it exits.
      return runDemo({
        stdout: process.stdout,
        console: true,
        ...(process.stdout.isTTY
          ? { keepOpen: () => new Promise<void>((resolve) => process.once('SIGINT', () => resolve())) }
          : {}),
      });
    }
    case 'migrate':
      return migrate(config);
    case 'keys':
      return keys(args, config);
    default:
      process.stderr.write(`jitgate: unknown command "${command}". Run "npx jitgate --help".\n`);
      return 2;
  }
}

async function migrate(config: Config): Promise<number> {
  const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  try {
    await database.migrate();
    const where = database.kind === 'embedded' ? `embedded database in ${config.dataDir}` : 'PostgreSQL';
    process.stdout.write(`migrations applied (${where})\n`);
    return 0;
  } finally {
    await database.close();
  }
}

async function audit(args: string[], config: Config): Promise<number> {
  const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  try {
    await database.migrate();
    return await runAuditCommand(args, { db: database.db, stdout: process.stdout, stderr: process.stderr });
  } finally {
    await database.close();
  }
}
