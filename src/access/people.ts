import {
  isApprover,
  isListed,
  mayRequest,
  type ResourcePolicy,
  resourcesApprovedBy,
} from '../policy/index.ts';
import type { Actor } from '../shared/actor.ts';
import type { AccessContext } from './context.ts';

/** Who may do what, asked of the policy now (and of Slack's user groups, through the directory). */

export async function isApproverOf(
  ctx: Pick<AccessContext, 'directory'>,
  resource: ResourcePolicy,
  userId: string,
): Promise<boolean> {
  if (resource.approvers.users.includes(userId)) return true;
  const groups = await ctx.directory.groupsOf(userId, resource.approvers.groups);
  return isApprover(resource, userId, (g) => groups.has(g));
}

/** The names of the resources `userId` approves, in policy order; empty for someone who approves nothing. */
export async function approvedResources(
  ctx: Pick<AccessContext, 'directory' | 'policy'>,
  userId: string,
): Promise<string[]> {
  const policy = ctx.policy.current();
  // Only the groups of resources that do not list the person by id need asking of Slack.
  const unlisted = Object.values(policy.resources).filter((r) => !r.approvers.users.includes(userId));
  const wanted = [...new Set(unlisted.flatMap((r) => r.approvers.groups))];
  const groups = wanted.length > 0 ? await ctx.directory.groupsOf(userId, wanted) : new Set<string>();
  return resourcesApprovedBy(policy, userId, (g) => groups.has(g));
}

/** Whether the policy's `requesters` (people or groups) include this person. */
export async function isRequester(
  ctx: Pick<AccessContext, 'directory' | 'policy'>,
  userId: string,
): Promise<boolean> {
  const policy = ctx.policy.current();
  const groups = policy.requesters
    ? await ctx.directory.groupsOf(userId, policy.requesters.groups)
    : new Set<string>();
  return mayRequest(policy, userId, (g) => groups.has(g));
}

/**
 * A console actor claiming admin, checked against the policy's `console.admins` now: the
 * claim alone widens nothing (a policy reload may have removed the person since sign-in).
 */
export async function isConsoleAdmin(
  ctx: Pick<AccessContext, 'directory' | 'policy'>,
  actor: Actor,
): Promise<boolean> {
  if (actor.type !== 'console' || actor.admin !== true) return false;
  const admins = ctx.policy.current().console.admins;
  if (admins.users.includes(actor.userId)) return true;
  const groups = await ctx.directory.groupsOf(actor.userId, admins.groups);
  return isListed(admins, actor.userId, (g) => groups.has(g));
}
