import type { IpAllowList, TrustProxy } from './ip-allow.ts';
import type { MaskRules } from './mask-paths.ts';
import type { ScopeRule } from './scope-rules.ts';

/** The policy as the rest of jitgate reads it (camelCase, defaults filled, secrets resolved). */

export const ANOMALY_ACTIONS = ['alert', 'revoke'] as const;
export type AnomalyAction = (typeof ANOMALY_ACTIONS)[number];

export interface People {
  users: readonly string[];
  groups: readonly string[];
}

export interface ScopePolicy {
  name: string;
  description: string | undefined;
  rules: readonly ScopeRule[];
  readOnly: boolean;
  /** Requests up to this many seconds are approved without a person. */
  autoApproveMaxSeconds: number | undefined;
  /** Undefined: any address the resource allows. Checked in addition to the resource's list. */
  ipAllow: IpAllowList | undefined;
  /** The resource's quota with the scope's fields over it; a grant starts with this. */
  quota: Quota | undefined;
  /** JSON fields masked in responses (and captured bodies). */
  mask: MaskRules | undefined;
  /** A response that cannot be masked (not JSON, compressed) is refused instead of passed. */
  maskRequired: boolean;
  /**
   * `dpop` when the scope or its resource says `sender_constraint: dpop`: grant tokens must be
   * bound to a device key and every call carry a DPoP proof; Slack then shows no bearer token.
   */
  senderConstraint: SenderConstraint;
}

type SenderConstraint = 'bearer' | 'dpop';

/** Per-grant totals over its life; undefined fields are unlimited. */
export interface Quota {
  requests: number | undefined;
  responseBytes: number | undefined;
}

/** The header the proxy injects upstream; `value` is secret and never logged or shown. */
export interface UpstreamCredential {
  header: string;
  value: string;
}

/** Reads a resource's `ca_file` into the PEM text of its CA bundle (checked at load). */
export type CaFileReader = (file: string, path: (string | number)[]) => string;

/** Resolves a credential as written (`${ENV}` interpolation or a file) into its secret value. */
export type CredentialResolver = (
  written: { value: string } | { file: string },
  path: (string | number)[],
) => string;

export interface AnomalyRules {
  deniedBurst?: { count: number; windowSeconds: number; action: AnomalyAction };
  rateFactor?: { factor: number; action: AnomalyAction };
  newIp?: { action: AnomalyAction };
  maxResponseBytes?: { bytes: number; action: AnomalyAction };
  hours?: { startMinute: number; endMinute: number; timeZone: string; action: AnomalyAction };
  revokedTokenUse?: { action: AnomalyAction };
}

export interface ResourcePolicy {
  name: string;
  description: string | undefined;
  upstream: string;
  /**
   * PEM CA bundle from `ca_file`: the only roots trusted for this upstream's certificate.
   * Undefined: Node's public roots. One CA per upstream origin (the loader checks).
   */
  upstreamCa: string | undefined;
  /**
   * `tls_server_name`: the name sent as SNI and checked against the upstream's certificate
   * instead of the URL's host (an upstream reached by IP or an internal alias). One per
   * upstream origin (the loader checks).
   */
  upstreamServerName: string | undefined;
  credential: UpstreamCredential | undefined;
  approvers: People;
  approvalChannel: string;
  alertChannel: string;
  approvalsRequired: number;
  minDurationSeconds: number;
  maxDurationSeconds: number;
  maxExtensions: number;
  requestTimeoutSeconds: number;
  remindBeforeSeconds: number;
  idleTimeoutSeconds: number | undefined;
  scopes: Readonly<Record<string, ScopePolicy>>;
  defaultScope: string;
  rateLimit: { requests: number; perSeconds: number };
  anomalies: AnomalyRules;
  ipAllow: IpAllowList | undefined;
  maskMaxBytes: number;
  /** A signed assertion of who is calling, sent upstream in `header`, valid `ttlSeconds`. */
  identityAssertion: { header: string; ttlSeconds: number } | undefined;
  /** Request and response bodies kept with each call's audit row, at most `maxBytes` each. */
  capture: { maxBytes: number } | undefined;
}

export interface Policy {
  resources: Readonly<Record<string, ResourcePolicy>>;
  /** Undefined: anyone in the workspace may ask. */
  requesters: People | undefined;
  /** The web console's admins (see and do everything) and auditors (read everything); empty by default. */
  console: { admins: People; auditors: People };
  /** Undefined (the default): the client address is the TCP peer; X-Forwarded-For is ignored. */
  trustProxy: TrustProxy | undefined;
}
