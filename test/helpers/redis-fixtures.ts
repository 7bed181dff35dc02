import { randomBytes } from 'node:crypto';
import { Queue } from 'bullmq';
import { and, eq } from 'drizzle-orm';
import { type AccessService, createAccessService, staticDirectory } from '../../src/access/index.ts';
import { auditEvents, type Grant, outbox } from '../../src/db/schema/index.ts';
import type { OutboxMessage } from '../../src/outbox/index.ts';
import { staticPolicyStore } from '../../src/policy/index.ts';
import {
  createSchedulerStore,
  type SchedulerLogger,
  type SchedulerStore,
} from '../../src/scheduler/index.ts';
import { type Clock, systemClock } from '../../src/shared/clock.ts';
import { slackUser } from './actors.ts';
import { openTestDatabase } from './db.ts';
import { TEST_POLICY_YAML, testPolicy } from './policy.ts';

/** Poll until `check` returns a value (not undefined/false), or fail after `timeoutMs`. */
export async function waitFor<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  {
    timeoutMs = 20_000,
    intervalMs = 50,
    what = 'condition',
  }: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`, { cause: lastError });
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export const randomPrefix = (): string => `jgtest-${randomBytes(6).toString('hex')}`;

/** Remove every key a test queue made on the shared Redis (only under its own prefix). */
export async function obliterateQueue(redisUrl: string, prefix: string, queueName: string): Promise<void> {
  const queue = new Queue(queueName, { prefix, connection: { url: redisUrl, maxRetriesPerRequest: 1 } });
  queue.on('error', () => {});
  try {
    await queue.obliterate({ force: true });
  } catch {
    // Best effort: a private server may already be gone.
  } finally {
    await queue.close().catch(() => {});
  }
}

/** A logger that keeps what it was told, for asserting on warnings. */
export function recordingLogger(): SchedulerLogger & { lines: { level: string; msg: string | undefined }[] } {
  const lines: { level: string; msg: string | undefined }[] = [];
  return {
    lines,
    info: (_obj, msg) => lines.push({ level: 'info', msg }),
    warn: (_obj, msg) => lines.push({ level: 'warn', msg }),
    error: (_obj, msg) => lines.push({ level: 'error', msg }),
  };
}

export interface SchedulerWorld {
  access: AccessService;
  store: SchedulerStore;
  policy: ReturnType<typeof staticPolicyStore>;
  /** Where the access service's onCommitted goes; tests point it at a scheduler. */
  setListener(listener: ((events: readonly OutboxMessage[]) => void) | undefined): void;
  /** A 2-second (or `seconds`) auto-approved grant on billing-api. */
  grant(seconds?: number): Promise<Grant>;
  outboxCount(dedupeKey: string): Promise<number>;
  auditCount(kind: string, grantId?: string, requestId?: string): Promise<number>;
  drop(): Promise<void>;
}

/** A schema of its own, the access service over it (on `clock`), and a policy tweaked by `yamlEdit`. */
export async function openSchedulerWorld(
  yamlEdit: (yaml: string) => string = (y) => y,
  clock: Clock = systemClock,
): Promise<SchedulerWorld> {
  const database = await openTestDatabase('sched');
  const policy = staticPolicyStore(testPolicy(yamlEdit(TEST_POLICY_YAML)));
  let listener: ((events: readonly OutboxMessage[]) => void) | undefined;
  const access = createAccessService({
    db: database.db,
    policy,
    clock,
    directory: staticDirectory({}),
    grantChannel: database.channel('grants'),
    onCommitted: (events) => listener?.(events),
  });
  return {
    access,
    store: createSchedulerStore(database.db),
    policy,
    setListener: (l) => {
      listener = l;
    },
    async grant(seconds = 2) {
      const result = await access.createRequest({
        actor: slackUser('UCONTRACTOR'),
        resource: 'billing-api',
        scope: 'read',
        durationSeconds: seconds,
        reason: 'scheduler test',
      });
      if (!result.ok || !result.value.grant) throw new Error(`no grant: ${JSON.stringify(result)}`);
      return result.value.grant;
    },
    async outboxCount(key) {
      const rows = await database.db.select({ id: outbox.id }).from(outbox).where(eq(outbox.dedupeKey, key));
      return rows.length;
    },
    async auditCount(kind, grantId, requestId) {
      const rows = await database.db
        .select({ seq: auditEvents.seq })
        .from(auditEvents)
        .where(
          and(
            eq(auditEvents.kind, kind),
            grantId ? eq(auditEvents.grantId, grantId) : undefined,
            requestId ? eq(auditEvents.requestId, requestId) : undefined,
          ),
        );
      return rows.length;
    },
    drop: () => database.drop(),
  };
}
