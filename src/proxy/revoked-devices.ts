import type { Logger } from 'pino';
import type { Database } from '../db/client.ts';
import { revokedThumbprints } from '../db/queries/devices.ts';

/** Thumbprints are base64url SHA-256 (43 characters); any other payload is not ours. */
const THUMBPRINT = /^[A-Za-z0-9_-]{43}$/;

type DeviceKeyState = 'usable' | 'revoked' | 'unconfirmed';

export interface RevokedDeviceView {
  /** Whether tokens bound to `thumbprint` may be used; `unconfirmed` while the feed is down. */
  stateOf(thumbprint: string): DeviceKeyState;
  start(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The proxy's view of revoked device keys, kept live like the grant view: every transaction that
 * revokes a device NOTIFYs `channel('devices')` with its key's thumbprint (src/devices/), this
 * view LISTENs on a connection of its own, and on every (re)connect reloads the whole set before
 * answering again (fail closed meanwhile: `unconfirmed`). A revocation is for ever, so a message
 * and a reload can only add to the set and never race each other into forgetting one.
 */
export function createRevokedDeviceView(options: { database: Database; logger: Logger }): RevokedDeviceView {
  const { database, logger } = options;
  const revoked = new Set<string>();
  let live = false;
  let epoch = 0;
  let unlisten: (() => Promise<void>) | undefined;
  let firstLive: (() => void) | undefined;
  const started = new Promise<void>((resolve) => {
    firstLive = resolve;
  });

  async function reload(forEpoch: number): Promise<void> {
    try {
      const rows = await revokedThumbprints(database.db);
      for (const thumbprint of rows) revoked.add(thumbprint);
      if (forEpoch !== epoch) return;
      live = true;
      firstLive?.();
    } catch (error) {
      logger.error({ err: error }, 'could not load revoked devices; device-bound tokens are refused');
      if (forEpoch === epoch) setTimeout(() => void reload(forEpoch), 500).unref();
    }
  }

  return {
    stateOf(thumbprint) {
      if (!live) return 'unconfirmed';
      return revoked.has(thumbprint) ? 'revoked' : 'usable';
    },
    async start() {
      unlisten = await database.listen(database.channel('devices'), {
        onMessage(payload) {
          if (THUMBPRINT.test(payload)) revoked.add(payload);
        },
        onConnect() {
          live = false;
          void reload(++epoch);
        },
        onDisconnect() {
          live = false;
          epoch++;
        },
      });
      await started;
    },
    async close() {
      live = false;
      epoch++;
      await unlisten?.();
      unlisten = undefined;
    },
  };
}
