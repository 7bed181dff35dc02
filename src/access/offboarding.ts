import type { PolicyStore } from '../policy/index.ts';
import type { Actor } from '../shared/actor.ts';
import type { Directory } from './directory.ts';
import type { OffboardResult } from './offboard.ts';
import type { AccessService } from './service.ts';

/**
 * Offboarding: a person whose Slack account is deactivated, or who is no longer among the
 * policy's requesters, loses every grant and pending request at once. Three ways in: the
 * `user_change` and `subteam_members_changed` events (prompt), and a periodic re-check of
 * everyone holding access or signed in to the console (catches events Slack never delivered or
 * we dropped).
 *
 * Slack trouble never offboards anyone: a failed `users.info` or group lookup means "we do
 * not know", and the person keeps access until a later check can prove otherwise.
 */

const DEACTIVATED_REASON = 'offboarded: account deactivated';

function leftGroupsReason(groupIds: readonly string[]): string {
  return groupIds.length === 1
    ? `offboarded: left requester group ${groupIds[0]}`
    : `offboarded: left requester groups ${groupIds.join(', ')}`;
}

const OFFBOARDING: Actor = { type: 'system', component: 'offboarding' };

export interface OffboardingLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface OffboardingDeps {
  access: Pick<AccessService, 'offboardUser' | 'peopleToRecheck'>;
  policy: PolicyStore;
  directory: Directory;
  /** `users.info`: true when the account is deactivated; throws when Slack cannot say. */
  isDeactivated(userId: string): Promise<boolean>;
  logger: OffboardingLogger;
  /** Revokes the person's linked devices too (src/devices/), audited; resolves with how many. */
  revokeDevices?: (userId: string, reason: string) => Promise<number>;
}

interface RecheckResult {
  checked: number;
  deactivated: string[];
  leftGroups: string[];
  /** Look-ups that failed (the person was left alone this round). */
  failures: number;
}

export interface Offboarding {
  /** A `user_change` event with `deleted: true`. */
  accountDeactivated(userId: string): Promise<OffboardResult>;
  /** A `subteam_members_changed` event: refreshes the group's cache, then offboards who left the requesters. */
  groupMembersRemoved(groupId: string, userIds: readonly string[]): Promise<string[]>;
  /** Asks Slack about everyone holding a grant, a pending request or a linked device, or signed in to the console. */
  recheck(): Promise<RecheckResult>;
}

type FreshGroups = ReadonlyMap<string, ReadonlySet<string>>;

export function createOffboarding(deps: OffboardingDeps): Offboarding {
  const { access, policy, directory, logger } = deps;

  async function offboard(userId: string, reason: string, dmOwner: boolean): Promise<OffboardResult> {
    const result = await access.offboardUser({ userId, reason, actor: OFFBOARDING, dmOwner });
    // offboardUser refuses nothing today; an empty result keeps callers simple if it ever does.
    const ended = result.ok ? result.value : { grants: [], requests: [], consoleSessions: [] };
    const devices = (await deps.revokeDevices?.(userId, reason)) ?? 0;
    const consoleSessions = ended.consoleSessions.length;
    if (ended.grants.length + ended.requests.length + consoleSessions + devices > 0) {
      logger.info(
        {
          userId,
          reason,
          grants: ended.grants.length,
          requests: ended.requests.length,
          consoleSessions,
          devices,
        },
        'offboarded',
      );
    }
    return ended;
  }

  /** Every requester group's members, asked of Slack now; undefined when any lookup failed. */
  async function freshRequesterGroups(groupIds: readonly string[]): Promise<FreshGroups | undefined> {
    const groups = new Map<string, ReadonlySet<string>>();
    try {
      for (const groupId of groupIds) groups.set(groupId, await directory.freshMembers(groupId));
      return groups;
    } catch (error) {
      logger.warn(
        { err: error },
        'requester group lookup failed; nobody is offboarded for group changes now',
      );
      return undefined;
    }
  }

  function isRequester(userId: string, users: readonly string[], groups: FreshGroups): boolean {
    if (users.includes(userId)) return true;
    for (const members of groups.values()) if (members.has(userId)) return true;
    return false;
  }

  return {
    accountDeactivated: (userId) => offboard(userId, DEACTIVATED_REASON, false),

    async groupMembersRemoved(groupId, userIds) {
      // Approver groups change too: any cached membership of this group is stale now.
      directory.invalidate(groupId);
      const requesters = policy.current().requesters;
      if (!requesters?.groups.includes(groupId) || userIds.length === 0) return [];
      const groups = await freshRequesterGroups(requesters.groups);
      if (!groups) return [];
      const offboarded: string[] = [];
      for (const userId of userIds) {
        if (isRequester(userId, requesters.users, groups)) continue;
        await offboard(userId, leftGroupsReason([groupId]), true);
        offboarded.push(userId);
      }
      return offboarded;
    },

    async recheck() {
      const result: RecheckResult = { checked: 0, deactivated: [], leftGroups: [], failures: 0 };
      const { holders, consoleOnly } = await access.peopleToRecheck();
      if (holders.length + consoleOnly.length === 0) return result;
      const requesters = policy.current().requesters;
      // Only holders must still be requesters: without any, no group is asked about.
      const asksGroups = requesters !== undefined && holders.length > 0;
      const groups = asksGroups ? await freshRequesterGroups(requesters.groups) : undefined;
      if (asksGroups && !groups) result.failures += 1;
      const consoleOnlySet = new Set(consoleOnly);
      // One at a time: users.info is rate limited, and this runs in the background anyway.
      for (const userId of [...holders, ...consoleOnly]) {
        result.checked += 1;
        try {
          if (await deps.isDeactivated(userId)) {
            await offboard(userId, DEACTIVATED_REASON, false);
            result.deactivated.push(userId);
            continue;
          }
        } catch (error) {
          result.failures += 1;
          logger.warn({ err: error, userId }, 'users.info failed; checking this person next time');
          continue;
        }
        if (consoleOnlySet.has(userId)) continue;
        if (requesters && groups && !isRequester(userId, requesters.users, groups)) {
          await offboard(userId, leftGroupsReason(requesters.groups), true);
          result.leftGroups.push(userId);
        }
      }
      if (result.deactivated.length + result.leftGroups.length > 0 || result.failures > 0) {
        logger.info({ ...result }, 'offboarding re-check done');
      }
      return result;
    },
  };
}

/**
 * Runs `recheck` every `everyMs` (and once shortly after start); a run still going when the
 * next is due is not doubled. Returns a stop function that waits for the run in progress.
 */
export function startOffboardingRecheck(
  offboarding: Pick<Offboarding, 'recheck'>,
  options: { everyMs: number; logger: OffboardingLogger & { error(obj: object, msg?: string): void } },
): () => Promise<void> {
  let running: Promise<unknown> | undefined;
  const run = () => {
    running ??= offboarding
      .recheck()
      .catch((error: unknown) => options.logger.error({ err: error }, 'offboarding re-check failed'))
      .finally(() => {
        running = undefined;
      });
  };
  const first = setTimeout(run, Math.min(options.everyMs, 10_000));
  const timer = setInterval(run, options.everyMs);
  first.unref();
  timer.unref();
  return async () => {
    clearTimeout(first);
    clearInterval(timer);
    await running;
  };
}
