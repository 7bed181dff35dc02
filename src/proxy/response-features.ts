import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyReplyFromHooks } from '@fastify/reply-from';
import { type Call, type CallRuntime, countResponseBytes } from './call.ts';
import { refuse, upstreamUnreachable } from './call-refusal.ts';
import type { Denial } from './denial.ts';
import { bufferAndMask, hasNoBody, planMask } from './response-mask.ts';

export type ForwardRequest = Parameters<NonNullable<FastifyReplyFromHooks['onResponse']>>[0];
export type ForwardReply = Parameters<NonNullable<FastifyReplyFromHooks['onResponse']>>[1];

/** reply-from's types call this a server response; at run time it is `{ statusCode, headers, stream }`. */
export interface UpstreamResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  stream: NodeJS.ReadableStream;
}

/**
 * The response path when the policy turns masking (src/proxy/response-mask.ts) or body
 * capture on for this call; every other response streams through untouched (forward-hooks.ts).
 */
export function respondWithPolicyFeatures(
  runtime: CallRuntime,
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
    refuseResponse(runtime, request, reply, call, upstream, plan.denial);
    return;
  }
  if (plan.kind === 'buffer' && call.mask) {
    bufferAndMask(upstream.stream, call.maskMaxBytes, call.mask, (result) => {
      if (result.ok) {
        countResponseBytes(runtime.limits, call, result.body.length);
        capture?.push(result.body);
        // The body changed: the upstream's length and validators no longer describe it.
        reply.removeHeader('content-length');
        reply.removeHeader('etag');
        reply.removeHeader('content-md5');
        reply.send(result.body);
      } else if ('denial' in result) {
        refuseResponse(runtime, request, reply, call, upstream, result.denial);
      } else {
        upstreamUnreachable(runtime.logger, reply, result.error);
      }
    });
    return;
  }
  const length = bodyless ? 0 : Number(upstream.headers['content-length']);
  if (Number.isFinite(length)) countResponseBytes(runtime.limits, call, length);
  upstream.stream.on('data', (chunk: Buffer) => {
    if (!Number.isFinite(length)) countResponseBytes(runtime.limits, call, chunk.length);
    capture?.push(chunk);
  });
  reply.send(upstream.stream);
}

/** Refuses a call whose upstream already answered: its answer is dropped, headers included. */
export function refuseResponse(
  runtime: CallRuntime,
  request: ForwardRequest,
  reply: ForwardReply,
  call: Call,
  upstream: UpstreamResponse,
  denial: Denial,
): void {
  (upstream.stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
  call.responseCapture = undefined;
  runtime.logger.debug(
    { reqId: request.id, code: denial.code, resource: call.resourceName },
    'response refused',
  );
  // reply-from already copied the upstream's headers onto the reply: none of them may go out.
  for (const name of Object.keys(reply.getHeaders())) reply.removeHeader(name);
  refuse(request, reply, call, denial);
}
