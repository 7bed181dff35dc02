import { randomUUID } from 'node:crypto';
import type {} from '@fastify/cookie';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { appendAuditEvents } from '../../audit/chain-append.ts';
import type { Db } from '../../db/client.ts';
import {
  endConsoleSession,
  liveConsoleSession,
  startConsoleSession,
  touchConsoleSession,
} from '../../db/queries/console-sessions.ts';
import type { Clock } from '../../shared/clock.ts';
import type { Sealer } from './seal.ts';

/** Who is signed in: the Slack user from the ID token, and when the session began and was last used. */
export interface ConsoleSession {
  /** The `console_sessions` row the cookie names. */
  id: string;
  userId: string;
  teamId: string;
  name: string;
  signedInAt: Date;
  lastSeenAt: Date;
}

export interface SessionOptions {
  db: Db;
  sealer: Sealer;
  clock: Clock;
  /** Cookies carry `Secure` and the `__Host-` prefix (the console is served over https). */
  secure: boolean;
  /** A session unused this long ends (default 30 min). */
  idleMs?: number;
  /** A session ends this long after sign-in, however busy (default 12 h). */
  absoluteMs?: number;
}

export interface Sessions {
  readonly cookieName: string;
  read(request: FastifyRequest): Promise<ConsoleSession | undefined>;
  /** Start a session at sign-in: its row, and the cookie naming it. */
  start(reply: FastifyReply, person: { userId: string; teamId: string; name: string }): Promise<void>;
  /** Carry a session on: a new last-use time in its row and its cookie. */
  refresh(reply: FastifyReply, session: ConsoleSession): Promise<void>;
  /** Whether a session read now should be refreshed to move its idle deadline. */
  needsRefresh(session: ConsoleSession): boolean;
  /** Sign out: the session's row is ended (a copy of the cookie is void from now on), the cookie cleared. */
  end(reply: FastifyReply, session: ConsoleSession | null): Promise<void>;
}

const PURPOSE = 'session';

/** Sign-ins and sign-outs are in the audit log, about the person (so a search by them finds them). */
const signInRow = (kind: string, userId: string, sessionId: string, at: Date) => ({
  kind,
  actor: { type: 'console' as const, userId },
  at,
  data: { userId, sessionId },
});
/** How stale the last-use time may get before a request refreshes it. */
const REFRESH_MS = 60_000;

/**
 * A session is a `console_sessions` row named by a sealed cookie (see seal.ts). The cookie
 * alone is not enough: every read asks for the row, so a sign-out ends the session wherever
 * its cookie was copied to. The row names only the person; roles are worked out from the
 * policy on every request, so a policy change takes effect at once. Timeouts are checked
 * against the injected clock on every read: idle (last use) and absolute (sign-in).
 */
export function createSessions(options: SessionOptions): Sessions {
  const idleMs = options.idleMs ?? 30 * 60_000;
  const absoluteMs = options.absoluteMs ?? 12 * 3600_000;
  const cookieName = options.secure ? '__Host-jitgate_session' : 'jitgate_session';
  const cookieOptions = {
    path: '/',
    httpOnly: true,
    secure: options.secure,
    sameSite: 'lax' as const,
  };

  async function seal(reply: FastifyReply, session: Omit<ConsoleSession, 'lastSeenAt'>, now: Date) {
    const expiresAt = new Date(Math.min(now.getTime() + idleMs, session.signedInAt.getTime() + absoluteMs));
    const sealed = await options.sealer.seal(
      PURPOSE,
      {
        sid: session.id,
        sub: session.userId,
        team: session.teamId,
        name: session.name,
        since: session.signedInAt.getTime(),
      },
      expiresAt,
      now,
    );
    reply.setCookie(cookieName, sealed, {
      ...cookieOptions,
      maxAge: Math.max(1, Math.floor((expiresAt.getTime() - now.getTime()) / 1000)),
    });
  }

  return {
    cookieName,
    async read(request) {
      const sealed = request.cookies[cookieName];
      if (!sealed) return undefined;
      const now = options.clock.now();
      const payload = await options.sealer.open(PURPOSE, sealed, now);
      if (!payload) return undefined;
      const { sid, sub, team, name } = payload;
      if (typeof sid !== 'string' || typeof sub !== 'string' || typeof team !== 'string') return undefined;
      if (!/^[0-9a-f-]{36}$/.test(sid)) return undefined;
      const row = await liveConsoleSession(options.db, sid, now, new Date(now.getTime() - idleMs));
      if (!row || row.userId !== sub) return undefined;
      return {
        id: row.id,
        userId: row.userId,
        teamId: row.teamId,
        name: typeof name === 'string' ? name : sub,
        signedInAt: row.signedInAt,
        lastSeenAt: row.lastSeenAt,
      };
    },
    async start(reply, person) {
      const now = options.clock.now();
      const session = { id: randomUUID(), ...person, signedInAt: now };
      await options.db.transaction(async (tx) => {
        await startConsoleSession(tx, {
          id: session.id,
          userId: person.userId,
          teamId: person.teamId,
          signedInAt: now,
          lastSeenAt: now,
          expiresAt: new Date(now.getTime() + absoluteMs),
        });
        await appendAuditEvents(tx, [signInRow('console.signed_in', person.userId, session.id, now)]);
      });
      await seal(reply, session, now);
    },
    async refresh(reply, session) {
      const now = options.clock.now();
      if (await touchConsoleSession(options.db, session.id, now)) await seal(reply, session, now);
    },
    needsRefresh(session) {
      return options.clock.now().getTime() - session.lastSeenAt.getTime() > REFRESH_MS;
    },
    async end(reply, session) {
      if (session) {
        const now = options.clock.now();
        await options.db.transaction(async (tx) => {
          if (await endConsoleSession(tx, session.id, now)) {
            await appendAuditEvents(tx, [signInRow('console.signed_out', session.userId, session.id, now)]);
          }
        });
      }
      reply.clearCookie(cookieName, cookieOptions);
    },
  };
}
