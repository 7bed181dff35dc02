import type { CallRecord, CallSink } from '../shared/call-record.ts';
import type { Clock } from '../shared/clock.ts';

/**
 * Bounds what refusals without a verified token write to the audit log.
 *
 * Anyone who can reach the proxy port can send requests without a token (or with garbage, an
 * unknown method, a broken head), as fast as the network allows; each used to be one audit row,
 * so a flood grew the log without limit. Calls with a verified token — every forwarded call,
 * and every denial that names a grant — are never aggregated: they pass straight through.
 *
 * For the others, per window (a minute by default) and per key — client address, decision,
 * and the resource when it is one the policy names (an attacker-chosen name is not a key) —
 * the first `detailPerKey` refusals are written as they are, while the window's
 * `detailBudget` lasts; the rest are counted, and when the window ends one row stands for
 * them: the last one's fields with `aggregated: { count, firstAt, lastAt }`. Past `maxKeys`
 * keys in a window, new keys share one key per decision (address `*`). So a window writes
 * at most `detailBudget + maxKeys + (decisions)` rows whatever the flood, every refusal is
 * counted in some row, and the anomaly detectors and metrics (which get every record
 * directly) still see each one.
 */
export interface RefusalAggregatorOptions {
  clock: Clock;
  /** Default 60 s. */
  windowMs?: number;
  /** Refusals per key per window written in full. Default 10. */
  detailPerKey?: number;
  /** Refusals per window written in full, over all keys. Default 1,000. */
  detailBudget?: number;
  /** Keys per window before new ones share an overflow key. Default 1,000. */
  maxKeys?: number;
  /** Resource names the policy has now (others are not used in keys). */
  knownResource?: (name: string) => boolean;
}

export interface RefusalAggregator extends CallSink {
  /** Writes the summary rows of the current window now and starts a new one. */
  flush(): void;
  /** Flushes and stops the window timer. */
  close(): Promise<void>;
}

interface Pending {
  /** Counted, not written in full. */
  count: number;
  written: number;
  firstAt: Date;
  last: CallRecord | undefined;
  /** The shared key of a window past `maxKeys`: its row names no one address. */
  overflow: boolean;
}

export function aggregateRefusals(sink: CallSink, options: RefusalAggregatorOptions): RefusalAggregator {
  const windowMs = options.windowMs ?? 60_000;
  const detailPerKey = options.detailPerKey ?? 10;
  const detailBudget = options.detailBudget ?? 1_000;
  const maxKeys = options.maxKeys ?? 1_000;
  const knownResource = options.knownResource ?? (() => false);
  let keys = new Map<string, Pending>();
  let detailed = 0;
  let windowStart = options.clock.now().getTime();

  function flush(): void {
    const ended = keys;
    keys = new Map();
    detailed = 0;
    windowStart = options.clock.now().getTime();
    for (const pending of ended.values()) {
      if (pending.count === 0 || !pending.last) continue;
      sink.offer({
        ...pending.last,
        ...(pending.overflow ? { clientIp: '*' } : {}),
        aggregated: { count: pending.count, firstAt: pending.firstAt, lastAt: pending.last.at },
      });
    }
  }

  // Real time, not the injected clock: the window's rows must be written even when no request
  // comes to move a test clock (the clock still stamps the rows and starts windows).
  const timer = setInterval(flush, windowMs);
  timer.unref();

  return {
    offer(record) {
      if (record.grantId !== undefined || record.decision === 'allowed') return sink.offer(record);
      if (record.at.getTime() - windowStart >= windowMs) flush();
      const resource = knownResource(record.resource) ? record.resource : '';
      let key = `${record.clientIp}|${record.decision}|${resource}`;
      let pending = keys.get(key);
      if (!pending) {
        const overflow = keys.size >= maxKeys;
        if (overflow) {
          key = `*|${record.decision}|`;
          pending = keys.get(key);
        }
        if (!pending) {
          pending = { count: 0, written: 0, firstAt: record.at, last: undefined, overflow };
          keys.set(key, pending);
        }
      }
      if (pending.written < detailPerKey && detailed < detailBudget) {
        pending.written++;
        detailed++;
        return sink.offer(record);
      }
      if (pending.count === 0) pending.firstAt = record.at;
      pending.count++;
      pending.last = record;
      return true;
    },
    hasCapacity: () => sink.hasCapacity(),
    flush,
    async close() {
      clearInterval(timer);
      flush();
    },
  };
}
