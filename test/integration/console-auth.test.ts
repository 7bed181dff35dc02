import { eq, inArray } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents } from '../../src/db/schema/index.ts';
import { eventCallbackBody, postSigned } from '../../src/dev/slack-stand-in/signed-requests.ts';
import {
  ADMIN,
  type ConsoleWorld,
  OTHER_REQUESTER,
  REQUESTER,
  startConsoleWorld,
} from '../helpers/console-world.ts';
import { eventually } from '../helpers/proxy-fixtures.ts';
import { SIGNING_SECRET } from '../helpers/slack-harness.ts';

let world: ConsoleWorld;
beforeAll(async () => {
  world = await startConsoleWorld();
}, 60_000);
afterAll(async () => {
  await world?.close();
});

describe('Sign in with Slack against a real OpenID provider', () => {
  it('signs the person of the ID token in, and the session names them', async () => {
    const { client, final } = await world.signIn(ADMIN);
    expect(final.status).toBe(303);
    expect(final.headers.get('location')).toBe('/console');
    const session = await client.get('/api/v1/session');
    expect(session.status).toBe(200);
    const body = (await session.json()) as { userId: string; roles: string[] };
    expect(body.userId).toBe(ADMIN);
    expect(body.roles).toEqual(['admin']);
  });

  it('refuses a person of another workspace', async () => {
    const { client, final } = await world.signIn(REQUESTER, 'T0OTHER');
    expect(final.status).toBe(403);
    expect(await final.text()).toContain('another Slack workspace');
    expect((await client.get('/api/v1/session')).status).toBe(401);
  });

  it('sets the session cookie HttpOnly and SameSite=Lax', async () => {
    const login = await fetch(`${world.baseUrl}/console/auth/login`, { redirect: 'manual' });
    expect(login.status).toBe(302);
    const location = new URL(login.headers.get('location') ?? '');
    expect(location.searchParams.get('code_challenge_method')).toBe('S256');
    expect(location.searchParams.get('state')).toBeTruthy();
    expect(location.searchParams.get('nonce')).toBeTruthy();
    expect(login.headers.getSetCookie().join()).toMatch(/jitgate_login=.*HttpOnly.*SameSite=Lax/i);
  });

  it('serves pages with a strict Content-Security-Policy and the usual security headers', async () => {
    const { client } = await world.signIn(ADMIN);
    const page = await client.get('/console');
    expect(page.status).toBe(200);
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'none'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain('unsafe-inline');
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(page.headers.get('referrer-policy')).toBe('same-origin');
    expect(page.headers.get('cache-control')).toBe('no-store');
    const html = await page.text();
    expect(html).not.toMatch(/<script|style=/i);
  });

  it('signs out: the cookie is cleared and the session is gone', async () => {
    const { client } = await world.signIn(ADMIN);
    const out = await client.post('/console/auth/logout', {}, { form: true });
    expect(out.status).toBe(303);
    expect(out.headers.get('location')).toBe('/console/auth/signed-out');
    expect((await client.get('/api/v1/session')).status).toBe(401);
  });

  it('signs out for good: a copy of the session cookie taken before is refused after', async () => {
    const { client } = await world.signIn(ADMIN);
    const copied = client.jar.header(world.baseUrl);
    expect((await fetch(`${world.baseUrl}/api/v1/session`, { headers: { cookie: copied } })).status).toBe(
      200,
    );
    expect((await client.post('/console/auth/logout', {}, { form: true })).status).toBe(303);
    const replayed = await fetch(`${world.baseUrl}/api/v1/session`, { headers: { cookie: copied } });
    expect(replayed.status).toBe(401);
    const page = await fetch(`${world.baseUrl}/console`, { headers: { cookie: copied }, redirect: 'manual' });
    expect(page.status).toBe(302);
    expect(page.headers.get('location')).toMatch(/^\/console\/auth\/login/);
    // Both ends of the session are in the audit log, in the console's name, about the person.
    const rows = await world.harness.database.db
      .select()
      .from(auditEvents)
      .where(eq(auditEvents.actor, `console:${ADMIN}`));
    const signIns = rows.filter((r) => r.kind === 'console.signed_in');
    const signOuts = rows.filter((r) => r.kind === 'console.signed_out');
    const thisSession = signIns.at(-1)?.data.sessionId;
    const ended = signOuts.filter((r) => r.data.sessionId === thisSession);
    expect(ended).toHaveLength(1);
    expect(ended[0]?.data.userId).toBe(ADMIN);
  });

  it("binds CSRF tokens to one session: an earlier session's token is void in the next one", async () => {
    const { client: first } = await world.signIn(ADMIN);
    const { client: next } = await world.signIn(ADMIN);
    // The same browser signing in again: it keeps its CSRF secret cookie across sessions.
    next.jar.set(world.baseUrl, 'jitgate_csrf', first.jar.get(world.baseUrl, 'jitgate_csrf') ?? '');
    const stale = await fetch(`${world.baseUrl}/api/v1/audit/chain/verify`, {
      method: 'POST',
      headers: {
        cookie: next.jar.header(world.baseUrl),
        'content-type': 'application/json',
        'x-csrf-token': first.csrfToken,
      },
      body: '{}',
    });
    expect(stale.status).toBe(403);
    expect(((await stale.json()) as { error: string }).error).toBe('csrf_failed');
    // This session's own token, made with the same secret, is good.
    const { csrfToken } = (await (await next.get('/api/v1/session')).json()) as { csrfToken: string };
    const fresh = await fetch(`${world.baseUrl}/api/v1/audit/chain/verify`, {
      method: 'POST',
      headers: {
        cookie: next.jar.header(world.baseUrl),
        'content-type': 'application/json',
        'x-csrf-token': csrfToken,
      },
      body: '{}',
    });
    expect(fresh.status).toBe(200);
  });

  it('refuses a sign-out without its CSRF token (no forced sign-out from another site)', async () => {
    const { client } = await world.signIn(ADMIN);
    const out = await client.post('/console/auth/logout', {}, { form: true, csrf: false });
    expect(out.status).toBe(403);
    expect((await client.get('/api/v1/session')).status).toBe(200);
  });

  it('refuses a callback whose state does not match the sign-in that started it', async () => {
    const login = await fetch(`${world.baseUrl}/console/auth/login`, { redirect: 'manual' });
    const cookie = (login.headers.getSetCookie()[0] ?? '').split(';')[0] ?? '';
    expect(cookie).toMatch(/^jitgate_login=/);
    const forged = await fetch(`${world.baseUrl}/console/auth/callback?code=abc&state=forged`, {
      redirect: 'manual',
      headers: { cookie },
    });
    expect(forged.status).toBe(403);
    expect(await forged.text()).toContain('not accepted');
    expect(forged.headers.getSetCookie().join()).not.toMatch(/jitgate_session=[^;]/);
  });

  it('refuses a callback with no sign-in under way', async () => {
    const stray = await fetch(`${world.baseUrl}/console/auth/callback?code=abc&state=x`, {
      redirect: 'manual',
    });
    expect(stray.status).toBe(400);
  });
});

