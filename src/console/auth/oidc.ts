import * as client from 'openid-client';
import type { ConsoleConfig } from '../../config.ts';
import { isSlackUserId } from '../../shared/ids.ts';

/**
 * Sign in with Slack: OpenID Connect authorization code flow with PKCE (S256), `state` and
 * `nonce`, through openid-client, which checks the ID token (signature against the
 * provider's keys, issuer, audience, expiry, nonce). What is ours to check is who may come
 * in: the person is the Slack user id in the token, and only people of our workspace.
 */

/** Slack's claims in the ID token (https://api.slack.com/authentication/sign-in-with-slack). */
export const SLACK_USER_CLAIM = 'https://slack.com/user_id';
export const SLACK_TEAM_CLAIM = 'https://slack.com/team_id';

/** What one sign-in attempt must keep until the browser comes back (sealed in a cookie). */
export interface LoginAttempt {
  state: string;
  nonce: string;
  codeVerifier: string;
  /** A console path to go to after sign-in. */
  returnTo: string;
}

type SignInResult =
  | { ok: true; userId: string; teamId: string; name: string }
  | { ok: false; code: 'wrong_team' | 'no_user' | 'refused'; message: string };

export interface SignIn {
  /** The provider URL to send the browser to, and the attempt to keep. */
  start(returnTo: string): Promise<{ url: string; attempt: LoginAttempt }>;
  /** Finish the attempt with the URL the provider redirected back to. */
  finish(callbackUrl: URL, attempt: LoginAttempt): Promise<SignInResult>;
}

export function createSignIn(config: ConsoleConfig): SignIn {
  let discovered: Promise<client.Configuration> | undefined;
  const configuration = () => {
    discovered ??= client
      .discovery(
        new URL(config.issuer),
        config.clientId,
        undefined,
        client.ClientSecretPost(config.clientSecret),
        {
          // Config only lets plain http through for a loopback issuer (tests, the demo).
          ...(config.issuer.startsWith('http:') ? { execute: [client.allowInsecureRequests] } : {}),
        },
      )
      .catch((error: unknown) => {
        // Not cached: the next sign-in asks the provider again.
        discovered = undefined;
        throw error;
      });
    return discovered;
  };
  return {
    async start(returnTo) {
      const oidc = await configuration();
      const attempt: LoginAttempt = {
        state: client.randomState(),
        nonce: client.randomNonce(),
        codeVerifier: client.randomPKCECodeVerifier(),
        returnTo,
      };
      const url = client.buildAuthorizationUrl(oidc, {
        redirect_uri: config.redirectUri,
        scope: 'openid profile',
        state: attempt.state,
        nonce: attempt.nonce,
        code_challenge: await client.calculatePKCECodeChallenge(attempt.codeVerifier),
        code_challenge_method: 'S256',
        // Slack shows this workspace's sign-in straight away.
        team: config.teamId,
      });
      return { url: url.href, attempt };
    },
    async finish(callbackUrl, attempt) {
      const oidc = await configuration();
      let claims: client.IDToken | undefined;
      try {
        const tokens = await client.authorizationCodeGrant(oidc, callbackUrl, {
          pkceCodeVerifier: attempt.codeVerifier,
          expectedState: attempt.state,
          expectedNonce: attempt.nonce,
          idTokenExpected: true,
        });
        claims = tokens.claims();
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        return { ok: false, code: 'refused', message: `The sign-in was not accepted: ${message}` };
      }
      if (!claims) return { ok: false, code: 'refused', message: 'The provider sent no ID token.' };
      const teamId = claims[SLACK_TEAM_CLAIM];
      const userId = claims[SLACK_USER_CLAIM];
      if (teamId !== config.teamId) {
        return { ok: false, code: 'wrong_team', message: 'This console is for another Slack workspace.' };
      }
      if (typeof userId !== 'string' || !isSlackUserId(userId)) {
        return { ok: false, code: 'no_user', message: 'The ID token names no Slack user.' };
      }
      const name = typeof claims.name === 'string' && claims.name.trim() ? claims.name : userId;
      return { ok: true, userId, teamId, name };
    },
  };
}
