import type { App } from '@slack/bolt';
import { isSlackUserId } from '../../../shared/ids.ts';
import { isRecord } from '../../../shared/is-record.ts';
import { errorText, type SlackDeps } from '../../deps.ts';

/** `removed_users` of a `subteam_members_changed` event, keeping only what looks like a user id. */
export function removedUsersOf(event: unknown): string[] {
  const removed = isRecord(event) ? event.removed_users : undefined;
  return Array.isArray(removed) ? removed.filter((u): u is string => isSlackUserId(u)) : [];
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
    if (!isRecord(user) || user.deleted !== true || typeof user.id !== 'string' || !isSlackUserId(user.id))
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
