import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import type { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import yoctoSpinner from 'yocto-spinner';
import type { ClientConfig } from '../config.ts';
import { describeDuration } from '../policy/duration.ts';
import { type Clock, systemClock } from '../shared/clock.ts';
import { parseAccessCommand } from '../slack/commands.ts';
import { type ApiAnswer, type ApiClient, createApiClient } from './api-client.ts';
import type { ClientCommand } from './commands.ts';
import { type DeviceFile, DeviceFileError, readDeviceFile, writeDeviceFile } from './device-file.ts';
import {
  DEVICE_ALGORITHMS,
  type DeviceAlgorithm,
  type DeviceKey,
  generateDeviceKey,
  importDeviceKey,
} from './device-key.ts';
import {
  createTokenSource,
  type Forwarder,
  type ForwarderOptions,
  startForwarder,
  type TokenAnswer,
} from './forwarder.ts';
import { type CliCode, explain } from './messages.ts';

/**
 * The contractor CLI: `jitgate login | request | token | curl | connect`.
 *
 * Why subcommands of the one `jitgate` bin rather than a second bin: `npm i -g` of the project
 * then gives contractors and operators one name to learn, the issue's and README's examples
 * (`jitgate login --server …`) work as written, and the server's commands (serve, bot, proxy,
 * worker, migrate, demo, audit, keys) and these do not share a single name. The cost — one bin
 * that also carries the server — is paid by dispatching these commands before anything of the
 * server is loaded: `src/main.ts` hands them here before `loadConfig()`, so a laptop without
 * DATABASE_URL, Slack tokens or a policy file runs them, and this module imports nothing that
 * opens a database or reads the server's environment.
 */
/** Exit codes, the same for every command. */
export const EXIT = { ok: 0, refused: 1, usage: 2, denied: 3, timedOut: 4 } as const;

export const CLIENT_USAGE = `jitgate — contractor commands (no server configuration needed)

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

export interface ClientIo {
  config: ClientConfig;
  stdout: Writable & { isTTY?: boolean };
  stderr: Writable & { isTTY?: boolean };
  clock?: Clock;
}

class Usage extends Error {}

interface Context {
  io: ClientIo;
  json: boolean;
  clock: Clock;
}

const print = (ctx: Context, text: string, json: Record<string, unknown>): void => {
  ctx.io.stdout.write(ctx.json ? `${JSON.stringify(json)}\n` : `${text}\n`);
};

function fail(ctx: Context, code: CliCode | string, serverMessage = '', exit: number = EXIT.refused): number {
  const sentence = explain(code, serverMessage);
  if (ctx.json) ctx.io.stdout.write(`${JSON.stringify({ ok: false, error: code, message: sentence })}\n`);
  else ctx.io.stderr.write(`jitgate: ${sentence} (${code})\n`);
  return exit;
}

const failed = (ctx: Context, answer: { code: string; message: string }) =>
  fail(ctx, answer.code, answer.message);

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

function parse(args: readonly string[], options: Record<string, { type: 'string' }>) {
  try {
    return parseArgs({ args: [...args], options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new Usage((error as Error).message);
  }
}

/** A wait that shows it is waiting: a spinner on a terminal, one plain line otherwise. */
async function waitFor<T>(
  ctx: Context,
  label: string,
  intervalSeconds: number,
  poll: () => Promise<T | undefined>,
): Promise<T> {
  const spinner =
    !ctx.json && ctx.io.stderr.isTTY
      ? yoctoSpinner({ text: label, stream: ctx.io.stderr }).start()
      : undefined;
  if (!spinner && !ctx.json) ctx.io.stderr.write(`${label}\n`);
  try {
    for (;;) {
      const value = await poll();
      if (value !== undefined) return value;
      await new Promise((resolve) => setTimeout(resolve, Math.max(50, intervalSeconds * 1000)));
    }
  } finally {
    spinner?.stop();
  }
}

interface PairingJson {
  deviceId: string;
  name: string;
  code: string;
  expiresAt: string;
  pollSeconds: number;
  proxyUrl: string;
}

interface PairingStatusJson {
  status: 'pending' | 'linked' | 'revoked';
  userId?: string;
  revokeReason?: string;
}

async function login(ctx: Context, args: readonly string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    server: { type: 'string' },
    name: { type: 'string' },
    alg: { type: 'string' },
  });
  if (positionals.length > 0) throw new Usage(`unexpected ${positionals.join(' ')}`);
  const previous = await readDeviceFile(ctx.io.config.configDir).catch(() => undefined);
  const server = values.server ?? previous?.server;
  if (!server) throw new Usage('--server <url> is needed (the address of your jitgate server)');
  if (!/^https?:\/\//.test(server)) throw new Usage('--server takes an http(s) URL');
  const alg = (values.alg ?? 'ES256') as DeviceAlgorithm;
  if (!DEVICE_ALGORITHMS.includes(alg)) throw new Usage('--alg is ES256 or EdDSA');
  const name = (values.name ?? hostname()).slice(0, 64);

  // A new key every login: a key once paired (or revoked) never pairs again.
  const stored = await generateDeviceKey(alg);
  const key = await importDeviceKey(stored);
  const api = createApiClient(server, key);
  const started = await api.call<PairingJson>('POST', '/pairings', { name });
  if (!started.ok) return failed(ctx, started);
  const pairing = started.value;
  const device: DeviceFile = {
    version: 1,
    server,
    proxyUrl: pairing.proxyUrl,
    deviceId: pairing.deviceId,
    name: pairing.name,
    status: 'pending',
    alg,
    privateJwk: { ...stored.privateJwk },
  };
  await writeDeviceFile(ctx.io.config.configDir, device);
  const expiresAt = new Date(pairing.expiresAt);
  print(
    ctx,
    `To link "${pairing.name}" to your Slack account, send this in Slack:\n\n    /access link ${pairing.code}\n\nThe code works until ${expiresAt.toLocaleTimeString()}.`,
    {
      event: 'pairing',
      code: pairing.code,
      deviceId: pairing.deviceId,
      name: pairing.name,
      expiresAt: pairing.expiresAt,
    },
  );
  const outcome = await waitFor(
    ctx,
    'Waiting for you to confirm in Slack…',
    pairing.pollSeconds,
    async () => {
      const answer = await api.call<PairingStatusJson>('GET', '/pairing');
      if (!answer.ok) return answer;
      if (answer.value.status !== 'pending') return answer;
      return ctx.clock.now() >= expiresAt ? 'expired' : undefined;
    },
  );
  if (outcome === 'expired') return fail(ctx, 'pairing_code_expired', '', EXIT.timedOut);
  if (!outcome.ok) return failed(ctx, outcome);
  if (outcome.value.status === 'revoked') {
    await writeDeviceFile(ctx.io.config.configDir, { ...device, status: 'revoked' });
    return fail(ctx, 'device_revoked', outcome.value.revokeReason ?? '');
  }
  const userId = outcome.value.userId;
  await writeDeviceFile(ctx.io.config.configDir, { ...device, status: 'linked', userId });
  print(
    ctx,
    `Linked "${pairing.name}" as Slack user ${userId}. Next: jitgate request <resource> <duration> <reason>`,
    {
      ok: true,
      status: 'linked',
      deviceId: device.deviceId,
      userId,
      proxyUrl: device.proxyUrl,
    },
  );
  return EXIT.ok;
}

/** The linked device this machine holds, with a client for its server. */
async function session(
  ctx: Context,
): Promise<{ device: DeviceFile; key: DeviceKey; api: ApiClient } | number> {
  const device = await readDeviceFile(ctx.io.config.configDir);
  if (!device) return fail(ctx, 'not_logged_in');
  if (device.status === 'revoked') return fail(ctx, 'device_revoked');
  const key = await importDeviceKey({ alg: device.alg, privateJwk: device.privateJwk });
  return { device, key, api: createApiClient(device.server, key) };
}

interface RequestJson {
  request: {
    id: string;
    resource: string;
    scope: string;
    status: 'pending' | 'approved' | 'denied' | 'expired' | 'cancelled';
    durationSeconds: number;
    grant?: { grantId: string; scope: string; expiresAt: string };
    decidedBy?: string;
    note?: string;
  };
  pollSeconds: number;
}

async function request(ctx: Context, args: readonly string[]): Promise<number> {
  const parsed = parseAccessCommand(`request ${args.join(' ')}`);
  if (!parsed.ok) throw new Usage(parsed.problem.replace(/`/g, ''));
  if (parsed.command.kind !== 'request') throw new Usage('request <resource> [scope] <duration> <reason…>');
  const { resource, scope, durationSeconds, reason } = parsed.command;
  const open = await session(ctx);
  if (typeof open === 'number') return open;
  const created = await open.api.call<RequestJson>('POST', '/requests', {
    resource,
    ...(scope ? { scope } : {}),
    durationSeconds,
    reason,
  });
  if (!created.ok) return failed(ctx, created);
  let current = created.value;
  if (current.request.status === 'pending') {
    const decided = await waitFor(
      ctx,
      `Waiting for approval of ${resource} (${describeDuration(durationSeconds)}) in Slack…`,
      current.pollSeconds,
      async (): Promise<ApiAnswer<RequestJson> | undefined> => {
        const answer = await open.api.call<RequestJson>('GET', `/requests/${current.request.id}`);
        return !answer.ok || answer.value.request.status !== 'pending' ? answer : undefined;
      },
    );
    if (!decided.ok) return failed(ctx, decided);
    current = decided.value;
  }
  const r = current.request;
  const result = {
    ok: r.status === 'approved',
    requestId: r.id,
    status: r.status,
    resource: r.resource,
    scope: r.scope,
    grant: r.grant,
    decidedBy: r.decidedBy,
    note: r.note,
  };
  switch (r.status) {
    case 'approved': {
      const until = r.grant ? ` until ${new Date(r.grant.expiresAt).toLocaleString()}` : '';
      print(
        ctx,
        `Approved: ${r.resource} (${r.scope})${until}. Next: jitgate curl ${r.resource} / or jitgate connect ${r.resource}`,
        result,
      );
      return EXIT.ok;
    }
    case 'denied':
      print(ctx, `Denied${r.decidedBy ? ` by ${r.decidedBy}` : ''}${r.note ? `: ${r.note}` : '.'}`, result);
      return EXIT.denied;
    case 'expired':
      print(
        ctx,
        'Nobody decided in time: the request has timed out. Ask again, or ask an approver directly.',
        result,
      );
      return EXIT.timedOut;
    case 'cancelled':
    case 'pending':
      print(ctx, `The request was ${r.status}.`, result);
      return EXIT.refused;
  }
}

