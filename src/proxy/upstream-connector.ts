import { isIP, connect as netConnect, type Socket } from 'node:net';
import { createSecureContext, type SecureContext, connect as tlsConnect } from 'node:tls';
import type { PolicyStore } from '../policy/store.ts';
import type { Policy } from '../policy/types.ts';

/** What undici passes a custom connector (its `buildConnector.Options`). */
interface UpstreamConnectOptions {
  hostname: string;
  host?: string;
  protocol: string;
  port: string;
  servername?: string;
  localAddress?: string | null;
}

type UpstreamConnectCallback = (...args: [null, Socket] | [Error, null]) => void;

/** undici's `connect` option in its function form. */
export type UpstreamConnector = (options: UpstreamConnectOptions, callback: UpstreamConnectCallback) => void;

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/** A resource's TLS settings for its upstream origin, from `ca_file` and `tls_server_name`. */
interface UpstreamTls {
  secureContext: SecureContext | undefined;
  serverName: string | undefined;
}
const KEEP_ALIVE_INITIAL_DELAY_MS = 60_000;

/**
 * Opens the proxy's upstream connections for undici (reply-from's pool), so each upstream is
 * verified against the roots its resource names: a resource's `ca_file` for a private CA,
 * Node's public roots otherwise; and against the name in its `tls_server_name`, if any, rather
 * than the URL's host.
 *
 * Why a connector and not undici's `connect: { ca }`: that option is one set of roots for every
 * origin, and a policy reload could not change it. Here the roots are looked up per connection
 * from the current policy, so a reload applies to the next connection (connections already open
 * were verified when they were made and stay until they close).
 *
 * It also makes verification explicit: reply-from builds its undici agent with
 * `rejectUnauthorized: false` unless told otherwise, which would accept any upstream certificate.
 */
export function createUpstreamConnector(options: {
  policy: PolicyStore;
  connectTimeoutMs?: number;
}): UpstreamConnector {
  const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  // Built once per loaded policy (a reload makes a new Policy object), on first use.
  const settings = new WeakMap<Policy, ReadonlyMap<string, UpstreamTls>>();
  const tlsFor = (origin: string): UpstreamTls | undefined => {
    const policy = options.policy.current();
    let byOrigin = settings.get(policy);
    if (!byOrigin) {
      const built = new Map<string, UpstreamTls>();
      for (const resource of Object.values(policy.resources)) {
        if (resource.upstreamCa === undefined && resource.upstreamServerName === undefined) continue;
        built.set(new URL(resource.upstream).origin, {
          secureContext:
            resource.upstreamCa === undefined ? undefined : createSecureContext({ ca: resource.upstreamCa }),
          serverName: resource.upstreamServerName,
        });
      }
      settings.set(policy, built);
      byOrigin = built;
    }
    return byOrigin.get(origin);
  };

  return (request, callback) => {
    let pending: UpstreamConnectCallback | undefined = callback;
    let timer: NodeJS.Timeout | undefined;
    const settle = (...args: [null, Socket] | [Error, null]) => {
      const deliver = pending;
      pending = undefined;
      clearTimeout(timer);
      deliver?.(...args);
    };
    const localAddress = request.localAddress ?? undefined;
    let socket: Socket;
    if (request.protocol === 'https:') {
      const tls = tlsFor(`https://${request.host ?? request.hostname}`);
      const secureContext = tls?.secureContext;
      // Node checks the certificate against `servername` when given, else the host. SNI carries
      // host names only (RFC 6066); for an IP without tls_server_name the IP SAN is checked.
      const servername =
        tls?.serverName || request.servername || (isIP(request.hostname) ? undefined : request.hostname);
      socket = tlsConnect({
        host: request.hostname,
        port: Number(request.port) || 443,
        ...(servername ? { servername } : {}),
        ...(secureContext ? { secureContext } : {}),
        ...(localAddress ? { localAddress } : {}),
        ALPNProtocols: ['http/1.1'],
        // Node's default, stated because reply-from's own default would turn it off.
        rejectUnauthorized: true,
      });
      socket.once('secureConnect', () => settle(null, socket));
    } else {
      // undici's own connector reads plain sockets in 64 KB chunks; kept for streaming bodies.
      // (`highWaterMark` is a socket option Node accepts but its v20 typings omit.)
      const plain = {
        highWaterMark: 64 * 1024,
        host: request.hostname,
        port: Number(request.port) || 80,
        ...(localAddress ? { localAddress } : {}),
      };
      socket = netConnect(plain);
      socket.once('connect', () => settle(null, socket));
    }
    socket.setNoDelay(true);
    socket.setKeepAlive(true, KEEP_ALIVE_INITIAL_DELAY_MS);
    socket.on('error', (error: Error) => settle(error, null));
    timer = setTimeout(() => {
      const error = Object.assign(new Error(`connect timed out after ${timeoutMs} ms`), {
        code: 'UND_ERR_CONNECT_TIMEOUT',
      });
      socket.destroy(error);
    }, timeoutMs);
    timer.unref();
  };
}
