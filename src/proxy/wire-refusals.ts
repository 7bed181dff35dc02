import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { CallRecord, CallSink } from '../shared/call-record.ts';
import type { Clock } from '../shared/clock.ts';
import { type Denial, denialStatus } from './denial.ts';
import { MAX_PATH_LENGTH } from './normalize-path.ts';
import { chooseRequestId } from './request-headers.ts';
import { writeRawDenial } from './send-denial.ts';

/**
 * Requests that never become a fastify request: a head Node's parser refuses (an unknown
 * method like `BREW`, a malformed line, more than MAX_CLIENT_HEADER_BYTES of headers, headers
 * that did not arrive within the headers timeout) and `CONNECT`, which Node hands to a
 * listener of its own (and without one, closes the connection unanswered). Each gets the
 * contract's JSON denial and a call record, like every other request to the proxy port; none
 * has a verified token, so the refusal aggregator bounds how many rows a flood of them writes.
 */
export interface WireRefusals {
  /** Node's `clientError`: what arrived could not be read as a request. */
  clientError(error: Error & { code?: string }, socket: Duplex): void;
  /** Node's `connect`: the proxy never tunnels. */
  connect(request: IncomingMessage, socket: Duplex): void;
}

export function createWireRefusals(deps: { sink: CallSink; clock: Clock; logger: Logger }): WireRefusals {
  const record = (socket: Duplex, requestId: string, denial: Denial, method: string, path: string) => {
    const entry: CallRecord = {
      at: deps.clock.now(),
      requestId,
      resource: '',
      grantId: undefined,
      userId: undefined,
      scope: undefined,
      method,
      path,
      clientIp: (socket as Socket).remoteAddress ?? '',
      decision: denial.code,
      status: denialStatus(denial.code),
      responseBytes: 0,
      latencyMs: 0,
    };
    try {
      deps.sink.offer(entry);
    } catch (error) {
      deps.logger.error({ reqId: requestId, err: error }, 'call record could not be offered');
    }
  };
  return {
    clientError(error, socket) {
      // A reset connection has nobody to answer and sent nothing that could be read.
      if (error.code === 'ECONNRESET' || socket.destroyed) {
        socket.destroy();
        return;
      }
      const denial = clientErrorDenial(error.code);
      const requestId = randomUUID();
      deps.logger.debug({ reqId: requestId, code: error.code }, 'unreadable request refused');
      // As Node itself does: answer only on a connection that has not written a response yet
      // (otherwise the denial could land inside an earlier answer still being sent).
      const answered = socket.writable && (socket as Socket).bytesWritten === 0;
      if (answered) writeRawDenial(socket, requestId, denial);
      else socket.destroy();
      record(socket, requestId, denial, '', '');
    },
    connect(request, socket) {
      const requestId = chooseRequestId(request.headers['x-request-id']);
      const denial: Denial = {
        code: 'method_not_allowed',
        message: 'The proxy does not forward CONNECT.',
      };
      writeRawDenial(socket, requestId, denial);
      record(socket, requestId, denial, 'CONNECT', (request.url ?? '').slice(0, MAX_PATH_LENGTH));
    },
  };
}

function clientErrorDenial(code: string | undefined): Denial {
  switch (code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { code: 'request_timeout', message: 'The request headers did not arrive in time.' };
    case 'HPE_HEADER_OVERFLOW':
      return { code: 'headers_too_large', message: 'The request headers are too large.' };
    default:
      return { code: 'bad_request', message: 'The request could not be read as HTTP.' };
  }
}
