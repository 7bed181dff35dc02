import { isClientCommand } from './cli/contractor/command-names.ts';
import { ConfigError, loadClientConfig, loadConfig } from './config.ts';
import { PolicyError } from './policy/index.ts';

const USAGE = `jitgate — just-in-time access to internal APIs, approved in Slack

Usage: npx jitgate <command> [options]

Commands:
  serve              bot + proxy + worker in one process (the default for npm start)
  bot                Slack bot and admin endpoints only
  proxy              the access proxy only
  worker             the scheduler worker only (expiry, reminders, timeouts, sweep)
  migrate            apply database migrations and exit
  demo               play the whole flow locally, no Slack workspace needed
  audit verify       check the audit hash chain; exit 1 on the first bad row
  audit export       --since <iso> --until <iso> --grant <id> --user <U…> --format jsonl|csv
  keys list          list token signing keys and their state (no key material)
  keys rotate        add a signing key; older keys verify until retired
  keys retire <kid>  stop a key from verifying
  keys purge <kid>   delete a retired key, its stored private key included

Contractors: jitgate login | request | token | curl | connect (jitgate login --help).

Configuration is read from the environment (see README.md and .env.example).
`;

export type CommandResult = number;

async function run(argv: string[]): Promise<CommandResult> {
  const [command, ...rest] = argv;
  // Contractor commands need none of the server's configuration: dispatched before it is read.
  if (command !== undefined && isClientCommand(command)) {
    const { runClient } = await import('./cli/contractor/run-client.ts');
    return runClient(command, rest, {
      config: loadClientConfig(),
      stdout: process.stdout,
      stderr: process.stderr,
    });
  }
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(USAGE);
    return command === undefined ? 1 : 0;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(USAGE);
    return 0;
  }
  const config = loadConfig();
  const { runCommand } = await import('./cli/server/run-command.ts');
  return runCommand(command, rest, config);
}

function reportStartupError(error: unknown): number {
  if (error instanceof ConfigError) {
    process.stderr.write(
      `jitgate: configuration is not valid:\n${error.problems.map((p) => `  ${p}`).join('\n')}\n`,
    );
    return 2;
  }
  if (error instanceof PolicyError) {
    process.stderr.write(`jitgate: ${error.message}\n`);
    return 2;
  }
  process.stderr.write(
    `jitgate: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  return 1;
}

try {
  // Long-running roles resolve only once they have shut down.
  process.exitCode = await run(process.argv.slice(2));
} catch (error) {
  process.exitCode = reportStartupError(error);
}
