import { describe, expect, it } from 'vitest';
import { autoApproves, checkRequest, isApprover, mayRequest, scopeAllows } from '../../src/policy/index.ts';
import { TEST_POLICY_YAML, testPolicy } from '../helpers/policy.ts';

const policy = testPolicy();
const billing = policy.resources['billing-api']!;
const none = () => false;

describe('policy matchers', () => {
  it('approvers are the listed users and members of listed groups', () => {
    expect(isApprover(billing, 'UAPPROVER1', none)).toBe(true);
    expect(isApprover(billing, 'UOTHER', none)).toBe(false);
    expect(isApprover(billing, 'UOTHER', (g) => g === 'SAPPROVERS')).toBe(true);
    expect(isApprover(billing, 'UOTHER', (g) => g === 'SELSE')).toBe(false);
  });

  it('anyone may request unless requesters are named', () => {
    expect(mayRequest(policy, 'UANY', none)).toBe(true);
    const guarded = testPolicy(
      `requesters: { users: [UCONTRACTOR], groups: [SCONTRACTORS] }\n${TEST_POLICY_YAML}`,
    );
    expect(mayRequest(guarded, 'UANY', none)).toBe(false);
    expect(mayRequest(guarded, 'UCONTRACTOR', none)).toBe(true);
    expect(mayRequest(guarded, 'UANY', (g) => g === 'SCONTRACTORS')).toBe(true);
  });

  it('auto-approves only within the scope limit', () => {
    expect(autoApproves(billing.scopes.read!, 3600)).toBe(true);
    expect(autoApproves(billing.scopes.read!, 3601)).toBe(false);
    expect(autoApproves(billing.scopes.write!, 60)).toBe(false);
  });

  it('checks scope by method and path', () => {
    expect(scopeAllows(billing, 'read', 'GET', '/invoices/1')).toBe(true);
    expect(scopeAllows(billing, 'read', 'POST', '/invoices')).toBe(false);
    expect(scopeAllows(billing, 'write', 'POST', '/invoices')).toBe(true);
    expect(scopeAllows(billing, 'nope', 'GET', '/invoices/1')).toBe(false);
    expect(scopeAllows(billing, 'constructor', 'GET', '/invoices/1')).toBe(false);
  });

  it('checks requests, with the default scope when none is named', () => {
    const ok = checkRequest(policy, {
      resource: 'billing-api',
      scope: undefined,
      durationSeconds: 60,
      reason: ' why ',
    });
    expect(ok).toMatchObject({ ok: true, scope: { name: 'read' }, reason: 'why' });
    expect(
      checkRequest(policy, { resource: '__proto__', scope: undefined, durationSeconds: 60, reason: 'x' }),
    ).toMatchObject({
      ok: false,
      code: 'unknown_resource',
    });
  });
});
