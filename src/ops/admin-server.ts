import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { Metrics } from './metrics.ts';
import type { TlsMaterial } from './tls.ts';

/** A named readiness check: the database answers, the grant feed is live, and so on. */
export interface ReadinessCheck {
  name: string;
  check(): Promise<boolean> | boolean;
}

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

const CHECK_TIMEOUT_MS = 2000;

/**
 * Slack's requests are small (a modal submission is a few KB); Bolt reads a whole body
 * before it checks the signature, so an unauthenticated client must not be able to make it
 * buffer megabytes.
 */
export const MAX_SLACK_BODY_BYTES = 256 * 1024;

async function runCheck(check: ReadinessCheck): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      Promise.resolve(check.check()),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), CHECK_TIMEOUT_MS);
      }),
    ]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

/**
 * The bot/admin listener on PORT: `/healthz` (the process is up), `/readyz` (every check
 * passes; 503 naming the failing ones), `/metrics` (Prometheus); anything else goes to
 * `fallback` — Bolt's request listener in HTTP mode, so `/slack/events` shares the port.
 */
export function createAdminServer(options: {
  metrics: Metrics;
  checks: () => readonly ReadinessCheck[];
  fallback?: RequestHandler;
  /** Handlers for paths under these prefixes (the web console and `/api/v1`), before `fallback`. */
  mounts?: readonly { prefixes: readonly string[]; handler: RequestHandler }[];
  /** TLS_CERT/TLS_KEY: serve HTTPS (Slack's events then reach jitgate without a TLS sidecar). */
  tls?: TlsMaterial;
}): Server | HttpsServer {
  const handler: RequestHandler = (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/healthz') return sendJson(res, 200, { status: 'ok' });
    if (req.method === 'GET' && path === '/readyz') {
      void Promise.all(options.checks().map(async (c) => [c.name, await runCheck(c)] as const)).then(
        (results) => {
          const failing = results.filter(([, ok]) => !ok).map(([name]) => name);
          sendJson(res, failing.length === 0 ? 200 : 503, {
            status: failing.length === 0 ? 'ready' : 'not ready',
            checks: Object.fromEntries(results),
          });
        },
      );
      return;
    }
    if (req.method === 'GET' && path === '/metrics') {
      void options.metrics.registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': options.metrics.registry.contentType });
          res.end(text);
        },
        () => sendJson(res, 500, { error: 'metrics_unavailable' }),
      );
      return;
    }
    const mount = options.mounts?.find((m) =>
      m.prefixes.some((prefix) => path === prefix || path?.startsWith(`${prefix}/`)),
    );
    if (mount) return mount.handler(req, res);
    if (options.fallback) {
      if (req.method === 'POST') {
        const declared = Number(req.headers['content-length']);
        if (req.headers['content-length'] === undefined || !Number.isSafeInteger(declared)) {
          return sendJson(res, 411, { error: 'length_required', message: 'Send a Content-Length.' });
        }
        if (declared > MAX_SLACK_BODY_BYTES) {
          res.setHeader('connection', 'close');
          return sendJson(res, 413, {
            error: 'payload_too_large',
            message: `Bodies are limited to ${MAX_SLACK_BODY_BYTES} bytes.`,
          });
        }
      }
      return options.fallback(req, res);
    }
    sendJson(res, 404, { error: 'not_found', message: `No route for ${req.method} ${path}` });
  };
  return options.tls
    ? createHttpsServer({ key: options.tls.key, cert: options.tls.cert }, handler)
    : createServer(handler);
}
