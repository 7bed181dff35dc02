import { approveRequest } from './approve.ts';
import { cancelRequest } from './cancel.ts';
import { type AccessDeps, accessContext } from './context.ts';
import { createRequest } from './create-request.ts';
import { denyRequest } from './deny.ts';
import { expireDueGrants, expireGrant } from './expire.ts';
import { extendByApprover, extendGrant, requestExtension } from './extend.ts';
import { offboardUser, revokeAll } from './offboard.ts';
import { quotaSettler } from './quota.ts';
import { accessReads } from './read-model.ts';
import { remindGrant } from './remind.ts';
import { revokeGrant } from './revoke.ts';
import { revokeIdleGrants } from './revoke-idle.ts';
import { timeOutRequest } from './time-out.ts';

export type AccessService = ReturnType<typeof createAccessService>;

/**
 * Requests → approvals → grants, as one object for those who call it: the Slack listeners,
 * the scheduler, the console (src/console/actions.ts) and the device API
 * (src/api/device/access-adapter.ts). Each action is a file of its own taking
 * `(ctx, input)`; every state change runs in one `commit()` (state change, audit row,
 * outbox message and grant NOTIFY in one transaction), so a double click, a replayed
 * action or racing approvers leave exactly one outcome, and nothing happens without its
 * audit row. This binds the context once and adds nothing.
 */
export function createAccessService(deps: AccessDeps) {
  const ctx = accessContext(deps);
  return {
    ...accessReads(ctx),
    createRequest: (input: Parameters<typeof createRequest>[1]) => createRequest(ctx, input),
    approve: (input: Parameters<typeof approveRequest>[1]) => approveRequest(ctx, input),
    deny: (input: Parameters<typeof denyRequest>[1]) => denyRequest(ctx, input),
    cancel: (input: Parameters<typeof cancelRequest>[1]) => cancelRequest(ctx, input),
    /** The owner asks for more time (Slack's Extend; approved like any request). */
    requestExtension: (input: Parameters<typeof requestExtension>[1]) => requestExtension(ctx, input),
    /** An approver of the grant's resource gives someone's grant more time. */
    extendByApprover: (input: Parameters<typeof extendByApprover>[1]) => extendByApprover(ctx, input),
    /** Either of the two, by who asks (the console's Extend). */
    extendGrant: (input: Parameters<typeof extendGrant>[1]) => extendGrant(ctx, input),
    revokeGrant: (input: Parameters<typeof revokeGrant>[1]) => revokeGrant(ctx, input),
    offboardUser: (input: Parameters<typeof offboardUser>[1]) => offboardUser(ctx, input),
    revokeAll: (input: Parameters<typeof revokeAll>[1]) => revokeAll(ctx, input),
    expireGrant: (grantId: string) => expireGrant(ctx, { grantId }),
    expireDueGrants: (limit?: number) => expireDueGrants(ctx, { limit }),
    /** A request nobody decided in time (the scheduler's time-out). */
    expireRequest: (requestId: string) => timeOutRequest(ctx, { requestId }),
    remindGrant: (grantId: string, version: number) => remindGrant(ctx, { grantId, version }),
    revokeIdleGrants: (limit?: number) => revokeIdleGrants(ctx, { limit }),
    /** The audit appender's quota step (grant state is written by access only). */
    settleQuotaUse: quotaSettler(ctx),
  };
}
