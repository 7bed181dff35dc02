import { isApprover, isListed, mayRequest, type ResourcePolicy } from '../policy/index.ts';
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

/** The names of the resources `userId` approves, in policy order. */
export async function approvedResources(
  ctx: Pick<AccessContext, 'directory' | 'policy'>,
  userId: string,
): Promise<string[]> {
  const names: string[] = [];
  for (const resource of Object.values(ctx.policy.current().resources)) {
    if (await isApproverOf(ctx, resource, userId)) names.push(resource.name);
  }
  return names;
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
