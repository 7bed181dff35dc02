import type { Logger } from 'pino';
import type { Db } from '../db/client.ts';
import { namesOf, rememberName } from '../db/queries/person-names.ts';
import type { Clock } from '../shared/clock.ts';
import { isSlackUserId } from '../shared/ids.ts';

/** Slack user id → name, for the people one page shows. */
export type Names = ReadonlyMap<string, string>;

export interface PersonNames {
  /** The names known now for `userIds` (one query); unknown or day-old ones are asked of Slack in the background. */
  of(userIds: Iterable<string>): Promise<Names>;
  /** The name from a sign-in's ID token. */
  signedIn(userId: string, name: string): Promise<void>;
  /** Resolves once the background lookups asked for so far are done (tests, shutdown). */
  settled(): Promise<void>;
}

const STALE_MS = 24 * 3600_000;
/** Lookups waiting at most; beyond, ids are asked again on a later page view. */
const MAX_QUEUED = 200;

/**
 * The console's names cache, over the `person_names` table. A page never waits for Slack:
 * it shows the names known, and the ids it lacked are looked up one at a time in the
 * background (`users.info` is rate limited), each id at most once while queued, so the next
 * view shows them. Without Slack (no bot token) names come only from sign-ins.
 */
export function createPersonNames(deps: {
  db: Db;
  clock: Clock;
  logger: Logger;
  /** Asks Slack for a person's name; undefined when there is no Slack to ask. */
  lookup: ((userId: string) => Promise<string | undefined>) | undefined;
}): PersonNames {
  const queued = new Set<string>();
  let running: Promise<void> = Promise.resolve();

  const work = async () => {
    for (const userId of queued) {
      try {
        const name = (await deps.lookup?.(userId))?.slice(0, 200);
        if (name) {
          await rememberName(deps.db, { userId, name, source: 'slack', updatedAt: deps.clock.now() });
        }
      } catch (error) {
        deps.logger.debug({ err: error, userId }, 'could not look a name up; showing the id');
      } finally {
        queued.delete(userId);
      }
    }
  };

  const ask = (userIds: readonly string[]) => {
    if (!deps.lookup) return;
    const idle = queued.size === 0;
    for (const id of userIds) if (queued.size < MAX_QUEUED) queued.add(id);
    if (idle && queued.size > 0) running = running.then(work);
  };

  return {
    async of(userIds) {
      const ids = [...new Set(userIds)].filter(isSlackUserId);
      const rows = await namesOf(deps.db, ids);
      const names = new Map(rows.map((r) => [r.userId, r.name]));
      const fresh = deps.clock.now().getTime() - STALE_MS;
      const known = new Set(rows.filter((r) => r.updatedAt.getTime() > fresh).map((r) => r.userId));
      ask(ids.filter((id) => !known.has(id) && !queued.has(id)));
      return names;
    },
    async signedIn(userId, name) {
      if (!name.trim() || name === userId) return;
      await rememberName(deps.db, {
        userId,
        name: name.trim().slice(0, 200),
        source: 'sign_in',
        updatedAt: deps.clock.now(),
      });
    },
    settled: () => running,
  };
}

/** The Slack user ids in an audit actor label (`slack:U…`, `console:U…`) or a plain id. */
export function personIn(label: string | null | undefined): string | undefined {
  if (!label) return undefined;
  const id = label.includes(':') ? label.slice(label.indexOf(':') + 1) : label;
  return isSlackUserId(id) ? id : undefined;
}
