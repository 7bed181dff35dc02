import { connect, type Socket } from 'node:net';

/**
 * Clients that misbehave on the wire, for the proxy's hardening tests: bytes written as given
 * (methods and targets Node's own client refuses), and calls abandoned at a chosen moment.
 */

/** Writes `text` on a fresh connection and resolves with everything read until the peer closes (or `waitMs`). */
export function rawExchange(port: number, text: string, waitMs = 2000): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(text));
    let out = '';
    const timer = setTimeout(() => socket.destroy(), waitMs);
    socket.on('data', (chunk: Buffer) => {
      out += chunk.toString('latin1');
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

/** The status line's code and the JSON body of a raw HTTP/1.1 answer (Content-Length framed). */
export function parseRawAnswer(answer: string): {
  status: number;
  headers: Record<string, string>;
  body: string;
} {
  const split = answer.indexOf('\r\n\r\n');
  const head = split === -1 ? answer : answer.slice(0, split);
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return {
    status: Number(statusLine.split(' ')[1] ?? 0),
    headers,
    body: split === -1 ? '' : answer.slice(split + 4),
  };
}

export type Abandon =
  /** Close right after the whole request (head and body) is written. */
  | { after: 'write' }
  /** Close this many milliseconds after the request is written. */
  | { after: 'ms'; ms: number }
  /** Close once the answer's first bytes arrive (mid-response), or after 2 s if none do. */
  | { after: 'first-byte' }
  /** Close as soon as `ready()` holds (polled every few ms), e.g. once the upstream has the call. */
  | { after: 'ready'; ready: () => boolean };

const FIRST_BYTE_WAIT_MS = 2000;

/**
 * Sends one HTTP/1.1 request and abandons it as told (destroying the socket, so the proxy sees
 * the client leave). Resolves with what arrived before that (possibly nothing).
 */
export function abandonedRequest(
  port: number,
  request: { method: string; path: string; headers: Record<string, string>; body?: string },
  abandon: Abandon,
): Promise<string> {
  return new Promise((resolve) => {
    const body = request.body ?? '';
    const head = [
      `${request.method} ${request.path} HTTP/1.1`,
      'Host: 127.0.0.1',
      ...Object.entries(request.headers).map(([name, value]) => `${name}: ${value}`),
      ...(body ? [`Content-Length: ${Buffer.byteLength(body)}`] : []),
      '',
      '',
    ].join('\r\n');
    const socket: Socket = connect(port, '127.0.0.1');
    let out = '';
    let timer: NodeJS.Timeout | undefined;
    socket.on('connect', () => {
      socket.write(head + body, () => {
        if (abandon.after === 'write') socket.destroy();
        else if (abandon.after === 'ms') timer = setTimeout(() => socket.destroy(), abandon.ms);
        else if (abandon.after === 'ready') {
          const ready = abandon.ready;
          const poll = () => {
            if (ready()) socket.destroy();
            else timer = setTimeout(poll, 2);
          };
          poll();
        } else timer = setTimeout(() => socket.destroy(), FIRST_BYTE_WAIT_MS);
      });
    });
    socket.on('data', (chunk: Buffer) => {
      out += chunk.toString('latin1');
      if (abandon.after === 'first-byte') socket.destroy();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}
