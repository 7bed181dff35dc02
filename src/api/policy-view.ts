import { describeDuration } from '../policy/duration.ts';
import type { ResourcePolicy } from '../policy/index.ts';

/**
 * One resource of the policy as people read it. Credentials are never rendered (only the
 * header they go in), and the upstream, IP lists and CA are shown only to those who see the
 * resource in full (its approvers, auditors, admins).
 */
export function renderPolicyResource(r: ResourcePolicy, full: boolean): Record<string, unknown> {
  const base = {
    name: r.name,
    description: r.description ?? null,
    approvers: { users: [...r.approvers.users], groups: [...r.approvers.groups] },
    approvalsRequired: r.approvalsRequired,
    duration: { min: describeDuration(r.minDurationSeconds), max: describeDuration(r.maxDurationSeconds) },
    maxExtensions: r.maxExtensions,
    requestTimeout: describeDuration(r.requestTimeoutSeconds),
    idleTimeout: r.idleTimeoutSeconds === undefined ? null : describeDuration(r.idleTimeoutSeconds),
    rateLimit: `${r.rateLimit.requests} per ${describeDuration(r.rateLimit.perSeconds)}`,
    defaultScope: r.defaultScope,
    scopes: Object.values(r.scopes).map((s) => ({
      name: s.name,
      description: s.description ?? null,
      rules: s.rules.map((rule) => rule.source),
      readOnly: s.readOnly,
      autoApproveUpTo:
        s.autoApproveMaxSeconds === undefined ? null : describeDuration(s.autoApproveMaxSeconds),
      quota: s.quota
        ? { requests: s.quota.requests ?? null, responseBytes: s.quota.responseBytes ?? null }
        : null,
      masked: s.mask !== undefined,
    })),
  };
  if (!full) return base;
  return {
    ...base,
    upstream: r.upstream,
    credentialHeader: r.credential?.header ?? null,
    approvalChannel: r.approvalChannel,
    alertChannel: r.alertChannel,
    ipAllowed: r.ipAllow !== undefined,
    identityAssertion: r.identityAssertion !== undefined,
    capture: r.capture !== undefined,
    anomalies: Object.keys(r.anomalies).sort(),
  };
}