function resourceArg(positionals: readonly string[], usage: string): string {
  const resource = positionals[0];
  if (resource === undefined || !/^[a-z][a-z0-9-]{0,62}$/.test(resource)) throw new Usage(usage);
  return resource;
}

async function token(ctx: Context, args: readonly string[]): Promise<number> {
  const { positionals } = parse(args, {});
  const resource = resourceArg(positionals, 'token <resource>');
  if (positionals.length > 1) throw new Usage('token takes one resource');
  const open = await session(ctx);
  if (typeof open === 'number') return open;
  const answer = await createTokenSource(open.api, resource, ctx.clock).get();
  if (!answer.ok) return failed(ctx, answer);
  const { value } = answer;
  print(ctx, value.token, {
    ok: true,
    token: value.token,
    tokenType: 'DPoP',
    grantId: value.grantId,
    scope: value.scope,
    expiresAt: value.expiresAt.toISOString(),
    proxyUrl: open.device.proxyUrl,
  });
  return EXIT.ok;
}

/**
 * A local forwarder for `resource` on `port`, once a first token is in hand: refusals (no grant,
 * device revoked) are ours to explain before any tool runs, not the tool's to print as JSON.
 */
async function openForwarder(
  ctx: Context,
  resource: string,
  port: number,
  onCall?: ForwarderOptions['onCall'],
): Promise<{ forwarder: Forwarder; device: DeviceFile } | number> {
  const open = await session(ctx);
  if (typeof open === 'number') return open;
  const tokens = createTokenSource(open.api, resource, ctx.clock);
  const first: TokenAnswer = await tokens.get();
  if (!first.ok) return failed(ctx, first);
  const forwarder = await startForwarder({
    resource,
    proxyUrl: open.device.proxyUrl,
    key: open.key,
    tokens,
    port,
    ...(onCall ? { onCall } : {}),
  });
  return { forwarder, device: open.device };
}

