import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { Readable, Transform } from 'node:stream';
import fastifyReplyFrom, { type FastifyReplyFromHooks } from '@fastify/reply-from';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { ScopePolicy } from '../policy/schema.ts';
import type { PolicyStore } from '../policy/store.ts';
import type { CallSink, CapturedBody } from '../shared/call-record.ts';
import type { Clock } from '../shared/clock.ts';
import { type ActiveSigner, issueIdentityAssertion, type Jwks, type VerifyResult } from '../tokens/index.ts';
import type { ActiveGrant, ActiveGrantView } from './active-grants.ts';
import { type Authorization, type AuthorizeDeps, authorizeCall, type CallContext } from './authorize.ts';
import { BodyCapture } from './body-capture.ts';
import { type Denial, denialBody, denialStatus } from './denial.ts';
import { resolveClientIp } from './ip-allow.ts';
import type { MaskRules } from './mask.ts';
import { createQuotaTracker, type QuotaTracker } from './quota.ts';
import { createRateLimiter, type RateLimiter } from './rate-limit.ts';
import { bufferAndMask, planMask } from './response-mask.ts';
import { createUpstreamConnector } from './upstream-connector.ts';

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
  /** Fastify `trustProxy`, for the client IP in call records behind a load balancer. Default false. */
  trustProxy?: boolean | string | string[];
  /** Upstream connection pool per origin (undici). Default 128 connections, 5 min timeouts. */
  upstream?: { connections?: number; headersTimeoutMs?: number; bodyTimeoutMs?: number };
  /**
   * PROXY_TLS_CERT/PROXY_TLS_KEY: listen with HTTPS. The certificate is swapped later with
   * `server.setSecureContext` (see src/ops/tls.ts), so it is only needed at construction.
   */
  tls?: { key: Buffer | string; cert: Buffer | string };
}

/**
 * Request headers never forwarded: the client's credentials, and hop-by-hop headers
 * (reply-from already drops `connection` and the headers it names). `expect` is answered
 * by Node itself and undici refuses to send it.
 *
 * The outgoing header objects are built by copying what is kept rather than by `delete`:
 * deleting a present key (the client's `authorization`, upstream `connection`) turns a V8
 * object into a slow dictionary that every later copy and iteration pays for (measured:
 * ~1.6 µs per call for the delete loop against ~0.2 µs for the copy).
 */
