import { buildCore } from './app.ts';
import { runAuditCommand } from './audit/cli.ts';
import type { Config } from './config.ts';
import { openDatabase } from './db/client.ts';
import { type Role, runRoles } from './roles.ts';

const ROLE_COMMANDS: Readonly<Record<string, readonly Role[]>> = {
  serve: ['bot', 'proxy', 'worker'],
  bot: ['bot'],
  proxy: ['proxy'],
  worker: ['worker'],
};

/** Runs one CLI command; returns the exit code. Roles return only after a clean shutdown. */
export async function runCommand(command: string, args: string[], config: Config): Promise<number> {
  const roles = Object.hasOwn(ROLE_COMMANDS, command) ? ROLE_COMMANDS[command] : undefined;
  if (roles) return runRoles(config, { roles: new Set(roles), requireSlack: command === 'bot' });
  switch (command) {
    case 'audit':
      return audit(args, config);
    case 'demo': {
      const { runDemo } = await import('./demo/run-demo.ts');
      return runDemo({ stdout: process.stdout });
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

async function keys(args: string[], config: Config): Promise<number> {
  const [action, kid] = args;
  const core = await buildCore(config);
  try {
    switch (action) {
      case 'list':
      case undefined: {
        for (const key of core.keys.jwks().keys) process.stdout.write(`${key.kid}  ${key.alg}\n`);
        return 0;
      }
      case 'rotate': {
        const rotated = await core.keys.rotate();
        process.stdout.write(`new signing key ${rotated.kid}; older keys verify until retired\n`);
        return 0;
      }
      case 'retire': {
        if (!kid) {
          process.stderr.write('jitgate keys retire: expects a key id (see "jitgate keys list")\n');
          return 2;
        }
        await core.keys.retire(kid);
        process.stdout.write(`retired ${kid}; tokens it signed no longer verify\n`);
        return 0;
      }
      default:
        process.stderr.write(
          `jitgate keys: unknown action "${action}" (expects list, rotate or retire <kid>)\n`,
        );
        return 2;
    }
  } finally {
    await core.close();
  }
}
