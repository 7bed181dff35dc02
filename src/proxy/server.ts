import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { Readable, Transform } from 'node:stream';
import fastifyReplyFrom, { type FastifyReplyFromHooks } from '@fastify/reply-from';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { PolicyStore } from '../policy/store.ts';
import type { CallSink } from '../shared/call-record.ts';
import type { Clock } from '../shared/clock.ts';
import { type ActiveSigner, issueIdentityAssertion, type Jwks, type VerifyResult } from '../tokens/index.ts';
import type { ActiveGrantView } from './active-grants.ts';
import { type Authorization, type AuthorizeDeps, authorizeCall, identifyTarget } from './authorize.ts';
import { BodyCapture } from './body-capture.ts';
import { Call, type CallRecording, CLIENT_CLOSED, OpenCalls, recordCall, watchCallEnd } from './call.ts';
import type { Denial } from './denial.ts';
import { resolveClientIp } from './ip-allow.ts';
import { type CallLimits, createLocalLimits } from './limits/call-limits.ts';
import { createQuotaTracker, type QuotaTracker } from './quota.ts';
import { createRateLimiter, type RateLimiter } from './rate-limit.ts';
import {
  chooseRequestId,
  MAX_CLIENT_HEADER_BYTES,
  MAX_CLIENT_HEADERS,
  tooManyHeaders,
  upstreamRequestHeaders,
} from './request-headers.ts';
import { bufferAndMask, hasNoBody, planMask } from './response-mask.ts';
import { type DenialReply, FORWARDED_METHODS, internalError, sendDenial } from './send-denial.ts';
import { createUpstreamConnector } from './upstream-connector.ts';
import { createWireRefusals } from './wire-refusals.ts';

/** Paths the proxy's logger censors; the values are bearer tokens, cookies and upstream secrets. */
export const PROXY_LOG_REDACT = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'headers.authorization',
  'headers.cookie',
  'headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
];

export interface ProxyServerDeps {
  policy: PolicyStore;
  grants: ActiveGrantView;
  /**
   * `createVerifier(keyStore, { issuer, clock })` from src/tokens: it pins issuer and algorithm,
   * and its `peek` lets a call with a cached token pass every check synchronously.
   */
  verifier: {
    verify(token: string): Promise<VerifyResult>;
    peek?(token: string, now?: number): VerifyResult | undefined;
  };
  /**
   * Serves `GET /.well-known/jwks.json`; `activeSigner` signs identity assertions (policy
   * `identity_assertion`) with the same keys.
   */
  keyStore: { jwks(): Jwks; activeSigner?(): ActiveSigner };
  /** `iss` of identity assertions; the same issuer as grant tokens. */
  issuer?: string;
  /**
   * Per-grant quota counts; pass the one the audit appender settles into (see src/proxy/quota.ts).
   * Default: a tracker of this process only (exact for one proxy).
   */
  quota?: QuotaTracker;
  clock: Clock;
  sink: CallSink;
  logger: Logger;
  /** Default: a per-process limiter on `clock`. */
  rateLimiter?: RateLimiter;
  /**
   * Rate limit and quota together; with REDIS_URL the shared ones (src/proxy/limits/redis-limits.ts).
   * Default: this process's `rateLimiter` and `quota`.
   */
  limits?: CallLimits;
  /** Fastify `trustProxy`, for the client IP in call records behind a load balancer. Default false. */
  trustProxy?: boolean | string | string[];
  /** Upstream connection pool per origin (undici). Default 128 connections, 5 min timeouts. */
  upstream?: { connections?: number; headersTimeoutMs?: number; bodyTimeoutMs?: number };
  /**
   * PROXY_TLS_CERT/PROXY_TLS_KEY: listen with HTTPS. The certificate is swapped later with
   * `server.setSecureContext` (see src/ops/tls.ts), so it is only needed at construction.
   */
  tls?: { key: Buffer | string; cert: Buffer | string };
  /**
   * How long a client may take to send its request head (a slowloris holds a socket open by
   * trickling it); past it the connection gets 408 `request_timeout` and is closed. Default 10 s.
   */
  clientHeadersTimeoutMs?: number;
}

