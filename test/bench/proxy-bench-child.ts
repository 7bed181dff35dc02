/**
 * One server process of the proxy bench: `upstream`, `bare` (@fastify/http-proxy with
 * default options) or `jitgate` (createProxyServer with every check on). It reports its
 * port and, when asked over IPC, its own CPU time, so the bench charges each server
 * exactly the CPU it used.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import fastifyHttpProxy from '@fastify/http-proxy';
import Fastify from 'fastify';
import pino from 'pino';
import { openDatabase } from '../../src/db/client.ts';
import { parsePolicy } from '../../src/policy/loader.ts';
import { staticPolicyStore } from '../../src/policy/store.ts';
import { createActiveGrantView } from '../../src/proxy/active-grants.ts';
import { createProxyServer } from '../../src/proxy/server.ts';
import type { CallRecord, CallSink } from '../../src/shared/call-record.ts';
import { systemClock } from '../../src/shared/clock.ts';
import { createMemoryKeyStore, createVerifier } from '../../src/tokens/index.ts';

const role = process.argv[2];
const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`bench child: ${name} is not set`);
  return value;
};

/** The audit hand-off as the real appender will see it: a bounded queue drained in batches. */
function queueSink(capacity: number): CallSink {
  let queue: CallRecord[] = [];
  const timer = setInterval(() => {
    queue = [];
  }, 10);
  timer.unref();
  return {
    offer(record) {
      if (queue.length >= capacity) return false;
      queue.push(record);
      return true;
    },
    hasCapacity: () => queue.length < capacity,
  };
}

async function start(): Promise<number> {
  if (role === 'upstream') {
    const body = JSON.stringify({ ok: true, items: [1, 2, 3] });
    // The masked-JSON case: ~100 KB of customer-like records (`/items/big`).
    const big = Buffer.from(
      JSON.stringify({
        items: Array.from({ length: 800 }, (_, i) => ({
          id: i,
          name: `Customer ${i}`,
          email: `customer${i}@example.com`,
          address: { street: `${i} Long Street`, city: 'Berlin', ssn: `${100 + (i % 900)}-00-0000` },
          tags: ['a', 'b', 'c'],
        })),
      }),
    );
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const payload = req.url?.startsWith('/items/big') ? big : body;
        res.writeHead(200, {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(payload),
        });
        res.end(payload);
      });
    });
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as AddressInfo).port;
  }
  if (role === 'bare') {
    const app = Fastify();
    await app.register(fastifyHttpProxy, { upstream: env('BENCH_UPSTREAM') });
    await app.listen({ port: 0, host: '127.0.0.1' });
    return (app.server.address() as AddressInfo).port;
  }
  if (role === 'jitgate') {
    const clock = systemClock;
    const database = await openDatabase({
      databaseUrl: env('BENCH_DATABASE_URL'),
      dataDir: '.jitgate-bench',
      schemaName: env('BENCH_SCHEMA'),
      maxConnections: 4,
    });
    const keyStore = createMemoryKeyStore({ clock, configuredKey: env('BENCH_SIGNING_KEY') });
    await keyStore.load();
    const logger = pino({ level: 'warn' });
    const grants = createActiveGrantView({ database, logger });
    await grants.start();
    const app = createProxyServer({
      policy: staticPolicyStore(
        parsePolicy(env('BENCH_POLICY'), { file: 'bench.yml', env: { BENCH_SECRET: 'bench-secret' } }),
      ),
      grants,
      verifier: createVerifier(keyStore, { issuer: env('BENCH_ISSUER'), clock }),
      keyStore,
      clock,
      sink: queueSink(10_000),
      logger,
    });
    await app.listen({ port: Number(process.env.BENCH_PORT ?? 0), host: '127.0.0.1' });
    return (app.server.address() as AddressInfo).port;
  }
  throw new Error(`bench child: unknown role ${role}`);
}

process.on('message', (message: unknown) => {
  if (message === 'cpu') {
    const { user, system } = process.cpuUsage();
    process.send?.({ type: 'cpu', micros: user + system });
  }
});
process.on('disconnect', () => process.exit(0));

start().then(
  (port) => process.send?.({ type: 'ready', port }),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
