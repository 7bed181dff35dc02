import { hostname } from 'node:os';
import { createApiClient } from './api-client.ts';
import { type Context, EXIT, fail, failed, parse, print, Usage, waitFor } from './context.ts';
import { type DeviceFile, readDeviceFile, writeDeviceFile } from './device-file.ts';
import { DEVICE_ALGORITHMS, type DeviceAlgorithm, generateDeviceKey, importDeviceKey } from './device-key.ts';

/** `jitgate login`: a new device key, paired with the person who confirms its code in Slack. */

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

export async function login(ctx: Context, args: readonly string[]): Promise<number> {
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
