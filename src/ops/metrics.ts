import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { CallRecord, CallSink } from '../shared/call-record.ts';

/** Every Prometheus metric jitgate exports, in one registry built by the composition root. */
export interface Metrics {
  registry: Registry;
  proxyCalls: Counter<'resource' | 'decision'>;
  proxyLatency: Histogram<'resource'>;
  slackApiErrors: Counter<'method'>;
  /** Sampled at scrape time from the sources the roles register. */
  addGauge(name: string, help: string, read: () => Promise<number> | number): void;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service: 'jitgate' });
  // Memory, CPU, event-loop delay, GC: what an operator checks first when the proxy slows.
  collectDefaultMetrics({ register: registry });
  const proxyCalls = new Counter({
    name: 'jitgate_proxy_calls_total',
    help: 'Proxied calls by resource and decision (allowed or the denial code)',
    labelNames: ['resource', 'decision'] as const,
    registers: [registry],
  });
  const proxyLatency = new Histogram({
    name: 'jitgate_proxy_latency_seconds',
    help: 'Time from request to response at the proxy, including the upstream',
    labelNames: ['resource'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const slackApiErrors = new Counter({
    name: 'jitgate_slack_api_errors_total',
    help: 'Slack Web API calls that failed after retries, by method',
    labelNames: ['method'] as const,
    registers: [registry],
  });
  return {
    registry,
    proxyCalls,
    proxyLatency,
    slackApiErrors,
    addGauge(name, help, read) {
      new Gauge({
        name,
        help,
        registers: [registry],
        async collect() {
          this.set(await read());
        },
      });
    },
  };
}

/** Counts calls as a CallSink beside audit and anomaly detection: never full, never slow. */
export function metricsCallSink(metrics: Metrics): CallSink {
  return {
    offer(record: CallRecord) {
      metrics.proxyCalls.inc({ resource: record.resource, decision: record.decision });
      metrics.proxyLatency.observe({ resource: record.resource }, record.latencyMs / 1000);
      return true;
    },
    hasCapacity: () => true,
  };
}
