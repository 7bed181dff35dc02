import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { runDemo } from '../../src/demo/run-demo.ts';
import { CookieJar } from '../helpers/console-world.ts';

/**
 * `npm run demo` for a newcomer: it prints the console's URL, and opening it signs the demo's
 * approver in through the local OpenID provider (no Slack, no form), onto a console showing the
 * story it just played. Run as the CLI runs it at a terminal: kept open after the story.
 */
describe('the demo console', () => {
  it('prints its URL, and opening it signs the demo approver in, showing the story', async () => {
    let text = '';
    const stdout = new Writable({
      write(chunk, _encoding, done) {
        text += String(chunk);
        done();
      },
    });
    let release: () => void = () => {};
    let opened: () => void = () => {};
    const open = new Promise<void>((resolve) => {
      opened = resolve;
    });
    const run = runDemo({
      stdout,
      console: true,
      shortGrantSeconds: 2,
      keepOpen: () =>
        new Promise<void>((resolve) => {
          release = resolve;
          opened();
        }),
    });
    // Whichever comes first: the demo waiting with the console open, or the demo over (a failure).
    const early = await Promise.race([open.then(() => undefined), run]);
    expect(early, text).toBeUndefined();
    try {
      const base = /web console: (http:\/\/127\.0\.0\.1:\d+)\/console /.exec(text)?.[1];
      expect(base, text).toBeDefined();
      expect(text).toContain(`The console stays open at ${base}/console`);
      expect(text).toContain('8 steps passed, 0 failed');

      // A browser opening the printed URL: redirects only, no sign-in form to fill.
      const jar = new CookieJar();
      let url = `${base}/console`;
      let response: Response | undefined;
      for (let hops = 0; hops < 15; hops++) {
        response = await fetch(url, { redirect: 'manual', headers: { cookie: jar.header(url) } });
        jar.store(url, response);
        const location = response.headers.get('location');
        if (response.status < 300 || response.status >= 400 || !location) break;
        await response.arrayBuffer();
        url = new URL(location, url).href;
      }
      expect(url).toBe(`${base}/console`);
      expect(response?.status).toBe(200);
      const page = (await response?.text()) ?? '';
      expect(page).toContain('Ada Approver');
      expect(page).toContain('UAPPROVER');

      const session = (await (
        await fetch(`${base}/api/v1/session`, { headers: { cookie: jar.header(base ?? '') } })
      ).json()) as { userId: string; roles: string[] };
      expect(session).toMatchObject({ userId: 'UAPPROVER', roles: ['approver'] });
      const grants = (await (
        await fetch(`${base}/api/v1/grants`, { headers: { cookie: jar.header(base ?? '') } })
      ).json()) as { grants: { resource: string; status: string }[] };
      // The story's grants: the approved write grant (revoked after the alert) and the read one.
      expect(grants.grants.map((g) => g.status).sort()).toEqual(['expired', 'revoked']);
    } finally {
      release();
    }
    expect(await run).toBe(0);
  }, 120_000);
});
