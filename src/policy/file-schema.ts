import { z } from 'zod';
import { SLACK_USER_ID } from '../shared/ids.ts';
import { MAX_DURATION_SECONDS, parseDuration, parseSize } from './duration.ts';
import { parseCidr } from './ip-allow.ts';
import { parseMaskPath } from './mask-paths.ts';
import { isUnrestrictedWrite, parseScopeRule } from './scope-rules.ts';
import { ANOMALY_ACTIONS, type AnomalyAction } from './types.ts';

/**
 * The policy file as written (snake_case, YAML), validated strictly: unknown keys are errors.
 * compile.ts turns the validated file into the runtime Policy (types.ts).
 */

const durationText = z.string().transform((text, ctx) => {
  const seconds = parseDuration(text);
  if (seconds === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `expects a duration like 30s, 15m, 2h or 1d (at most ${MAX_DURATION_SECONDS / 86_400}d)`,
    });
    return z.NEVER;
  }
  return seconds;
});

const sizeText = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const bytes = parseSize(value);
  if (bytes === undefined) {
    ctx.addIssue({ code: 'custom', message: 'expects a size like 512, 4KB or 10MB' });
    return z.NEVER;
  }
  return bytes;
});

const slackUserId = z.string().regex(SLACK_USER_ID, 'expects a Slack user ID like U0123ABCD');
const slackGroupId = z.string().regex(/^S[A-Z0-9]{2,}$/, 'expects a Slack user group ID like S0123ABCD');
const slackChannelId = z.string().regex(/^[CGD][A-Z0-9]{2,}$/, 'expects a Slack channel ID like C0123ABCD');

const people = z.strictObject({
  users: z.array(slackUserId).default([]),
  groups: z.array(slackGroupId).default([]),
});

const headerName = z.string().regex(/^[A-Za-z0-9-]+$/, 'expects an HTTP header name');
/** A DNS name as a certificate names it (no IP address: an IP upstream is checked as an IP). */
const dnsName = z
  .string()
  .max(253)
  .regex(
    /^(?=.*[a-z])[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i,
    'expects a DNS host name such as billing.internal.example',
  );

const credential = z.union([
  z.strictObject({ header: headerName, value: z.string().min(1) }),
  z.strictObject({ header: headerName, file: z.string().min(1) }),
]);

/** A CIDR list (`10.0.0.0/8`, `2001:db8::/32`, a bare address); each entry checked on its own. */
const cidrList = z
  .array(
    z.string().superRefine((text, ctx) => {
      const parsed = parseCidr(text);
      if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.message });
    }),
  )
  .min(1, 'expects at least one CIDR like 10.0.0.0/8 (leave the key out to allow any address)');

/** `quota: { requests: 1000, response_bytes: 10MB }` — over the grant's whole life. */
const quotaSpec = z
  .strictObject({
    requests: z.number().int().min(1, 'expects a whole number of calls, at least 1').optional(),
    response_bytes: sizeText.optional(),
  })
  .refine((q) => q.requests !== undefined || q.response_bytes !== undefined, {
    message: 'expects requests and/or response_bytes',
  })
  .refine((q) => q.response_bytes === undefined || q.response_bytes > 0, {
    message: 'response_bytes must be above 0',
    path: ['response_bytes'],
  });

const maskPath = z.string().superRefine((text, ctx) => {
  const parsed = parseMaskPath(text);
  if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.message });
});

const ruleText = z.string().transform((text, ctx) => {
  const parsed = parseScopeRule(text);
  if (!parsed.ok) {
    ctx.addIssue({ code: 'custom', message: parsed.message });
    return z.NEVER;
  }
  return parsed.rule;
});

/**
 * `dpop`: only tokens bound to a device key (the contractor CLI's), each call with a DPoP proof;
 * `bearer`: any grant token. A scope can require `dpop` on a resource that does not; it cannot
 * lift the resource's.
 */
const senderConstraint = z.enum(['bearer', 'dpop']);

