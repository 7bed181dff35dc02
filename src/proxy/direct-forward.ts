import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Agent, Dispatcher } from 'undici';
import { type Call, type CallRuntime, countResponseBytes } from './call.ts';
import { upstreamUnreachable } from './call-refusal.ts';
import { directRequestHeaders } from './request-headers.ts';
import { hasNoBody } from './response-mask.ts';

/**
 * The forward for a call whose answer passes through unchanged (no mask, no body capture): the
 * upstream's answer is written onto the client's response as it arrives, from an undici
 * dispatch handler. reply-from's generic path (a response object, a Readable body piped into
 * fastify's reply) cost about a third of the proxy's CPU per call; this does the same with
 * one object per call and no stream in between. Calls with a mask or capture keep reply-from
 * (forward-hooks.ts), which hands their body to the masking and capture code as a stream.
 *
 * The promises of the reply-from path hold here too: one client call is one upstream call (a
 * dispatch is never retried); hop-by-hop headers go neither way; the proxy's own headers are
 * written first (request-headers.ts); a call that fails before the upstream's headers is
 * refused `upstream_unreachable`; one cut afterwards is destroyed and recorded
 * `aborted: 'upstream'`; a client that leaves aborts the upstream call and is recorded
 * `aborted: 'client'`; the upstream's body is read only as fast as the client takes it.
 */
export function forwardDirect(
  runtime: CallRuntime,
  agent: Agent,
  request: FastifyRequest,
  reply: FastifyReply,
  call: Call,
  target: UpstreamTarget,
): void {
  const body = request.body as Dispatcher.DispatchOptions['body'] | undefined;
  const options: Dispatcher.DispatchOptions = {
    origin: target.origin,
    // A bare `?` is dropped, as reply-from did.
    path: call.query.length > 1 ? target.path + call.query : target.path,
    method: call.method as Dispatcher.HttpMethod,
    headers: directRequestHeaders(request.raw.headers, target.host, call, request.id),
    ...(body ? { body } : {}),
  };
  agent.dispatch(options, new PassThroughHandler(runtime, request, reply, call));
}

/** Where a call goes: the upstream's origin and host, and the path as the WHATWG URL parser leaves it. */
export interface UpstreamTarget {
  origin: string;
  host: string;
  path: string;
}

/** A resource's upstream URL, parsed once: what every call to it shares. */
interface UpstreamBase {
  origin: string;
  host: string;
  /** The upstream's own path before the call's (`''` for none), or undefined: parse each call. */
  prefix: string | undefined;
}

/**
 * Characters a path may hold that the URL parser leaves as they are (RFC 3986's pchar and
 * `/`), with dot segments and `%2e` (a dot to the parser) ruled out: such a path is joined to
 * the upstream's as text. Anything else takes `new URL`, as every call did before.
 */
const PLAIN_PATH =
  /^(?:\/[A-Za-z0-9\-._~!$&'()*+,;=:@]*(?:%[0-9A-Fa-f]{2}[A-Za-z0-9\-._~!$&'()*+,;=:@]*)*)*$/;
const DOT_SEGMENT = /(?:^|\/)\.{1,2}(?:\/|$)|%2e/i;

function parseUpstream(upstream: string): UpstreamBase {
  const url = new URL(upstream);
  // The upstream's path as the parser joins it with a call's: with `/x` appended and taken off
  // again, so `http://h` gives '' and `http://h/` gives '/', as they join.
  const joined = new URL(`${upstream}/x`);
  const plain = url.search === '' && url.hash === '' && joined.pathname.endsWith('/x');
  const prefix = plain ? joined.pathname.slice(0, -2) : undefined;
  return {
    origin: url.origin,
    host: url.host,
    prefix: prefix !== undefined && !DOT_SEGMENT.test(prefix) && PLAIN_PATH.test(prefix) ? prefix : undefined,
  };
}

/**
 * The forward's target for `upstreamPath` on `upstream`: the same as `new URL(upstream +
 * upstreamPath)` gives (origin, host, pathname), with the upstream parsed once per resource in
 * `cache` rather than once per call.
 */
