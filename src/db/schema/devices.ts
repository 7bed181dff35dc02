import { sql } from 'drizzle-orm';
import { check, index, integer, jsonb, pgTable, text, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { at } from './columns.ts';

export const DEVICE_STATUSES = ['pending', 'linked', 'revoked'] as const;
export type DeviceStatus = (typeof DEVICE_STATUSES)[number];
/** Wrong pairing codes a pending device survives; the last one revokes it. */
export const MAX_PAIRING_ATTEMPTS = 5;

/**
 * A contractor's machine, known by the public key its CLI made (the private key never leaves it).
 * Grant tokens fetched by a linked device carry the key's thumbprint (`cnf.jkt`), so only DPoP
 * proofs signed by that key make them usable.
 *
 * Pairing: the CLI registers the key (`pending`) and shows a code `HHHH-SSSS`; the person enters it
 * in Slack, which links the device to them (`linked`). The handle `HHHH` finds the pending device;
 * the secret `SSSS` is stored only as a hash, so live codes are not readable from the database or
 * its backups (a hash of 20 bits would not resist an offline search, which is why a code also
 * expires within minutes and allows MAX_PAIRING_ATTEMPTS wrong tries).
 *
 * Guarantees: status is one of DEVICE_STATUSES; a key pairs once, ever (unique thumbprint: a
 * revoked key stays revoked); a pending device has a code and no owner; a linked one has an owner
 * and a link time and no code; a revoked one has a revocation time and no code; a handle is
 * unique among pending devices; attempts stay within 0..MAX_PAIRING_ATTEMPTS.
 */
export const devices = pgTable(
  'devices',
  {
    id: uuid('id').primaryKey(),
    /** What the person called it (`alice-laptop`), shown in Slack when linking and listing. */
    name: text('name').notNull(),
    /** RFC 7638 SHA-256 thumbprint of `public_jwk`: the `cnf.jkt` of tokens bound to this device. */
    thumbprint: text('thumbprint').notNull(),
    publicJwk: jsonb('public_jwk').$type<Record<string, string>>().notNull(),
    status: text('status', { enum: DEVICE_STATUSES }).notNull().default('pending'),
    /** The Slack user it belongs to; set when linked (kept after revocation, for the record). */
    userId: text('user_id'),
    pairingHandle: text('pairing_handle'),
    pairingSecretHash: text('pairing_secret_hash'),
    pairingExpiresAt: at('pairing_expires_at').notNull(),
    pairingAttempts: integer('pairing_attempts').notNull().default(0),
    createdAt: at('created_at').notNull(),
    linkedAt: at('linked_at'),
    revokedAt: at('revoked_at'),
    revokedBy: text('revoked_by'),
    revokeReason: text('revoke_reason'),
  },
  (t) => [
    uniqueIndex('devices_thumbprint_unique').on(t.thumbprint),
    uniqueIndex('devices_pending_handle_unique').on(t.pairingHandle).where(sql`${t.status} = 'pending'`),
    index('devices_user_idx').on(t.userId, t.status),
    check('devices_status_check', sql`${t.status} in ('pending','linked','revoked')`),
    check('devices_name_check', sql`char_length(${t.name}) between 1 and 64`),
    check('devices_thumbprint_check', sql`${t.thumbprint} ~ '^[A-Za-z0-9_-]{43}$'`),
    check(
      'devices_code_check',
      sql`(${t.status} = 'pending') = (${t.pairingHandle} is not null and ${t.pairingSecretHash} is not null)`,
    ),
    check('devices_pending_owner_check', sql`${t.status} <> 'pending' or ${t.userId} is null`),
    check(
      'devices_linked_check',
      sql`${t.status} <> 'linked' or (${t.userId} is not null and ${t.linkedAt} is not null)`,
    ),
    check('devices_revoked_check', sql`(${t.status} = 'revoked') = (${t.revokedAt} is not null)`),
    check(
      'devices_attempts_check',
      sql`${t.pairingAttempts} between 0 and ${sql.raw(String(MAX_PAIRING_ATTEMPTS))}`,
    ),
    check('devices_pairing_window_check', sql`${t.pairingExpiresAt} > ${t.createdAt}`),
  ],
);
export type Device = typeof devices.$inferSelect;
