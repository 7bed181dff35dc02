import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Device } from '../../db/schema/index.ts';
import { isUuid } from '../../shared/ids.ts';
import { dpopChallengeHeaders, isDpopRefusalCode } from '../../tokens/dpop.ts';
import { expectedHtu } from '../../tokens/dpop-htu.ts';
import type { DeviceApiDeps, GrantView, RequestView } from './deps.ts';
import { type DeviceApiRefusal, deviceApiStatus } from './errors.ts';

/** Request bodies are a few hundred bytes; nothing larger is read. */
const BODY_LIMIT = 8 * 1024;
const RESOURCE = /^[a-z][a-z0-9-]{0,62}$/;
const SCOPE = /^[a-z][a-z0-9_-]{0,31}$/;

const pairingBody = z.object({ name: z.string().min(1).max(256) }).strict();
const requestBody = z
  .object({
    resource: z.string().regex(RESOURCE),
    scope: z.string().regex(SCOPE).optional(),
    durationSeconds: z.number().int().positive(),
    reason: z.string().min(1).max(4000),
  })
  .strict();
const tokenBody = z.object({ resource: z.string().regex(RESOURCE) }).strict();

/**
 * What the OpenAPI document says of each route. Bodies are read by the handlers themselves (after
 * the proof is checked), so these describe and do not validate.
 */
const signed =
  'Signed with a DPoP proof (RFC 9449) by the device key, for this method and URL, in the `DPoP` header.';
const DOCS = {
  pairings: {
    tags: ['device'],
    summary: 'Start pairing a new device key',
    description: `${signed} Any key not yet known; answers the code to confirm in Slack with /access link. Rate limited per address.`,
  },
  pairing: {
    tags: ['device'],
    summary: "This device's pairing state",
    description: `${signed} pending, linked (with the Slack user) or revoked.`,
  },
  requests: {
    tags: ['device'],
    summary: 'Request access as the person the device is linked to',
    description: `${signed} Body: {resource, scope?, durationSeconds, reason}; the same approval flow as /access request.`,
  },
  request: { tags: ['device'], summary: 'One of your requests and its grant', description: signed },
  tokens: {
    tags: ['device'],
    summary: 'A grant token bound to the device key (cnf.jkt)',
    description: `${signed} Body: {resource}. The token is usable at the proxy only as "Authorization: DPoP <token>" with a proof by the same key.`,
  },
} as const;

type Authenticated = { ok: true; device: Device } | { ok: false; refusal: DeviceApiRefusal };

/**
 * The API the contractor CLI talks to (register under a prefix, e.g. `/api/v1/device`). Every call
 * is signed: a DPoP proof (RFC 9449) by the device's key, for this call's method and URL, fresh
 * and never replayed. Only starting a pairing accepts a key nobody knows yet; everything else
 * needs a device that a person has linked in Slack and that is not revoked, and acts as that person.
 *
 * Proofs cover method, URL and time, not the body: bodies rely on TLS, as every bearer API does,
 * and a proof cannot be used twice.
 */