describe('offboarding signs the person out of the console', () => {
  /** What the console answers a cookie with: the API and a page, as a browser holding it would ask. */
  async function consoleAnswers(cookie: string) {
    const api = await fetch(`${world.baseUrl}/api/v1/session`, { headers: { cookie } });
    const page = await fetch(`${world.baseUrl}/console`, { headers: { cookie }, redirect: 'manual' });
    return { api: api.status, page: page.status, location: page.headers.get('location') };
  }

  /** The person's last sign-in's session id, and the `console.session_ended` rows about them. */
  async function sessionAudit(userId: string) {
    const rows = await world.harness.database.db
      .select()
      .from(auditEvents)
      .where(inArray(auditEvents.kind, ['console.signed_in', 'console.session_ended']));
    const about = rows.filter((r) => r.data.userId === userId);
    return {
      signedIn: about.filter((r) => r.kind === 'console.signed_in').at(-1)?.data.sessionId,
      ended: about.filter((r) => r.kind === 'console.session_ended'),
    };
  }

  it("a deactivated account's session is refused on its next request", async () => {
    const { client } = await world.signIn(REQUESTER);
    const cookie = client.jar.header(world.baseUrl);
    expect(await consoleAnswers(cookie)).toMatchObject({ api: 200, page: 200 });
    const { client: admin } = await world.signIn(ADMIN);

    // Slack says the account is gone: the bot's events endpoint, as production receives it.
    const event = eventCallbackBody({ type: 'user_change', user: { id: REQUESTER, deleted: true } });
    expect((await postSigned(world.harness.baseUrl, '/slack/events', event, SIGNING_SECRET)).status).toBe(
      200,
    );
    await eventually(async () => (await consoleAnswers(cookie)).api === 401);
    const after = await consoleAnswers(cookie);
    expect(after.page).toBe(302);
    expect(after.location).toMatch(/^\/console\/auth\/login/);
    // Only theirs: the admin signed in beside them is still in.
    expect((await admin.get('/api/v1/session')).status).toBe(200);

    const { signedIn, ended } = await sessionAudit(REQUESTER);
    expect(ended).toEqual([
      expect.objectContaining({
        actor: 'system:offboarding',
        data: expect.objectContaining({ sessionId: signedIn, reason: 'offboarded: account deactivated' }),
      }),
    ]);
  });

  it("a console admin's revoke-all in the console ends the person's session at once", async () => {
    const { client: target } = await world.signIn(OTHER_REQUESTER);
    const cookie = target.jar.header(world.baseUrl);
    expect((await consoleAnswers(cookie)).api).toBe(200);
    const { client: admin } = await world.signIn(ADMIN);
    const done = await admin.post(`/api/v1/people/${OTHER_REQUESTER}/revoke-all`, { reason: 'left' });
    expect(done.status).toBe(200);
    // The answer came after the commit: the very next request is refused, no waiting.
    expect(await consoleAnswers(cookie)).toMatchObject({ api: 401, page: 302 });
    expect((await admin.get('/api/v1/session')).status).toBe(200);
    const { signedIn, ended } = await sessionAudit(OTHER_REQUESTER);
    expect(ended).toEqual([
      expect.objectContaining({
        actor: `console:${ADMIN}`,
        data: expect.objectContaining({ sessionId: signedIn, reason: 'left' }),
      }),
    ]);
  });
});
