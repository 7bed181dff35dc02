/**
 * What the proxy knows about one call, handed off the hot path to the audit appender
 * and the anomaly detectors. Never holds the token or the upstream credential.
 */
export interface CallRecord {
  at: Date;
  requestId: string;
  resource: string;
  /** Undefined when the call was refused before a grant was identified. */
  grantId: string | undefined;
  userId: string | undefined;
  scope: string | undefined;
  method: string;
  /** The normalised path that was checked (and forwarded, if allowed). */
  path: string;
  clientIp: string;
  /**
   * `allowed` (forwarded), the denial code sent to the client (`out_of_scope`, `token_expired`,
   * …), or `client_closed` when the client left before the proxy refused or forwarded the call.
   */
  decision: string;
  /** The status the client was sent; 499 when it left before any answer was written. */
  status: number;
  responseBytes: number;
  latencyMs: number;
  /**
   * Only when the resource's policy has `capture: { bodies: true }`: the start of each body,
   * at most `max_bytes`, already masked with the scope's rules. Request headers never are.
   */
  capture?: { request: CapturedBody | undefined; response: CapturedBody | undefined };
  /** Set when the grant has a quota: the appender adds this call to the grant's totals. */
  quotaCounted?: boolean;
  /**
   * Set when the answer was cut off: the client left (`client`) or the upstream's body broke
   * off (`upstream`). Unset for an answer written to the end.
   */
  aborted?: 'client' | 'upstream';
  /**
   * Set on the one record that stands for refusals of the same kind from the same client in a
   * window (src/proxy/refusal-aggregator.ts): the other fields are those of the last of them.
   */
  aggregated?: { count: number; firstAt: Date; lastAt: Date };
}

export interface CapturedBody {
  /** UTF-8 text, or base64 when the body is not text. */
  text: string;
  encoding: 'utf8' | 'base64';
  /** The body's full size as it passed through (the text holds at most max_bytes of it). */
  bytes: number;
  truncated: boolean;
  /** Why no text was kept (e.g. a non-JSON body under `mask_required`). */
  omitted?: string;
}

/** Receives call records. `offer` must not block; false means the sink is full and the proxy fails closed. */
export interface CallSink {
  offer(record: CallRecord): boolean;
  /** Whether a new call could be recorded now (checked before forwarding). */
  hasCapacity(): boolean;
}

/** Fans one record out to several sinks; full if any sink that must not lose records is full. */
export function fanOut(sinks: readonly CallSink[]): CallSink {
  return {
    offer: (record) => sinks.map((s) => s.offer(record)).every(Boolean),
    hasCapacity: () => sinks.every((s) => s.hasCapacity()),
  };
}