export async function deviceApi(app: FastifyInstance, deps: DeviceApiDeps): Promise<void> {
  const pollSeconds = deps.pollSeconds ?? 2;

  function refuse(reply: FastifyReply, refusal: DeviceApiRefusal): FastifyReply {
    const code = refusal.code;
    const headers = isDpopRefusalCode(code) ? dpopChallengeHeaders({ code, nonce: refusal.nonce }) : {};
    return reply
      .code(deviceApiStatus(refusal.code))
      .headers({ ...headers, 'cache-control': 'no-store' })
      .send({ error: refusal.code, message: refusal.message });
  }

  /** The proof's key, checked; undefined device when the key is new (pairing start only). */
  async function proofOf(request: FastifyRequest) {
    const htu = expectedHtu(deps.publicUrl(), request.url) ?? '';
    return deps.verifier.verify({ proof: request.headers.dpop, method: request.method, htu });
  }

  async function linkedDevice(request: FastifyRequest): Promise<Authenticated> {
    const proof = await proofOf(request);
    if (!proof.ok) return { ok: false, refusal: proof };
    const device = await deps.devices.findByThumbprint(proof.thumbprint);
    if (!device) {
      return {
        ok: false,
        refusal: { code: 'device_unknown', message: 'This key is not paired; run `jitgate login`.' },
      };
    }
    return statusRefusal(device) ?? { ok: true, device };
  }

  const bad = (message: string): DeviceApiRefusal => ({ code: 'bad_request', message });

  app.post('/pairings', { bodyLimit: BODY_LIMIT, schema: DOCS.pairings }, async (request, reply) => {
    if (deps.allowPairing && !deps.allowPairing(request.ip)) {
      return refuse(reply, {
        code: 'pairing_rate_limited',
        message: 'Too many pairings from this address; wait a minute and run `jitgate login` again.',
      });
    }
    const proof = await proofOf(request);
    if (!proof.ok) return refuse(reply, proof);
    const body = pairingBody.safeParse(request.body);
    if (!body.success) return refuse(reply, bad('Send {"name": "<device name>"}.'));
    const started = await deps.devices.startPairing({
      name: body.data.name,
      publicJwk: proof.jwk,
      thumbprint: proof.thumbprint,
    });
    if (!started.ok) return refuse(reply, started);
    const { device, code } = started.value;
    return reply.code(201).header('cache-control', 'no-store').send({
      deviceId: device.id,
      name: device.name,
      code,
      expiresAt: device.pairingExpiresAt.toISOString(),
      pollSeconds,
      proxyUrl: deps.proxyUrl,
    });
  });

  // The one call a pending device may make: has someone linked me yet?
  app.get('/pairing', { schema: DOCS.pairing }, async (request, reply) => {
    const proof = await proofOf(request);
    if (!proof.ok) return refuse(reply, proof);
    const device = await deps.devices.findByThumbprint(proof.thumbprint);
    if (!device)
      return refuse(reply, {
        code: 'device_unknown',
        message: 'This key is not paired; run `jitgate login`.',
      });
    return reply.header('cache-control', 'no-store').send({
      deviceId: device.id,
      name: device.name,
      status: device.status,
      userId: device.userId ?? undefined,
      expiresAt: device.pairingExpiresAt.toISOString(),
      revokeReason: device.revokeReason ?? undefined,
      pollSeconds,
      proxyUrl: deps.proxyUrl,
    });
  });

  app.post('/requests', { bodyLimit: BODY_LIMIT, schema: DOCS.requests }, async (request, reply) => {
    const auth = await linkedDevice(request);
    if (!auth.ok) return refuse(reply, auth.refusal);
    const body = requestBody.safeParse(request.body);
    if (!body.success) {
      return refuse(reply, bad('Send {"resource", "scope" (optional), "durationSeconds", "reason"}.'));
    }
    const created = await deps.access.createRequest({
      ...body.data,
      scope: body.data.scope,
      requesterId: auth.device.userId!,
    });
    if (!created.ok) return refuse(reply, created);
    return reply
      .code(201)
      .header('cache-control', 'no-store')
      .send({ request: requestJson(created.value), pollSeconds });
  });

  app.get<{ Params: { id: string } }>('/requests/:id', { schema: DOCS.request }, async (request, reply) => {
    const auth = await linkedDevice(request);
    if (!auth.ok) return refuse(reply, auth.refusal);
    const id = request.params.id;
    const found = isUuid(id) ? await deps.access.requestStatus(id.toLowerCase()) : undefined;
    // Someone else's request does not exist, as far as this device can tell.
    if (!found || found.requesterId !== auth.device.userId) {
      return refuse(reply, { code: 'request_not_found', message: 'No such request of yours.' });
    }
    return reply.header('cache-control', 'no-store').send({ request: requestJson(found), pollSeconds });
  });

  app.post('/tokens', { bodyLimit: BODY_LIMIT, schema: DOCS.tokens }, async (request, reply) => {
    const auth = await linkedDevice(request);
    if (!auth.ok) return refuse(reply, auth.refusal);
    const body = tokenBody.safeParse(request.body);
    if (!body.success) return refuse(reply, bad('Send {"resource": "<resource>"}.'));
    const userId = auth.device.userId!;
    const live = (await deps.access.liveGrantsOf(userId)).filter((g) => g.resource === body.data.resource);
    // Of several live grants on one resource, the one that lasts longest.
    const grant = live.sort((a, b) => b.expiresAt.getTime() - a.expiresAt.getTime())[0];
    if (!grant) {
      return refuse(reply, {
        code: 'no_active_grant',
        message: `You hold no active grant on ${body.data.resource}; ask with \`jitgate request\`.`,
      });
    }
    const token = await deps.issueToken(grant, { userId, thumbprint: auth.device.thumbprint });
    return reply.header('cache-control', 'no-store').send({
      token,
      tokenType: 'DPoP',
      ...grantJson(grant),
      proxyUrl: deps.proxyUrl,
    });
  });
}

function statusRefusal(device: Device): { ok: false; refusal: DeviceApiRefusal } | undefined {
  switch (device.status) {
    case 'linked':
      return undefined;
    case 'pending':
      return {
        ok: false,
        refusal: {
          code: 'device_pending',
          message: 'This device is not linked yet; confirm it in Slack first.',
        },
      };
    case 'revoked':
      return {
        ok: false,
        refusal: {
          code: 'device_revoked',
          message: 'This device has been revoked; run `jitgate login` to pair again.',
        },
      };
  }
}

const grantJson = (grant: GrantView) => ({
  grantId: grant.id,
  resource: grant.resource,
  scope: grant.scope,
  expiresAt: grant.expiresAt.toISOString(),
});

const requestJson = (request: RequestView) => ({
  id: request.id,
  resource: request.resource,
  scope: request.scope,
  status: request.status,
  durationSeconds: request.durationSeconds,
  grant: request.grant ? grantJson(request.grant) : undefined,
  decidedBy: request.decidedBy,
  note: request.note,
});
