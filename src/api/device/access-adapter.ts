import type { AccessService } from '../../access/service.ts';
import type { AccessRequest, Grant } from '../../db/schema/index.ts';
import { refusalText } from '../../slack/blocks/refusals.ts';
import type { DeviceAccess, GrantView, RequestView } from './deps.ts';

const grantView = (grant: Grant): GrantView => ({
  id: grant.id,
  userId: grant.userId,
  resource: grant.resource,
  scope: grant.scope,
  expiresAt: grant.expiresAt,
});

function requestView(request: AccessRequest, grant: Grant | undefined): RequestView {
  return {
    id: request.id,
    requesterId: request.requesterId,
    resource: request.resource,
    scope: request.scope,
    status: request.status,
    durationSeconds: request.durationSeconds,
    grant: grant ? grantView(grant) : undefined,
    decidedBy: request.decidedBy ?? undefined,
    note: request.decisionNote ?? undefined,
  };
}

/** The device API's view of the access actions; a refusal comes with the sentence Slack shows for it. */
export function deviceAccessFrom(access: AccessService): DeviceAccess {
  /** The live grant an approved request made, or the one an approved extension extended. */
  async function grantOf(request: AccessRequest): Promise<Grant | undefined> {
    if (request.status !== 'approved') return undefined;
    const { active } = await access.listForUser(request.requesterId);
    return active.find((g) =>
      request.extendsGrantId ? g.id === request.extendsGrantId : g.requestId === request.id,
    );
  }
  return {
    async createRequest({ requesterId, ...ask }) {
      // Audited as the person's Slack identity: the device is one they linked in Slack.
      const result = await access.createRequest({ ...ask, actor: { type: 'slack', userId: requesterId } });
      if (!result.ok) return { ok: false, code: result.code, message: refusalText(result) };
      return { ok: true, value: requestView(result.value.request, result.value.grant) };
    },
    async requestStatus(requestId) {
      const request = await access.getRequest(requestId);
      return request ? requestView(request, await grantOf(request)) : undefined;
    },
    async liveGrantsOf(userId) {
      return (await access.listForUser(userId)).active.map(grantView);
    },
  };
}
