import { runAuditCommand } from './audit/cli.ts';
import type { Config } from './config.ts';
import { openDatabase } from './db/client.ts';
import { type Role, runRoles } from './roles.ts';
import { systemClock } from './shared/clock.ts';
import { createKeyStore, type KeyStore, KeyStoreRefusal } from './tokens/index.ts';

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
      const { runDemo } = await import('./demo/run-demo.ts');
      // At a terminal the demo then keeps serving the console until Ctrl-C; in CI it exits.
      return runDemo({ stdout: process.stdout, console: true, keepOpen: process.stdout.isTTY === true });
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

const KEY_ACTIONS = new Set(['list', 'rotate', 'retire', 'purge']);

/** Needs only the database and the key settings: an operator can manage keys without the policy's secrets. */
async function keys(args: string[], config: Config): Promise<number> {
  const [action, kid] = args;
  if (action !== undefined && !KEY_ACTIONS.has(action)) {
    process.stderr.write(
      `jitgate keys: unknown action "${action}" (expects list, rotate, retire <kid> or purge <kid>)\n`,
    );
    return 2;
  }
  if ((action === 'retire' || action === 'purge') && !kid) {
    process.stderr.write(`jitgate keys ${action}: expects a key id (see "jitgate keys list")\n`);
    return 2;
  }
  const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  try {
    await database.migrate();
    const store = createKeyStore({
      db: database.db,
      clock: systemClock,
      ...(config.signingKey ? { configuredKey: config.signingKey } : {}),
      ...(config.masterKey ? { masterKey: config.masterKey } : {}),
    });
    await store.load();
    return await keysAction(store, action, kid);
  } catch (error) {
    if (!(error instanceof KeyStoreRefusal)) throw error;
    process.stderr.write(`jitgate keys ${action}: ${error.message}\n`);
    return 1;
  } finally {
    await database.close();
  }
}

async function keysAction(
  keyStore: KeyStore,
  action: string | undefined,
  kid: string | undefined,
): Promise<number> {
  switch (action) {
    case 'list':
    case undefined: {
      const summary = keyStore.toJSON();
      if (summary.configuredKey)
        process.stdout.write(`${summary.activeKid}  signing (JITGATE_SIGNING_KEY)\n`);
      for (const key of await keyStore.describeKeys()) {
        const state = key.retiredAt
          ? `retired ${key.retiredAt.toISOString()} (private key still stored: keys purge ${key.kid})`
          : key.signing
            ? 'signing'
            : 'verifying';
        process.stdout.write(`${key.kid}  created ${key.createdAt.toISOString()}  ${state}\n`);
      }
      return 0;
    }
    case 'rotate': {
      const rotated = await keyStore.rotate();
      process.stdout.write(`new signing key ${rotated.kid}; older keys verify until retired\n`);
      return 0;
    }
    case 'retire': {
      await keyStore.retire(kid ?? '');
      process.stdout.write(`retired ${kid}; tokens it signed no longer verify\n`);
      return 0;
    }
    case 'purge': {
      await keyStore.purge(kid ?? '');
      process.stdout.write(`purged ${kid}; its private key is deleted\n`);
      return 0;
    }
    default:
      return 2;
  }
}