const DEFAULT_CLIENT_HEADERS_TIMEOUT_MS = 10_000;

/**
 * The access proxy: `/<resource>/<path…>` with `Authorization: Bearer <token>`.
 * Returns a fastify instance that is not listening; the caller listens and closes it.
 *
 * One catch-all route forwards with @fastify/reply-from to the resource's upstream, read
 * from the policy on each call, so a policy reload needs no re-registration; undici keeps
 * a connection pool per upstream origin. Bodies are streamed both ways.
 *
 * Every request to the port becomes exactly one call record (src/proxy/call.ts): routed calls,
 * requests the router refuses (a URL it cannot decode, a method it has no route for), requests
 * Node's parser refuses and CONNECT (src/proxy/wire-refusals.ts). One client call is one
 * upstream call: reply-from's retries (a GET answered 503 was sent up to 11 times) are off.
 *
 * Hot-path notes (issue 5's target is ≥ 1.0 × a bare @fastify/http-proxy): fastify gets no
 * logger, so it builds no per-request child logger (this code logs denials and faults itself,
 * with the request id); the route handler is synchronous when the token is cached, so it makes
 * no promise and fastify does not wait on the reply as a thenable; the clock is read once per
 * call; and the reply-from options are one shared object.
 */
export function createProxyServer(deps: ProxyServerDeps): FastifyInstance {
  const logger = deps.logger.child(
    { component: 'proxy' },
    { redact: { paths: PROXY_LOG_REDACT, censor: '[redacted]' } },
  );
  const rateLimiter = deps.rateLimiter ?? createRateLimiter({ clock: deps.clock });
  const limits = deps.limits ?? createLocalLimits(rateLimiter, deps.quota ?? createQuotaTracker());
  const authorizeDeps: AuthorizeDeps = {
    policy: deps.policy,
    grants: deps.grants,
    verifier: deps.verifier,
    clock: deps.clock,
    sink: deps.sink,
    limits,
  };
  const headersTimeoutMs = deps.clientHeadersTimeoutMs ?? DEFAULT_CLIENT_HEADERS_TIMEOUT_MS;
  // Node's own bounds on the request head, stated rather than inherited from its defaults (and
  // a CLI flag): its size, and how long it may take. Node looks for connections past the
  // timeout every `connectionsCheckingInterval` (30 s unless told).
  const listenerOptions = {
    maxHeaderSize: MAX_CLIENT_HEADER_BYTES,
    headersTimeout: headersTimeoutMs,
    connectionsCheckingInterval: Math.min(1000, headersTimeoutMs),
  };
  const wire = createWireRefusals({ sink: deps.sink, clock: deps.clock, logger });
  const recording: CallRecording = { sink: deps.sink, logger, open: new OpenCalls() };
  const app = Fastify({
    // No logger on purpose: a logger makes fastify create a child per request (pino child +
    // bindings, ~2 µs) even with request logging off. Denials and faults are logged below.
    requestIdHeader: false,
    // Pass on a sane client request id, otherwise make one; it is returned and forwarded.
    genReqId: (req) => chooseRequestId(req.headers['x-request-id']),
    trustProxy: deps.trustProxy ?? false,
    ...(deps.tls
      ? { https: { key: deps.tls.key, cert: deps.tls.cert, ...listenerOptions } }
      : { http: listenerOptions }),
    // While the proxy drains at shutdown, calls on open connections are still checked,
    // forwarded and recorded (the audit writer closes after the proxy), with `Connection: close`
    // so their clients move on; fastify's own 503 would answer outside the contract, unrecorded.
    return503OnClosing: false,
    routerOptions: { maxParamLength: 8192, ignoreDuplicateSlashes: false, ignoreTrailingSlash: false },
    // The router refuses some malformed URLs before any handler runs: answer with the contract.
    frameworkErrors: (error, request, reply) => {
      const call = request.jitgate ?? startCall(request as FastifyRequest, reply as FastifyReply);
      logger.debug({ reqId: request.id, code: error.code }, 'malformed request refused by the router');
      refuse(request as FastifyRequest, reply as FastifyReply, call, {
        code: 'bad_path',
        message: 'The request URL is malformed.',
      });
    },
    clientErrorHandler: (error, socket) => wire.clientError(error, socket),
  }) as unknown as FastifyInstance;
  app.server.on('connect', wire.connect);

  app.decorateRequest('jitgate', null);
  app.decorate('jitgateOpenCalls', recording.open);
  // Bodies stay streams: never parsed, never buffered whole; reply-from pipes them upstream.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));

  app.register(fastifyReplyFrom, {
    disableRequestLogging: true,
    // Every call has its own URL; the 100-entry URL cache would only churn.
    disableCache: true,
    undici: {
      connections: deps.upstream?.connections ?? 128,
      pipelining: 1,
      headersTimeout: deps.upstream?.headersTimeoutMs ?? 300_000,
      bodyTimeout: deps.upstream?.bodyTimeoutMs ?? 300_000,
      // Verifies each upstream's certificate against its resource's ca_file or the public roots.
      connect: createUpstreamConnector({ policy: deps.policy }),
    },
  });

  app.get('/.well-known/jwks.json', (_request, reply) => {
    reply.header('cache-control', 'public, max-age=60').send(deps.keyStore.jwks());
  });

  // Whatever else goes wrong in fastify's hands (a body it cannot frame, QUERY without a
  // Content-Type): the contract's denial and a record, never fastify's own text or a message
  // that may carry internals.
  app.setErrorHandler((error, request, reply) => {
    const call = request.jitgate ?? startCall(request, reply);
    const status = (error as { statusCode?: unknown }).statusCode;
    let denial: Denial;
    if (!FORWARDED_METHODS.has(call.method)) denial = methodNotAllowed(call.method);
    else if (typeof status === 'number' && status >= 400 && status < 500)
      denial = { code: 'bad_request', message: 'The request could not be read.' };
    else {
      logger.error({ reqId: request.id, resource: call.resourceName, err: error }, 'call failed');
      denial = internalError(request.id);
    }
    refuse(request, reply, call, denial);
  });

  /**
   * The call's state and its one record, armed before anything can refuse or forward it; the
   * target (resource and path) is read into it, so even a call refused first records them.
   */
  function startCall(request: FastifyRequest, reply: FastifyReply): Call {
    const at = deps.clock.now();
    const call = new Call(at, at.getTime(), performance.now(), request.raw.method ?? 'GET');
    request.jitgate = call;
    const trust = deps.policy.current().trustProxy;
    call.clientIp = trust
      ? resolveClientIp(request.raw.socket.remoteAddress, request.headers['x-forwarded-for'], trust)
      : request.ip;
    watchCallEnd(call, request, reply, recording);
    call.target = identifyTarget(call, request.raw.url ?? '/');
    return call;
  }

  /**
   * Counts response bytes as they leave (or, with a content-length, when the headers do),
   * not when the call is over: the response's end reaches the client before the call's record
   * is made, so a client that calls again at once must already find its bytes counted against
   * a byte quota. Nothing is counted once the record is made (its bytes are settled with it).
   */
  function countResponseBytes(call: Call, bytes: number): void {
    if (call.recorded) return;
    call.responseBytes += bytes;
    if (call.quotaCounted && call.grant) limits.addBytes(call.grant.id, bytes);
  }

  // Shared by every forwarded call; each callback finds its call on `request.jitgate`.
  const forward: FastifyReplyFromHooks = {
    // One client call is one upstream call: no retry on 503, on a reset socket, or ever.
    retryDelay: () => null,
    queryString: (_search, _url, request) => request?.jitgate?.query.slice(1) ?? '',
    rewriteRequestHeaders: (request, headers) => {
      const call = request.jitgate;
      // reply-from only adds headers when given a body to send, which this proxy never does
      // (bodies stream), so everything it passes here came from the client.
      return call ? upstreamRequestHeaders(request.raw.headers, headers, call, request.id) : {};
    },
    rewriteHeaders: (headers, request) => {
      const out: IncomingHttpHeaders = {};
      for (const name in headers) {
        if (!dropResponseHeader(name)) out[name] = headers[name];
      }
      if (request) out['x-request-id'] = request.id;
      return out;
    },
    onResponse: (request, reply, raw) => {
      // reply-from's types call this a server response; at run time it is `{ statusCode, headers, stream }`.
      const upstream = raw as unknown as UpstreamResponse;
      const call = request.jitgate;
      if (!call) {
        reply.send(upstream.stream);
        return;
      }
      call.upstreamBody = upstream.stream;
      try {
        if (call.mask || call.responseCapture) {
          withPolicyFeatures(request, reply, call, upstream);
          return;
        }
        const length = hasNoBody(call.method, upstream.statusCode)
          ? 0
          : Number(upstream.headers['content-length']);
        if (Number.isFinite(length)) countResponseBytes(call, length);
        else {
          // Counting alongside the pipe: a second 'data' listener does not buffer anything.
          upstream.stream.on('data', (chunk: Buffer) => {
            countResponseBytes(call, chunk.length);
          });
        }
        reply.send(upstream.stream);
      } catch (error) {
        // However odd the answer, a fault in handling it ends this call, never the process.
        logger.error(
          { reqId: request.id, resource: call.resourceName, err: error },
          'response handling failed',
        );
        refuseResponse(request, reply, call, upstream, internalError(request.id));
      }
    },
    onError: (reply, { error }) => {
      const request = reply.request;
      const call = request.jitgate;
      logger.warn({ reqId: request.id, resource: call?.resourceName, err: error }, 'upstream call failed');
      // A client that already left has its record; there is nobody to answer.
      if (!call || call.recorded || reply.sent) return;
      call.decision = 'upstream_unreachable';
      sendDenial(reply, request.id, {
        code: 'upstream_unreachable',
        message: 'the upstream could not be reached',
      });
    },
  };

  function proceed(request: FastifyRequest, reply: FastifyReply, call: Call, outcome: Authorization): void {
    if (call.clientGone) {
      // The client left while its token was checked: record what was decided, forward nothing.
      call.decision = outcome.ok ? CLIENT_CLOSED : outcome.denial.code;
      recordCall(call, request, reply, recording);
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
    const url = `${upstream}${outcome.upstreamPath}`;
    if (capture) {
      call.requestCapture = new BodyCapture(capture.maxBytes);
      call.responseCapture = new BodyCapture(capture.maxBytes);
    }
    if (identityAssertion) {
      // Signing is asynchronous (WebCrypto), so only calls to such resources take this path.
      const signer = deps.keyStore.activeSigner?.();
      const grant = outcome.grant;
      if (!signer || deps.issuer === undefined) {
        fail(request, reply, call, new Error('identity_assertion needs the key store signer and issuer'));
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
          send(request, reply, call, url);
        })
        // A rejection here would be unhandled, and an unhandled rejection ends the process.
        .catch((error: unknown) => fail(request, reply, call, error));
      return;
    }
    send(request, reply, call, url);
  }

  function send(request: FastifyRequest, reply: FastifyReply, call: Call, url: string): void {
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
    // The one point where the upstream may get the call: a durable intent record goes here.
    call.forwarded = true;
    try {
      reply.from(url, forward);
    } catch (error) {
      fail(request, reply, call, error);
    }
  }

  /** The reply-from response path when masking or capture is on for this call. */
  function withPolicyFeatures(
    request: ForwardRequest,
    reply: ForwardReply,
    call: Call,
    upstream: UpstreamResponse,
  ): void {
    const capture = call.responseCapture;
    const bodyless = hasNoBody(call.method, upstream.statusCode);
    const plan = call.mask
      ? planMask(upstream.headers, call.scope?.maskRequired ?? false, call.maskMaxBytes, bodyless)
      : { kind: 'pass' as const };
    if (plan.kind === 'refuse') {
      refuseResponse(request, reply, call, upstream, plan.denial);
      return;
    }
    if (plan.kind === 'buffer' && call.mask) {
      bufferAndMask(upstream.stream, call.maskMaxBytes, call.mask, (result) => {
        if (result.ok) {
          countResponseBytes(call, result.body.length);
          capture?.push(result.body);
          // The body changed: the upstream's length and validators no longer describe it.
          reply.removeHeader('content-length');
          reply.removeHeader('etag');
          reply.removeHeader('content-md5');
          reply.send(result.body);
        } else if ('denial' in result) {
          refuseResponse(request, reply, call, upstream, result.denial);
        } else {
          forward.onError?.(reply, { error: result.error });
        }
      });
      return;
    }
    const length = bodyless ? 0 : Number(upstream.headers['content-length']);
    if (Number.isFinite(length)) countResponseBytes(call, length);
    upstream.stream.on('data', (chunk: Buffer) => {
      if (!Number.isFinite(length)) countResponseBytes(call, chunk.length);
      capture?.push(chunk);
    });
    reply.send(upstream.stream);
  }

  function refuseResponse(
    request: ForwardRequest,
    reply: ForwardReply,
    call: Call,
    upstream: UpstreamResponse,
    denial: Denial,
  ): void {
    (upstream.stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
    call.responseCapture = undefined;
    logger.debug({ reqId: request.id, code: denial.code, resource: call.resourceName }, 'response refused');
    // reply-from already copied the upstream's headers onto the reply: none of them may go out.
    for (const name of Object.keys(reply.getHeaders())) reply.removeHeader(name);
    refuse(request, reply, call, denial);
  }

  /** Sends a denial and says so in the call's record (unless the client already left). */
  function refuse(
    request: { id: string },
    reply: DenialReply & { sent: boolean },
    call: Call,
    denial: Denial,
  ): void {
    if (call.recorded || reply.sent) return;
    call.decision = denial.code;
    sendDenial(reply, request.id, denial);
  }

  function fail(request: FastifyRequest, reply: FastifyReply, call: Call, error: unknown): void {
    // A fault, not an outcome (e.g. a broken key store): logged here because fastify has no
    // logger; the client gets a code, a plain message and the request id, never the error.
    logger.error({ reqId: request.id, resource: call.resourceName, err: error }, 'call failed');
    if (call.clientGone) {
      call.decision = 'internal_error';
      recordCall(call, request, reply, recording);
      return;
    }
    refuse(request, reply, call, internalError(request.id));
  }

  // Synchronous on purpose, returning nothing: fastify then neither wraps a promise nor awaits
  // the reply as a thenable; the reply is sent by proceed() (or by reply-from's callbacks).
  // Also the not-found handler: a method the router has no route for (PROPFIND) comes here.
  const handle = (request: FastifyRequest, reply: FastifyReply): void => {
    const call = startCall(request, reply);
    if (tooManyHeaders(request.raw.rawHeaders)) {
      refuse(request, reply, call, {
        code: 'headers_too_large',
        message: `At most ${MAX_CLIENT_HEADERS} request headers are accepted.`,
      });
      return;
    }
    if (!FORWARDED_METHODS.has(call.method)) {
      refuse(request, reply, call, methodNotAllowed(call.method));
      return;
    }
    let outcome: Authorization | Promise<Authorization>;
    try {
      outcome = authorizeCall(authorizeDeps, call, call.target, request.headers.authorization);
    } catch (error) {
      fail(request, reply, call, error);
      return;
    }
    if (outcome instanceof Promise) {
      // Only a token's first use takes this path; the catch also covers a throw in proceed().
      outcome
        .then((result) => proceed(request, reply, call, result))
        .catch((error: unknown) => fail(request, reply, call, error));
    } else {
      proceed(request, reply, call, outcome);
    }
  };
  app.all('/*', handle);
  app.setNotFoundHandler(handle);

  return app;
}

function methodNotAllowed(method: string): Denial {
  return { code: 'method_not_allowed', message: `The proxy does not forward ${method}.` };
}

function dropResponseHeader(name: string): boolean {
  switch (name) {
    case 'connection':
    case 'keep-alive':
    case 'proxy-connection':
    case 'transfer-encoding':
    case 'upgrade':
    case 'trailer':
    case 'te':
      return true;
    default:
      return false;
  }
}

type ForwardRequest = Parameters<NonNullable<FastifyReplyFromHooks['onResponse']>>[0];
type ForwardReply = Parameters<NonNullable<FastifyReplyFromHooks['onResponse']>>[1];

interface UpstreamResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  stream: NodeJS.ReadableStream;
}
