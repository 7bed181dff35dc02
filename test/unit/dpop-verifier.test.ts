import { createHmac, generateKeyPairSync, KeyObject, sign as signWith } from 'node:crypto';
import fc from 'fast-check';
import { calculateJwkThumbprint, type JWK, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import {
  type DeviceKey,
  generateDeviceKey,
  importDeviceKey,
  makeProof,
  type ProofFor,
} from '../../src/cli/contractor/device-key.ts';
import { manualClock } from '../../src/shared/clock.ts';
import {
  accessTokenHash,
  createDpopVerifier,
  DPOP_REFUSAL_CODES,
  type DpopRefusalCode,
  type DpopVerifierOptions,
  dpopChallengeHeaders,
  dpopRefusalStatus,
  type ProofCheck,
} from '../../src/tokens/dpop.ts';
import { expectedHtu, normalizeHtu } from '../../src/tokens/dpop-htu.ts';
import { createDpopNonces } from '../../src/tokens/dpop-nonces.ts';
import { createMemoryReplayCache } from '../../src/tokens/dpop-replay.ts';

const URL_CALLED = 'https://proxy.example/billing-api/invoices/1';
const TOKEN = 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJVMSJ9.c2lnbmF0dXJl';

const es256 = await importDeviceKey(await generateDeviceKey('ES256'));
const eddsa = await importDeviceKey(await generateDeviceKey('EdDSA'));
const other = await importDeviceKey(await generateDeviceKey('ES256'));

function world(extra: Partial<DpopVerifierOptions> = {}) {
  const clock = manualClock(new Date());
  const replay = createMemoryReplayCache({ clock });
  return { clock, verifier: createDpopVerifier({ clock, replay, ...extra }) };
}

const checkOf = (proof: string | readonly string[] | undefined, key: DeviceKey = es256): ProofCheck => ({
  proof,
  method: 'GET',
  htu: URL_CALLED,
  accessToken: TOKEN,
  boundKey: key.thumbprint,
});

const proofFor = (key: DeviceKey, call: Partial<ProofFor> = {}, now?: Date) =>
  makeProof(key, { method: 'GET', url: URL_CALLED, accessToken: TOKEN, now, ...call });

/** A proof with any header and claims, signed by `key` (for what our own CLI would never make). */
async function craft(
  key: DeviceKey,
  header: Record<string, unknown>,
  claims: Record<string, unknown>,
): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: key.alg, typ: 'dpop+jwt', jwk: key.publicJwk, ...header })
    .sign(key.privateKey);
}

const nowSeconds = () => Math.floor(Date.now() / 1000);
const goodClaims = () => ({
  htm: 'GET',
  htu: URL_CALLED,
  jti: crypto.randomUUID(),
  iat: nowSeconds(),
  ath: accessTokenHash(TOKEN),
});

describe('DPoP proof verification (happy)', () => {
  it.each([
    ['ES256', es256],
    ['EdDSA', eddsa],
  ] as const)('accepts a fresh %s proof bound to its key and reports the thumbprint', async (_alg, key) => {
    const { verifier } = world();
    const result = await verifier.verify(checkOf(await proofFor(key), key));
    expect(result).toMatchObject({ ok: true, thumbprint: key.thumbprint, jwk: key.publicJwk });
  });

  it('ignores the query and fragment of the URL and takes the RFC 3986 normal form', async () => {
    const { verifier } = world();
    const proof = await craft(
      es256,
      {},
      { ...goodClaims(), htu: 'HTTPS://Proxy.Example:443/billing-api/./invoices/%31?x=1#f' },
    );
    expect(await verifier.verify({ ...checkOf(proof), htu: `${URL_CALLED}?page=2` })).toMatchObject({
      ok: true,
    });
  });

  it('accepts extra public jwk members, and any key when nothing is bound (pairing start)', async () => {
    const { verifier } = world();
    const proof = await craft(es256, { jwk: { ...es256.publicJwk, kid: 'k1', use: 'sig' } }, goodClaims());
    expect(await verifier.verify({ ...checkOf(proof), boundKey: undefined })).toMatchObject({ ok: true });
  });

  it('a refused proof does not use up its jti: the same proof passes the right check afterwards', async () => {
    const { verifier } = world();
    const proof = await proofFor(es256);
    expect(await verifier.verify({ ...checkOf(proof), method: 'POST' })).toMatchObject({
      code: 'dpop_wrong_method',
    });
    expect(await verifier.verify(checkOf(proof))).toMatchObject({ ok: true });
  });
});

