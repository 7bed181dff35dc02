import {
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
} from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Clock } from '../../shared/clock.ts';
import type { ApiClient } from './api-client.ts';
import { type DeviceKey, makeProof } from './device-key.ts';

interface BoundToken {
  token: string;
  grantId: string;
  scope: string;
  expiresAt: Date;
}

export type TokenAnswer =
  | { ok: true; value: BoundToken }
  | { ok: false; status: number; code: string; message: string };

/** A grant token for one resource, fetched when needed and renewed before it runs out. */
export interface TokenSource {
  get(): Promise<TokenAnswer>;
  /** Forget the token (the proxy refused it): the next call fetches a fresh one. */
  invalidate(): void;
}

interface TokenJson {
  token: string;
  grantId: string;
  scope: string;
  expiresAt: string;
}

/**
 * Renews `renewBeforeMs` before expiry. A fresh token carries the grant's expiry as it stands,
 * so renewing is also how an extension reaches a running `connect`. Near the end of a grant that
 * was not extended the server hands out the same expiry again: asked at most every `retryMs`.
 */
export function createTokenSource(
  api: ApiClient,
  resource: string,
  clock: Clock,
  { renewBeforeMs = 60_000, retryMs = 5_000 } = {},
): TokenSource {
  let current: BoundToken | undefined;
  let fetchedAt = 0;
  let inFlight: Promise<TokenAnswer> | undefined;

  async function fetchToken(): Promise<TokenAnswer> {
    const answer = await api.call<TokenJson>('POST', '/tokens', { resource });
    fetchedAt = clock.now().getTime();
    if (!answer.ok) return answer;
    const { token, grantId, scope, expiresAt } = answer.value;
    current = { token, grantId, scope, expiresAt: new Date(expiresAt) };
    return { ok: true, value: current };
  }

  return {
    get() {
      const now = clock.now().getTime();
      if (current && current.expiresAt.getTime() > now) {
        const nearEnd = current.expiresAt.getTime() - now < renewBeforeMs;
        if (!nearEnd || now - fetchedAt < retryMs) return Promise.resolve({ ok: true, value: current });
      }
      // One fetch at a time: a burst of calls waits for the same token.
      inFlight ??= fetchToken().finally(() => {
        inFlight = undefined;
      });
      return inFlight;
    },
    invalidate() {
      current = undefined;
    },
  };
}

export interface ForwarderOptions {
  resource: string;
  proxyUrl: string;
  key: DeviceKey;
  tokens: TokenSource;
  /** 0: any free port (what `jitgate curl` uses). */
  port: number;
  /** Told about each call, for `connect`'s log. */
  onCall?: (line: { method: string; path: string; status: number; ms: number }) => void;
}

export interface Forwarder {
  port: number;
  close(): Promise<void>;
}

// Connection-level headers (RFC 9110 §7.6.1) and the ones the forwarder sets itself.
const DROPPED = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'authorization',
  'dpop',
]);

function forwardable(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const named = new Set(
    String(headers.connection ?? '')
      .split(',')
      .map((h) => h.trim().toLowerCase()),
  );
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !DROPPED.has(name) && !named.has(name)) out[name] = value;
  }
  return out;
}

/** Bodies up to this size are held so a call can be sent again with a server nonce. */
const REPLAYABLE_BODY_BYTES = 1024 * 1024;

/** The whole body when it is sized and small enough to send twice; undefined: stream it once. */
async function replayableBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const length = req.headers['content-length'];
  const chunked = req.headers['transfer-encoding'] !== undefined;
  if (chunked || (length !== undefined && !(Number(length) <= REPLAYABLE_BODY_BYTES))) return undefined;
  if (length === undefined || Number(length) === 0) {
    req.resume();
    return Buffer.alloc(0);
  }
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** RFC 9449 §8: a 401 whose challenge says `use_dpop_nonce`. */
const asksForNonce = (headers: IncomingHttpHeaders) =>
  /\berror="use_dpop_nonce"/.test(String(headers['www-authenticate'] ?? ''));

