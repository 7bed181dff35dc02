import type { App } from '@slack/bolt';
import { errorText, type SlackDeps } from '../../deps.ts';

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

const USER_ID = /^[UW][A-Z0-9]{2,}$/;

/** `removed_users` of a `subteam_members_changed` event, keeping only what looks like a user id. */
export function removedUsersOf(event: unknown): string[] {
  const removed = isRecord(event) ? event.removed_users : undefined;
  return Array.isArray(removed)
    ? removed.filter((u): u is string => typeof u === 'string' && USER_ID.test(u))
    : [];
}

export function register(app: App, deps: SlackDeps): void {
  app.event('app_home_opened', async ({ event }) => {
    if (event.tab !== 'home') return;
    deps.homes.noteViewer(event.user);
    try {
      await deps.homes.publish(event.user);
    } catch (error) {
      deps.logger.warn({ err: errorText(error) }, 'could not publish App Home');
    }
  });

  // Events are acked by Bolt before these run; a failure here is caught by the periodic re-check.
  app.event('user_change', async ({ event }) => {
    const user: unknown = event.user;
    if (!isRecord(user) || user.deleted !== true || typeof user.id !== 'string' || !USER_ID.test(user.id))
      return;
    if (!deps.offboarding) return;
    try {
      await deps.offboarding.accountDeactivated(user.id);
    } catch (error) {
      deps.logger.error(
        { err: errorText(error), userId: user.id },
        'offboarding a deactivated account failed',
      );
    }
  });

  app.event('subteam_members_changed', async ({ event }) => {
    const groupId: unknown = (event as unknown as Record<string, unknown>).subteam_id;
    if (typeof groupId !== 'string') return;
    try {
      if (deps.offboarding) await deps.offboarding.groupMembersRemoved(groupId, removedUsersOf(event));
      else deps.directory?.invalidate(groupId);
    } catch (error) {
      deps.logger.error({ err: errorText(error), groupId }, 'handling a user group change failed');
    }
  });
}