type Case = [name: string, code: DpopRefusalCode, run: () => Promise<{ ok: boolean; code?: string }>];

const refusals: Case[] = [
  ['no DPoP header', 'dpop_required', async () => world().verifier.verify(checkOf(undefined))],
  ['an empty DPoP header', 'dpop_required', async () => world().verifier.verify(checkOf(''))],
  [
    'two DPoP headers',
    'dpop_invalid',
    async () => world().verifier.verify(checkOf([await proofFor(es256), await proofFor(es256)])),
  ],
  [
    'two proofs joined by a comma (how Node folds repeated headers)',
    'dpop_invalid',
    async () => world().verifier.verify(checkOf(`${await proofFor(es256)}, ${await proofFor(es256)}`)),
  ],
  ['a huge header', 'dpop_invalid', async () => world().verifier.verify(checkOf(`a.${'b'.repeat(5000)}.c`))],
  ['not a JWS', 'dpop_invalid', async () => world().verifier.verify(checkOf('not-a-proof'))],
  [
    'typ JWT',
    'dpop_invalid',
    async () => world().verifier.verify(checkOf(await craft(es256, { typ: 'JWT' }, goodClaims()))),
  ],
  [
    'alg none',
    'dpop_invalid',
    async () => {
      const enc = (v: object) => Buffer.from(JSON.stringify(v)).toString('base64url');
      const unsigned = `${enc({ alg: 'none', typ: 'dpop+jwt', jwk: es256.publicJwk })}.${enc(goodClaims())}.AAAA`;
      return world().verifier.verify(checkOf(unsigned));
    },
  ],
  [
    'alg HS256',
    'dpop_invalid',
    async () => {
      const proof = await new SignJWT(goodClaims())
        .setProtectedHeader({ alg: 'HS256', typ: 'dpop+jwt', jwk: es256.publicJwk })
        .sign(new Uint8Array(32).fill(7));
      return world().verifier.verify(checkOf(proof));
    },
  ],
  [
    'a private key in jwk',
    'dpop_invalid',
    async () => {
      const stored = await generateDeviceKey('ES256');
      const key = await importDeviceKey(stored);
      const proof = await craft(key, { jwk: stored.privateJwk as JWK }, goodClaims());
      return world().verifier.verify(checkOf(proof, key));
    },
  ],
  [
    'no jwk',
    'dpop_invalid',
    async () => world().verifier.verify(checkOf(await craft(es256, { jwk: undefined }, goodClaims()))),
  ],
  [
    'an Ed25519 jwk on an ES256 proof',
    'dpop_invalid',
    async () =>
      world().verifier.verify(checkOf(await craft(es256, { jwk: eddsa.publicJwk }, goodClaims()), eddsa)),
  ],
  [
    'a jwk whose point is not on the curve',
    'dpop_invalid',
    async () => {
      const x = es256.publicJwk.kty === 'EC' ? es256.publicJwk.x : '';
      const offCurve = {
        ...es256.publicJwk,
        x: `${x.slice(0, 10)}${x[10] === 'A' ? 'B' : 'A'}${x.slice(11)}`,
      };
      return world().verifier.verify({
        ...checkOf(await craft(es256, { jwk: offCurve }, goodClaims())),
        boundKey: undefined,
      });
    },
  ],
  [
    'signed by another key than the jwk it carries',
    'dpop_invalid',
    async () => world().verifier.verify(checkOf(await craft(other, { jwk: es256.publicJwk }, goodClaims()))),
  ],
  [
    'a flipped signature byte',
    'dpop_invalid',
    async () => {
      const proof = await proofFor(es256);
      const at = proof.lastIndexOf('.') + 5;
      const flipped = `${proof.slice(0, at)}${proof[at] === 'A' ? 'B' : 'A'}${proof.slice(at + 1)}`;
      return world().verifier.verify(checkOf(flipped));
    },
  ],
  [
    'no jti',
    'dpop_invalid',
    async () => world().verifier.verify(checkOf(await craft(es256, {}, { ...goodClaims(), jti: undefined }))),
  ],
  [
    'no htu',
    'dpop_invalid',
    async () => world().verifier.verify(checkOf(await craft(es256, {}, { ...goodClaims(), htu: undefined }))),
  ],
  [
    'a string iat',
    'dpop_invalid',
    async () => world().verifier.verify(checkOf(await craft(es256, {}, { ...goodClaims(), iat: 'now' }))),
  ],
  [
    'signed by another key',
    'dpop_wrong_key',
    async () => world().verifier.verify(checkOf(await proofFor(other))),
  ],
  [
    'made for POST, used for GET',
    'dpop_wrong_method',
    async () => world().verifier.verify(checkOf(await proofFor(es256, { method: 'POST' }))),
  ],
  [
    'made for lower-case get',
    'dpop_wrong_method',
    async () => world().verifier.verify(checkOf(await proofFor(es256, { method: 'get' }))),
  ],
  [
    'made for another path',
    'dpop_wrong_url',
    async () =>
      world().verifier.verify(
        checkOf(await proofFor(es256, { url: 'https://proxy.example/billing-api/invoices/2' })),
      ),
  ],
  [
    'made for another host',
    'dpop_wrong_url',
    async () =>
      world().verifier.verify(
        checkOf(await proofFor(es256, { url: 'https://evil.example/billing-api/invoices/1' })),
      ),
  ],
  [
    'made for http instead of https',
    'dpop_wrong_url',
    async () =>
      world().verifier.verify(
        checkOf(await proofFor(es256, { url: 'http://proxy.example/billing-api/invoices/1' })),
      ),
  ],
  [
    'an htu that is no URL',
    'dpop_wrong_url',
    async () =>
      world().verifier.verify(
        checkOf(await craft(es256, {}, { ...goodClaims(), htu: '/billing-api/invoices/1' })),
      ),
  ],
  [
    'made 61 s ago',
    'dpop_stale',
    async () => world().verifier.verify(checkOf(await proofFor(es256, {}, new Date(Date.now() - 61_000)))),
  ],
  [
    'made 10 s in the future',
    'dpop_stale',
    async () => world().verifier.verify(checkOf(await proofFor(es256, {}, new Date(Date.now() + 10_000)))),
  ],
  [
    'an exp in the past',
    'dpop_stale',
    async () =>
      world().verifier.verify(checkOf(await craft(es256, {}, { ...goodClaims(), exp: nowSeconds() - 5 }))),
  ],
  [
    'made for another token',
    'dpop_ath_mismatch',
    async () => world().verifier.verify(checkOf(await proofFor(es256, { accessToken: `${TOKEN}x` }))),
  ],
  [
    'no ath with a token',
    'dpop_ath_mismatch',
    async () => world().verifier.verify(checkOf(await proofFor(es256, { accessToken: undefined }))),
  ],
  [
    'used twice',
    'dpop_replayed',
    async () => {
      const { verifier } = world();
      const proof = await proofFor(es256);
      expect(await verifier.verify(checkOf(proof))).toMatchObject({ ok: true });
      return verifier.verify(checkOf(proof));
    },
  ],
  [
    'no nonce where the server wants one',
    'dpop_nonce_required',
    async () => {
      const clock = manualClock(new Date());
      const nonces = createDpopNonces({ secret: new Uint8Array(32).fill(1), clock });
      return world({ nonces }).verifier.verify(checkOf(await proofFor(es256)));
    },
  ],
  [
    'a full replay cache',
    'dpop_unavailable',
    async () => {
      const clock = manualClock(new Date());
      const verifier = createDpopVerifier({
        clock,
        replay: createMemoryReplayCache({ clock, maxEntries: 1 }),
      });
      expect(await verifier.verify(checkOf(await proofFor(es256)))).toMatchObject({ ok: true });
      return verifier.verify(checkOf(await proofFor(es256)));
    },
  ],
];

