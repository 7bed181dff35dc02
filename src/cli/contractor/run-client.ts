import { systemClock } from '../../shared/clock.ts';
import type { ClientCommand } from './command-names.ts';
import { connect } from './connect.ts';
import { type ClientIo, type Context, EXIT, Usage } from './context.ts';
import { curl } from './curl.ts';
import { DeviceFileError } from './device-file.ts';
import { login } from './login.ts';
import { request } from './request.ts';
import { token } from './token.ts';

/**
 * The contractor CLI: `jitgate login | request | token | curl | connect`.
 *
 * Why subcommands of the one `jitgate` bin rather than a second bin: `npm i -g` of the project
 * then gives contractors and operators one name to learn, the and README's examples
 * (`jitgate login --server …`) work as written, and the server's commands (serve, bot, proxy,
 * worker, migrate, demo, audit, keys) and these do not share a single name. The cost — one bin
 * that also carries the server — is paid by dispatching these commands before anything of the
 * server is loaded: `src/main.ts` hands them here before `loadConfig()`, so a laptop without
 * DATABASE_URL, Slack tokens or a policy file runs them, and this module imports nothing that
 * opens a database or reads the server's environment.
 */
const CLIENT_USAGE = `jitgate — contractor commands (no server configuration needed)

  jitgate login --server <url> [--name <device>] [--alg ES256|EdDSA]
      make a device key (kept in $XDG_CONFIG_HOME/jitgate, else ~/.config/jitgate) and pair it:
      the code shown is confirmed in Slack with /access link <code>
  jitgate request <resource> [scope] <duration> <reason…>
      ask for access and wait until it is approved, denied or timed out
  jitgate token <resource>       print a grant token bound to this device's key
  jitgate curl <resource> <path> [curl args…]
      run curl against the resource through the proxy, with the token and a fresh proof
  jitgate connect <resource> [--port 9000]
      forward http://127.0.0.1:<port> to the resource, so any tool works unchanged

  --json   one JSON object per line on stdout, for scripts
Exit codes: 0 done, 1 refused or failed, 2 usage, 3 denied, 4 timed out.
`;

export async function runClient(
  command: ClientCommand,
  argv: readonly string[],
  io: ClientIo,
): Promise<number> {
  const json = argv.includes('--json');
  const ctx: Context = { io, json, clock: io.clock ?? systemClock };
  const args = argv.filter((a) => a !== '--json');
  if (args.includes('--help') || args.includes('-h')) {
    io.stdout.write(CLIENT_USAGE);
    return EXIT.ok;
  }
  try {
    switch (command) {
      case 'login':
        return await login(ctx, args);
      case 'request':
        return await request(ctx, args);
      case 'token':
        return await token(ctx, args);
      case 'curl':
        return await curl(ctx, args);
      case 'connect':
        return await connect(ctx, args);
    }
  } catch (error) {
    if (error instanceof Usage) {
      io.stderr.write(`jitgate ${command}: ${error.message}\n\n${CLIENT_USAGE}`);
      return EXIT.usage;
    }
    if (error instanceof DeviceFileError) {
      io.stderr.write(`jitgate: ${error.message}\n`);
      return EXIT.refused;
    }
    throw error;
  }
}
