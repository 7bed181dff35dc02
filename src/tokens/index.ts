export {
  type GrantClaims,
  type GrantTokenInput,
  issueGrantToken,
  issueTokenForGrant,
  MAX_TOKEN_BYTES,
  type VerifyErrorCode,
  type VerifyOptions,
  type VerifyResult,
  verifyGrantToken,
} from './grant-token.ts';
export {
  IDENTITY_ASSERTION_TYPE,
  type IdentityAssertionInput,
  issueIdentityAssertion,
} from './identity-assertion.ts';
export { KeyDecryptionError } from './key-crypto.ts';
export { createDbKeyStorage, createMemoryKeyStorage, type KeyStorage } from './key-storage.ts';
export {
  type ActiveSigner,
  type Clock,
  createKeyStore,
  createMemoryKeyStore,
  type Jwks,
  type KeyStore,
  type KeyStoreOptions,
  KeyStoreRefusal,
  type KeyStoreSummary,
  type PublicJwk,
  parseConfiguredKey,
  SIGNING_ALG,
  SigningKeyConfigError,
} from './keys.ts';
export {
  createVerifier,
  LruCache,
  type LruCacheOptions,
  type Verifier,
  type VerifierOptions,
} from './token-cache.ts';