async function curl(ctx: Context, args: readonly string[]): Promise<number> {
  // Everything after <resource> <path> is curl's, untouched: no parsing of its flags here.
  const [resource, path, ...curlArgs] = args;
  if (resource === undefined || path === undefined || !path.startsWith('/')) {
    throw new Usage('curl <resource> <path starting with /> [curl args…]');
  }
  resourceArg([resource], 'curl <resource> <path> [curl args…]');
  // curl talks to a one-off local forwarder, which makes the proof for the method curl really
  // uses; the token never appears in curl's arguments (visible to every local user in `ps`).
  const opened = await openForwarder(ctx, resource, 0);
  if (typeof opened === 'number') return opened;
  const { forwarder } = opened;
  try {
    const child = spawn(
      'curl',
      [...curlArgs, '--noproxy', '*', `http://127.0.0.1:${forwarder.port}${path}`],
      {
        stdio: 'inherit',
      },
    );
    return await new Promise<number>((resolve) => {
      child.on('error', (error) => {
        ctx.io.stderr.write(`jitgate: could not run curl: ${error.message}\n`);
        resolve(EXIT.refused);
      });
      child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 + 2 : EXIT.refused)));
    });
  } finally {
    await forwarder.close();
  }
}

async function connect(ctx: Context, args: readonly string[]): Promise<number> {
  const { values, positionals } = parse(args, { port: { type: 'string' } });
  const resource = resourceArg(positionals, 'connect <resource> [--port 9000]');
  if (positionals.length > 1) throw new Usage('connect takes one resource');
  const port = Number(values.port ?? '9000');
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Usage('--port takes a port number');
  const opened = await openForwarder(
    ctx,
    resource,
    port,
    ctx.json ? undefined : (c) => ctx.io.stderr.write(`${c.method} ${c.path} → ${c.status} (${c.ms} ms)\n`),
  );
  if (typeof opened === 'number') return opened;
  const { forwarder, device } = opened;
  const local = `http://127.0.0.1:${forwarder.port}`;
  print(ctx, `Forwarding ${local} → ${device.proxyUrl}/${resource} (Ctrl-C to stop)`, {
    ok: true,
    url: local,
    port: forwarder.port,
    resource,
    proxyUrl: device.proxyUrl,
  });
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await forwarder.close();
  return EXIT.ok;
}
