import type {} from '@fastify/cookie';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Clock } from '../../shared/clock.ts';
import type { Sealer } from './seal.ts';

/** Who is signed in: the Slack user from the ID token, and when the session began and was last used. */
export interface ConsoleSession {
  userId: string;
  teamId: string;
  name: string;
  signedInAt: Date;
  lastSeenAt: Date;
}

export interface SessionOptions {
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
  /** Start a session (sign-in), or carry one on with a new last-use time. */
  write(reply: FastifyReply, session: Omit<ConsoleSession, 'lastSeenAt'>): Promise<void>;
  /** Whether a session read now should be written again to move its idle deadline. */
  needsRefresh(session: ConsoleSession): boolean;
  clear(reply: FastifyReply): void;
}

const PURPOSE = 'session';
/** How stale the last-use time may get before a request re-seals the cookie. */
const REFRESH_MS = 60_000;

/**
 * The session lives in the cookie itself, sealed (see seal.ts): no table, no lookup per
 * request. It names only the person; roles are worked out from the policy on every
 * request, so a policy change takes effect at once. Timeouts are checked against the
 * injected clock on every read: idle (last use) and absolute (sign-in).
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
  return {
    cookieName,
    async read(request) {
      const sealed = request.cookies[cookieName];
      if (!sealed) return undefined;
      const now = options.clock.now();
      const payload = await options.sealer.open(PURPOSE, sealed, now);
      if (!payload) return undefined;
      const { sub, team, name, since, seen } = payload;
      if (typeof sub !== 'string' || typeof team !== 'string' || typeof since !== 'number') return undefined;
      if (typeof seen !== 'number') return undefined;
      const t = now.getTime();
      if (t - seen * 1000 > idleMs || t - since * 1000 > absoluteMs) return undefined;
      return {
        userId: sub,
        teamId: team,
        name: typeof name === 'string' ? name : sub,
        signedInAt: new Date(since * 1000),
        lastSeenAt: new Date(seen * 1000),
      };
    },
    async write(reply, session) {
      const now = options.clock.now();
      const expiresAt = new Date(Math.min(now.getTime() + idleMs, session.signedInAt.getTime() + absoluteMs));
      const sealed = await options.sealer.seal(
        PURPOSE,
        {
          sub: session.userId,
          team: session.teamId,
          name: session.name,
          since: Math.floor(session.signedInAt.getTime() / 1000),
          seen: Math.floor(now.getTime() / 1000),
        },
        expiresAt,
        now,
      );
      reply.setCookie(cookieName, sealed, {
        ...cookieOptions,
        maxAge: Math.max(1, Math.floor((expiresAt.getTime() - now.getTime()) / 1000)),
      });
    },
    needsRefresh(session) {
      return options.clock.now().getTime() - session.lastSeenAt.getTime() > REFRESH_MS;
    },
    clear(reply) {
      reply.clearCookie(cookieName, cookieOptions);
    },
  };
}