function dropRequestHeader(name: string): boolean {
  switch (name) {
    case 'authorization':
    case 'proxy-authorization':
    case 'cookie':
    case 'keep-alive':
    case 'proxy-connection':
    case 'te':
    case 'trailer':
    case 'transfer-encoding':
    case 'upgrade':
    case 'expect':
      return true;
    default:
      return false;
  }
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

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Everything one call carries from the checks to the forward and the call record: a single
 * object per call, so the reply-from callbacks can be shared functions (built once per
 * server, not closures per call) that find their state on the request.
 */
class Call implements CallContext {
  resourceName = '';
  path = '';
  grant: ActiveGrant | undefined = undefined;
  claimed: CallContext['claimed'] = undefined;
  decision = 'allowed';
  responseBytes = 0;
  /** `?…` as sent, or ''; forwarded unchanged. */
  query = '';
  /** Lower-cased header name and value of the upstream credential, if the policy has one. */
  credentialHeader: string | undefined = undefined;
  credentialValue = '';
  clientIp: string | undefined = undefined;
  quotaCounted = false;
  /** Only set when the policy turns the feature on for this call's resource or scope. */
  scope: ScopePolicy | undefined = undefined;
  mask: MaskRules | undefined = undefined;
  maskMaxBytes = 0;
  identityHeader: string | undefined = undefined;
  identityValue = '';
  requestCapture: BodyCapture | undefined = undefined;
  responseCapture: BodyCapture | undefined = undefined;

  constructor(
    readonly at: Date,
    public now: number,
    readonly started: number,
    readonly method: string,
  ) {}
}

declare module 'fastify' {
  interface FastifyRequest {
    jitgate: Call | null;
  }
}

/**
 * The access proxy: `/<resource>/<path…>` with `Authorization: Bearer <token>`.
 * Returns a fastify instance that is not listening; the caller listens and closes it.
 *
 * One catch-all route forwards with @fastify/reply-from to the resource's upstream, read
 * from the policy on each call, so a policy reload needs no re-registration; undici keeps
 * a connection pool per upstream origin. Bodies are streamed both ways.
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
  const quota = deps.quota ?? createQuotaTracker();
  const authorizeDeps: AuthorizeDeps = {
    policy: deps.policy,
    grants: deps.grants,
    verifier: deps.verifier,
    clock: deps.clock,
    rateLimiter,
    sink: deps.sink,
    quota,
  };
  const app = Fastify({
    // No logger on purpose: a logger makes fastify create a child per request (pino child +
    // bindings, ~2 µs) even with request logging off. Denials and faults are logged below.
    requestIdHeader: false,
    // Pass on a sane client request id, otherwise make one; it is returned and forwarded.
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    trustProxy: deps.trustProxy ?? false,
    https: deps.tls ? { key: deps.tls.key, cert: deps.tls.cert } : null,
    return503OnClosing: true,
    routerOptions: { maxParamLength: 8192, ignoreDuplicateSlashes: false, ignoreTrailingSlash: false },
    // The router refuses some malformed URLs before any handler runs: answer with the contract.
    frameworkErrors: (error, request, reply) => {
      logger.debug({ reqId: request.id, code: error.code }, 'malformed request refused by the router');
      sendDenial(reply as unknown as DenialReply, request.id, {
        code: 'bad_path',
        message: 'The request URL is malformed.',
      });
    },
  }) as unknown as FastifyInstance;

  app.decorateRequest('jitgate', null);
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

  app.addHook('onResponse', (request, reply, done) => {
    const call = request.jitgate;
    if (call) {
      const grant = call.grant;
      // offer() must not block; a full sink was already refused before forwarding.
      deps.sink.offer({
        at: call.at,
        requestId: request.id,
        resource: call.resourceName,
        // A denied call is attributed to the grant its (verified) token names.
        grantId: grant?.id ?? call.claimed?.grantId,
        userId: grant?.userId ?? call.claimed?.userId,
        scope: grant?.scope ?? call.claimed?.scope,
        method: call.method,
        path: call.path,
        clientIp: call.clientIp ?? request.ip,
        decision: call.decision,
        status: reply.statusCode,
        responseBytes: call.responseBytes,
        latencyMs: performance.now() - call.started,
        capture:
          call.requestCapture || call.responseCapture ? capturedBodies(request, reply, call) : undefined,
        quotaCounted: call.quotaCounted,
      });
    }
    done();
  });

  /**
   * Counts response bytes as they leave (or, with a content-length, when the headers do),
   * not when the call is over: the response's end reaches the client before the server's
   * onResponse hook runs, so a client that calls again at once must already find its bytes
   * counted against a byte quota.
   */
  function countResponseBytes(call: Call, bytes: number): void {
    call.responseBytes += bytes;
    if (call.quotaCounted && call.grant) quota.addBytes(call.grant.id, bytes);
  }

  // Shared by every forwarded call; each callback finds its call on `request.jitgate`.
  const forward: FastifyReplyFromHooks = {
    queryString: (_search, _url, request) => request?.jitgate?.query.slice(1) ?? '',
    rewriteRequestHeaders: (request, headers) => {
      // `headers` is reply-from's copy of the client's headers minus `connection` and the
      // names it lists, with `host` set to the upstream. It deleted `connection` (every
      // keep-alive client sends one), which leaves that copy a slow dictionary object, so
      // this walks the client's original (fast) header object and reads each value back from
      // the copy: whatever reply-from removed reads as undefined and stays out. reply-from only
      // adds headers when given a body to send, which this proxy never does (bodies stream).
      const call = request.jitgate;
      const out: IncomingHttpHeaders = {};
      const original = request.raw.headers;
      for (const name in original) {
        const value = headers[name];
        if (value !== undefined && !dropRequestHeader(name)) out[name] = value;
      }
      out.host = headers.host;
      out['x-request-id'] = request.id;
      if (call?.credentialHeader) out[call.credentialHeader] = call.credentialValue;
      if (call?.identityHeader) out[call.identityHeader] = call.identityValue;
      // A compressed body could not be masked: ask for it plain.
      if (call?.mask) out['accept-encoding'] = 'identity';
      return out;
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
      if (call?.mask || call?.responseCapture) {
        withPolicyFeatures(request, reply, call, upstream);
        return;
      }
      const length = Number(upstream.headers['content-length']);
      if (call) {
        if (Number.isFinite(length)) countResponseBytes(call, length);
        else {
          // Counting alongside the pipe: a second 'data' listener does not buffer anything.
          upstream.stream.on('data', (chunk: Buffer) => {
            countResponseBytes(call, chunk.length);
          });
        }
      }
      reply.send(upstream.stream);
    },
    onError: (reply, { error }) => {
      const request = reply.request;
      const call = request.jitgate;
      if (call) call.decision = 'upstream_unreachable';
      logger.warn({ reqId: request.id, resource: call?.resourceName, err: error }, 'upstream call failed');
      if (!reply.sent) {
        sendDenial(reply, request.id, {
          code: 'upstream_unreachable',
          message: 'the upstream could not be reached',
        });
      }
    },
  };

  function proceed(request: FastifyRequest, reply: FastifyReply, call: Call, outcome: Authorization): void {
    if (!outcome.ok) {
      call.decision = outcome.denial.code;
      logger.debug(
        { reqId: request.id, code: outcome.denial.code, resource: call.resourceName },
        'call denied',
      );
      sendDenial(reply, request.id, outcome.denial);
      return;
    }
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
        now: new Date(call.now),
        ttlSeconds: identityAssertion.ttlSeconds,
      }).then(
        (token) => {
          call.identityHeader = identityAssertion.header.toLowerCase();
          call.identityValue = token;
          send(request, reply, call, url);
        },
        (error: unknown) => fail(request, reply, call, error),
      );
      return;
    }
    send(request, reply, call, url);
  }

  function send(request: FastifyRequest, reply: FastifyReply, call: Call, url: string): void {
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
    reply.from(url, forward);
  }

  /** The reply-from response path when masking or capture is on for this call. */
  function withPolicyFeatures(
    request: ForwardRequest,
    reply: ForwardReply,
    call: Call,
    upstream: UpstreamResponse,
  ): void {
    const capture = call.responseCapture;
    const plan = call.mask
      ? planMask(upstream.headers, call.scope?.maskRequired ?? false, call.maskMaxBytes)
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
    const length = Number(upstream.headers['content-length']);
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
    call.decision = denial.code;
    call.responseCapture = undefined;
    logger.debug({ reqId: request.id, code: denial.code, resource: call.resourceName }, 'response refused');
    // reply-from already copied the upstream's headers onto the reply: none of them may go out.
    for (const name of Object.keys(reply.getHeaders())) reply.removeHeader(name);
    sendDenial(reply, request.id, denial);
  }

  function fail(request: FastifyRequest, reply: FastifyReply, call: Call, error: unknown): void {
    // A fault, not an outcome (e.g. a broken key store): logged here because fastify has no logger.
    call.decision = 'internal_error';
    logger.error({ reqId: request.id, resource: call.resourceName, err: error }, 'call failed');
    if (!reply.sent) reply.send(error);
  }

  // Synchronous on purpose, returning nothing: fastify then neither wraps a promise nor awaits
  // the reply as a thenable; the reply is sent by proceed() (or by reply-from's callbacks).
  app.all('/*', (request, reply) => {
    const at = deps.clock.now();
    const call = new Call(at, at.getTime(), performance.now(), request.raw.method ?? 'GET');
    request.jitgate = call;
    const trust = deps.policy.current().trustProxy;
    call.clientIp = trust
      ? resolveClientIp(request.raw.socket.remoteAddress, request.headers['x-forwarded-for'], trust)
      : request.ip;
    let outcome: Authorization | Promise<Authorization>;
    try {
      outcome = authorizeCall(authorizeDeps, call, request.raw.url ?? '/', request.headers.authorization);
    } catch (error) {
      fail(request, reply, call, error);
      return;
    }
    if (outcome instanceof Promise) {
      outcome.then(
        (result) => proceed(request, reply, call, result),
        (error: unknown) => fail(request, reply, call, error),
      );
    } else {
      proceed(request, reply, call, outcome);
    }
  });

  return app;
}

