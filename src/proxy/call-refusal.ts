import type { FastifyReplyFromHooks } from '@fastify/reply-from';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { type Call, type CallRuntime, recordCall } from './call.ts';
import type { Denial } from './denial.ts';
import { type DenialReply, internalError, sendDenial } from './send-denial.ts';

/** Sends a denial and says so in the call's record (unless the client already left). */
export function refuse(
  request: { id: string },
  reply: DenialReply & { sent: boolean },
  call: Call,
  denial: Denial,
): void {
  if (call.recorded || reply.sent) return;
  call.decision = denial.code;
  sendDenial(reply, request.id, denial);
}

export function fail(
  runtime: CallRuntime,
  request: FastifyRequest,
  reply: FastifyReply,
  call: Call,
  error: unknown,
): void {
  // A fault, not an outcome (e.g. a broken key store): logged here because fastify has no
  // logger; the client gets a code, a plain message and the request id, never the error.
  runtime.logger.error({ reqId: request.id, resource: call.resourceName, err: error }, 'call failed');
  if (call.clientGone) {
    call.decision = 'internal_error';
    recordCall(call, request, reply, runtime.recording);
    return;
  }
  refuse(request, reply, call, internalError(request.id));
}

type ForwardErrorReply = Parameters<NonNullable<FastifyReplyFromHooks['onError']>>[0];

/** The upstream could not be reached, or broke off before its answer could be sent on. */
export function upstreamUnreachable(logger: Logger, reply: ForwardErrorReply, error: Error): void {
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
}

export function methodNotAllowed(method: string): Denial {
  return { code: 'method_not_allowed', message: `The proxy does not forward ${method}.` };
}