describe('DPoP proof verification (error and security)', () => {
  it.each(refusals)('refuses %s with %s', async (_name, code, run) => {
    const result = await run();
    expect(result.ok).toBe(false);
    expect(result.code).toBe(code);
  });

  it('covers every refusal code', () => {
    expect(new Set(refusals.map(([, code]) => code))).toEqual(new Set(DPOP_REFUSAL_CODES));
  });

  it('maps every code to 401 with an RFC 9449 challenge, except the fail-closed 503', () => {
    for (const code of DPOP_REFUSAL_CODES) {
      const headers = dpopChallengeHeaders({ code, nonce: 'n' });
      if (code === 'dpop_unavailable') {
        expect(dpopRefusalStatus(code)).toBe(503);
        expect(headers).toEqual({});
        continue;
      }
      expect(dpopRefusalStatus(code)).toBe(401);
      const expected =
        code === 'dpop_required'
          ? 'invalid_token'
          : code === 'dpop_nonce_required'
            ? 'use_dpop_nonce'
            : 'invalid_dpop_proof';
      expect(headers['www-authenticate']).toBe(`DPoP error="${expected}", algs="ES256 EdDSA Ed25519"`);
    }
    expect(dpopChallengeHeaders({ code: 'dpop_nonce_required', nonce: 'abc' })['dpop-nonce']).toBe('abc');
  });

  it('a nonce is accepted in its window and the next, then refused with a fresh one to use', async () => {
    const clock = manualClock(new Date());
    const nonces = createDpopNonces({ secret: new Uint8Array(32).fill(3), clock, windowSeconds: 300 });
    const verifier = createDpopVerifier({ clock, replay: createMemoryReplayCache({ clock }), nonces });
    const nonce = nonces.current();
    const first = await verifier.verify(checkOf(await proofFor(es256, { nonce }, clock.now())));
    expect(first).toMatchObject({ ok: true });
    clock.advance(300_000);
    expect(await verifier.verify(checkOf(await proofFor(es256, { nonce }, clock.now())))).toMatchObject({
      ok: true,
    });
    clock.advance(300_000);
    const refused = await verifier.verify(checkOf(await proofFor(es256, { nonce }, clock.now())));
    expect(refused).toMatchObject({ ok: false, code: 'dpop_nonce_required' });
    expect(refused.ok === false && refused.nonce).toBe(nonces.current());
    expect(refused.ok === false && refused.nonce).not.toBe(nonce);
    const otherSecret = createDpopNonces({ secret: new Uint8Array(32).fill(4), clock });
    expect(nonces.accepts(otherSecret.current())).toBe(false);
  });

  it('a replayed proof is refused until its window is over, and the cache then forgets it', async () => {
    const clock = manualClock(new Date());
    const replay = createMemoryReplayCache({ clock });
    const verifier = createDpopVerifier({ clock, replay, maxAgeSeconds: 60 });
    const proof = await proofFor(es256, {}, clock.now());
    expect(await verifier.verify(checkOf(proof))).toMatchObject({ ok: true });
    clock.advance(59_000);
    expect(await verifier.verify(checkOf(proof))).toMatchObject({ code: 'dpop_replayed' });
    clock.advance(2_000);
    // Past the window the proof is stale, whatever the cache says: forgetting it reopens nothing.
    expect(await verifier.verify(checkOf(proof))).toMatchObject({ code: 'dpop_stale' });
    await replay.claim('x', 1);
    expect(replay.size).toBe(1);
  });
});

