import { mkdirSync, readdirSync, readFileSync, renameSync, unlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Db, Tx } from '../db/client.ts';
import { callRowKeysBetween } from '../db/queries/audit-events/reads.ts';
import { grantsWithQuota } from '../db/queries/grants/proxy-use.ts';
import type { CallIntent } from '../shared/call-intent.ts';
import { isUuid } from '../shared/ids.ts';
import type { SettleQuotaUse } from './call-writer.ts';
import { type AuditEventInput, appendAuditEvents } from './chain-append.ts';
import { INTENT_FIELDS, INTENT_SEGMENT_SUFFIX } from './intent-journal.ts';

/** A claimed segment: renamed so a second process starting at once cannot replay it too. */
const CLAIMED = '.replaying-';

export interface IntentReplayResult {
  segments: number;
  intents: number;
  /** Intents whose call had no audit row: each got one now. */
  written: number;
}

/**
 * Runs at a proxy's start, before it listens: every intent left in `dir` by a process that is
 * gone (killed, crashed, or stopped without writing its records) whose call has no audit row
 * gets one — `proxy.call`, decision `allowed`, `result: "unknown"` — appended to the chain as
 * any other row. Segments of a live process (another proxy sharing the directory) are left
 * alone; so are segments of another host, whose liveness cannot be told from here.
 *
 * Each such call also counts toward its grant's quota, as the appender would have counted it
 * (`settleQuota`, in the same transaction): a proxy killed mid-burst must not hand out calls
 * beyond the quota. Response bytes are not known, so only the call itself is counted.
 */
export async function replayIntentJournal(options: {
  dir: string;
  /** This process's audit log (intentLogId): segments written for another are left alone. */
  log: string;
  db: Db;
  logger: Pick<Logger, 'info' | 'warn'>;
  /** The access action that adds calls to grants' quotas (the appender's); unset: no quota is counted. */
  settleQuota?: SettleQuotaUse;
}): Promise<IntentReplayResult> {
  const { dir, db, logger } = options;
  mkdirSync(dir, { recursive: true });
  const host = hostname();
  const claimed: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (name.endsWith(INTENT_SEGMENT_SUFFIX)) {
      const owner = readHeader(path);
      if (!owner || owner.host !== host || owner.log !== options.log) continue;
      if (owner.pid !== process.pid && isAlive(owner.pid)) continue;
    } else if (name.includes(CLAIMED)) {
      // A replay that died half-way; its claimer is gone.
      const claimer = Number(name.slice(name.lastIndexOf('-') + 1));
      if (!Number.isInteger(claimer) || (claimer !== process.pid && isAlive(claimer))) continue;
    } else continue;
    const claim = `${path.split(CLAIMED)[0]}${CLAIMED}${process.pid}`;
    try {
      if (claim !== path) renameSync(path, claim);
      claimed.push(claim);
    } catch {
      // Another process claimed it first.
    }
  }
  const intents = claimed.flatMap(readIntents);
  let written = 0;
  if (intents.length > 0) {
    const times = intents.map((i) => i.at.getTime());
    const since = new Date(Math.min(...times));
    const until = new Date(Math.max(...times));
    const recorded = new Set(
      (await callRowKeysBetween(db, since, until)).map((row) => `${row.requestId}|${row.at.getTime()}`),
    );
    const missing = intents.filter((i) => !recorded.has(`${i.requestId}|${i.at.getTime()}`));
    if (missing.length > 0) {
      await db.transaction(async (tx) => {
        // Grant rows before the chain's lock, in the order the appender and access take them.
        const quota = options.settleQuota
          ? await options.settleQuota(tx, await quotaUseOfIntents(tx, missing))
          : { audit: [] };
        await appendAuditEvents(tx, [...missing.map(unknownResultEvent), ...quota.audit]);
        written = missing.length;
      });
    }
  }
  for (const path of claimed) unlinkSync(path);
  if (claimed.length > 0) {
    logger.info(
      { segments: claimed.length, intents: intents.length, written },
      'intent journal replayed: calls forwarded by a process that died are audited',
    );
  }
  return { segments: claimed.length, intents: intents.length, written };
}

