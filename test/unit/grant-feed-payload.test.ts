import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { deviceRevokedPayload, revokedDeviceOf } from '../../src/outbox/grant-feed.ts';

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const thumbprint = fc
  .array(fc.constantFrom(...BASE64URL), { minLength: 43, maxLength: 43 })
  .map((chars) => chars.join(''));

describe('device revocations on the grant feed', () => {
  it('a revocation payload names its thumbprint back', () => {
    fc.assert(
      fc.property(thumbprint, (t) => {
        expect(revokedDeviceOf(deviceRevokedPayload(t))).toBe(t);
      }),
    );
  });

  it('grant ids and pings are not device revocations', () => {
    fc.assert(
      fc.property(fc.uuid(), fc.string(), (id, tail) => {
        expect(revokedDeviceOf(id)).toBeUndefined();
        expect(revokedDeviceOf(`ping:${tail}`)).toBeUndefined();
      }),
    );
  });

  it('refuses anything after `device:` that is not one 43-character base64url thumbprint', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (tail) => {
        fc.pre(!/^[A-Za-z0-9_-]{43}$/.test(tail));
        expect(revokedDeviceOf(`device:${tail}`)).toBeUndefined();
      }),
    );
    const t = 'a'.repeat(43);
    for (const odd of [
      `device:${t}\n`,
      `device:${t}a`,
      `device: ${t}`,
      `DEVICE:${t}`,
      `device:${t.slice(1)}=`,
    ]) {
      expect(revokedDeviceOf(odd)).toBeUndefined();
    }
  });
});
