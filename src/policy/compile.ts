import type { PolicyFile } from './file-schema.ts';
import { createIpAllowList } from './ip-allow.ts';
import { createMaskRules } from './mask-paths.ts';
import { isReadOnlyRule } from './scope-rules.ts';
import type {
  AnomalyRules,
  CaFileReader,
  CredentialResolver,
  Policy,
  Quota,
  ResourcePolicy,
  ScopePolicy,
  UpstreamCredential,
} from './types.ts';

type ResourceFile = PolicyFile['resources'][string];

type QuotaFile = { requests?: number | undefined; response_bytes?: number | undefined } | undefined;

/** A scope's quota fields override the resource's one by one (a scope may add a request cap to a resource's byte cap). */
const toQuota = (resourceQuota: QuotaFile, scopeQuota: QuotaFile): Quota | undefined =>
  resourceQuota || scopeQuota
    ? {
        requests: scopeQuota?.requests ?? resourceQuota?.requests,
        responseBytes: scopeQuota?.response_bytes ?? resourceQuota?.response_bytes,
      }
    : undefined;

function toResource(
  name: string,
  r: ResourceFile,
  resolveCredential: CredentialResolver,
  readCaFile: CaFileReader,
): ResourcePolicy {
  const scopes: Record<string, ScopePolicy> = {};
  for (const [scopeName, s] of Object.entries(r.scopes)) {
    scopes[scopeName] = {
      name: scopeName,
      description: s.description,
      rules: s.allow,
      readOnly: s.allow.every(isReadOnlyRule),
      autoApproveMaxSeconds: s.auto_approve?.max_duration,
      ipAllow: s.ip_allow ? createIpAllowList(s.ip_allow) : undefined,
      quota: toQuota(r.quota, s.quota),
      mask: s.mask ? createMaskRules(s.mask, s.mask_style) : undefined,
      maskRequired: s.mask_required,
      senderConstraint: r.sender_constraint === 'dpop' || s.sender_constraint === 'dpop' ? 'dpop' : 'bearer',
    };
  }
  const a = r.anomalies;
  const anomalyRules: AnomalyRules = {};
  if (a.denied_burst) anomalyRules.deniedBurst = { ...a.denied_burst.value, action: a.denied_burst.action };
  if (a.rate_factor) anomalyRules.rateFactor = { factor: a.rate_factor.value, action: a.rate_factor.action };
  if (a.new_ip?.enabled) anomalyRules.newIp = { action: a.new_ip.action };
  if (a.max_response_bytes) {
    anomalyRules.maxResponseBytes = {
      bytes: a.max_response_bytes.value,
      action: a.max_response_bytes.action,
    };
  }
  if (a.hours) anomalyRules.hours = { ...a.hours.value, action: a.hours.action };
  if (a.revoked_token_use.enabled) anomalyRules.revokedTokenUse = { action: a.revoked_token_use.action };
  const credentialPolicy: UpstreamCredential | undefined = r.credential
    ? {
        header: r.credential.header,
        value: resolveCredential(r.credential, ['resources', name, 'credential']),
      }
    : undefined;
  return {
    name,
    description: r.description,
    upstream: r.upstream.replace(/\/+$/, ''),
    upstreamCa: r.ca_file === undefined ? undefined : readCaFile(r.ca_file, ['resources', name, 'ca_file']),
    upstreamServerName: r.tls_server_name?.toLowerCase(),
    credential: credentialPolicy,
    approvers: r.approvers,
    approvalChannel: r.approval_channel,
    alertChannel: r.alert_channel ?? r.approval_channel,
    approvalsRequired: r.approvals_required,
    minDurationSeconds: r.min_duration,
    maxDurationSeconds: r.max_duration,
    maxExtensions: r.max_extensions,
    requestTimeoutSeconds: r.request_timeout,
    remindBeforeSeconds: r.remind_before,
    idleTimeoutSeconds: r.idle_timeout,
    scopes,
    defaultScope: r.default_scope ?? Object.keys(r.scopes)[0]!,
    rateLimit: { requests: r.rate_limit.requests, perSeconds: r.rate_limit.per },
    anomalies: anomalyRules,
    ipAllow: r.ip_allow ? createIpAllowList(r.ip_allow) : undefined,
    maskMaxBytes: r.mask_max_bytes,
    identityAssertion: r.identity_assertion
      ? { header: r.identity_assertion.header, ttlSeconds: r.identity_assertion.ttl }
      : undefined,
    capture: r.capture?.bodies ? { maxBytes: r.capture.max_bytes } : undefined,
  };
}

/** Turn a validated file into the runtime policy, resolving each upstream credential and CA file. */
export function toPolicy(
  file: PolicyFile,
  resolveCredential: CredentialResolver,
  readCaFile: CaFileReader,
): Policy {
  const resources: Record<string, ResourcePolicy> = {};
  for (const [name, r] of Object.entries(file.resources))
    resources[name] = toResource(name, r, resolveCredential, readCaFile);
  const trust = file.trust_proxy;
  return {
    resources,
    requesters: file.requesters,
    console: file.console,
    trustProxy: trust
      ? { hops: trust.hops, from: trust.from ? createIpAllowList(trust.from) : undefined }
      : undefined,
  };
}
