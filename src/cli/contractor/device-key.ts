import { randomBytes } from 'node:crypto';
import {
  type CryptoKey,
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JWK,
  SignJWT,
} from 'jose';
import { accessTokenHash, DPOP_PROOF_TYPE, type DpopPublicJwk } from '../../tokens/dpop.ts';

/** The algorithms `jitgate login --alg` offers; ES256 by default, as every DPoP server takes it. */
export const DEVICE_ALGORITHMS = ['ES256', 'EdDSA'] as const;
export type DeviceAlgorithm = (typeof DEVICE_ALGORITHMS)[number];

/** A device's key pair as the CLI uses it: the private key signs proofs, the public one is sent. */
export interface DeviceKey {
  alg: DeviceAlgorithm;
  privateKey: CryptoKey;
  publicJwk: DpopPublicJwk;
  /** RFC 7638 thumbprint of `publicJwk`: what bound tokens carry as `cnf.jkt`. */
  thumbprint: string;
}

/** A private JWK as kept in the key file, with the algorithm it signs with. */
export interface StoredDeviceKey {
  alg: DeviceAlgorithm;
  privateJwk: JWK;
}

export async function generateDeviceKey(alg: DeviceAlgorithm = 'ES256'): Promise<StoredDeviceKey> {
  // Extractable once, to be written to the key file; every later use imports it again.
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  return { alg, privateJwk: await exportJWK(privateKey) };
}

export async function importDeviceKey(stored: StoredDeviceKey): Promise<DeviceKey> {
  const publicJwk = publicPartOf(stored);
  const privateKey = await importJWK(stored.privateJwk, stored.alg);
  if (privateKey instanceof Uint8Array) throw new Error('the device key is not an asymmetric key');
  return {
    alg: stored.alg,
    privateKey,
    publicJwk,
    thumbprint: await calculateJwkThumbprint(publicJwk, 'sha256'),
  };
}

function publicPartOf({ alg, privateJwk: jwk }: StoredDeviceKey): DpopPublicJwk {
  const text = (value: unknown, member: string): string => {
    if (typeof value !== 'string' || value === '') throw new Error(`the device key has no "${member}"`);
    return value;
  };
  if (alg === 'ES256') {
    if (jwk.kty !== 'EC' || jwk.crv !== 'P-256') throw new Error('an ES256 device key must be EC P-256');
    return { kty: 'EC', crv: 'P-256', x: text(jwk.x, 'x'), y: text(jwk.y, 'y') };
  }
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519') throw new Error('an EdDSA device key must be OKP Ed25519');
  return { kty: 'OKP', crv: 'Ed25519', x: text(jwk.x, 'x') };
}

export interface ProofFor {
  method: string;
  /** The URL being called; query and fragment are left out of `htu` (RFC 9449 §4.2). */
  url: string;
  /** Sent with the call: the proof then carries its hash as `ath`. */
  accessToken?: string;
  /** The server's last `DPoP-Nonce`, when it asked for one. */
  nonce?: string;
  now?: Date;
}

/** A fresh proof for one call: a new `jti` every time, so a proof is never good twice. */
export function makeProof(key: DeviceKey, call: ProofFor): Promise<string> {
  const url = new URL(call.url);
  const htu = `${url.protocol}//${url.host}${url.pathname}`;
  const claims: Record<string, string> = {
    htm: call.method,
    htu,
    jti: randomBytes(16).toString('base64url'),
  };
  if (call.accessToken !== undefined) claims.ath = accessTokenHash(call.accessToken);
  if (call.nonce !== undefined) claims.nonce = call.nonce;
  return new SignJWT(claims)
    .setProtectedHeader({ alg: key.alg, typ: DPOP_PROOF_TYPE, jwk: key.publicJwk })
    .setIssuedAt(Math.floor((call.now ?? new Date()).getTime() / 1000))
    .sign(key.privateKey);
}