describe('htu normalisation', () => {
  it.each([
    ['HTTPS://Proxy.EXAMPLE:443/a/../b/%7euser?q=1#f', 'https://proxy.example/b/~user'],
    ['http://proxy.example:80', 'http://proxy.example/'],
    ['https://proxy.example:8443/x%2fy', 'https://proxy.example:8443/x%2Fy'],
    ['https://proxy.example/%41%62c', 'https://proxy.example/Abc'],
    ['https://proxy.example/a/%2e%2e/b', 'https://proxy.example/b'],
  ])('%s → %s', (input, output) => {
    expect(normalizeHtu(input)).toBe(output);
  });

  it.each(['ftp://proxy.example/a', 'https://user:pw@proxy.example/a', '/relative', 'not a url'])(
    'refuses %s',
    (input) => {
      expect(normalizeHtu(input)).toBeUndefined();
    },
  );

  it('forms the expected URL from the public base URL and the path as received, never the query', () => {
    expect(expectedHtu('https://gw.example/jitgate/', '/billing-api/x?y=1')).toBe(
      'https://gw.example/jitgate/billing-api/x',
    );
    expect(expectedHtu('https://gw.example', '/a#b')).toBe('https://gw.example/a');
    expect(expectedHtu('https://gw.example', 'http://other.example/a')).toBeUndefined();
  });
});

