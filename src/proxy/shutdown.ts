import type { FastifyInstance } from 'fastify';

/** How long calls in flight at shutdown get to finish before their connections are cut. */
const PROXY_DRAIN_MS = 5000;

/**
 * Stops the proxy: it takes no new connections, calls in flight get `drainMs` to finish, and
 * then the connections still open (an upstream that never answers, a client that never reads)
 * are cut. Cutting them closes their responses, which makes each call's record
 * (src/proxy/call.ts) — before the audit writer's last flush, so no call the upstream received
 * leaves the process unrecorded. Without the cut, fastify waits for them past every bound.
 */
export async function closeProxyServer(app: FastifyInstance, drainMs = PROXY_DRAIN_MS): Promise<void> {
  const closed = app.close();
  let timer: NodeJS.Timeout | undefined;
  const drained = await Promise.race([
    closed.then(() => true),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), drainMs);
    }),
  ]);
  clearTimeout(timer);
  if (!drained) {
    app.server.closeAllConnections();
    await closed;
  }
  // A cut response closes a turn later; its record must be offered before this returns.
  await app.jitgateOpenCalls.whenNone(RECORD_WAIT_MS);
}

/** Bound on waiting for the records of cut calls (they come within an event-loop turn or two). */
const RECORD_WAIT_MS = 1000;
