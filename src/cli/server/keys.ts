import type { Config } from '../../config.ts';
import { openDatabase } from '../../db/client.ts';
import { systemClock } from '../../shared/clock.ts';
import { createKeyStore, type KeyStore, KeyStoreRefusal } from '../../tokens/index.ts';

/** `jitgate keys list | rotate | retire <kid> | purge <kid>`: the token signing keys. */

const KEY_ACTIONS = new Set(['list', 'rotate', 'retire', 'purge']);

/** Needs only the database and the key settings: an operator can manage keys without the policy's secrets. */
export async function keys(args: string[], config: Config): Promise<number> {
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