function answer(res: ServerResponse, status: number, code: string, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(JSON.stringify({ error: code, message }));
}

/**
 * A listener on 127.0.0.1 that sends each call on to `<proxy>/<resource><path>` with the device's
 * bound token and a fresh DPoP proof for exactly that method and URL, so tools that know nothing
 * of DPoP (curl, Postman, an SDK) work unchanged. It listens on the loopback address only and
 * refuses calls whose Host is not a loopback name (DNS rebinding) and calls a web browser makes
 * (an Origin or Sec-Fetch-Site header): a web page must not borrow the grant.
 */
export async function startForwarder(options: ForwarderOptions): Promise<Forwarder> {
  const proxyBase = `${options.proxyUrl.replace(/\/+$/, '')}/${options.resource}`;
  const send = proxyBase.startsWith('https:') ? httpsRequest : httpRequest;
  let nonce: string | undefined;
  let port = options.port;

  async function forward(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const method = req.method ?? 'GET';
    const path = req.url ?? '/';
    const done = (status: number) =>
      options.onCall?.({ method, path, status, ms: Math.round(performance.now() - started) });
    const host = String(req.headers.host ?? '').toLowerCase();
    if (![`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`].includes(host)) {
      answer(res, 403, 'not_local', 'Only calls to 127.0.0.1 or localhost are forwarded.');
      return done(403);
    }
    if (req.headers.origin !== undefined || req.headers['sec-fetch-site'] !== undefined) {
      answer(res, 403, 'browser_refused', 'Calls from a web browser are not forwarded.');
      return done(403);
    }
    if (!path.startsWith('/')) {
      answer(res, 400, 'bad_path', 'Send origin-form paths, like /invoices.');
      return done(400);
    }
    const token = await options.tokens.get();
    if (!token.ok) {
      answer(res, token.status >= 400 ? token.status : 502, token.code, token.message);
      return done(token.status);
    }
    const target = `${proxyBase}${path}`;
    const headers = forwardable(req.headers);
    // A body small enough to send twice is read first, so a nonce challenge can be answered
    // once more with the nonce (the first call of every `jitgate curl`, and each time the
    // server's nonce moves on); a larger or unsized one streams and gets no second try.
    const body = await replayableBody(req);
    const attempt = async (retryOnNonce: boolean): Promise<void> => {
      const proof = await makeProof(options.key, {
        method,
        url: target,
        accessToken: token.value.token,
        ...(nonce ? { nonce } : {}),
      });
      const upstream = send(target, {
        method,
        headers: { ...headers, authorization: `DPoP ${token.value.token}`, dpop: proof },
      });
      upstream.on('response', (proxied) => {
        const status = proxied.statusCode ?? 502;
        const given = proxied.headers['dpop-nonce'];
        const fresh = typeof given === 'string' && given !== nonce;
        if (typeof given === 'string') nonce = given;
        if (retryOnNonce && fresh && status === 401 && asksForNonce(proxied.headers)) {
          proxied.resume();
          attempt(false).catch((error: unknown) => {
            if (!res.headersSent) answer(res, 500, 'bad_answer', String((error as Error).message));
            done(500);
          });
          return;
        }
        // A refused token may be an old one (after an extension, or near expiry): fetch afresh next time.
        if (status === 401 || status === 403) options.tokens.invalidate();
        res.writeHead(status, forwardable(proxied.headers));
        proxied.pipe(res);
        proxied.on('end', () => done(status));
      });
      upstream.on('error', (error) => {
        if (res.headersSent) res.destroy(error);
        else answer(res, 502, 'proxy_unreachable', `Could not reach the jitgate proxy: ${error.message}`);
        done(502);
      });
      if (body === undefined) req.pipe(upstream);
      else if (body.length === 0) upstream.end();
      else upstream.end(body);
    };
    await attempt(body !== undefined);
  }

  const server = createServer((req, res) => {
    forward(req, res).catch((error: unknown) => {
      if (!res.headersSent) answer(res, 500, 'bad_answer', String((error as Error).message));
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  port = (server.address() as AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
