import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { listenOnLoopback } from './proxy-fixtures.ts';

/**
 * An upstream that misbehaves on request, as a compromised or broken API would. The first path
 * segment picks the behaviour (`/<behaviour>/…`); every request is recorded the moment its head
 * arrives, before any behaviour runs, so "the upstream saw the call" holds even for calls it
 * then resets or never answers.
 *
 * Behaviours:
 * - `ok` — 200 JSON with a length;
 * - `slow` — 200 JSON after `?ms=` (default 200) milliseconds;
 * - `hang` — reads the request and never answers (the socket stays open until closed);
 * - `abort-mid-body` — 200 JSON headers and half a body, then the socket is destroyed;
 * - `reset` — the socket is reset (TCP RST) as soon as the request head arrives;
 * - `503` — 503 with `Retry-After: 0` (what tempts an HTTP library to retry);
 * - `dup-content-type` — two Content-Type headers (`text/plain`, `application/json`) on a JSON
 *   body carrying a `secret`;
 * - `dup-content-encoding` — JSON with two Content-Encoding headers;
 * - `deep-json` — JSON nested `?depth=` (default 10,000) levels, a `secret` at every level;
 * - `reflect` — answers with the request itself (method, target, headers) as JSON, as a TRACE
 *   handler or a debugging endpoint would;
 * - `store` — keeps the request body (POST) and answers it back as JSON on a later GET, so a
 *   client can make the upstream answer whatever it wrote;
 * - `not-modified` — 304 with JSON headers and an ETag;
 * - anything else — 200 JSON naming the path (so HEAD gets JSON headers and no body).
 */
interface HostileRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  /** The header names exactly as they arrived, in order. */
  rawHeaderNames: string[];
  requestId: string | undefined;
}

export interface HostileUpstream {
  url: string;
  port: number;
  seen: HostileRequest[];
  /** Requests seen with this `x-request-id`. */
  seenWithId(requestId: string): HostileRequest[];
  /** Sockets currently open to the upstream. */
  openSockets(): number;
  close(): Promise<void>;
}

const SECRET = 'hostile-upstream-secret-field';

export function deepJson(depth: number): string {
  // {"secret":"…","next":{"secret":"…","next":…}} — `secret` at every level, so a `**.secret`
  // mask has to walk all the way down.
  return `${`{"secret":"${SECRET}","next":`.repeat(depth)}null${'}'.repeat(depth)}`;
}

export { SECRET as HOSTILE_SECRET };

export async function startHostileUpstream(): Promise<HostileUpstream> {
  const seen: HostileRequest[] = [];
  const sockets = new Set<Socket>();
  let stored = '{}';
  const server: Server = createServer((req, res) => {
    const rawHeaderNames = req.rawHeaders.filter((_, i) => i % 2 === 0);
    const requestId = req.headers['x-request-id'];
    seen.push({
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      rawHeaderNames,
      requestId: typeof requestId === 'string' ? requestId : undefined,
    });
    const url = new URL(req.url ?? '/', 'http://upstream');
    const behaviour = url.pathname.split('/')[1] ?? '';
    const json = (status: number, body: string, extra: Record<string, string | string[]> = {}) => {
      res.writeHead(status, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        ...extra,
      });
      res.end(body);
    };
    if (behaviour === 'reset') {
      req.socket.resetAndDestroy();
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('error', () => {});
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      switch (behaviour) {
        case 'ok':
          return json(200, JSON.stringify({ ok: true, secret: SECRET }));
        case 'slow': {
          const ms = Number(url.searchParams.get('ms') ?? 200);
          const timer = setTimeout(() => {
            if (!res.destroyed) json(200, JSON.stringify({ ok: true, slow: ms }));
          }, ms);
          res.on('close', () => clearTimeout(timer));
          return;
        }
        case 'hang':
          return;
        case 'abort-mid-body': {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.write(`{"items":[${'{"secret":"x"},'.repeat(200)}`);
          setTimeout(() => req.socket.destroy(), 20);
          return;
        }
        case '503':
          return json(503, JSON.stringify({ error: 'unavailable' }), { 'retry-after': '0' });
        case 'dup-content-type':
          return json(200, JSON.stringify({ secret: SECRET }), {
            'content-type': ['text/plain', 'application/json'],
          });
        case 'dup-content-encoding':
          return json(200, JSON.stringify({ secret: SECRET }), { 'content-encoding': ['identity', 'gzip'] });
        case 'deep-json':
          return json(200, deepJson(Number(url.searchParams.get('depth') ?? 10_000)));
        case 'reflect':
          return json(200, JSON.stringify({ method: req.method, url: req.url, headers: req.headers }));
        case 'store':
          if (req.method === 'POST') {
            stored = body;
            return json(201, '{"stored":true}');
          }
          return json(200, stored);
        case 'not-modified':
          res.writeHead(304, { 'content-type': 'application/json', etag: '"v1"' });
          return res.end();
        default:
          return json(200, JSON.stringify({ path: url.pathname, secret: SECRET }));
      }
    });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  // A hanging request must not be cut by Node's own timeouts before the test decides.
  server.requestTimeout = 0;
  server.headersTimeout = 0;
  const { url, port } = await listenOnLoopback(server);
  return {
    url,
    port,
    seen,
    seenWithId: (requestId) => seen.filter((r) => r.requestId === requestId),
    openSockets: () => sockets.size,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