const scope = z
  .strictObject({
    description: z.string().max(200).optional(),
    allow: z.array(ruleText).min(1, 'expects at least one rule like "GET /invoices/**"'),
    allow_any_path: z.boolean().default(false),
    auto_approve: z.strictObject({ max_duration: durationText }).optional(),
    ip_allow: cidrList.optional(),
    sender_constraint: senderConstraint.optional(),
    quota: quotaSpec.optional(),
    mask: z.array(maskPath).min(1, 'expects at least one field path like customers[*].email').optional(),
    mask_style: z.enum(['replace', 'remove']).default('replace'),
    mask_required: z.boolean().default(false),
  })
  .superRefine((s, ctx) => {
    if (s.allow_any_path) return;
    s.allow.forEach((rule, index) => {
      if (isUnrestrictedWrite(rule)) {
        ctx.addIssue({
          code: 'custom',
          path: ['allow', index],
          message: `"${rule.source}" lets a write reach any path (it names none); narrow it or set allow_any_path: true`,
        });
      }
    });
  });

const action = z.enum(ANOMALY_ACTIONS).default('alert');

const rateText = z.string().transform((text, ctx) => {
  const match = /^([1-9][0-9]*)\s*\/\s*(\S+)$/.exec(text.trim());
  const windowSeconds = match ? parseDuration(match[2]!) : undefined;
  if (!match || windowSeconds === undefined) {
    ctx.addIssue({ code: 'custom', message: 'expects "<count>/<duration>", like 10/1m' });
    return z.NEVER;
  }
  return { count: Number(match[1]), windowSeconds };
});

const hoursText = z.string().transform((text, ctx) => {
  const match = /^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-4]):([0-5][0-9])\s+(\S+)$/.exec(text.trim());
  if (!match || !isTimeZone(match[5]!)) {
    ctx.addIssue({
      code: 'custom',
      message: 'expects "HH:MM-HH:MM <IANA time zone>", like 08:00-20:00 Europe/Berlin',
    });
    return z.NEVER;
  }
  const startMinute = Number(match[1]) * 60 + Number(match[2]);
  const endMinute = Number(match[3]) * 60 + Number(match[4]);
  return { startMinute, endMinute, timeZone: match[5]! };
});

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** Each anomaly rule takes a short form or `{ <value key>: …, action: alert|revoke }`. */
function anomalyRule<T extends z.ZodType>(valueKey: string, value: T) {
  type Rule = { value: z.output<T>; action: AnomalyAction };
  const longForm = z.strictObject({ [valueKey]: value, action });
  return z.union([
    value.transform((v): Rule => ({ value: v as z.output<T>, action: 'alert' })),
    longForm.transform((o): Rule => {
      const fields = o as Record<string, unknown>;
      return { value: fields[valueKey] as z.output<T>, action: fields.action as AnomalyAction };
    }),
  ]);
}

const flagRule = z.union([
  z.boolean().transform((enabled) => ({ enabled, action: 'alert' as const })),
  z.strictObject({ enabled: z.boolean().default(true), action }),
]);

const anomalies = z.strictObject({
  denied_burst: anomalyRule('limit', rateText).optional(),
  rate_factor: anomalyRule('factor', z.number().gt(1, 'expects a factor above 1')).optional(),
  new_ip: flagRule.optional(),
  max_response_bytes: anomalyRule('limit', sizeText).optional(),
  hours: anomalyRule('window', hoursText).optional(),
  revoked_token_use: flagRule.default({ enabled: true, action: 'alert' }),
});

