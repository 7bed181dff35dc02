import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOpenIdProviderStandIn, MissingDevDependency } from '../../src/dev/load-openid-provider.ts';

describe('the OpenID provider stand-in', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'jitgate-stand-in-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('loads with the development dependencies installed', async () => {
    const standIn = await loadOpenIdProviderStandIn();
    expect(typeof standIn.startSlackOpenIdProvider).toBe('function');
  });

  it('says which development dependency is missing when a production install left it out', async () => {
    // A module importing a package that is not installed fails the way oidc-provider would.
    const module = join(dir, 'needs-absent-package.mjs');
    await writeFile(module, "import 'jitgate-absent-dev-dependency';\nexport const loaded = true;\n");
    const attempt = loadOpenIdProviderStandIn(() => import(pathToFileURL(module).href));
    await expect(attempt).rejects.toBeInstanceOf(MissingDevDependency);
    await expect(attempt).rejects.toThrow(
      "The demo's web console (its local Sign in with Slack) needs the jitgate-absent-dev-dependency package, " +
        'a development dependency that this install left out; install with `npm ci` (without --omit=dev) to run it.',
    );
  });

  it('passes any other failure on as it is', async () => {
    const broken = new Error('the module threw while loading');
    await expect(loadOpenIdProviderStandIn(() => Promise.reject(broken))).rejects.toBe(broken);
  });
});
