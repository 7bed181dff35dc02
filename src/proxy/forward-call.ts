import { randomUUID } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import type { FastifyReplyFromHooks } from '@fastify/reply-from';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Agent } from 'undici';
import type { CallIntent } from '../shared/call-intent.ts';
import { type ActiveSigner, issueIdentityAssertion } from '../tokens/index.ts';
import type { Authorization } from './authorize.ts';
import { BodyCapture } from './body-capture.ts';
import { type Call, type CallRuntime, CLIENT_CLOSED, recordCall } from './call.ts';
import { fail, refuse } from './call-refusal.ts';
import { forwardDirect, type UpstreamCache, upstreamTarget } from './direct-forward.ts';

export interface CallForwarderDeps {
  runtime: CallRuntime;
  /** reply-from's hooks (forward-hooks.ts), one object for every call. */
  hooks: FastifyReplyFromHooks;
  /** The upstream pool of the direct forward (direct-forward.ts), for answers passed through unchanged. */
  agent: Agent;
  keyStore: { activeSigner?(): ActiveSigner };
  issuer: string | undefined;
}

/** What happens once a call's checks are decided: it is refused, or set up and forwarded. */
export type ProceedWithCall = (
  request: FastifyRequest,
  reply: FastifyReply,
  call: Call,
  outcome: Authorization,
) => void;

export function createCallForwarder(deps: CallForwarderDeps): ProceedWithCall {
  const { runtime, hooks } = deps;
  const { logger } = runtime;
  const upstreams: UpstreamCache = new Map();

  function proceed(request: FastifyRequest, reply: FastifyReply, call: Call, outcome: Authorization): void {
    if (call.clientGone) {
      // The client left while its token was checked: record what was decided, forward nothing.
      call.decision = outcome.ok ? CLIENT_CLOSED : outcome.denial.code;
      recordCall(call, request, reply, runtime.recording);
      return;
    }
    if (!outcome.ok) {
      logger.debug(
        { reqId: request.id, code: outcome.denial.code, resource: call.resourceName },
        'call denied',
      );
      refuse(request, reply, call, outcome.denial);
      return;
    }
    call.decision = 'allowed';
    const { credential, upstream, identityAssertion, capture } = outcome.resource;
    call.query = outcome.query;
    call.upstream = upstream;
    call.upstreamPath = outcome.upstreamPath;
    if (credential) {
      call.credentialHeader = credential.header.toLowerCase();
      call.credentialValue = credential.value;
    }
    const scope = outcome.scope;
    if (scope.mask || capture) {
      call.scope = scope;
      call.mask = scope.mask;
      call.maskMaxBytes = outcome.resource.maskMaxBytes;
    }
    if (capture) {
      call.requestCapture = new BodyCapture(capture.maxBytes);
      call.responseCapture = new BodyCapture(capture.maxBytes);
    }
    if (identityAssertion) {
      // Signing is asynchronous (WebCrypto), so only calls to such resources take this path.
      const signer = deps.keyStore.activeSigner?.();
      const grant = outcome.grant;
      if (!signer || deps.issuer === undefined) {
        fail(
          runtime,
          request,
          reply,
          call,
          new Error('identity_assertion needs the key store signer and issuer'),
        );
        return;
      }
      issueIdentityAssertion(signer, {
        issuer: deps.issuer,
        resource: call.resourceName,
        userId: grant.userId,
        grantId: grant.id,
        scope: grant.scope,
        requestId: request.id,
        // The client chooses its request id: what must be unique is the proxy's own.
        assertionId: randomUUID(),
        now: new Date(call.now),
        ttlSeconds: identityAssertion.ttlSeconds,
      })
        .then((token) => {
          call.identityHeader = identityAssertion.header.toLowerCase();
          call.identityValue = token;
          send(request, reply, call);
        })
        // A rejection here would be unhandled, and an unhandled rejection ends the process.
        .catch((error: unknown) => fail(runtime, request, reply, call, error));
      return;
    }
    send(request, reply, call);
  }

  function send(request: FastifyRequest, reply: FastifyReply, call: Call): void {
    // The client left while its identity assertion was signed: its record is made; forward nothing.
    if (call.recorded) return;
    const capture = call.requestCapture;
    const body = request.body;
    if (capture && body instanceof Readable) {
      // A pass-through that copies the start of the body aside as reply-from pulls it: it
      // reads only as fast as the upstream takes the body (a 'data' listener on the client
      // stream would start it flowing before reply-from is reading, and lose chunks).
      const tap = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          capture.push(chunk);
          done(null, chunk);
        },
      });
      body.on('error', (error) => tap.destroy(error));
      request.body = body.pipe(tap);
    }
    // The one point where the upstream may get the call: its intent is written first.
    const journal = runtime.recording.journal;
    if (!journal) {
      forward(request, reply, call);
      return;
    }
    journal.forwarding(intentOf(request, call), (mark) => {
      if (!mark) {
        refuse(request, reply, call, {
          code: 'audit_unavailable',
          message: 'The proxy cannot record calls right now; try again shortly.',
        });
        return;
      }
      call.intent = mark;
      // The client left while the intent was written: its record (client_closed) is made, and
      // it stands for the intent too; nothing is forwarded.
      if (call.recorded) {
        journal.recorded(mark);
        return;
      }
      forward(request, reply, call);
    });
  }

  function forward(request: FastifyRequest, reply: FastifyReply, call: Call): void {
    call.forwarded = true;
    try {
      // Masking and capture read the answer as a stream: reply-from's path; all else passes through.
      if (call.mask || call.responseCapture) reply.from(`${call.upstream}${call.upstreamPath}`, hooks);
      else
        forwardDirect(
          runtime,
          deps.agent,
          request,
          reply,
          call,
          upstreamTarget(upstreams, call.upstream, call.upstreamPath),
        );
    } catch (error) {
      fail(runtime, request, reply, call, error);
    }
  }

  return proceed;
}

/** What the journal keeps of a call about to be forwarded. */
function intentOf(request: FastifyRequest, call: Call): CallIntent {
  const grant = call.grant;
  return {
    at: call.at,
    requestId: request.id,
    resource: call.resourceName,
    grantId: grant?.id ?? '',
    userId: grant?.userId ?? '',
    scope: grant?.scope ?? '',
    method: call.method,
    path: call.path,
    clientIp: call.clientIp ?? request.ip,
  };
}
