import * as dpop from 'dpop';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import * as oauth from 'oauth4webapi';
import { describe, expect, it } from 'vitest';
import { generateDeviceKey, importDeviceKey, makeProof } from '../../src/cli/contractor/device-key.ts';
import { systemClock } from '../../src/shared/clock.ts';
import { createDpopVerifier } from '../../src/tokens/dpop.ts';
import { createMemoryReplayCache } from '../../src/tokens/dpop-replay.ts';

/**
 * Two independent DPoP implementations, both ways:
 * - proofs made by the `dpop` package (which only makes proofs) pass our verifier;
 * - proofs made by our CLI's proof maker pass oauth4webapi's resource-server check
 *   (`validateJwtAccessToken`, RFC 9449 §4.3 and §7 with its own WebCrypto code, not jose),
 *   given an RFC 9068 access token bound to the CLI's key by a stand-in authorization server.
 */
const URL_CALLED = 'https://proxy.example/billing-api/invoices/7';
const TOKEN = 'grant.token.value';

const verifier = () =>
  createDpopVerifier({ clock: systemClock, replay: createMemoryReplayCache({ clock: systemClock }) });

describe('proofs made by the dpop package pass our verifier', () => {
  it.each(['ES256', 'Ed25519'] as const)('%s, with ath and a nonce', async (alg) => {
    const keys = await dpop.generateKeyPair(alg);
    const thumbprint = await dpop.calculateThumbprint(keys.publicKey);
    const proof = await dpop.generateProof(keys, `${URL_CALLED}?q=1`, 'POST', 'n-1', TOKEN);
    const result = await verifier().verify({
      proof,
      method: 'POST',
      htu: URL_CALLED,
      accessToken: TOKEN,
      boundKey: thumbprint,
    });
    expect(result).toMatchObject({ ok: true, thumbprint });
  });

  it('and are refused for another method, URL, token or key', async () => {
    const keys = await dpop.generateKeyPair('ES256');
    const thumbprint = await dpop.calculateThumbprint(keys.publicKey);
    const check = { method: 'GET', htu: URL_CALLED, accessToken: TOKEN, boundKey: thumbprint };
    const made = (htu: string, htm: string, token = TOKEN) =>
      dpop.generateProof(keys, htu, htm, undefined, token);
    const v = verifier();
    expect(await v.verify({ ...check, proof: await made(URL_CALLED, 'POST') })).toMatchObject({
      code: 'dpop_wrong_method',
    });
    expect(await v.verify({ ...check, proof: await made(`${URL_CALLED}/x`, 'GET') })).toMatchObject({
      code: 'dpop_wrong_url',
    });
    expect(await v.verify({ ...check, proof: await made(URL_CALLED, 'GET', 'other') })).toMatchObject({
      code: 'dpop_ath_mismatch',
    });
    const stranger = await dpop.calculateThumbprint((await dpop.generateKeyPair('ES256')).publicKey);
    expect(
      await v.verify({ ...check, boundKey: stranger, proof: await made(URL_CALLED, 'GET') }),
    ).toMatchObject({
      code: 'dpop_wrong_key',
    });
  });
});

describe("proofs made by jitgate's CLI pass oauth4webapi's resource-server check", () => {
  const issuer = 'https://as.example';

  async function boundAccessToken(jkt: string) {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: 'as-1', alg: 'ES256', use: 'sig' }] };
    const token = await new SignJWT({ client_id: 'jitgate-cli', cnf: { jkt } })
      .setProtectedHeader({ alg: 'ES256', kid: 'as-1', typ: 'at+jwt' })
      .setIssuer(issuer)
      .setAudience('billing-api')
      .setSubject('UCONTRACTOR')
      .setJti(crypto.randomUUID())
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(privateKey);
    const options: oauth.ValidateJWTAccessTokenOptions = {
      [oauth.customFetch]: async () =>
        new Response(JSON.stringify(jwks), { headers: { 'content-type': 'application/json' } }),
    };
    // oauth4webapi caches a JWKS per server object: each token gets its own.
    const as: oauth.AuthorizationServer = { issuer, jwks_uri: `${issuer}/jwks` };
    return { token, options, as };
  }

  it.each(['ES256', 'EdDSA'] as const)('%s', async (alg) => {
    const key = await importDeviceKey(await generateDeviceKey(alg));
    const { token, options, as } = await boundAccessToken(key.thumbprint);
    const proof = await makeProof(key, { method: 'PATCH', url: `${URL_CALLED}?x=1`, accessToken: token });
    const request = new Request(`${URL_CALLED}?x=1`, {
      method: 'PATCH',
      headers: { authorization: `DPoP ${token}`, dpop: proof },
    });
    const claims = await oauth.validateJwtAccessToken(as, request, 'billing-api', options);
    expect(claims.cnf?.jkt).toBe(key.thumbprint);
  });

  it('and oauth4webapi refuses one made for another method or by another key', async () => {
    const key = await importDeviceKey(await generateDeviceKey('ES256'));
    const stranger = await importDeviceKey(await generateDeviceKey('ES256'));
    const { token, options, as } = await boundAccessToken(key.thumbprint);
    const call = (proof: string) =>
      oauth.validateJwtAccessToken(
        as,
        new Request(URL_CALLED, { method: 'GET', headers: { authorization: `DPoP ${token}`, dpop: proof } }),
        'billing-api',
        options,
      );
    await expect(
      call(await makeProof(key, { method: 'POST', url: URL_CALLED, accessToken: token })),
    ).rejects.toThrow(/htm mismatch/);
    await expect(
      call(await makeProof(stranger, { method: 'GET', url: URL_CALLED, accessToken: token })),
    ).rejects.toThrow(/confirmation mismatch/);
  });
});
