import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyReplyFromHooks } from '@fastify/reply-from';
import { type CallRuntime, countResponseBytes } from './call.ts';
import { upstreamUnreachable } from './call-refusal.ts';
import { dropResponseHeader } from './direct-forward.ts';
import { upstreamRequestHeaders } from './request-headers.ts';
import { refuseResponse, respondWithPolicyFeatures, type UpstreamResponse } from './response-features.ts';
import { hasNoBody } from './response-mask.ts';
import { internalError } from './send-denial.ts';

/**
 * reply-from's hooks, shared by every forwarded call (built once per server); each callback
 * finds its call on `request.jitgate`.
 */
export function createForwardHooks(runtime: CallRuntime): FastifyReplyFromHooks {
  const { logger, limits } = runtime;
  return {
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
      const upstream = raw as unknown as UpstreamResponse;
      const call = request.jitgate;
      if (!call) {
        reply.send(upstream.stream);
        return;
      }
      call.upstreamBody = upstream.stream;
      try {
        if (call.mask || call.responseCapture) {
          respondWithPolicyFeatures(runtime, request, reply, call, upstream);
          return;
        }
        const length = hasNoBody(call.method, upstream.statusCode)
          ? 0
          : Number(upstream.headers['content-length']);
        if (Number.isFinite(length)) countResponseBytes(limits, call, length);
        else {
          // Counting alongside the pipe: a second 'data' listener does not buffer anything.
          upstream.stream.on('data', (chunk: Buffer) => {
            countResponseBytes(limits, call, chunk.length);
          });
        }
        reply.send(upstream.stream);
      } catch (error) {
        // However odd the answer, a fault in handling it ends this call, never the process.
        logger.error(
          { reqId: request.id, resource: call.resourceName, err: error },
          'response handling failed',
        );
        refuseResponse(runtime, request, reply, call, upstream, internalError(request.id));
      }
    },
    onError: (reply, { error }) => upstreamUnreachable(logger, reply, error),
  };
}
