import type { Duplex } from 'node:stream';
import { HTTP_METHODS } from '../policy/scope-rules.ts';
import { dpopChallengeHeaders, isDpopRefusalCode } from '../tokens/dpop.ts';
import { type Denial, denialBody, denialStatus } from './denial.ts';

/** The part of a reply a denial uses; both the route's and reply-from's reply types fit. */
export interface DenialReply {
  code(status: number): DenialReply;
  header(name: string, value: string): DenialReply;
  send(body: string): unknown;
}

/** The methods the proxy forwards at all; anything else is `method_not_allowed` (405). */
export const FORWARDED_METHODS: ReadonlySet<string> = new Set(HTTP_METHODS);
const ALLOW = HTTP_METHODS.join(', ');

/**
 * Every denial the proxy answers: the contract's JSON body (a code and a plain message, never
 * internals), `x-request-id`, never cached; `Retry-After` for a rate limit, `WWW-Authenticate`
 * for a token problem (the DPoP challenge, with `DPoP-Nonce` when one is wanted, for a
 * proof problem), `Allow` for a method the proxy does not forward.
 */
export function sendDenial(reply: DenialReply, requestId: string, denial: Denial): void {
  const status = denialStatus(denial.code);
  reply
    .code(status)
    .header('content-type', 'application/json; charset=utf-8')
    .header('cache-control', 'no-store')
    .header('x-request-id', requestId);
  if (denial.retryAfterSeconds !== undefined) reply.header('retry-after', String(denial.retryAfterSeconds));
  if (isDpopRefusalCode(denial.code)) {
    const challenge = dpopChallengeHeaders({ code: denial.code, nonce: denial.nonce });
    for (const [name, value] of Object.entries(challenge)) reply.header(name, value);
  } else if (status === 401)
    reply.header(
      'www-authenticate',
      `Bearer error="${denial.code === 'missing_token' ? 'invalid_request' : 'invalid_token'}"`,
    );
  if (status === 405) reply.header('allow', ALLOW);
  reply.send(denialBody(denial));
}

/**
 * The same denial written straight onto a connection, for what never becomes a fastify request
 * (a head Node's parser refused, a CONNECT); the connection is closed after it.
 */
export function writeRawDenial(socket: Duplex, requestId: string, denial: Denial): void {
  const status = denialStatus(denial.code);
  const body = denialBody(denial);
  const head = [
    `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}`,
    'content-type: application/json; charset=utf-8',
    `content-length: ${Buffer.byteLength(body)}`,
    'cache-control: no-store',
    `x-request-id: ${requestId}`,
    ...(status === 405 ? [`allow: ${ALLOW}`] : []),
    'connection: close',
  ];
  socket.end(`${head.join('\r\n')}\r\n\r\n${body}`, () => socket.destroy());
  // A peer that reads nothing must not keep the connection open either.
  setTimeout(() => socket.destroy(), RAW_DENIAL_LINGER_MS).unref();
}

const RAW_DENIAL_LINGER_MS = 2000;

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
};

/** A denial for a fault in the proxy: the client learns that, and the request id to quote. */
export function internalError(requestId: string): Denial {
  return {
    code: 'internal_error',
    message: `The proxy could not handle this call; quote request id ${requestId} to your administrator.`,
  };
}
