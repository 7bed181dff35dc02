import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { staticDirectory } from '../../src/access/directory.ts';
import { registerDeviceApi } from '../../src/composition/devices.ts';
import type { ConsoleConfig } from '../../src/config.ts';
import { accessServiceActions } from '../../src/console/actions.ts';
import { createWebApp } from '../../src/console/app.ts';
import {
  type SlackOpenIdProvider,
  startSlackOpenIdProvider,
} from '../../src/dev/slack-stand-in/openid-provider.ts';
import { createServiceServer, type RequestHandler } from '../../src/ops/admin-server.ts';
import type { Policy } from '../../src/policy/index.ts';
import { type Clock, systemClock } from '../../src/shared/clock.ts';
import { createMemoryKeyStore } from '../../src/tokens/index.ts';
import { TEST_POLICY_YAML, testPolicy } from './policy.ts';
import { type SlackHarness, startSlackHarness } from './slack-harness.ts';

const TEAM_ID = 'T0TEAM';
export const ADMIN = 'UADMIN';
export const AUDITOR = 'UAUDITOR';
export const APPROVER = 'UAPPROVER1';
export const REQUESTER = 'UCONTRACTOR';
export const OTHER_REQUESTER = 'UOTHER';
const SESSION_SECRET = 'console-test-session-secret-0123456789abcdef';

/** The test policy with console admins and auditors. */
function consolePolicy(): Policy {
  return testPolicy(`${TEST_POLICY_YAML}
console:
  admins: { users: [${ADMIN}] }
  auditors: { users: [${AUDITOR}] }
`);
}

/** A cookie jar per origin, as a browser keeps one (names and values only; enough for tests). */
export class CookieJar {
  private readonly jars = new Map<string, Map<string, string>>();
  store(url: string, response: Response): void {
    const origin = new URL(url).origin;
    const jar = this.jars.get(origin) ?? new Map<string, string>();
    for (const line of response.headers.getSetCookie()) {
      const [pair = ''] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (value === '' || /max-age=0|expires=thu, 01 jan 1970/i.test(line)) jar.delete(name);
      else jar.set(name, value);
    }
    this.jars.set(origin, jar);
  }
  header(url: string): string {
    const jar = this.jars.get(new URL(url).origin);
    return jar ? [...jar].map(([k, v]) => `${k}=${v}`).join('; ') : '';
  }
  get(url: string, name: string): string | undefined {
    return this.jars.get(new URL(url).origin)?.get(name);
  }
  set(url: string, name: string, value: string): void {
    const origin = new URL(url).origin;
    const jar = this.jars.get(origin) ?? new Map<string, string>();
    jar.set(name, value);
    this.jars.set(origin, jar);
  }
}

/** A signed-in person as a script sees it: cookies, the CSRF token, and fetch with both. */
export interface ConsoleClient {
  jar: CookieJar;
  csrfToken: string;
  get(path: string): Promise<Response>;
  post(path: string, body?: unknown, options?: { csrf?: boolean; form?: boolean }): Promise<Response>;
}

export interface ConsoleWorld {
  harness: SlackHarness;
  provider: SlackOpenIdProvider;
  baseUrl: string;
  clock: Clock;
  config: ConsoleConfig;
  /** Go through Sign in with Slack as `userId` (of `teamId`); the final response is returned too. */
  signIn(userId: string, teamId?: string): Promise<{ client: ConsoleClient; final: Response }>;
  close(): Promise<void>;
}

/**
 * The whole console as production wires it: the real access service, Slack app and outbox
 * against the Slack Web API fake (startSlackHarness), the web app mounted on the admin
 * listener, and a real OpenID provider issuing Slack-shaped ID tokens.
 */