/** What the call's audit row keeps of its bodies (policy `capture`), masked with the scope's rules. */
function capturedBodies(
  request: FastifyRequest,
  reply: FastifyReply,
  call: Call,
): { request: CapturedBody | undefined; response: CapturedBody | undefined } {
  const mask = call.scope?.mask;
  const required = call.scope?.maskRequired ?? false;
  const requestType = request.headers['content-type'];
  const responseType = reply.getHeader('content-type');
  return {
    // A call without a body (a GET) keeps no request entry at all.
    request: call.requestCapture?.total ? call.requestCapture.result(requestType, mask, required) : undefined,
    response: call.responseCapture?.result(
      typeof responseType === 'string' ? responseType : undefined,
      mask,
      required,
    ),
  };
}

type ForwardRequest = Parameters<NonNullable<FastifyReplyFromHooks['onResponse']>>[0];
type ForwardReply = Parameters<NonNullable<FastifyReplyFromHooks['onResponse']>>[1];

interface UpstreamResponse {
  headers: IncomingHttpHeaders;
  stream: NodeJS.ReadableStream;
}

/** The part of a reply a denial uses; both the route's and reply-from's reply types fit. */
interface DenialReply {
  code(status: number): DenialReply;
  header(name: string, value: string): DenialReply;
  send(body: string): unknown;
}

function sendDenial(reply: DenialReply, requestId: string, denial: Denial): void {
  const status = denialStatus(denial.code);
  reply
    .code(status)
    .header('content-type', 'application/json; charset=utf-8')
    .header('cache-control', 'no-store')
    .header('x-request-id', requestId);
  if (denial.retryAfterSeconds !== undefined) reply.header('retry-after', String(denial.retryAfterSeconds));
  if (status === 401)
    reply.header(
      'www-authenticate',
      `Bearer error="${denial.code === 'missing_token' ? 'invalid_request' : 'invalid_token'}"`,
    );
  reply.send(denialBody(denial));
}
