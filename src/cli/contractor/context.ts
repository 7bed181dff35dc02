import type { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import yoctoSpinner from 'yocto-spinner';
import type { ClientConfig } from '../../config.ts';
import type { Clock } from '../../shared/clock.ts';
import { type ApiClient, createApiClient } from './api-client.ts';
import { type DeviceFile, readDeviceFile } from './device-file.ts';
import { type DeviceKey, importDeviceKey } from './device-key.ts';
import { type CliCode, explain } from './messages.ts';

/** What every contractor command shares: how it prints, fails, parses, waits, and finds its device. */

/** Exit codes, the same for every command. */
export const EXIT = { ok: 0, refused: 1, usage: 2, denied: 3, timedOut: 4 } as const;

export interface ClientIo {
  config: ClientConfig;
  stdout: Writable & { isTTY?: boolean };
  stderr: Writable & { isTTY?: boolean };
  clock?: Clock;
}

/** A command line that does not say what to do: usage and exit code 2. */
export class Usage extends Error {}

export interface Context {
  io: ClientIo;
  json: boolean;
  clock: Clock;
}

export const print = (ctx: Context, text: string, json: Record<string, unknown>): void => {
  ctx.io.stdout.write(ctx.json ? `${JSON.stringify(json)}\n` : `${text}\n`);
};

export function fail(
  ctx: Context,
  code: CliCode | string,
  serverMessage = '',
  exit: number = EXIT.refused,
): number {
  const sentence = explain(code, serverMessage);
  if (ctx.json) ctx.io.stdout.write(`${JSON.stringify({ ok: false, error: code, message: sentence })}\n`);
  else ctx.io.stderr.write(`jitgate: ${sentence} (${code})\n`);
  return exit;
}

export const failed = (ctx: Context, answer: { code: string; message: string }) =>
  fail(ctx, answer.code, answer.message);

export function parse(args: readonly string[], options: Record<string, { type: 'string' }>) {
  try {
    return parseArgs({ args: [...args], options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new Usage((error as Error).message);
  }
}

/** A wait that shows it is waiting: a spinner on a terminal, one plain line otherwise. */
export async function waitFor<T>(
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

/** The linked device this machine holds, with a client for its server. */
export async function session(
  ctx: Context,
): Promise<{ device: DeviceFile; key: DeviceKey; api: ApiClient } | number> {
  const device = await readDeviceFile(ctx.io.config.configDir);
  if (!device) return fail(ctx, 'not_logged_in');
  if (device.status === 'revoked') return fail(ctx, 'device_revoked');
  const key = await importDeviceKey({ alg: device.alg, privateJwk: device.privateJwk });
  return { device, key, api: createApiClient(device.server, key) };
}

export function resourceArg(positionals: readonly string[], usage: string): string {
  const resource = positionals[0];
  if (resource === undefined || !/^[a-z][a-z0-9-]{0,62}$/.test(resource)) throw new Usage(usage);
  return resource;
}
