import { and, eq, gt, lt, ne, sql } from 'drizzle-orm';
import type { Db, Tx } from '../client.ts';
import { type Device, devices, MAX_PAIRING_ATTEMPTS } from '../schema/index.ts';

export interface NewDevice {
  id: string;
  name: string;
  thumbprint: string;
  publicJwk: Record<string, string>;
  pairingHandle: string;
  pairingSecretHash: string;
  pairingExpiresAt: Date;
  createdAt: Date;
}

/**
 * A pending device; undefined when its key or its handle is taken (the caller tells which with
 * `findDeviceByThumbprint`, and draws a new handle for the other).
 */
export async function insertPendingDevice(db: Db | Tx, row: NewDevice): Promise<Device | undefined> {
  const [inserted] = await db
    .insert(devices)
    .values({ ...row, status: 'pending' })
    .onConflictDoNothing()
    .returning();
  return inserted;
}

export async function findDevice(db: Db | Tx, id: string): Promise<Device | undefined> {
  const [row] = await db.select().from(devices).where(eq(devices.id, id));
  return row;
}

/** The device a proof's key belongs to, in whatever state. */
export async function findDeviceByThumbprint(db: Db | Tx, thumbprint: string): Promise<Device | undefined> {
  const [row] = await db.select().from(devices).where(eq(devices.thumbprint, thumbprint));
  return row;
}

/** The pending device a code's handle names (expired or not: the caller says which). */
export async function findPendingByHandle(db: Db | Tx, handle: string): Promise<Device | undefined> {
  const [row] = await db
    .select()
    .from(devices)
    .where(and(eq(devices.pairingHandle, handle), eq(devices.status, 'pending')));
  return row;
}

/**
 * Counts one wrong code against a pending device; the last allowed one revokes it, in the same
 * statement, so parallel guesses cannot get past the bound. Undefined when it is no longer pending.
 */
export async function recordWrongPairingCode(
  db: Db | Tx,
  id: string,
  now: Date,
): Promise<Device | undefined> {
  const locks = sql`${devices.pairingAttempts} + 1 >= ${MAX_PAIRING_ATTEMPTS}`;
  const [row] = await db
    .update(devices)
    .set({
      pairingAttempts: sql`${devices.pairingAttempts} + 1`,
      status: sql`case when ${locks} then 'revoked' else 'pending' end`,
      pairingHandle: sql`case when ${locks} then null else ${devices.pairingHandle} end`,
      pairingSecretHash: sql`case when ${locks} then null else ${devices.pairingSecretHash} end`,
      revokedAt: sql`case when ${locks} then ${now.toISOString()}::timestamptz else null end`,
      revokedBy: sql`case when ${locks} then 'pairing' else null end`,
      revokeReason: sql`case when ${locks} then 'too many wrong pairing codes' else null end`,
    })
    .where(and(eq(devices.id, id), eq(devices.status, 'pending')))
    .returning();
  return row;
}

/**
 * Links a pending, unexpired device whose secret hash matches to `userId`, dropping its code.
 * A double submission has one winner; undefined for every other.
 */
export async function linkPendingDevice(
  db: Db | Tx,
  input: { id: string; secretHash: string; userId: string; now: Date },
): Promise<Device | undefined> {
  const [row] = await db
    .update(devices)
    .set({
      status: 'linked',
      userId: input.userId,
      linkedAt: input.now,
      pairingHandle: null,
      pairingSecretHash: null,
    })
    .where(
      and(
        eq(devices.id, input.id),
        eq(devices.status, 'pending'),
        eq(devices.pairingSecretHash, input.secretHash),
        gt(devices.pairingExpiresAt, input.now),
      ),
    )
    .returning();
  return row;
}

/** Revokes a device not yet revoked (pending or linked); undefined when there was none. */
export async function revokeDeviceRow(
  db: Db | Tx,
  input: { id: string; by: string; reason: string; now: Date },
): Promise<Device | undefined> {
  const [row] = await db
    .update(devices)
    .set({
      status: 'revoked',
      revokedAt: input.now,
      revokedBy: input.by,
      revokeReason: input.reason,
      pairingHandle: null,
      pairingSecretHash: null,
    })
    .where(and(eq(devices.id, input.id), ne(devices.status, 'revoked')))
    .returning();
  return row;
}

/** Revokes every linked device of a person (offboarding); returns the ones it revoked. */
export function revokeLinkedDevicesOf(
  db: Db | Tx,
  input: { userId: string; by: string; reason: string; now: Date },
): Promise<Device[]> {
  return db
    .update(devices)
    .set({ status: 'revoked', revokedAt: input.now, revokedBy: input.by, revokeReason: input.reason })
    .where(and(eq(devices.userId, input.userId), eq(devices.status, 'linked')))
    .returning();
}

/** Every revoked device key: a revocation is for ever, so the proxy's view only ever grows. */
export async function revokedThumbprints(db: Db | Tx): Promise<string[]> {
  const rows = await db
    .select({ thumbprint: devices.thumbprint })
    .from(devices)
    .where(eq(devices.status, 'revoked'));
  return rows.map((row) => row.thumbprint);
}

/** Everyone with a linked device (unordered, each once): for the offboarding re-check. */
export function usersWithLinkedDevices(db: Db | Tx): Promise<{ userId: string | null }[]> {
  return db.selectDistinct({ userId: devices.userId }).from(devices).where(eq(devices.status, 'linked'));
}

/** A person's linked devices, most recently linked first (`/access devices`). */
export function linkedDevicesOf(db: Db | Tx, userId: string): Promise<Device[]> {
  return db
    .select()
    .from(devices)
    .where(and(eq(devices.userId, userId), eq(devices.status, 'linked')))
    .orderBy(sql`${devices.linkedAt} desc`)
    .limit(100);
}

/** Pending devices whose code expired before `before`: they can never link, so they go. */
export async function deleteStalePairings(db: Db | Tx, before: Date): Promise<number> {
  const rows = await db
    .delete(devices)
    .where(and(eq(devices.status, 'pending'), lt(devices.pairingExpiresAt, before)))
    .returning({ id: devices.id });
  return rows.length;
}
