import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { devices } from '../../src/db/schema/index.ts';
import { createActiveGrantView } from '../../src/proxy/active-grants.ts';
import { manualClock } from '../../src/shared/clock.ts';
import { eventually, insertGrant, openTestDatabase, revokeGrant } from '../helpers/proxy-fixtures.ts';

const logger = pino({ level: 'silent' });
let database: Awaited<ReturnType<typeof openTestDatabase>>;
const now = new Date('2026-01-05T10:00:00Z');
const later = new Date('2026-01-06T10:00:00Z');

beforeAll(async () => {
  database = await openTestDatabase();
});
afterAll(async () => {
  await database?.drop();
});

describe('active grant view', () => {
  it('is unconfirmed before start, loads active grants on start, and unconfirmed after close', async () => {
    const a = await insertGrant(database, { resource: 'r', scope: 's', startsAt: now, expiresAt: later });
    const b = await insertGrant(database, { resource: 'r', scope: 's', startsAt: now, expiresAt: later });
    await revokeGrant(database, b.id, now);
    const view = createActiveGrantView({ database, logger, clock: manualClock(now) });
    expect(view.lookup(a.id)).toEqual({ kind: 'unconfirmed' });
    await view.start();
    expect(view.isLive()).toBe(true);
    const found = view.lookup(a.id);
    expect(found.kind).toBe('active');
    if (found.kind === 'active') {
      expect(found.grant).toMatchObject({ id: a.id, resource: 'r', scope: 's', expiresAt: later.getTime() });
    }
    // Ended before this view started, its tokens still unexpired: loaded as ended, so revoked.
    expect(view.lookup(b.id)).toEqual({ kind: 'ended', status: 'revoked' });
    await view.close();
    expect(view.lookup(a.id)).toEqual({ kind: 'unconfirmed' });
  });

  it('a reload loads the ended grants whose tokens may still verify, most recently ended first, up to maxEnded', async () => {
    // A database of its own: the other tests' ended grants would count against the cap.
    const own = await openTestDatabase();
    try {
      const ended = async (status: 'revoked' | 'expired', endedAt: Date, expiresAt: Date) => {
        const g = await insertGrant(own, { resource: 'r', scope: 's', startsAt: now, expiresAt });
        await own.db.execute(
          sql`update grants set status = ${status}, ended_at = ${endedAt.toISOString()}, ended_by = 'test' where id = ${g.id}`,
        );
        return g.id;
      };
      const minute = (n: number) => new Date(now.getTime() + n * 60_000);
      const oldest = await ended('revoked', minute(1), later);
      const middle = await ended('expired', minute(2), later);
      const newest = await ended('revoked', minute(3), later);
      // Past its expiry by the view's clock: no token of it verifies, so it is not loaded.
      const spent = await ended('expired', minute(4), minute(5));
      const live = await insertGrant(own, { resource: 'r', scope: 's', startsAt: now, expiresAt: later });
      const view = createActiveGrantView({
        database: own,
        logger,
        clock: manualClock(minute(6)),
        maxEnded: 2,
      });
      await view.start();
      try {
        expect(view.lookup(live.id).kind).toBe('active');
        expect(view.lookup(newest)).toEqual({ kind: 'ended', status: 'revoked' });
        expect(view.lookup(middle)).toEqual({ kind: 'ended', status: 'expired' });
        // Over the cap: forgotten, and still refused (as unknown).
        expect(view.lookup(oldest)).toEqual({ kind: 'unknown' });
        expect(view.lookup(spent)).toEqual({ kind: 'unknown' });
        expect(view.stats()).toMatchObject({ active: 1, ended: 2 });
      } finally {
        await view.close();
      }
    } finally {
      await own.drop();
    }
  });

  it('follows creations and revocations, coalescing a burst into few queries', async () => {
    const view = createActiveGrantView({ database, logger });
    await view.start();
    try {
      const created = await Promise.all(
        Array.from({ length: 50 }, () =>
          insertGrant(database, { resource: 'r', scope: 's', startsAt: now, expiresAt: later }),
        ),
      );
      await eventually(() => created.every((g) => view.lookup(g.id).kind === 'active'));
      const before = view.stats().refetches;
      // 50 revocations and 50 notifications in one transaction: they arrive as one burst.
      await database.db.transaction(async (tx) => {
        for (const g of created) {
          await tx.execute(sql`update grants set status = 'revoked', ended_at = now() where id = ${g.id}`);
          await tx.execute(sql`select pg_notify(${database.channel('grants')}, ${g.id})`);
        }
      });
      await eventually(() => created.every((g) => view.lookup(g.id).kind === 'ended'));
      expect(view.lookup(created[0]!.id)).toEqual({ kind: 'ended', status: 'revoked' });
      expect(view.stats().refetches - before).toBeLessThan(50);
    } finally {
      await view.close();
    }
  });

  it('ignores notifications that are not grant ids', async () => {
    const view = createActiveGrantView({ database, logger });
    await view.start();
    try {
      await database.db.execute(
        sql`select pg_notify(${database.channel('grants')}, ${"'; drop table grants; --"})`,
      );
      const g = await insertGrant(database, { resource: 'r', scope: 's', startsAt: now, expiresAt: later });
      await eventually(() => view.lookup(g.id).kind === 'active');
      expect(view.isLive()).toBe(true);
    } finally {
      await view.close();
    }
  });

  it('holds revoked device keys: loaded on start, added by `device:` messages, unconfirmed while not live', async () => {
    const revokedBefore = 'b'.repeat(43);
    const revokedLater = 'c'.repeat(43);
    await database.db.insert(devices).values({
      id: randomUUID(),
      name: 'old-laptop',
      thumbprint: revokedBefore,
      publicJwk: {},
      status: 'revoked',
      userId: 'U0OLD',
      pairingExpiresAt: later,
      createdAt: now,
      linkedAt: now,
      revokedAt: now,
    });
    const view = createActiveGrantView({ database, logger });
    expect(view.deviceKeyState(revokedBefore)).toBe('unconfirmed');
    await view.start();
    try {
      expect(view.deviceKeyState(revokedBefore)).toBe('revoked');
      expect(view.deviceKeyState(revokedLater)).toBe('usable');
      const notify = (payload: string) =>
        database.db.execute(sql`select pg_notify(${database.channel('grants')}, ${payload})`);
      // Not a thumbprint: ignored, and nothing else is disturbed.
      await notify(`device:${revokedLater}x`);
      await notify(`device:${revokedLater}`);
      await eventually(() => view.deviceKeyState(revokedLater) === 'revoked');
      expect(view.stats().revokedDevices).toBe(2);
      expect(view.isLive()).toBe(true);
    } finally {
      await view.close();
    }
    expect(view.deviceKeyState(revokedBefore)).toBe('unconfirmed');
  });

  it('keeps its liveness ping answered while the feed is healthy', async () => {
    const view = createActiveGrantView({ database, logger, livenessIntervalMs: 20, livenessTimeoutMs: 1000 });
    await view.start();
    try {
      const reloads = view.stats().reloads;
      await new Promise((r) => setTimeout(r, 200));
      // Pings went round without a re-subscribe (which would have reloaded).
      expect(view.stats().reloads).toBe(reloads);
      expect(view.isLive()).toBe(true);
    } finally {
      await view.close();
    }
  });
});
