import { hkdfSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fastifyCookie from '@fastify/cookie';
import fastifyCsrf from '@fastify/csrf-protection';
import fastifyFormbody from '@fastify/formbody';
import fastifyHelmet from '@fastify/helmet';
import fastifySwagger from '@fastify/swagger';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import {
  hasZodFastifySchemaValidationErrors,
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
} from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import type { Directory } from '../access/directory.ts';
import { apiV1 } from '../api/v1.ts';
import type { ConsoleConfig } from '../config.ts';
import type { Db } from '../db/client.ts';
import type { PolicyStore } from '../policy/index.ts';
import type { Clock } from '../shared/clock.ts';
import type { ConsoleActions } from './actions.ts';
import { createSignIn, type LoginAttempt, type SignIn } from './auth/oidc.ts';
import { createSealer } from './auth/seal.ts';
import { type ConsoleSession, createSessions } from './auth/session.ts';
import { createChainStatus } from './chain-status.ts';
import type { WebContext } from './context.ts';
import { createPersonNames } from './names.ts';
import { messagePage } from './pages/layout.ts';
import { consolePages } from './pages/routes.ts';
import { createConsoleReads } from './reads.ts';
import { type Viewer, viewerOf } from './viewer.ts';

declare module 'fastify' {
  interface FastifyRequest {
    consoleSession: ConsoleSession | null;
    /** The viewer worked out for this request (once), null when nobody is signed in. */
    resolvedViewer: Viewer | null;
  }
}

export interface WebAppDeps {
  config: ConsoleConfig;
  db: Db;
  policy: PolicyStore;
  directory: Directory;
  clock: Clock;
  logger: Logger;
  actions: ConsoleActions;
  /** Session timeouts (defaults: 30 min idle, 12 h absolute). */
  session?: { idleMs?: number; absoluteMs?: number };
  signIn?: SignIn;
  /** More JSON routes under `/api/v1` with their own authentication (the device API), described in its OpenAPI. */
  moreApi?: (app: FastifyInstance) => Promise<void>;
  /** Asks Slack for a person's name (`users.info`), for the names cache; unset without Slack. */
  lookupName?: (userId: string) => Promise<string | undefined>;
}

const STYLESHEET = readFileSync(new URL('./assets/console.css', import.meta.url), 'utf8');
const ICON =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#1d4ed8"/><path d="M5 4h6v2H9v5a3 3 0 0 1-5 2l1-2a1 1 0 0 0 2-1V6H5z" fill="#fff"/></svg>';
const LOGIN_PURPOSE = 'login';
const LOGIN_TTL_MS = 10 * 60_000;

/** A return-to path is kept only if it is one of the console's own pages (no open redirect). */
export function safeReturnPath(value: unknown): string {
  return typeof value === 'string' && /^\/console(?:[/?][^\\\s]*)?$/.test(value) && !value.startsWith('//')
    ? value
    : '/console';
}

/**
 * The web console and `/api/v1` as one fastify app, built without listening: the bot/admin
 * listener on PORT routes `/console` and `/api/v1` here (ops/admin-server.ts).
 *
 * Pages are rendered on the server (pages/), not a client built with Vite: a handful of
 * pages of tables, forms and charts read best as plain HTML — they work without JavaScript,
 * the CSP can forbid every script, nothing is built or shipped beside the server, and each
 * page's data is read under the same reach checks as the API.
 */
export async function createWebApp(deps: WebAppDeps): Promise<FastifyInstance> {
  const { config, clock } = deps;
  const app = Fastify({
    loggerInstance: deps.logger.child({ component: 'console' }) as FastifyBaseLogger,
    bodyLimit: 64 * 1024,
    // Behind the admin listener: no proxy headers are believed.
    trustProxy: false,
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  const sealer = createSealer(config.sessionSecret);
  const sessions = createSessions({
    db: deps.db,
    sealer,
    clock,
    secure: config.secureCookies,
    ...deps.session,
  });
  const signIn = deps.signIn ?? createSignIn(config);
  const consoleOrigin = new URL(config.publicUrl).origin;
  const loginCookie = config.secureCookies ? '__Host-jitgate_login' : 'jitgate_login';
  const loginCookieOptions = {
    path: '/',
    httpOnly: true,
    secure: config.secureCookies,
    sameSite: 'lax' as const,
  };

  await app.register(fastifyCookie);
  await app.register(fastifyFormbody, { bodyLimit: 16 * 1024 });
  await app.register(fastifyHelmet, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'none'"],
        scriptSrc: ["'none'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        baseUri: ["'none'"],
        connectSrc: ["'self'"],
      },
    },
    // `same-origin`, not `no-referrer`: under no-referrer Chromium sends `Origin: null` with
    // form posts, which the Origin check below would refuse.
    referrerPolicy: { policy: 'same-origin' },
    // Only meaningful over https; browsers ignore it on plain http.
    strictTransportSecurity: config.secureCookies ? { maxAge: 31_536_000 } : false,
  });
  await app.register(fastifyCsrf, {
    sessionPlugin: '@fastify/cookie',
    cookieKey: config.secureCookies ? '__Host-jitgate_csrf' : 'jitgate_csrf',
    cookieOpts: { path: '/', sameSite: 'strict', httpOnly: true, secure: config.secureCookies },
    // Tokens are bound to the session: void in any other session, of another person or the same one.
    getUserInfo: (request) => request.consoleSession?.id ?? '',
    csrfOpts: {
      hmacKey: Buffer.from(hkdfSync('sha256', config.sessionSecret, 'jitgate-console', 'csrf-hmac-v1', 32)),
    },
  });
  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'jitgate API',
        version: '1',
        description:
          'JSON API of the jitgate console. Authenticated by the console session cookie (Sign in with Slack); state-changing calls need the `x-csrf-token` from GET /api/v1/session.',
      },
    },
    transform: jsonSchemaTransform,
  });

  app.decorateRequest('consoleSession', null);
  app.decorateRequest('resolvedViewer', null);

  app.addHook('onRequest', async (request, reply) => {
    const session = await sessions.read(request);
    if (!session) return;
    request.consoleSession = session;
    // Each use moves the idle deadline (re-sealed at most once a minute).
    if (sessions.needsRefresh(session)) await sessions.refresh(reply, session);
  });
  app.addHook('preHandler', async (request) => {
    const session = request.consoleSession;
    if (session) {
      request.resolvedViewer = await viewerOf(deps.policy.current(), deps.directory, session);
    }
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (hasZodFastifySchemaValidationErrors(error)) {
      const message = error.validation
        .map((v) => `${v.instancePath || 'request'} ${v.message ?? ''}`)
        .join('; ');
      return reply.code(400).send({ error: 'bad_request', message });
    }
    if (error.code === 'FST_CSRF_MISSING_SECRET' || error.code === 'FST_CSRF_INVALID_TOKEN') {
      return reply
        .code(403)
        .send({ error: 'csrf_failed', message: 'Missing or wrong CSRF token; reload the page.' });
    }
    const status =
      error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
    if (status === 500) request.log.error({ err: error }, 'console request failed');
    return reply.code(status).send({
      error: status === 500 ? 'internal' : 'bad_request',
      message: status === 500 ? 'Something broke.' : error.message,
    });
  });

  const names = createPersonNames({
    db: deps.db,
    clock,
    logger: deps.logger,
    lookup: deps.lookupName,
  });
  const ctx: WebContext = {
    reads: createConsoleReads({ db: deps.db, clock, policy: deps.policy }),
    actions: deps.actions,
    chain: createChainStatus({ db: deps.db, clock }),
    names,
    clock,
    policy: deps.policy,
    viewer: (request) => request.resolvedViewer ?? undefined,
    csrfToken: (request, reply) => reply.generateCsrf({ userInfo: request.consoleSession?.id ?? '' }),
    checkCsrf(request, reply, done) {
      const origin = request.headers.origin;
      if (origin !== undefined && origin !== consoleOrigin) {
        reply.code(403).send({ error: 'forbidden_origin', message: 'Cross-site requests are refused.' });
        return;
      }
      app.csrfProtection(request, reply, done);
    },
  };

  app.get('/console/assets/console.css', { schema: { hide: true } }, async (_request, reply) =>
    reply.type('text/css; charset=utf-8').header('cache-control', 'public, max-age=300').send(STYLESHEET),
  );

  for (const path of ['/console/assets/icon.svg', '/favicon.ico']) {
    app.get(path, { schema: { hide: true } }, async (_request, reply) =>
      reply.type('image/svg+xml').header('cache-control', 'public, max-age=86400').send(ICON),
    );
  }

  // Sign in with Slack.
  app.get('/console/auth/login', { schema: { hide: true } }, async (request, reply) => {
    const returnTo = safeReturnPath((request.query as Record<string, unknown>).return);
    let started: { url: string; attempt: LoginAttempt };
    try {
      started = await signIn.start(returnTo);
    } catch (error) {
      request.log.error({ err: error }, 'cannot reach the OpenID provider');
      return reply
        .code(503)
        .type('text/html; charset=utf-8')
        .send(
          messagePage(
            'Sign-in unavailable',
            'The sign-in provider cannot be reached now; try again shortly.',
          ),
        );
    }
    const now = clock.now();
    const sealed = await sealer.seal(
      LOGIN_PURPOSE,
      { ...started.attempt },
      new Date(now.getTime() + LOGIN_TTL_MS),
      now,
    );
    reply.setCookie(loginCookie, sealed, { ...loginCookieOptions, maxAge: LOGIN_TTL_MS / 1000 });
    return reply.redirect(started.url, 302);
  });

  app.get('/console/auth/callback', { schema: { hide: true } }, async (request, reply) => {
    const sealed = request.cookies[loginCookie];
    reply.clearCookie(loginCookie, loginCookieOptions);
    const payload = sealed ? await sealer.open(LOGIN_PURPOSE, sealed, clock.now()) : undefined;
    const attempt =
      payload &&
      typeof payload.state === 'string' &&
      typeof payload.nonce === 'string' &&
      typeof payload.codeVerifier === 'string'
        ? {
            state: payload.state,
            nonce: payload.nonce,
            codeVerifier: payload.codeVerifier,
            returnTo: safeReturnPath(payload.returnTo),
          }
        : undefined;
    const page = (status: number, title: string, text: string) =>
      reply
        .code(status)
        .type('text/html; charset=utf-8')
        .send(messagePage(title, text, true));
    if (!attempt) return page(400, 'Sign-in expired', 'This sign-in is unknown or too old. Start again.');
    const callbackUrl = new URL(request.url, config.publicUrl);
    const result = await signIn.finish(callbackUrl, attempt);
    if (!result.ok) {
      request.log.warn({ code: result.code }, 'console sign-in refused');
      return page(403, 'Not signed in', result.message);
    }
    await sessions.start(reply, { userId: result.userId, teamId: result.teamId, name: result.name });
    await names.signedIn(result.userId, result.name);
    request.log.info({ userId: result.userId }, 'console sign-in');
    return reply.redirect(attempt.returnTo, 303);
  });

  app.post(
    '/console/auth/logout',
    { schema: { hide: true }, preHandler: ctx.checkCsrf },
    async (request, reply) => {
      await sessions.end(reply, request.consoleSession);
      return reply.redirect('/console/auth/signed-out', 303);
    },
  );

  app.get('/console/auth/signed-out', { schema: { hide: true } }, async (_request, reply) =>
    reply
      .type('text/html; charset=utf-8')
      .send(messagePage('Signed out', 'You are signed out of the jitgate console.', true)),
  );

  app.get('/api/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  if (deps.moreApi) await deps.moreApi(app);
  await app.register(async (scope) => apiV1(scope, ctx), { prefix: '/api/v1' });
  await app.register(async (scope) => consolePages(scope, ctx), { prefix: '/console' });
  // Lookups under way finish before the database they write to is closed.
  app.addHook('onClose', () => names.settled());
  await app.ready();
  return app;
}
