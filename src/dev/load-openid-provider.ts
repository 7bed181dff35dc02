import type * as OpenIdProviderStandIn from './slack-stand-in/openid-provider.ts';

/** A stand-in needs a package that production installs (`npm ci --omit=dev`) leave out. */
export class MissingDevDependency extends Error {
  constructor(
    readonly packageName: string,
    purpose: string,
  ) {
    super(
      `${purpose} needs the ${packageName} package, a development dependency that this install left out; ` +
        'install with `npm ci` (without --omit=dev) to run it.',
    );
    this.name = 'MissingDevDependency';
  }
}

const importStandIn = () => import('./slack-stand-in/openid-provider.ts');

/**
 * The local OpenID provider that answers as Sign in with Slack (`oidc-provider`, a development
 * dependency): loaded only when the demo serves its web console, so the demo module itself
 * loads in an image built with production dependencies only.
 */
export async function loadOpenIdProviderStandIn(
  importModule: () => Promise<typeof OpenIdProviderStandIn> = importStandIn,
): Promise<typeof OpenIdProviderStandIn> {
  try {
    return await importModule();
  } catch (error) {
    const missing = missingPackage(error);
    if (missing !== undefined) {
      throw new MissingDevDependency(missing, "The demo's web console (its local Sign in with Slack)");
    }
    throw error;
  }
}

/** The package Node could not find, from its ERR_MODULE_NOT_FOUND ("Cannot find package 'x' imported from …"). */
function missingPackage(error: unknown): string | undefined {
  if (!(error instanceof Error) || (error as { code?: unknown }).code !== 'ERR_MODULE_NOT_FOUND')
    return undefined;
  return /Cannot find package '([^']+)'/.exec(error.message)?.[1];
}