/** Each quota grant's share of the replayed calls: the live path counts only grants with a quota. */
async function quotaUseOfIntents(
  db: Db | Tx,
  intents: readonly CallIntent[],
): Promise<Parameters<SettleQuotaUse>[1]> {
  const use = new Map<string, { grantId: string; requests: number; bytes: number; at: Date }>();
  for (const intent of intents) {
    if (!isUuid(intent.grantId)) continue;
    const id = intent.grantId.toLowerCase();
    const u = use.get(id);
    if (!u) use.set(id, { grantId: id, requests: 1, bytes: 0, at: intent.at });
    else {
      u.requests += 1;
      if (intent.at > u.at) u.at = intent.at;
    }
  }
  const withQuota = new Set(await grantsWithQuota(db, [...use.keys()]));
  return [...use.values()].filter((u) => withQuota.has(u.grantId));
}

/** The audit row of a call whose process died before its result was recorded. */
function unknownResultEvent(intent: CallIntent): AuditEventInput {
  return {
    kind: 'proxy.call',
    actor: { type: 'slack', userId: intent.userId },
    at: intent.at,
    resource: intent.resource,
    grantId: isUuid(intent.grantId) ? intent.grantId.toLowerCase() : null,
    data: {
      method: intent.method,
      path: intent.path,
      clientIp: intent.clientIp,
      requestId: intent.requestId,
      decision: 'allowed',
      scope: intent.scope,
      userId: intent.userId,
      result: 'unknown',
      note: 'forwarded, result unknown: the proxy process ended before the call was recorded',
    },
  };
}

function fieldsOf(line: string): Record<string, unknown> | undefined {
  const parts = line.split('\t');
  if (parts.length !== INTENT_FIELDS.length) return undefined;
  const fields: Record<string, unknown> = {};
  INTENT_FIELDS.forEach((name, i) => {
    fields[name] = name === 'at' ? Number(parts[i]) : parts[i];
  });
  return fields;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readHeader(path: string): { host: string; pid: number; log: unknown } | undefined {
  const text = readFileSync(path, 'utf8');
  const end = text.indexOf('\n');
  if (end === -1) return undefined;
  try {
    const header = JSON.parse(text.slice(0, end)) as {
      journal?: unknown;
      host?: unknown;
      pid?: unknown;
      log?: unknown;
    };
    if (
      header.journal !== 'jitgate-intents' ||
      typeof header.host !== 'string' ||
      typeof header.pid !== 'number'
    )
      return undefined;
    return { host: header.host, pid: header.pid, log: header.log };
  } catch {
    return undefined;
  }
}

function readIntents(path: string): CallIntent[] {
  const lines = readFileSync(path, 'utf8').split('\n');
  const intents: CallIntent[] = [];
  // The first line is the header; a last line without its newline was cut by the crash.
  for (const line of lines.slice(1, -1)) {
    try {
      const raw = line.startsWith('{') ? (JSON.parse(line) as Record<string, unknown>) : fieldsOf(line);
      if (!raw || typeof raw.at !== 'number' || !Number.isFinite(raw.at) || typeof raw.requestId !== 'string')
        continue;
      intents.push({
        at: new Date(raw.at),
        requestId: raw.requestId,
        resource: String(raw.resource ?? ''),
        grantId: String(raw.grantId ?? ''),
        userId: String(raw.userId ?? ''),
        scope: String(raw.scope ?? ''),
        method: String(raw.method ?? ''),
        path: String(raw.path ?? ''),
        clientIp: String(raw.clientIp ?? ''),
      });
    } catch {
      // A torn line (the machine crashed mid-write): nothing to replay from it.
    }
  }
  return intents;
}
