import { issueTokenForGrant } from './grant-token.ts';
import type { KeyStore } from './keys.ts';

/** What a device-bound token needs of a grant row. */
export interface BindableGrant {
  id: string;
  userId: string;
  resource: string;
  scope: string;
  expiresAt: Date;
}

/** What it needs of the paired device: whose it is and its key's RFC 7638 thumbprint. */
export interface BindingDevice {
  userId: string;
  thumbprint: string;
}

/**
 * A grant token bound to a paired device's key: the grant's usual claims plus `cnf.jkt`, so it
 * is good only with a DPoP proof signed by that key (RFC 9449 §6). A copied token is then
 * useless without the key, which never leaves the device. `exp` is the grant's expiry as it
 * stands now, so a token fetched after an extension lives as long as the extended grant.
 */
export function issueDeviceBoundToken(
  keyStore: KeyStore,
  grant: BindableGrant,
  device: BindingDevice,
  issuer: string,
): Promise<string> {
  // Binding someone's grant to another person's device would hand it over: a caller bug.
  if (device.userId !== grant.userId) {
    return Promise.reject(new Error('issueDeviceBoundToken: the device belongs to another user'));
  }
  return issueTokenForGrant(keyStore, grant, issuer, device.thumbprint);
}
