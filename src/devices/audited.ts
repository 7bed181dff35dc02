import { type AuditEventInput, appendAuditEvents } from '../audit/chain-append.ts';
import type { Tx } from '../db/client.ts';
import type { Device } from '../db/schema/index.ts';
import { deviceRevokedPayload, publishOnGrantFeed } from '../outbox/grant-feed.ts';
import type { DeviceDeps } from './deps.ts';

/**
 * One device change and its audit row in one transaction: `change` makes the change (a
 * conditional UPDATE that returns the row it changed, or nothing), `event` says what to audit of
 * that row (nothing: no row). A failed audit write rolls the change back.
 */
export function changeAudited(
  deps: DeviceDeps,
  change: (tx: Tx) => Promise<Device | undefined>,
  event: (row: Device) => AuditEventInput | undefined,
): Promise<Device | undefined> {
  return deps.db.transaction(async (tx) => {
    const row = await change(tx);
    const audit = row ? event(row) : undefined;
    if (audit) await appendAuditEvents(tx, [audit]);
    if (row?.status === 'revoked') await announceRevoked(deps, tx, [row]);
    return row;
  });
}

/** Tells every proxy, on commit, that these devices' keys sign nothing any more. */
export async function announceRevoked(deps: DeviceDeps, tx: Tx, rows: readonly Device[]): Promise<void> {
  if (deps.grantFeedChannel === undefined) return;
  await publishOnGrantFeed(
    tx,
    deps.grantFeedChannel,
    rows.map((row) => deviceRevokedPayload(row.thumbprint)),
  );
}
