import fastifyReplyFrom from '@fastify/reply-from';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { Agent } from 'undici';
import type { PolicyStore } from '../policy/store.ts';
import type { CallIntentJournal } from '../shared/call-intent.ts';
import type { CallSink } from '../shared/call-record.ts';
import type { Clock } from '../shared/clock.ts';
import type { ActiveSigner, Jwks, VerifyResult } from '../tokens/index.ts';
import type { ActiveGrantView } from './active-grants.ts';
import {
  type Authorization,
  type AuthorizeDeps,
  authorizeCall,
  identifyTarget,
  type ProofChecks,
} from './authorize.ts';
import { Call, type CallRecording, type CallRuntime, OpenCalls, watchCallEnd } from './call.ts';
import { fail, methodNotAllowed, refuse } from './call-refusal.ts';
import { resolveClientIp } from './client-ip.ts';
import type { Denial } from './denial.ts';
import { createCallForwarder } from './forward-call.ts';
import { createForwardHooks } from './forward-hooks.ts';
import { type CallLimits, createLocalLimits } from './limits/call-limits.ts';
import { createQuotaTracker, type QuotaTracker } from './quota.ts';
import { createRateLimiter, type RateLimiter } from './rate-limit.ts';
import {
  chooseRequestId,
  MAX_CLIENT_HEADER_BYTES,
  MAX_CLIENT_HEADERS,
  tooManyHeaders,
} from './request-headers.ts';
import { FORWARDED_METHODS, internalError } from './send-denial.ts';
import { createUpstreamConnector } from './upstream-connector.ts';
import { createWireRefusals } from './wire-refusals.ts';

/** Paths the proxy's logger censors; the values are bearer tokens, cookies and upstream secrets. */
const PROXY_LOG_REDACT = [
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
  /**
   * Where each call's intent is written before it is forwarded (src/audit/intent-journal.ts),
   * so a killed process loses no audit row. Without it, records live only in the sink's queue.
   */
  journal?: CallIntentJournal;
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
  /**
   * Device-bound tokens (`cnf.jkt`): the DPoP verifier (its replay cache in Redis with
   * REDIS_URL), the public URL proofs are made for, and which device keys are revoked. Unset:
   * bound tokens are refused with `dpop_unavailable`.
   */
  dpop?: ProofChecks;
}

const DEFAULT_CLIENT_HEADERS_TIMEOUT_MS = 10_000;

/**
 * The access proxy: `/<resource>/<path…>` with `Authorization: Bearer <token>`.
 * Returns a fastify instance that is not listening; the caller listens and closes it.
 *
 * One catch-all route forwards to the resource's upstream, read from the policy on each call,
 * so a policy reload needs no re-registration; one undici Agent keeps a connection pool per
 * upstream origin. An answer that passes through unchanged is written onto the client's
 * response by an undici dispatch handler (direct-forward.ts); a masked or captured one goes
 * through @fastify/reply-from (forward-hooks.ts), whose stream the mask and capture read.
 * Bodies are streamed both ways.
 *
 * Every request to the port becomes exactly one call record (src/proxy/call.ts): routed calls,
 * requests the router refuses (a URL it cannot decode, a method it has no route for), requests
 * Node's parser refuses and CONNECT (src/proxy/wire-refusals.ts). One client call is one
 * upstream call: a dispatch is never retried, and reply-from's retries (a GET answered 503 was
 * sent up to 11 times) are off.
 *
 * Hot-path notes (issue 5's target is ≥ 1.0 × a bare @fastify/http-proxy): fastify gets no
 * logger, so it builds no per-request child logger (this code logs denials and faults itself,
 * with the request id); the route handler is synchronous when the token is cached, so it makes
 * no promise and fastify does not wait on the reply as a thenable; the clock is read once per
 * call; the reply-from options are one shared object; and a passed-through answer skips
 * reply-from and fastify's reply altogether (direct-forward.ts; issue 19).
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
    ...(deps.dpop ? { dpop: deps.dpop } : {}),
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
  const recording: CallRecording = {
    sink: deps.sink,
    logger,
    open: new OpenCalls(),
    ...(deps.journal ? { journal: deps.journal } : {}),
  };
  const runtime: CallRuntime = { logger, recording, limits };
  const connect = createUpstreamConnector({ policy: deps.policy });
  // The upstream pools, one per origin, for both forwards: the direct one (answers passed
  // through) and reply-from's (masked or captured answers). Never retried (undici's dispatch
  // does not retry; reply-from's retries are off in forward-hooks.ts).
  const upstreamPool = {
    connections: deps.upstream?.connections ?? 128,
    pipelining: 1,
    headersTimeout: deps.upstream?.headersTimeoutMs ?? 300_000,
    bodyTimeout: deps.upstream?.bodyTimeoutMs ?? 300_000,
    // Verifies each upstream's certificate against its resource's ca_file or the public roots.
    connect,
  };
  const agent = new Agent(upstreamPool);
  // Once the checks are decided: refuse, or set the call up and forward it.
  const proceed = createCallForwarder({
    runtime,
    hooks: createForwardHooks(runtime),
    agent,
    keyStore: deps.keyStore,
    issuer: deps.issuer,
  });
  const app = Fastify({
    // No logger on purpose: a logger makes fastify create a child per request (pino child +
    // bindings, ~2 µs) even with request logging off. Denials and faults are logged by this code.
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
    undici: upstreamPool,
  });
  app.addHook('onClose', async () => {
    await agent.close();
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
      outcome = authorizeCall(authorizeDeps, call, call.target, request.headers.authorization, request.raw);
    } catch (error) {
      fail(runtime, request, reply, call, error);
      return;
    }
    if (outcome instanceof Promise) {
      // Only a token's first use takes this path; the catch also covers a throw in proceed().
      outcome
        .then((result) => proceed(request, reply, call, result))
        .catch((error: unknown) => fail(runtime, request, reply, call, error));
    } else {
      proceed(request, reply, call, outcome);
    }
  };
  app.all('/*', handle);
  app.setNotFoundHandler(handle);

  return app;
}
