import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair } from 'jose';
import Provider, { type Configuration } from 'oidc-provider';
import { SLACK_TEAM_CLAIM, SLACK_USER_CLAIM } from '../../console/auth/oidc.ts';
import { escapeHtml } from '../../console/html.ts';

/**
 * A real OpenID provider (the `oidc-provider` package) answering as Sign in with Slack does:
 * authorization code flow with PKCE required, client_secret_post at the token endpoint, and
 * ID tokens carrying Slack's claims (`https://slack.com/user_id`, `https://slack.com/team_id`,
 * `name`). Its sign-in page is a form naming the Slack user (and, to test refusals, the
 * team); consent is given at once, as for an app already installed in the workspace.
 */
export interface SlackOpenIdProvider {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** Who signs in when a form is submitted without naming anyone (the demo's person). */
  defaultUser: string | undefined;
  close(): Promise<void>;
}

export const OIDC_CLIENT_ID = 'test-client-id.123';
export const OIDC_CLIENT_SECRET = 'test-client-secret-0123456789';

export async function startSlackOpenIdProvider(options: {
  redirectUri: string;
  teamId: string;
  names?: Record<string, string>;
  defaultUser?: string;
  /** Sign the default user in without showing the form (the demo). */
  autoSignIn?: boolean;
}): Promise<SlackOpenIdProvider> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), alg: 'RS256', use: 'sig', kid: 'test-key' };
  // Accounts are `<team>:<user>`, so a test can sign a person of another workspace in.
  const configuration: Configuration = {
    clients: [
      {
        client_id: OIDC_CLIENT_ID,
        client_secret: OIDC_CLIENT_SECRET,
        redirect_uris: [options.redirectUri],
        response_types: ['code'],
        grant_types: ['authorization_code'],
        token_endpoint_auth_method: 'client_secret_post',
      },
    ],
    jwks: { keys: [jwk] },
    cookies: { keys: ['oidc-test-cookie-key-0123456789'] },
    pkce: { required: () => true },
    claims: { openid: ['sub', SLACK_USER_CLAIM, SLACK_TEAM_CLAIM], profile: ['name'] },
    conformIdTokenClaims: false,
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      Grant: 3600,
      IdToken: 600,
      Interaction: 600,
      Session: 3600,
    },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(_ctx, accountId) {
      const [team = '', user = ''] = accountId.split(':');
      return {
        accountId,
        async claims() {
          return {
            sub: user,
            [SLACK_USER_CLAIM]: user,
            [SLACK_TEAM_CLAIM]: team,
            name: options.names?.[user] ?? `Person ${user}`,
          };
        },
      };
    },
  };
  let issuer = '';
  let provider: Provider | undefined;
  const server: Server = createServer((req, res) => {
    if (!provider) {
      res.writeHead(503).end();
      return;
    }
    const url = new URL(req.url ?? '/', issuer);
    if (url.pathname.startsWith('/interaction/')) {
      interaction(provider, req, res, url, options).catch((error: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(String(error));
      });
      return;
    }
    provider.callback()(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  provider = new Provider(issuer, configuration);
  return {
    issuer,
    clientId: OIDC_CLIENT_ID,
    clientSecret: OIDC_CLIENT_SECRET,
    defaultUser: options.defaultUser,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

async function interaction(
  provider: Provider,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  options: { teamId: string; defaultUser?: string; autoSignIn?: boolean },
): Promise<void> {
  const details = await provider.interactionDetails(req, res);
  if (details.prompt.name === 'consent') {
    const accountId = details.session?.accountId ?? '';
    const grant = new provider.Grant({ accountId, clientId: String(details.params.client_id) });
    grant.addOIDCScope(String(details.params.scope ?? 'openid'));
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return;
  }
  if (req.method === 'POST' || (options.autoSignIn && options.defaultUser)) {
    const form = req.method === 'POST' ? await readForm(req) : new URLSearchParams();
    const user = form.get('user') || options.defaultUser || '';
    const team = form.get('team') || options.teamId;
    await provider.interactionFinished(
      req,
      res,
      { login: { accountId: `${team}:${user}` } },
      { mergeWithLastSubmission: false },
    );
    return;
  }
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><html lang="en"><head><title>Sign in to Slack (test provider)</title></head><body>
<main><h1>Sign in to Slack</h1><form method="post" action="${escapeHtml(url.pathname)}">
<label>Slack user ID <input name="user" value="${escapeHtml(options.defaultUser ?? '')}"></label>
<label>Team <input name="team" value="${escapeHtml(options.teamId)}"></label>
<button type="submit">Sign in</button></form></main></body></html>`);
}