const resource = z
  .strictObject({
    description: z.string().max(200).optional(),
    upstream: z.url({ protocol: /^https?$/, error: 'expects an http(s) URL' }),
    credential: credential.optional(),
    ca_file: z.string().min(1).optional(),
    tls_server_name: dnsName.optional(),
    approvers: people,
    approval_channel: slackChannelId,
    alert_channel: slackChannelId.optional(),
    approvals_required: z.number().int().min(1).max(10).default(1),
    min_duration: durationText.default(60),
    max_duration: durationText.default(8 * 3600),
    max_extensions: z.number().int().min(0).max(100).default(2),
    request_timeout: durationText.default(3600),
    remind_before: durationText.default(600),
    idle_timeout: durationText.optional(),
    scopes: z
      .record(z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/, 'expects a scope name like read or write'), scope)
      .refine((s) => Object.keys(s).length > 0, 'expects at least one scope'),
    default_scope: z.string().optional(),
    rate_limit: z
      .strictObject({ requests: z.number().int().min(1), per: durationText })
      .default({ requests: 600, per: 60 }),
    anomalies: anomalies.default({ revoked_token_use: { enabled: true, action: 'alert' } }),
    ip_allow: cidrList.optional(),
    sender_constraint: senderConstraint.default('bearer'),
    quota: quotaSpec.optional(),
    /** Largest response the proxy buffers to mask; larger ones are refused (502), never sent unmasked. */
    mask_max_bytes: sizeText
      .refine((n) => n >= 1024 && n <= 64 * 1024 * 1024, 'expects a size between 1KB and 64MB')
      .default(1024 * 1024),
    identity_assertion: z
      .union([
        z.literal(true).transform(() => ({ header: 'X-Jitgate-Identity', ttl: 60 })),
        z.strictObject({ header: headerName.default('X-Jitgate-Identity'), ttl: durationText.default(60) }),
      ])
      .optional(),
    capture: z
      .strictObject({
        bodies: z.boolean(),
        max_bytes: sizeText
          .refine((n) => n >= 1 && n <= 64 * 1024, 'expects a size between 1 and 64KB')
          .default(4096),
      })
      .optional(),
  })
  .superRefine((r, ctx) => {
    for (const key of ['ca_file', 'tls_server_name'] as const) {
      if (r[key] !== undefined && !r.upstream.startsWith('https:')) {
        ctx.addIssue({ code: 'custom', path: [key], message: 'applies only to an https:// upstream' });
      }
    }
    if (r.min_duration > r.max_duration) {
      ctx.addIssue({ code: 'custom', path: ['min_duration'], message: 'is longer than max_duration' });
    }
    if (r.approvers.users.length === 0 && r.approvers.groups.length === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['approvers'],
        message: 'expects at least one approver user or group',
      });
    }
    if (r.default_scope !== undefined && !(r.default_scope in r.scopes)) {
      ctx.addIssue({ code: 'custom', path: ['default_scope'], message: 'names no scope of this resource' });
    }
    if (r.identity_assertion && r.identity_assertion.ttl > 300) {
      ctx.addIssue({
        code: 'custom',
        path: ['identity_assertion', 'ttl'],
        message: 'is longer than 5m; an assertion is meant to be short-lived',
      });
    }
    for (const [name, s] of Object.entries(r.scopes)) {
      if (s.mask_required && !s.mask) {
        ctx.addIssue({
          code: 'custom',
          path: ['scopes', name, 'mask_required'],
          message: 'needs a mask list in the same scope',
        });
      }
      if (s.auto_approve && s.auto_approve.max_duration > r.max_duration) {
        ctx.addIssue({
          code: 'custom',
          path: ['scopes', name, 'auto_approve', 'max_duration'],
          message: 'is longer than the resource max_duration',
        });
      }
    }
  });

export const policyFileSchema = z.strictObject({
  resources: z
    .record(z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'expects a resource name like billing-api'), resource)
    .refine((r) => Object.keys(r).length > 0, 'expects at least one resource'),
  requesters: people.optional(),
  /**
   * Who the web console lets see everything: `admins` also act on every resource (revoke,
   * revoke-all; deciding requests stays with each resource's approvers), `auditors` only read.
   */
  console: z
    .strictObject({
      admins: people.default({ users: [], groups: [] }),
      auditors: people.default({ users: [], groups: [] }),
    })
    .default({ admins: { users: [], groups: [] }, auditors: { users: [], groups: [] } }),
  /**
   * Whether to believe X-Forwarded-For for the client address (IP allowlists, audit, anomaly
   * detectors). Off by default: a client must not choose its own address.
   */
  trust_proxy: z
    .union([
      z.literal(false).transform(() => undefined),
      z
        .number()
        .int()
        .min(1, 'expects the number of trusted proxies in front of jitgate (1–10), or false')
        .max(10, 'expects the number of trusted proxies in front of jitgate (1–10), or false')
        .transform((hops) => ({ hops, from: undefined as string[] | undefined })),
      z.strictObject({ hops: z.number().int().min(1).max(10), from: cidrList.optional() }),
    ])
    .optional(),
});

export type PolicyFile = z.output<typeof policyFileSchema>;
