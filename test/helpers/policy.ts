import { type Policy, parsePolicy } from '../../src/policy/index.ts';

/** A policy for tests: two resources, groups, N-of-M, auto-approval; override any YAML. */
export const TEST_POLICY_YAML = `
resources:
  billing-api:
    upstream: http://127.0.0.1:9000
    credential: { header: Authorization, value: "Bearer \${BILLING_API_TOKEN}" }
    approvers: { users: [UAPPROVER1, UAPPROVER2], groups: [SAPPROVERS] }
    approval_channel: CAPPROVALS
    alert_channel: CALERTS
    approvals_required: 1
    min_duration: 1s
    max_duration: 8h
    max_extensions: 2
    request_timeout: 1h
    remind_before: 10m
    scopes:
      read:
        allow: ["GET /invoices/**", "GET /customers/*"]
        auto_approve: { max_duration: 1h }
      write:
        allow: ["GET /**", "POST /invoices", "PATCH /invoices/*"]
    rate_limit: { requests: 600, per: 1m }
  admin-api:
    upstream: http://127.0.0.1:9001
    approvers: { users: [UAPPROVER1, UAPPROVER2, UAPPROVER3] }
    approval_channel: CADMIN
    approvals_required: 2
    min_duration: 1s
    scopes:
      admin:
        allow: ["* /users/**"]
`;

export const TEST_ENV = { BILLING_API_TOKEN: 'upstream-secret-billing' };

export function testPolicy(yaml: string = TEST_POLICY_YAML, env: NodeJS.ProcessEnv = TEST_ENV): Policy {
  return parsePolicy(yaml, { file: 'test-policy.yml', env });
}
