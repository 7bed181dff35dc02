import { describeDuration } from './duration.ts';
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

export const MAX_REASON_LENGTH = 2000;

type RequestCheckCode =
  | 'unknown_resource'
  | 'unknown_scope'
  | 'duration_too_short'
  | 'duration_too_long'
  | 'reason_empty'
  | 'reason_too_long';

export type RequestCheck =
  | { ok: true; resource: ResourcePolicy; scope: ScopePolicy; reason: string }
  | { ok: false; code: RequestCheckCode; message: string };

/** `a, b, c and 40 more`: a policy can name many resources, and an answer should stay short. */
function someOf(names: readonly string[], shown = 10): string {
  const listed = names.slice(0, shown).join(', ');
  return names.length > shown ? `${listed} and ${names.length - shown} more` : listed;
}

/** Validate an ask against the policy: resource and scope exist, duration in bounds, a real reason. */
export function checkRequest(
  policy: Policy,
  input: { resource: string; scope: string | undefined; durationSeconds: number; reason: string },
): RequestCheck {
  const resource = Object.hasOwn(policy.resources, input.resource)
    ? policy.resources[input.resource]
    : undefined;
  if (!resource) {
    const known = someOf(Object.keys(policy.resources).sort());
    return {
      ok: false,
      code: 'unknown_resource',
      message: `Unknown resource "${input.resource}". Known: ${known}.`,
    };
  }
  const scopeName = input.scope ?? resource.defaultScope;
  const scope = Object.hasOwn(resource.scopes, scopeName) ? resource.scopes[scopeName] : undefined;
  if (!scope) {
    const known = someOf(Object.keys(resource.scopes));
    return {
      ok: false,
      code: 'unknown_scope',
      message: `Unknown scope "${scopeName}" for ${resource.name}. Scopes: ${known}.`,
    };
  }
  if (input.durationSeconds < resource.minDurationSeconds) {
    return {
      ok: false,
      code: 'duration_too_short',
      message: `${resource.name} grants last at least ${describeDuration(resource.minDurationSeconds)}.`,
    };
  }
  if (input.durationSeconds > resource.maxDurationSeconds) {
    return {
      ok: false,
      code: 'duration_too_long',
      message: `${resource.name} grants last at most ${describeDuration(resource.maxDurationSeconds)}.`,
    };
  }
  const reason = input.reason.trim();
  if (reason === '') return { ok: false, code: 'reason_empty', message: 'Say why you need access.' };
  if (reason.length > MAX_REASON_LENGTH) {
    return {
      ok: false,
      code: 'reason_too_long',
      message: `The reason is ${reason.length} characters; keep it under ${MAX_REASON_LENGTH}.`,
    };
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
