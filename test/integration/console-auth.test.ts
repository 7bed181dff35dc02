import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, type ConsoleWorld, REQUESTER, startConsoleWorld } from '../helpers/console-world.ts';

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
});
