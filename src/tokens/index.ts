export {
  type GrantClaims,
  issueGrantToken,
  issueTokenForGrant,
  type VerifyResult,
  verifyGrantToken,
} from './grant-token.ts';
export {
  IDENTITY_ASSERTION_TYPE,
  issueIdentityAssertion,
} from './identity-assertion.ts';
export {} from './key-crypto.ts';
export { createMemoryKeyStorage, type KeyStorage } from './key-storage.ts';
export {
  type ActiveSigner,
  createKeyStore,
  createMemoryKeyStore,
  type Jwks,
  type KeyStore,
  type KeyStoreOptions,
  KeyStoreRefusal,
  SigningKeyConfigError,
} from './keys.ts';
export {
  createVerifier,
  LruCache,
} from './token-cache.ts';
