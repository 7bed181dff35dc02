import type { Clock } from '../shared/clock.ts';

/** Looks up Slack user-group membership (`usergroups.users.list`); injected so tests need no Slack. */
export type ListGroupMembers = (groupId: string) => Promise<readonly string[]>;

export interface Directory {
  /** The groups among `groupIds` that `userId` belongs to. */
  groupsOf(userId: string, groupIds: readonly string[]): Promise<ReadonlySet<string>>;
  invalidate(groupId?: string): void;
  /**
   * The group's members asked of Slack now (the cache is refreshed with the answer). Unlike
   * `groupsOf`, a failed lookup throws: offboarding must never read "Slack is down" as
   * "nobody is a member any more".
   */
  freshMembers(groupId: string): Promise<ReadonlySet<string>>;
}

/**
 * Caches each group's members for `ttlMs`, so a burst of clicks costs one Slack call per
 * group. A failed lookup is not cached and counts as "not a member": deciding needs
 * proof of membership, never its absence.
 */
export function cachedDirectory(list: ListGroupMembers, clock: Clock, ttlMs = 60_000): Directory {
  const cache = new Map<string, { members: ReadonlySet<string>; until: number }>();
  const membersOf = async (groupId: string): Promise<ReadonlySet<string>> => {
    const hit = cache.get(groupId);
    if (hit && hit.until > clock.now().getTime()) return hit.members;
    try {
      const members = new Set(await list(groupId));
      cache.set(groupId, { members, until: clock.now().getTime() + ttlMs });
      return members;
    } catch {
      return new Set();
    }
  };
  return {
    async freshMembers(groupId) {
      const members = new Set(await list(groupId));
      cache.set(groupId, { members, until: clock.now().getTime() + ttlMs });
      return members;
    },
    async groupsOf(userId, groupIds) {
      const found = new Set<string>();
      await Promise.all(
        groupIds.map(async (g) => {
          if ((await membersOf(g)).has(userId)) found.add(g);
        }),
      );
      return found;
    },
    invalidate(groupId) {
      if (groupId === undefined) cache.clear();
      else cache.delete(groupId);
    },
  };
}

/** A fixed directory for tests and the demo. */
export function staticDirectory(groups: Readonly<Record<string, readonly string[]>>): Directory {
  return {
    async groupsOf(userId, groupIds) {
      return new Set(groupIds.filter((g) => groups[g]?.includes(userId)));
    },
    async freshMembers(groupId) {
      return new Set(groups[groupId] ?? []);
    },
    invalidate() {},
  };
}