export async function startConsoleWorld(
  options: { clock?: Clock; session?: { idleMs?: number; absoluteMs?: number }; policy?: Policy } = {},
): Promise<ConsoleWorld> {
  const harness = await startSlackHarness({ policy: options.policy ?? consolePolicy() });
  const clock = options.clock ?? systemClock;
  let handle: RequestHandler = (_req, res) => res.writeHead(503).end();
  const admin: Server = createServiceServer({
    readiness: async () => ({ ready: true, checks: {} }),
    mounts: [{ prefixes: ['/console', '/api/v1', '/favicon.ico'], handler: (req, res) => handle(req, res) }],
  }) as Server;
  await new Promise<void>((resolve) => admin.listen(0, '127.0.0.1', resolve));
  const baseUrl = `http://127.0.0.1:${(admin.address() as AddressInfo).port}`;
  const provider = await startSlackOpenIdProvider({
    redirectUri: `${baseUrl}/console/auth/callback`,
    teamId: TEAM_ID,
  });
  const config: ConsoleConfig = {
    clientId: provider.clientId,
    clientSecret: provider.clientSecret,
    publicUrl: baseUrl,
    redirectUri: `${baseUrl}/console/auth/callback`,
    issuer: provider.issuer,
    teamId: TEAM_ID,
    sessionSecret: SESSION_SECRET,
    secureCookies: false,
  };
  const web = await createWebApp({
    config,
    db: harness.database.db,
    policy: harness.policy,
    directory: staticDirectory({}),
    clock,
    logger: pino({ level: 'silent' }),
    actions: accessServiceActions(harness.access),
    lookupName: (userId) => harness.notifier.userName(userId),
    ...(options.session ? { session: options.session } : {}),
    // As roles.ts mounts it: the device API inside the console's app, so its OpenAPI describes it.
    moreApi: async (app) => {
      const keys = createMemoryKeyStore({ clock });
      await keys.load();
      await registerDeviceApi(app, {
        access: harness.access,
        keys,
        devices: harness.devices,
        clock,
        issuer: 'jitgate',
        serviceUrl: baseUrl,
        proxyUrl: 'http://proxy.test:8080',
      });
    },
  });
  handle = (req, res) => web.routing(req, res);

  async function signIn(userId: string, teamId = TEAM_ID) {
    const jar = new CookieJar();
    const go = async (url: string, init: RequestInit = {}): Promise<{ url: string; response: Response }> => {
      const response = await fetch(url, {
        ...init,
        redirect: 'manual',
        headers: { ...(init.headers as Record<string, string>), cookie: jar.header(url) },
      });
      jar.store(url, response);
      return { url, response };
    };
    let step = await go(`${baseUrl}/console/auth/login`);
    for (let hops = 0; hops < 20; hops++) {
      const { response, url } = step;
      const location = response.headers.get('location');
      if (response.status >= 300 && response.status < 400 && location) {
        const next = new URL(location, url).href;
        if (next.startsWith(baseUrl) && !next.includes('/console/auth/')) break;
        await response.arrayBuffer();
        step = await go(next);
        continue;
      }
      const body = await response.text();
      if (response.status === 200 && body.includes('Sign in to Slack')) {
        step = await go(url, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ user: userId, team: teamId }).toString(),
        });
        continue;
      }
      return { client: clientOf(jar, ''), final: new Response(body, { status: response.status }) };
    }
    const final = step.response;
    const session = await fetch(`${baseUrl}/api/v1/session`, { headers: { cookie: jar.header(baseUrl) } });
    jar.store(baseUrl, session);
    const csrfToken = session.ok ? ((await session.json()) as { csrfToken: string }).csrfToken : '';
    return { client: clientOf(jar, csrfToken), final };
  }

  function clientOf(jar: CookieJar, csrfToken: string): ConsoleClient {
    return {
      jar,
      csrfToken,
      async get(path) {
        const response = await fetch(`${baseUrl}${path}`, {
          redirect: 'manual',
          headers: { cookie: jar.header(baseUrl) },
        });
        jar.store(baseUrl, response);
        return response;
      },
      async post(path, body = {}, opts = {}) {
        const headers: Record<string, string> = { cookie: jar.header(baseUrl) };
        if (opts.csrf !== false && !opts.form) headers['x-csrf-token'] = csrfToken;
        let payload: string;
        if (opts.form) {
          headers['content-type'] = 'application/x-www-form-urlencoded';
          const fields = { ...(body as Record<string, string>) };
          if (opts.csrf !== false) fields._csrf = csrfToken;
          payload = new URLSearchParams(fields).toString();
        } else {
          headers['content-type'] = 'application/json';
          payload = JSON.stringify(body);
        }
        const response = await fetch(`${baseUrl}${path}`, {
          method: 'POST',
          redirect: 'manual',
          headers,
          body: payload,
        });
        jar.store(baseUrl, response);
        return response;
      },
    };
  }

  return {
    harness,
    provider,
    baseUrl,
    clock,
    config,
    signIn,
    async close() {
      await web.close();
      await new Promise<void>((resolve) => {
        admin.close(() => resolve());
        admin.closeAllConnections();
      });
      await provider.close();
      await harness.close();
    },
  };
}
