import type { Directory } from '../access/directory.ts';
import type { Reach } from '../db/queries/reach.ts';
import { isListed, type People, type Policy, resourcesApprovedBy } from '../policy/index.ts';

/**
 * What a signed-in person may see and do, worked out from the policy on every request (so a
 * policy reload applies at once; the session names only the person):
 * - admins (`console.admins`): see everything; revoke and revoke-all anywhere;
 * - auditors (`console.auditors`): see everything, change nothing;
 * - approvers: see and act on the resources they approve (deciding requests included);
 * - everyone else: their own grants, requests and audit rows; may give up their own grants.
 * Roles add up: an auditor who approves billing-api decides billing-api's requests.
 */
export interface Viewer {
  userId: string;
  name: string;
  admin: boolean;
  auditor: boolean;
  /** Resources this person approves. */
  approves: ReadonlySet<string>;
}

export type ConsoleRole = 'admin' | 'auditor' | 'approver' | 'requester';

export async function viewerOf(
  policy: Policy,
  directory: Directory,
  person: { userId: string; name: string },
): Promise<Viewer> {
  const lists: People[] = [
    policy.console.admins,
    policy.console.auditors,
    ...Object.values(policy.resources).map((r) => r.approvers),
  ];
  const groupIds = [...new Set(lists.flatMap((p) => p.groups))];
  const groups = groupIds.length > 0 ? await directory.groupsOf(person.userId, groupIds) : new Set<string>();
  const listed = (people: People) => isListed(people, person.userId, (g) => groups.has(g));
  return {
    userId: person.userId,
    name: person.name,
    admin: listed(policy.console.admins),
    auditor: listed(policy.console.auditors),
    approves: new Set(resourcesApprovedBy(policy, person.userId, (g) => groups.has(g))),
  };
}

/** Sees every resource's grants, requests, alerts and audit rows. */
export const seesAll = (viewer: Viewer): boolean => viewer.admin || viewer.auditor;

/** What the viewer's reads are limited to: undefined means everything. */
export function reachOf(viewer: Viewer): Reach | undefined {
  return seesAll(viewer) ? undefined : { resources: [...viewer.approves].sort(), userId: viewer.userId };
}

/** Whether the viewer sees others' rows at all (people, alerts, everyone's audit rows). */
export const seesOthers = (viewer: Viewer): boolean => seesAll(viewer) || viewer.approves.size > 0;

export function canSeeResource(viewer: Viewer, resource: string): boolean {
  return seesAll(viewer) || viewer.approves.has(resource);
}

export function rolesOf(viewer: Viewer): ConsoleRole[] {
  const roles: ConsoleRole[] = [];
  if (viewer.admin) roles.push('admin');
  if (viewer.auditor) roles.push('auditor');
  if (viewer.approves.size > 0) roles.push('approver');
  if (roles.length === 0) roles.push('requester');
  return roles;
}
