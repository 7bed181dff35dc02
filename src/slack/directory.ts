import type { ListGroupMembers } from '../access/directory.ts';
import type { Notifier } from './notifier.ts';

/**
 * Slack user-group membership for approver and requester checks. Wrap it in the access
 * module's `cachedDirectory`, which caches per group and treats a failed lookup as
 * "not a member" (deciding needs proof of membership).
 */
export function slackGroupMembers(notifier: Pick<Notifier, 'listGroupMembers'>): ListGroupMembers {
  return (groupId) => notifier.listGroupMembers(groupId);
}
