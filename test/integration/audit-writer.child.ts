/**
 * One "proxy process" for the two-process chain test: its own connection pool and its
 * own appender, writing COUNT call records into SCHEMA. Run with `node --import tsx`.
 */
import { randomUUID } from 'node:crypto';
import { createAuditAppender } from '../../src/audit/call-writer.ts';
import { openDatabase } from '../../src/db/client.ts';

const url = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const schemaName = process.env.AUDIT_CHILD_SCHEMA ?? '';
const count = Number(process.env.AUDIT_CHILD_COUNT ?? '5000');
const writer = process.env.AUDIT_CHILD_WRITER ?? 'w';

const database = await openDatabase({
  databaseUrl: url,
  dataDir: '.jitgate-test',
  schemaName,
  maxConnections: 2,
});
// Small batches and a short interval so the two writers interleave many times.
const appender = createAuditAppender({ db: database.db, batchSize: 97, flushIntervalMs: 1 });
const grantId = randomUUID();
for (let i = 0; i < count; i++) {
  while (!appender.hasCapacity()) await new Promise((resolve) => setImmediate(resolve));
  appender.offer({
    at: new Date(),
    requestId: `${writer}-${i}`,
    resource: 'billing-api',
    grantId,
    userId: 'U1',
    scope: 'read',
    method: 'GET',
    path: `/invoices/${i}`,
    clientIp: '10.0.0.1',
    decision: i % 10 === 0 ? 'out_of_scope' : 'allowed',
    status: i % 10 === 0 ? 403 : 200,
    responseBytes: i,
    latencyMs: 1,
  });
  if (i % 250 === 0) await new Promise((resolve) => setImmediate(resolve));
}
await appender.close();
await database.close();
process.stdout.write(`${writer} wrote ${count}\n`);
