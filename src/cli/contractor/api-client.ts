import { type DeviceKey, makeProof } from './device-key.ts';

/** Where the device API lives under the server's base URL. */
const DEVICE_API_PATH = '/api/v1/device';

export type ApiAnswer<T> =
  | { ok: true; status: number; value: T }
  | { ok: false; status: number; code: string; message: string };

export interface ApiClient {
  call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<ApiAnswer<T>>;
}

/**
 * Calls to the device API, each signed with a fresh DPoP proof by the device key. When the server
 * asks for a nonce (`use_dpop_nonce`), the call is made once more with it, and the nonce is kept
 * for the calls after.
 */
export function createApiClient(server: string, key: DeviceKey): ApiClient {
  const base = `${server.replace(/\/+$/, '')}${DEVICE_API_PATH}`;
  let nonce: string | undefined;

  async function once<T>(
    method: string,
    url: string,
    body: unknown,
  ): Promise<ApiAnswer<T> & { nonce?: string }> {
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers: {
          dpop: await makeProof(key, { method, url, ...(nonce ? { nonce } : {}) }),
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(30_000),
      });
    } catch (error) {
      return { ok: false, status: 0, code: 'server_unreachable', message: String((error as Error).message) };
    }
    const given = response.headers.get('dpop-nonce') ?? undefined;
    let json: unknown;
    try {
      json = await response.json();
    } catch {
      return { ok: false, status: response.status, code: 'bad_answer', message: `HTTP ${response.status}` };
    }
    if (response.ok) return { ok: true, status: response.status, value: json as T };
    const { error, message } = (json ?? {}) as { error?: unknown; message?: unknown };
    return {
      ok: false,
      status: response.status,
      code: typeof error === 'string' ? error : 'bad_answer',
      message: typeof message === 'string' ? message : `HTTP ${response.status}`,
      ...(given ? { nonce: given } : {}),
    };
  }

  return {
    async call<T>(method: 'GET' | 'POST', path: string, body?: unknown) {
      const url = `${base}${path}`;
      const first = await once<T>(method, url, body);
      if (first.ok || first.code !== 'dpop_nonce_required' || first.nonce === undefined) return first;
      nonce = first.nonce;
      return once<T>(method, url, body);
    },
  };
}
