import { describe, expect, it } from 'vitest';
import {
  passesClientHeader,
  tooManyHeaders,
  upstreamRequestHeaders,
} from '../../src/proxy/request-headers.ts';

const injected = {
  credentialHeader: 'x-api-key',
  credentialValue: 'secret',
  identityHeader: 'x-jitgate-identity',
  identityValue: 'jwt',
  mask: undefined,
};

describe('upstream request headers', () => {
  it("puts the proxy's own headers first, then the client's that may pass", () => {
    const client = { '7': 'digits', accept: 'application/json', 'x-api-key': 'forged', host: 'proxy' };
    const copied = { ...client, host: 'upstream:80' };
    const out = upstreamRequestHeaders(client, copied, injected, 'req-1');
    expect(Object.keys(out)).toEqual(['x-api-key', 'x-jitgate-identity', 'x-request-id', 'host', 'accept']);
    expect(out).toMatchObject({ 'x-api-key': 'secret', host: 'upstream:80', 'x-request-id': 'req-1' });
  });

  it('asks for an uncompressed body on a masked call, whatever the client accepts', () => {
    const client = { 'accept-encoding': 'gzip' };
    expect(upstreamRequestHeaders(client, client, { ...injected, mask: {} }, 'r')['accept-encoding']).toBe(
      'identity',
    );
  });

  it('drops underscore spellings of every name it drops, and keeps other underscore names', () => {
    for (const name of [
      'x_api_key',
      'x_jitgate_identity',
      'x_request_id',
      'x_forwarded_host',
      'proxy_authorization',
    ])
      expect(passesClientHeader(name, 'x-api-key', 'x-jitgate-identity'), name).toBe(false);
    expect(passesClientHeader('x_custom_field', 'x-api-key', undefined)).toBe(true);
    expect(passesClientHeader('1-header', undefined, undefined)).toBe(true);
    expect(passesClientHeader('42', undefined, undefined)).toBe(false);
  });

  it('bounds the head at 100 header lines', () => {
    const lines = (n: number) => Array.from({ length: 2 * n }, (_, i) => String(i));
    expect(tooManyHeaders(lines(100))).toBe(false);
    expect(tooManyHeaders(lines(101))).toBe(true);
  });
});
