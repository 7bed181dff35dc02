import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { DEVICE_ALGORITHMS } from './device-key.ts';

/**
 * The CLI's one file: the device's private key and what it knows of its server, in the user's
 * config dir. The directory is 0700 and the file 0600, written by rename so a crash never leaves
 * half a key; a file others can read is refused, as ssh refuses such a key.
 */
const DEVICE_FILE = 'device.json';

const deviceFileSchema = z.object({
  version: z.literal(1),
  /** The device API's base URL (`jitgate login --server`). */
  server: z.string().url(),
  /** Where proxied calls go, as the server said. */
  proxyUrl: z.string().url(),
  deviceId: z.string().uuid(),
  name: z.string(),
  status: z.enum(['pending', 'linked', 'revoked']),
  userId: z.string().optional(),
  alg: z.enum(DEVICE_ALGORITHMS),
  privateJwk: z.record(z.string(), z.unknown()),
});
export type DeviceFile = z.infer<typeof deviceFileSchema>;

export class DeviceFileError extends Error {
  override name = 'DeviceFileError';
}

const deviceFilePath = (configDir: string): string => join(configDir, DEVICE_FILE);

/** Undefined when there is none yet (never logged in); throws DeviceFileError for a bad one. */
export async function readDeviceFile(configDir: string): Promise<DeviceFile | undefined> {
  const path = deviceFilePath(configDir);
  let mode: number;
  try {
    mode = (await stat(path)).mode;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  if ((mode & 0o077) !== 0) {
    throw new DeviceFileError(
      `${path} can be read by other users (mode ${(mode & 0o777).toString(8)}); run \`chmod 600 ${path}\`, or \`jitgate login\` again if someone may have copied it.`,
    );
  }
  let content: unknown;
  try {
    content = JSON.parse(await readFile(path, 'utf8'));
  } catch {
    content = undefined;
  }
  const parsed = deviceFileSchema.safeParse(content);
  if (!parsed.success)
    throw new DeviceFileError(`${path} is not a jitgate device file; run \`jitgate login\` again.`);
  return parsed.data;
}

export async function writeDeviceFile(configDir: string, device: DeviceFile): Promise<void> {
  await mkdir(configDir, { recursive: true, mode: 0o700 });
  // mkdir leaves an existing directory as it was: tighten it in case it was made looser.
  await chmod(configDir, 0o700);
  const path = deviceFilePath(configDir);
  const temporary = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  // `wx` and 0600 from the first byte: the key is never in a file someone else could open.
  const handle = await open(temporary, 'wx', 0o600);
  try {
    await handle.writeFile(`${JSON.stringify(device, null, 2)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}