export function upstreamTarget(
  cache: Map<string, UpstreamBase>,
  upstream: string,
  upstreamPath: string,
): UpstreamTarget {
  let base = cache.get(upstream);
  if (!base) {
    base = parseUpstream(upstream);
    // Bounded by the policy's resources; a reload with new upstreams adds a few entries.
    if (cache.size > 1_000) cache.clear();
    cache.set(upstream, base);
  }
  if (
    base.prefix !== undefined &&
    PLAIN_PATH.test(upstreamPath) &&
    !DOT_SEGMENT.test(upstreamPath) &&
    upstreamPath !== ''
  )
    return { origin: base.origin, host: base.host, path: base.prefix + upstreamPath };
  const url = new URL(upstream + upstreamPath);
  return { origin: url.origin, host: url.host, path: url.pathname };
}

export type UpstreamCache = Map<string, UpstreamBase>;

class PassThroughHandler implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined = undefined;
  private countChunks = false;
  /** Body bytes still to come when the upstream sent a length; -1 when it did not. */
  private remaining = -1;
  private ended = false;

  constructor(
    private readonly runtime: CallRuntime,
    private readonly request: FastifyRequest,
    private readonly reply: FastifyReply,
    private readonly call: Call,
  ) {}

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    const res = this.reply.raw;
    // The client left (or its answer was cut): the upstream call goes too. Otherwise the
    // call's one close listener (watchCallEnd) tells this handler when it leaves. Methods, not
    // arrow-function fields: a closure per call for a listener that rarely runs is no saving.
    if (res.destroyed) controller.abort(new Error('client closed the connection'));
    else this.call.clientWatcher = this;
  }

  /** The client left: the upstream call goes too (run by the call's close listener, see Call). */
  clientClosed(): void {
    const controller = this.controller;
    if (controller && !controller.aborted && !this.reply.raw.writableFinished)
      controller.abort(new Error('client closed the connection'));
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
  ): void {
    if (statusCode < 200) return;
    const { call, reply } = this;
    const res = reply.raw;
    if (res.destroyed || call.recorded) return;
    const out: OutgoingHttpHeaders = {};
    for (const name in headers) {
      if (!dropResponseHeader(name)) out[name] = headers[name];
    }
    out['x-request-id'] = this.request.id;
    const length = hasNoBody(call.method, statusCode) ? 0 : Number(headers['content-length']);
    if (Number.isFinite(length)) {
      countResponseBytes(this.runtime.limits, call, length);
      this.remaining = length;
    } else this.countChunks = true;
    // From here the answer is written by hand; fastify must not send one of its own.
    reply.hijack();
    res.writeHead(statusCode, out);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    const res = this.reply.raw;
    if (this.countChunks) countResponseBytes(this.runtime.limits, this.call, chunk.length);
    else if (chunk.length === this.remaining) {
      // The last of a body of known length (a small answer's only chunk): headers and body
      // leave in one write, not a write and then an end.
      this.ended = true;
      res.end(chunk);
      return;
    } else this.remaining -= chunk.length;
    if (!res.write(chunk)) {
      controller.pause();
      // Only under backpressure, so its closure is made only then.
      res.once('drain', () => controller.resume());
    }
  }

  onResponseEnd(): void {
    if (!this.ended) this.reply.raw.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    const { call, reply } = this;
    const res = reply.raw;
    // Aborted because the client left: its record says so already.
    if (res.destroyed) return;
    if (!res.headersSent) {
      upstreamUnreachable(this.runtime.logger, reply, error);
      return;
    }
    // The upstream broke off mid-body: the client's answer is cut too, and the record says who.
    this.runtime.logger.warn(
      { reqId: this.request.id, resource: call.resourceName, err: error },
      'upstream call failed',
    );
    call.upstreamBroke = true;
    res.destroy(error);
  }
}

/** Hop-by-hop headers: they describe the upstream's connection, not the answer. */
export function dropResponseHeader(name: string): boolean {
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
