import fastifyCookie from '@fastify/cookie';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { safeReturnPath } from '../../src/console/app.ts';
import { createSealer } from '../../src/console/auth/seal.ts';
import { createSessions } from '../../src/console/auth/session.ts';
import { manualClock } from '../../src/shared/clock.ts';
import { openTestDatabase } from '../helpers/db.ts';

let database: Awaited<ReturnType<typeof openTestDatabase>>;
beforeAll(async () => {
  database = await openTestDatabase('t_sess');
});
afterAll(async () => {
  await database?.drop();
});

async function setup() {
  const clock = manualClock(new Date('2026-01-05T10:00:00Z'));
  const sessions = createSessions({
    db: database.db,
    sealer: createSealer('a-session-secret-of-at-least-32-chars!!'),
    clock,
    secure: true,
    idleMs: 30 * 60_000,
    absoluteMs: 8 * 3600_000,
  });
  const app = Fastify();
  await app.register(fastifyCookie);
  app.post('/in', async (_req, reply) => {
    await sessions.start(reply, { userId: 'U1', teamId: 'T1', name: 'One' });
    return 'ok';
  });
  app.get('/who', async (req, reply) => {
    const session = await sessions.read(req);
    if (session && sessions.needsRefresh(session)) await sessions.refresh(reply, session);
    return { userId: session?.userId ?? null };
  });
  app.post('/out', async (req, reply) => {
    await sessions.end(reply, (await sessions.read(req)) ?? null);
    return 'ok';
  });
  let cookie = '';
  const remember = (headers: Record<string, unknown>) => {
    const set = headers['set-cookie'];
    const line = Array.isArray(set) ? String(set[0]) : typeof set === 'string' ? set : '';
    if (line) cookie = line.split(';')[0] ?? '';
    return line;
  };
  const signIn = async () => remember((await app.inject({ method: 'POST', url: '/in' })).headers);
  const who = async () => {
    const response = await app.inject({ method: 'GET', url: '/who', headers: { cookie } });
    remember(response.headers);
    return (response.json() as { userId: string | null }).userId;
  };
  const signOut = async () =>
    remember((await app.inject({ method: 'POST', url: '/out', headers: { cookie } })).headers);
  return { clock, app, signIn, signOut, who, setCookie: (c: string) => (cookie = c), cookie: () => cookie };
}

describe('console sessions', () => {
  it('are __Host- cookies, HttpOnly, Secure, SameSite=Lax', async () => {
    const { signIn } = await setup();
    const line = await signIn();
    expect(line).toMatch(/^__Host-jitgate_session=/);
    expect(line).toMatch(/HttpOnly/);
    expect(line).toMatch(/Secure/);
    expect(line).toMatch(/SameSite=Lax/);
    expect(line).toMatch(/Path=\//);
  });

  it('end after the idle timeout, and use moves it', async () => {
    const { clock, signIn, who } = await setup();
    await signIn();
    clock.advance(29 * 60_000);
    expect(await who()).toBe('U1');
    clock.advance(29 * 60_000);
    expect(await who()).toBe('U1');
    clock.advance(31 * 60_000);
    expect(await who()).toBeNull();
  });

  it('end at the absolute timeout however busy', async () => {
    const { clock, signIn, who } = await setup();
    await signIn();
    for (let i = 0; i < 16; i++) {
      clock.advance(29 * 60_000);
      expect(await who()).toBe('U1');
    }
    clock.advance(29 * 60_000);
    expect(await who()).toBeNull();
  });

  it('end at sign-out wherever the cookie was copied to', async () => {
    const { signIn, signOut, who, setCookie, cookie } = await setup();
    await signIn();
    const copied = cookie();
    expect(await who()).toBe('U1');
    await signOut();
    expect(cookie()).toBe('__Host-jitgate_session=');
    setCookie(copied);
    expect(await who()).toBeNull();
  });

  it('refuse a changed or forged cookie', async () => {
    const { signIn, who, setCookie, cookie } = await setup();
    await signIn();
    const value = cookie();
    const i = value.length - 5;
    setCookie(`${value.slice(0, i)}${value[i] === 'A' ? 'B' : 'A'}${value.slice(i + 1)}`);
    expect(await who()).toBeNull();
    setCookie('__Host-jitgate_session=eyJhbGciOiJub25lIn0.eyJzdWIiOiJVMSJ9.');
    expect(await who()).toBeNull();
  });

  it('send a person back only to a console page after sign-in', () => {
    expect(safeReturnPath('/console/grants?state=live')).toBe('/console/grants?state=live');
    for (const bad of [
      'https://evil.example/',
      '//evil.example/console',
      '/consolex',
      '/console\\@evil',
      42,
    ]) {
      expect(safeReturnPath(bad)).toBe('/console');
    }
  });
});
