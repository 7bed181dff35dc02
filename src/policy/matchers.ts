import { rulesAllow } from './scope-rules.ts';
import type { People, Policy, ResourcePolicy, ScopePolicy } from './types.ts';

/** Group membership already looked up for one person: `true` when they are in the group. */
export type InGroup = (groupId: string) => boolean;

export function isListed(people: People, userId: string, inGroup: InGroup): boolean {
  return people.users.includes(userId) || people.groups.some(inGroup);
}

/** Anyone may ask unless the policy names requesters. */
export function mayRequest(policy: Policy, userId: string, inGroup: InGroup): boolean {
  return policy.requesters === undefined || isListed(policy.requesters, userId, inGroup);
}

export function isApprover(resource: ResourcePolicy, userId: string, inGroup: InGroup): boolean {
  return isListed(resource.approvers, userId, inGroup);
}

/**
 * The names of the resources this person approves, in policy order: the one answer to "does
 * this person approve anything, and what" (access/people.ts asks it with Slack's user groups).
 */
export function resourcesApprovedBy(policy: Policy, userId: string, inGroup: InGroup): string[] {
  return Object.values(policy.resources)
    .filter((resource) => isApprover(resource, userId, inGroup))
    .map((resource) => resource.name);
}

export const MAX_REASON_LENGTH = 2000;

/**
 * Why an ask does not fit the policy, with what a sentence about it needs (names, limits):
 * the words are the transport's (src/slack/blocks/refusals.ts), never the policy's.
 */
export type RequestCheckRefusal =
  /** `known` lists the policy's resources when the name was typed; absent when a stored one left the policy. */
  | { code: 'unknown_resource'; resource: string; known?: readonly string[] }
  | { code: 'unknown_scope'; resource: string; scope: string; known: readonly string[] }
  | { code: 'duration_too_short'; resource: string; minSeconds: number }
  | { code: 'duration_too_long'; resource: string; maxSeconds: number }
  | { code: 'reason_empty' }
  | { code: 'reason_too_long'; length: number; max: number };

export type RequestCheckCode = RequestCheckRefusal['code'];

export type RequestCheck =
  | { ok: true; resource: ResourcePolicy; scope: ScopePolicy; reason: string }
  | ({ ok: false } & RequestCheckRefusal);

/** Validate an ask against the policy: resource and scope exist, duration in bounds, a real reason. */
export function checkRequest(
  policy: Policy,
  input: { resource: string; scope: string | undefined; durationSeconds: number; reason: string },
): RequestCheck {
  const resource = Object.hasOwn(policy.resources, input.resource)
    ? policy.resources[input.resource]
    : undefined;
  if (!resource) {
    return {
      ok: false,
      code: 'unknown_resource',
      resource: input.resource,
      known: Object.keys(policy.resources).sort(),
    };
  }
  const scopeName = input.scope ?? resource.defaultScope;
  const scope = Object.hasOwn(resource.scopes, scopeName) ? resource.scopes[scopeName] : undefined;
  if (!scope) {
    return {
      ok: false,
      code: 'unknown_scope',
      resource: resource.name,
      scope: scopeName,
      known: Object.keys(resource.scopes),
    };
  }
  if (input.durationSeconds < resource.minDurationSeconds) {
    return {
      ok: false,
      code: 'duration_too_short',
      resource: resource.name,
      minSeconds: resource.minDurationSeconds,
    };
  }
  if (input.durationSeconds > resource.maxDurationSeconds) {
    return {
      ok: false,
      code: 'duration_too_long',
      resource: resource.name,
      maxSeconds: resource.maxDurationSeconds,
    };
  }
  const reason = input.reason.trim();
  if (reason === '') return { ok: false, code: 'reason_empty' };
  if (reason.length > MAX_REASON_LENGTH) {
    return { ok: false, code: 'reason_too_long', length: reason.length, max: MAX_REASON_LENGTH };
  }
  return { ok: true, resource, scope, reason };
}

/** Whether this scope and duration are approved by policy alone. */
export function autoApproves(scope: ScopePolicy, durationSeconds: number): boolean {
  return scope.autoApproveMaxSeconds !== undefined && durationSeconds <= scope.autoApproveMaxSeconds;
}

/** Whether a grant of `scopeName` on `resource` lets `method` reach the normalised `path`. */
export function scopeAllows(
  resource: ResourcePolicy,
  scopeName: string,
  method: string,
  path: string,
): boolean {
  const scope = Object.hasOwn(resource.scopes, scopeName) ? resource.scopes[scopeName] : undefined;
  return scope !== undefined && rulesAllow(scope.rules, method, path);
}

/**
 * Whether a grant on `resource`/`scope` takes only device-bound tokens (`sender_constraint: dpop`);
 * false for a resource or scope the policy no longer has.
 */
export function requiresBoundTokens(policy: Policy, resource: string, scope: string): boolean {
  const resources = policy.resources;
  if (!Object.hasOwn(resources, resource)) return false;
  const scopes = resources[resource]!.scopes;
  return Object.hasOwn(scopes, scope) && scopes[scope]!.senderConstraint === 'dpop';
}
