import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { Metrics } from './metrics.ts';
import type { TlsMaterial } from './tls.ts';

/** A named readiness check: the database answers, the grant feed is live, and so on. */
export interface ReadinessCheck {
  name: string;
  check(): Promise<boolean> | boolean;
  /**
   * Reported under `checks` but not part of `ready`: something this process's roles do their
   * work without (Redis for a proxy-only process, which falls back to its own limits).
   */
  informational?: boolean;
}

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

const CHECK_TIMEOUT_MS = 2000;
/** How long one evaluation of the checks answers every probe: a probe flood is one query a second. */
const READINESS_REUSE_MS = 1000;

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

/** Each check by name, and whether all pass. */
export interface Readiness {
  ready: boolean;
  checks: Record<string, boolean>;
}

/**
 * Runs the checks for readiness probes: at most one evaluation at a time, and its result
 * answers the probes of the next second too, so `/readyz` — answered on PORT, which may be
 * public — cannot be made into a stream of database queries.
 */
export function createReadiness(checks: () => readonly ReadinessCheck[]): () => Promise<Readiness> {
  let last: { at: number; result: Promise<Readiness> } | undefined;
  return () => {
    const now = performance.now();
    if (last && now - last.at < READINESS_REUSE_MS) return last.result;
    const result = Promise.all(
      checks().map(async (c) => [c.name, await runCheck(c), c.informational === true] as const),
    ).then((results) => ({
      ready: results.every(([, ok, informational]) => ok || informational),
      checks: Object.fromEntries(results.map(([name, ok]) => [name, ok])),
    }));
    last = { at: now, result };
    return result;
  };
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
  res.end(JSON.stringify(body));
}

const pathOf = (req: IncomingMessage) => (req.url ?? '/').split('?')[0];

/**
 * The service listener on PORT: `/healthz` (the process is up) and `/readyz` (200 when every
 * check passes, 503 when one does not — the status and nothing more: which check fails is for
 * the admin listener), for a load balancer's or an orchestrator's probes; anything else goes
 * to `fallback` — Bolt's request listener in HTTP mode, so `/slack/events` shares the port.
 * This port is public in HTTP mode, so it serves no metrics and no readiness detail.
 */
export function createServiceServer(options: {
  readiness: () => Promise<Readiness>;
  fallback?: RequestHandler;
  /** Handlers for paths under these prefixes (the web console and `/api/v1`), before `fallback`. */
  mounts?: readonly { prefixes: readonly string[]; handler: RequestHandler }[];
  /** TLS_CERT/TLS_KEY: serve HTTPS (Slack's events then reach jitgate without a TLS sidecar). */
  tls?: TlsMaterial;
}): Server | HttpsServer {
  const handler: RequestHandler = (req, res) => {
    const path = pathOf(req);
    if (req.method === 'GET' && path === '/healthz') return sendJson(res, 200, { status: 'ok' });
    if (req.method === 'GET' && path === '/readyz') {
      void options
        .readiness()
        .then((readiness) =>
          sendJson(res, readiness.ready ? 200 : 503, { status: readiness.ready ? 'ready' : 'not ready' }),
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
    notFound(req, res, path);
  };
  return options.tls
    ? createHttpsServer({ key: options.tls.key, cert: options.tls.cert }, handler)
    : createServer(handler);
}

/**
 * The admin listener on ADMIN_HOST:ADMIN_PORT (loopback by default): `/healthz`, `/readyz`
 * naming each check, and `/metrics` (Prometheus). With ADMIN_TOKEN set, every request must
 * carry `Authorization: Bearer <ADMIN_TOKEN>` (401 otherwise), for when the listener has to be
 * reachable from a scraper on another host.
 */
export function createAdminServer(options: {
  metrics: Metrics;
  readiness: () => Promise<Readiness>;
  token?: string | undefined;
}): Server {
  const expected = options.token === undefined ? undefined : digest(`Bearer ${options.token}`);
  return createServer((req, res) => {
    if (expected && !bearerMatches(req.headers.authorization, expected)) {
      return sendJson(
        res,
        401,
        { error: 'unauthorized', message: 'Send the admin token as "Authorization: Bearer <ADMIN_TOKEN>".' },
        { 'www-authenticate': 'Bearer' },
      );
    }
    const path = pathOf(req);
    if (req.method === 'GET' && path === '/healthz') return sendJson(res, 200, { status: 'ok' });
    if (req.method === 'GET' && path === '/readyz') {
      void options.readiness().then((readiness) =>
        sendJson(res, readiness.ready ? 200 : 503, {
          status: readiness.ready ? 'ready' : 'not ready',
          checks: readiness.checks,
        }),
      );
      return;
    }
    if (req.method === 'GET' && path === '/metrics') {
      void options.metrics.registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': options.metrics.registry.contentType });
          res.end(text);
        },
        () =>
          sendJson(res, 500, { error: 'metrics_unavailable', message: 'Metrics could not be collected.' }),
      );
      return;
    }
    notFound(req, res, path);
  });
}

function notFound(req: IncomingMessage, res: ServerResponse, path: string | undefined): void {
  sendJson(res, 404, { error: 'not_found', message: `No route for ${req.method} ${path}` });
}

const digest = (text: string) => createHash('sha256').update(text).digest();

/** Compared as digests of equal length, so the comparison takes the same time whatever was sent. */
function bearerMatches(authorization: string | undefined, expected: Buffer): boolean {
  return authorization !== undefined && timingSafeEqual(digest(authorization), expected);
}
