import { closeSync, openSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyRequest } from 'fastify';
import { Redis } from 'ioredis';
import postgres from 'postgres';

/**
 * The candidates issue 20 weighs for "a call is durably recorded before the upstream sees it",
 * each as a preHandler on the bare proxy so the bench compares only their own cost:
 * `journal` a write(2) of one line to a local append-only file (what src/audit/intent-journal.ts
 * does), `postgres` one INSERT awaited per call, `redis` one RPUSH awaited per call.
 */
export async function intentCandidate(
  kind: string,
): Promise<(request: FastifyRequest) => Promise<void> | void> {
  const line = (request: FastifyRequest) =>
    JSON.stringify({ at: Date.now(), requestId: request.id, method: request.method, path: request.url });
  if (kind === 'journal') {
    const path = join(tmpdir(), `jitgate-bench-intents-${process.pid}.jnl`);
    const fd = openSync(path, 'a');
    process.on('exit', () => closeSync(fd));
    // Async like the others: fastify waits for a hook's promise, or else for a `done` callback.
    return async (request) => {
      writeSync(fd, `${line(request)}\n`);
    };
  }
  if (kind === 'postgres') {
    const url = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
    const sql = postgres(url, { max: 8, onnotice: () => {} });
    const table = `bench_intents_${process.pid}`;
    // A logged table with the server's synchronous_commit: durable on commit, as an audit row must be.
    await sql.unsafe(`create table if not exists ${table} (line jsonb)`);
    process.on('SIGTERM', () => {
      void sql.unsafe(`drop table if exists ${table}`).finally(() => process.exit(0));
    });
    return async (request) => {
      await sql.unsafe(`insert into ${table} (line) values ($1)`, [line(request)]);
    };
  }
  if (kind === 'redis') {
    const redis = new Redis(process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379');
    const key = `jitgate:bench:intents:${process.pid}`;
    process.on('SIGTERM', () => {
      void redis.del(key).finally(() => process.exit(0));
    });
    return async (request) => {
      await redis.rpush(key, line(request));
    };
  }
  throw new Error(`unknown intent candidate ${kind}`);
}