describe('DPoP proof verification (properties)', () => {
  const method = fc.oneof(
    fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'),
    fc.stringMatching(/^[A-Z]{1,10}$/),
  );
  const url = fc.webUrl({ validSchemes: ['https', 'http'], withQueryParameters: true, withFragments: true });

  it('a proof verifies for exactly the method and URL it was made for', async () => {
    await fc.assert(
      fc.asyncProperty(method, method, url, url, async (made, used, madeUrl, usedUrl) => {
        const { verifier } = world();
        const proof = await makeProof(es256, { method: made, url: madeUrl, accessToken: TOKEN });
        const result = await verifier.verify({ ...checkOf(proof), method: used, htu: usedUrl });
        const sameUrl = normalizeHtu(madeUrl) === normalizeHtu(usedUrl);
        if (made !== used) expect(result).toMatchObject({ ok: false, code: 'dpop_wrong_method' });
        else if (!sameUrl) expect(result).toMatchObject({ ok: false, code: 'dpop_wrong_url' });
        else expect(result).toMatchObject({ ok: true });
      }),
      { numRuns: 60 },
    );
  });

  it('no one-character change to a proof is accepted (unless it decodes to the same signature)', async () => {
    const proof = await proofFor(es256);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.';
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: proof.length - 1 }), fc.constantFrom(...alphabet), async (at, char) => {
        fc.pre(proof[at] !== char);
        const mutated = `${proof.slice(0, at)}${char}${proof.slice(at + 1)}`;
        const result = await world().verifier.verify(checkOf(mutated));
        if (result.ok) {
          // Only the signature's last character has bits base64url decoders ignore.
          const signature = (p: string) => Buffer.from(p.slice(p.lastIndexOf('.') + 1), 'base64url');
          expect(mutated.slice(0, mutated.lastIndexOf('.'))).toBe(proof.slice(0, proof.lastIndexOf('.')));
          expect(signature(mutated).equals(signature(proof))).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });
});

/**
 * Proofs made without jose (node:crypto signs), so the tests can send what no JWS library makes:
 * any header, any payload bytes, a DER signature.
 */
const b64 = (value: string | Buffer | object) =>
  (typeof value === 'string' || Buffer.isBuffer(value)
    ? Buffer.from(value)
    : Buffer.from(JSON.stringify(value))
  ).toString('base64url');

function signRaw(
  key: DeviceKey,
  header: Record<string, unknown>,
  payload: string | Buffer | object,
  dsaEncoding: 'ieee-p1363' | 'der' = 'ieee-p1363',
): string {
  const input = `${b64({ alg: key.alg, typ: 'dpop+jwt', jwk: key.publicJwk, ...header })}.${b64(payload)}`;
  const privateKey = KeyObject.from(key.privateKey);
  const signature =
    key.alg === 'ES256'
      ? signWith('sha256', Buffer.from(input), { key: privateKey, dsaEncoding })
      : signWith(null, Buffer.from(input), privateKey);
  return `${input}.${signature.toString('base64url')}`;
}

const headerOf = (proof: string) => proof.slice(0, proof.indexOf('.'));

