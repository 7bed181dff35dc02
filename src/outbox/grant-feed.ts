import { sql } from 'drizzle-orm';
import type { Db, Tx } from '../db/client.ts';

/**
 * The grant change feed: a NOTIFY on `database.channel('grants')` per changed grant, which
 * every proxy LISTENs to (src/proxy/active-grants.ts) and answers by re-reading the grant.
 * Sent inside the transaction that changed the grant, so PostgreSQL delivers it on commit
 * and only then. The one place that calls `pg_notify`: one statement however many payloads.
 *
 * Payloads: a grant id (re-read it), `device:<thumbprint>` (that device key is revoked, see
 * deviceRevokedPayload), or the view's own liveness pings (`ping:…`). Device revocations ride
 * this feed rather than a channel of their own so that the one liveness check that guards the
 * grant view (a frozen backend, a half-open connection) guards them too.
 */
export async function publishOnGrantFeed(
  tx: Db | Tx,
  channel: string,
  payloads: readonly string[],
): Promise<void> {
  if (payloads.length === 0) return;
  if (payloads.length === 1) {
    await tx.execute(sql`select pg_notify(${channel}, ${payloads[0]})`);
    return;
  }
  const json = JSON.stringify([...new Set(payloads)]);
  await tx.execute(sql`select pg_notify(${channel}, p) from jsonb_array_elements_text(${json}::jsonb) as p`);
}

const DEVICE_PREFIX = 'device:';
/** Thumbprints are base64url SHA-256 (43 characters); any other payload is not ours. */
const THUMBPRINT = /^[A-Za-z0-9_-]{43}$/;

/** The grant feed's message for "tokens bound to this device key are refused from now on". */
export const deviceRevokedPayload = (thumbprint: string): string => `${DEVICE_PREFIX}${thumbprint}`;

/** The thumbprint a `device:` payload names; undefined for any other payload. */
export function revokedDeviceOf(payload: string): string | undefined {
  if (!payload.startsWith(DEVICE_PREFIX)) return undefined;
  const thumbprint = payload.slice(DEVICE_PREFIX.length);
  return THUMBPRINT.test(thumbprint) ? thumbprint : undefined;
}