describe('DPoP key cache (headers checked once, keys imported once)', () => {
  it('a cached header never lets a proof signed by another key pass, however warm the cache', async () => {
    const { verifier } = world();
    const genuine = await proofFor(es256);
    expect(await verifier.verify(checkOf(genuine))).toMatchObject({ ok: true });
    // Byte for byte the cached header (es256's jwk), signed by another key: a cache hit.
    const forged = signRaw(other, { alg: 'ES256', jwk: es256.publicJwk }, goodClaims());
    expect(headerOf(forged)).toBe(headerOf(genuine));
    expect(await verifier.verify(checkOf(forged))).toMatchObject({ ok: false, code: 'dpop_invalid' });
    // And the key's own next proof still passes: the forgery did not disturb the entry.
    expect(await verifier.verify(checkOf(await proofFor(es256)))).toMatchObject({ ok: true });
  });

  it('keys evicted and imported again keep verifying only their own proofs (a one-entry cache)', async () => {
    const { verifier } = world({ keyCacheSize: 1 });
    const keys = [es256, eddsa, other];
    for (let round = 0; round < 3; round++) {
      for (const [i, key] of keys.entries()) {
        const stranger = keys[(i + 1) % keys.length]!;
        expect(await verifier.verify(checkOf(await proofFor(key), key))).toMatchObject({
          ok: true,
          thumbprint: key.thumbprint,
        });
        expect(await verifier.verify(checkOf(await proofFor(stranger), key))).toMatchObject({
          code: 'dpop_wrong_key',
        });
        const forged = signRaw(stranger, { alg: key.alg, jwk: key.publicJwk }, goodClaims());
        expect(await verifier.verify(checkOf(forged, key))).toMatchObject({ code: 'dpop_invalid' });
      }
    }
  });

  it('any mix of signing key, header key and bound key, through a small cache: only all three alike pass', async () => {
    const keys = [es256, eddsa, other, await importDeviceKey(await generateDeviceKey('EdDSA'))];
    const index = fc.nat({ max: keys.length - 1 });
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(index, index, index), { minLength: 1, maxLength: 8 }),
        async (calls) => {
          const { verifier } = world({ keyCacheSize: 2 });
          for (const [signedBy, inHeader, boundTo] of calls) {
            const signer = keys[signedBy]!;
            const named = keys[inHeader]!;
            const proof =
              signedBy === inHeader
                ? await proofFor(signer)
                : signRaw(signer, { alg: named.alg, jwk: named.publicJwk }, goodClaims());
            const result = await verifier.verify(checkOf(proof, keys[boundTo]!));
            if (inHeader !== boundTo) expect(result).toMatchObject({ ok: false, code: 'dpop_wrong_key' });
            else if (signedBy !== inHeader) expect(result).toMatchObject({ ok: false, code: 'dpop_invalid' });
            else expect(result).toMatchObject({ ok: true, thumbprint: named.thumbprint });
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  it('extra and odd jwk members change neither the key nor its RFC 7638 thumbprint', async () => {
    if (es256.publicJwk.kty !== 'EC') throw new Error('es256 is an EC key');
    const { x, y } = es256.publicJwk;
    const odd = {
      y,
      kid: 42,
      use: 'sig',
      alg: 'ES256',
      key_ops: ['verify'],
      ext: true,
      x5c: ['not-a-certificate'],
      nested: { x: 'ignored' },
      x,
      crv: 'P-256',
      kty: 'EC',
    };
    const { verifier } = world();
    const result = await verifier.verify(checkOf(await craft(es256, { jwk: odd }, goodClaims())));
    expect(result).toMatchObject({ ok: true, thumbprint: es256.thumbprint, jwk: es256.publicJwk });
    expect(es256.thumbprint).toBe(await calculateJwkThumbprint({ kty: 'EC', crv: 'P-256', x, y }, 'sha256'));
    // Twice, cached: the same answer.
    const again = await verifier.verify(checkOf(await craft(es256, { jwk: odd }, goodClaims())));
    expect(again).toMatchObject({ ok: true, thumbprint: es256.thumbprint });
  });

  it('reports the RFC 7638 thumbprint jose computes, for keys of both kinds', async () => {
    for (let i = 0; i < 5; i++) {
      for (const alg of ['ES256', 'EdDSA'] as const) {
        const key = await importDeviceKey(await generateDeviceKey(alg));
        const result = await world().verifier.verify({
          ...checkOf(await proofFor(key)),
          boundKey: undefined,
        });
        expect(result).toMatchObject({
          ok: true,
          thumbprint: await calculateJwkThumbprint(key.publicJwk, 'sha256'),
        });
      }
    }
  });

  it('accepts the fully-specified Ed25519 algorithm name as well as EdDSA', async () => {
    const { verifier } = world();
    const proof = signRaw(eddsa, { alg: 'Ed25519' }, goodClaims());
    expect(await verifier.verify(checkOf(proof, eddsa))).toMatchObject({
      ok: true,
      thumbprint: eddsa.thumbprint,
    });
  });
});

const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
const secp256k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
const x25519 = generateKeyPairSync('x25519');
const publicJwk = (pair: { publicKey: KeyObject }) => pair.publicKey.export({ format: 'jwk' });

/** Refused from the header alone, so the signature is that of a good proof by `es256`. */
const withHeader = (header: Record<string, unknown>) => signRaw(es256, header, goodClaims());

describe('DPoP header checks: algorithms and keys', () => {
  it.each([
    'none',
    'NONE',
    'HS256',
    'HS384',
    'HS512',
    'RS256',
    'PS256',
    'ES384',
    'ES512',
    'ES256K',
    'es256',
    'EdDSA ',
    '',
  ])('refuses alg %j, and says which are taken', async (alg) => {
    const result = await world().verifier.verify(checkOf(withHeader({ alg })));
    expect(result).toMatchObject({ ok: false, code: 'dpop_invalid' });
    expect(result.ok === false && result.message).toMatch(/ES256, EdDSA, Ed25519/);
  });

  it('refuses HS256 keyed with the public key itself (the key-confusion attack)', async () => {
    if (es256.publicJwk.kty !== 'EC') throw new Error('es256 is an EC key');
    const header = b64({ alg: 'HS256', typ: 'dpop+jwt', jwk: es256.publicJwk });
    const input = `${header}.${b64(goodClaims())}`;
    for (const secret of [JSON.stringify(es256.publicJwk), Buffer.from(es256.publicJwk.x, 'base64url')]) {
      const mac = createHmac('sha256', secret).update(input).digest('base64url');
      expect(await world().verifier.verify(checkOf(`${input}.${mac}`))).toMatchObject({
        code: 'dpop_invalid',
      });
    }
  });

  it.each([
    ['a P-384 key on ES256', { jwk: publicJwk(p384) }],
    ['a secp256k1 key on ES256', { jwk: publicJwk(secp256k1) }],
    ['an X25519 key on EdDSA', { alg: 'EdDSA', jwk: publicJwk(x25519) }],
    ['an EC key on EdDSA', { alg: 'EdDSA' }],
    ['an OKP key claiming P-256', { jwk: { kty: 'OKP', crv: 'P-256', x: eddsa.publicJwk.x } }],
    ['a 33-byte coordinate', { jwk: { ...es256.publicJwk, x: Buffer.alloc(33, 1).toString('base64url') } }],
    ['a jwk that is a string', { jwk: JSON.stringify(es256.publicJwk) }],
    ['a jwk that is an array', { jwk: [es256.publicJwk] }],
    ['typ DPOP+JWT', { typ: 'DPOP+JWT' }],
    ['typ application/dpop+jwt', { typ: 'application/dpop+jwt' }],
    ['a crit header', { crit: ['exp'], exp: 1 }],
    ['an empty crit', { crit: [] }],
  ])('refuses %s', async (_name, header) => {
    const result = await world().verifier.verify({ ...checkOf(withHeader(header)), boundKey: undefined });
    expect(result).toMatchObject({ ok: false, code: 'dpop_invalid' });
  });

  it('refuses an ES256 signature in DER form, though it is by the right key over the right bytes', async () => {
    const proof = signRaw(es256, {}, goodClaims(), 'der');
    expect(await world().verifier.verify(checkOf(proof))).toMatchObject({ code: 'dpop_invalid' });
  });

  it('refuses an EdDSA proof signed over other bytes, and a truncated or padded signature', async () => {
    const good = signRaw(eddsa, {}, goodClaims());
    const signature = good.slice(good.lastIndexOf('.') + 1);
    const body = good.slice(0, good.lastIndexOf('.'));
    const { verifier } = world();
    for (const bad of [
      `${body}.${signature.slice(0, -2)}`,
      `${body}.${signature}AA`,
      `${body}x.${signature}`,
    ]) {
      expect(await verifier.verify(checkOf(bad, eddsa))).toMatchObject({ code: 'dpop_invalid' });
    }
    expect(await verifier.verify(checkOf(good, eddsa))).toMatchObject({ ok: true });
  });
});

describe('DPoP payload checks (signed, so only the payload can refuse them)', () => {
  it.each([
    ['an array', '[]'],
    ['a string', '"proof"'],
    ['null', 'null'],
    ['no JSON', '{"htm":'],
    ['invalid UTF-8', Buffer.concat([Buffer.from('{"jti":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')])],
  ])('refuses a payload that is %s', async (_name, payload) => {
    expect(await world().verifier.verify(checkOf(signRaw(es256, {}, payload)))).toMatchObject({
      code: 'dpop_invalid',
    });
  });

  it('holds a proof to its nbf and exp when it has them', async () => {
    const { verifier } = world();
    const now = nowSeconds();
    expect(
      await verifier.verify(checkOf(signRaw(es256, {}, { ...goodClaims(), nbf: now + 30 }))),
    ).toMatchObject({
      code: 'dpop_stale',
    });
    expect(
      await verifier.verify(checkOf(signRaw(es256, {}, { ...goodClaims(), exp: 'later' }))),
    ).toMatchObject({
      code: 'dpop_invalid',
    });
    expect(
      await verifier.verify(checkOf(signRaw(es256, {}, { ...goodClaims(), nbf: now - 1, exp: now + 30 }))),
    ).toMatchObject({ ok: true });
  });

  it('compares htu after normalising when the proof names the URL differently, and as is when alike', async () => {
    const { verifier } = world();
    const same = signRaw(es256, {}, { ...goodClaims(), htu: URL_CALLED });
    expect(await verifier.verify(checkOf(same))).toMatchObject({ ok: true });
    const spelled = signRaw(
      es256,
      {},
      { ...goodClaims(), htu: 'https://PROXY.example:443/billing-api/invoices/%31' },
    );
    expect(await verifier.verify(checkOf(spelled))).toMatchObject({ ok: true });
    // Equal text that is no URL still fails: the server's own htu must normalise.
    const broken = signRaw(es256, {}, { ...goodClaims(), htu: 'not a url' });
    expect(await verifier.verify({ ...checkOf(broken), htu: 'not a url' })).toMatchObject({
      code: 'dpop_wrong_url',
    });
  });
});

describe('DPoP key cache (keys by canonical JWK, shared by header variants)', () => {
  if (es256.publicJwk.kty !== 'EC') throw new Error('es256 is an EC key');
  const { x, y } = es256.publicJwk;
  const variants = [
    es256.publicJwk,
    { y, x, crv: 'P-256', kty: 'EC' },
    { ...es256.publicJwk, kid: 'laptop' },
    { ...es256.publicJwk, use: 'sig', alg: 'ES256' },
  ];

  it('every header naming one key verifies with it, and none lets another key sign for it', async () => {
    const { verifier } = world({ keyCacheSize: 2 });
    for (let round = 0; round < 2; round++) {
      for (const jwk of variants) {
        const genuine = signRaw(es256, { jwk }, goodClaims());
        expect(await verifier.verify(checkOf(genuine))).toMatchObject({
          ok: true,
          thumbprint: es256.thumbprint,
        });
        const forged = signRaw(other, { alg: 'ES256', jwk }, goodClaims());
        expect(headerOf(forged)).toBe(headerOf(genuine));
        expect(await verifier.verify(checkOf(forged))).toMatchObject({ ok: false, code: 'dpop_invalid' });
      }
    }
  });

  it('a proof for another bound key is refused as dpop_wrong_key before its jwk is even imported', async () => {
    // An off-curve point would fail the import: refused as the wrong key, it never got that far.
    const offCurve = { ...es256.publicJwk, y: `${y.slice(0, 10)}${y[10] === 'A' ? 'B' : 'A'}${y.slice(11)}` };
    const { verifier } = world();
    const proof = signRaw(es256, { jwk: offCurve }, goodClaims());
    expect(await verifier.verify(checkOf(proof))).toMatchObject({ code: 'dpop_wrong_key' });
    expect(await verifier.verify({ ...checkOf(proof), boundKey: undefined })).toMatchObject({
      code: 'dpop_invalid',
    });
  });
});
