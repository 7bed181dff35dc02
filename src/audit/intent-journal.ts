import { createHash } from 'node:crypto';
import { accessSync, closeSync, constants, fdatasync, mkdirSync, openSync, unlink, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { CallIntent, CallIntentJournal, IntentMark } from '../shared/call-intent.ts';

/**
 * The proxy's intent journal: one line per forwarded call, written with write(2) before the
 * upstream may see the call, so a call's "forwarded" fact outlives a kill -9 of the process
 * (the line is in the OS page cache the moment write returns) and, once the batch's fdatasync
 * ran (every `syncIntervalMs`), a crash of the machine too. The calls of one event-loop turn
 * share one write, made after the turn's I/O callbacks; each is forwarded once it returned.
 *
 * The file is split into segments. A segment is sealed after `segmentMs` or `segmentBytes`; a
 * sealed segment whose every call has its record in the audit writer's queue waits for that
 * writer's flush (every record offered before it is committed) and is then deleted. So what is
 * left in the directory after a crash is at most the last few segments, and replay at the next
 * start (src/audit/intent-replay.ts) writes an audit row for each intent there whose call has
 * none: "forwarded, result unknown".
 *
 * Each segment starts with a header naming its host and process, so a process sharing the
 * directory never replays a live neighbour's calls.
 */
export interface IntentJournalOptions {
  dir: string;
  /** Names the audit log the intents belong to (intentLogId); replay skips other logs' segments. */
  log: string;
  /** Resolves once every record the audit writer accepted before the call is committed. */
  flushCommitted: () => Promise<void>;
  logger: Pick<Logger, 'warn' | 'error'>;
  syncIntervalMs?: number;
  segmentMs?: number;
  segmentBytes?: number;
}

export interface IntentJournal extends CallIntentJournal {
  /**
   * Seals the last segment. With `committed` (the audit writer closed with every record
   * written) segments without an unrecorded call are deleted; the rest are synced and kept for
   * replay. Resolves with how many segments are kept.
   */
  close(committed: boolean): Promise<number>;
  stats(): { segments: number; unrecorded: number };
}

export const INTENT_SEGMENT_SUFFIX = '.jnl';

/** The fields of an intent line, in order (src/audit/intent-replay.ts reads them back). */
export const INTENT_FIELDS = [
  'at',
  'requestId',
  'resource',
  'grantId',
  'userId',
  'scope',
  'method',
  'path',
  'clientIp',
] as const;

const NEEDS_JSON = /[\t\n\r\\]/;

/**
 * One line per intent: tab-separated (a template string costs a fraction of JSON.stringify on
 * the hot path), or a JSON object, starting with `{`, when a field holds a tab, line break or
 * backslash.
 */
function intentLine(intent: CallIntent): string {
  const line = `${intent.at.getTime()}\t${intent.requestId}\t${intent.resource}\t${intent.grantId}\t${intent.userId}\t${intent.scope}\t${intent.method}\t${intent.path}\t${intent.clientIp}`;
  if (!NEEDS_JSON.test(line)) return `${line}\n`;
  return `${JSON.stringify({ ...intent, at: intent.at.getTime() })}\n`;
}

/**
 * Which audit log a journal's intents go to: the database's address (never its credentials) and
 * schema, hashed. A directory reused with another database is then never replayed into it.
 */
export function intentLogId(databaseUrl: string | undefined, dataDir: string, schema: string): string {
  let where = `embedded:${resolve(dataDir)}`;
  if (databaseUrl) {
    const url = new URL(databaseUrl);
    where = `${url.hostname}:${url.port}${url.pathname}`;
  }
  return createHash('sha256').update(`${where}#${schema}`).digest('hex').slice(0, 16);
}

/** Why `dir` cannot hold the journal (created if missing), or undefined when it can. */
export function intentDirProblem(dir: string): string | undefined {
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
    return undefined;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? String(error);
  }
}

interface SegmentHeader {
  journal: 'jitgate-intents';
  version: 1;
  host: string;
  pid: number;
  log: string;
}

class Segment implements IntentMark {
  readonly segment = this;
  /** Intents written whose record has not been accepted by the audit writer yet. */
  unrecorded = 0;
  bytes = 0;
  sealed = false;
  /** Waiting for the audit writer's flush before it is deleted. */
  retiring = false;
  dirty = false;
  fdOpen = true;
  constructor(
    readonly path: string,
    readonly fd: number,
  ) {}
}

export function createIntentJournal(options: IntentJournalOptions): IntentJournal {
  const syncIntervalMs = options.syncIntervalMs ?? 100;
  const segmentMs = options.segmentMs ?? 1000;
  const segmentBytes = options.segmentBytes ?? 8 * 1024 * 1024;
  const { dir, logger } = options;
  mkdirSync(dir, { recursive: true });
  const header: SegmentHeader = {
    journal: 'jitgate-intents',
    version: 1,
    host: hostname(),
    pid: process.pid,
    log: options.log,
  };
  const headerLine = `${JSON.stringify(header)}\n`;
  const prefix = `${process.pid}-${Date.now()}-`;
  let sequence = 0;
  const live = new Set<Segment>();
  let current: Segment | undefined;
  let closed = false;

  function openSegment(): Segment {
    sequence += 1;
    const path = join(dir, `${prefix}${String(sequence).padStart(6, '0')}${INTENT_SEGMENT_SUFFIX}`);
    const fd = openSync(path, 'a', 0o600);
    const segment = new Segment(path, fd);
    writeSync(fd, headerLine);
    live.add(segment);
    return segment;
  }

  function closeFd(segment: Segment): void {
    if (!segment.fdOpen) return;
    segment.fdOpen = false;
    try {
      closeSync(segment.fd);
    } catch (error) {
      logger.warn({ err: error, file: segment.path }, 'could not close an intent segment');
    }
  }

  /** A sealed segment with every record accepted: deleted once those records are committed. */
  function retireWhenDone(segment: Segment): void {
    if (!segment.sealed || segment.unrecorded > 0 || segment.retiring || closed) return;
    segment.retiring = true;
    options
      .flushCommitted()
      .then(() => {
        live.delete(segment);
        closeFd(segment);
        unlink(segment.path, (error) => {
          if (error && error.code !== 'ENOENT')
            logger.warn({ err: error, file: segment.path }, 'could not delete an intent segment');
        });
      })
      .catch((error: unknown) => {
        // Kept on disk: the next start replays it and finds the rows that were written.
        live.delete(segment);
        closeFd(segment);
        logger.warn({ err: error, file: segment.path }, 'audit flush failed; intent segment kept');
      });
  }

  function seal(): void {
    const segment = current;
    if (!segment) return;
    current = undefined;
    segment.sealed = true;
    syncSegment(segment);
    retireWhenDone(segment);
  }

  function syncSegment(segment: Segment): void {
    if (!segment.dirty || !segment.fdOpen) return;
    segment.dirty = false;
    fdatasync(segment.fd, (error) => {
      if (error && segment.fdOpen) logger.warn({ err: error, file: segment.path }, 'intent fdatasync failed');
    });
  }

  // The intents of one event-loop turn, written together: one write(2) for all of them, after
  // the turn's I/O callbacks, instead of one per call.
  let lines: string[] = [];
  let waiting: ((mark: IntentMark | undefined) => void)[] = [];
  let scheduled = false;

  function writeBatch(): void {
    scheduled = false;
    const text = lines.join('');
    const thens = waiting;
    lines = [];
    waiting = [];
    if (thens.length === 0) return;
    let segment: Segment | undefined;
    try {
      current ??= openSegment();
      segment = current;
      const buffer = Buffer.from(text);
      let offset = 0;
      while (offset < buffer.length) offset += writeSync(segment.fd, buffer, offset);
      segment.bytes += buffer.length;
      segment.dirty = true;
      segment.unrecorded += thens.length;
    } catch (error) {
      // No intent, no forward: each caller refuses its call (fail closed).
      logger.error({ err: error, dir }, 'could not write call intents');
      segment = undefined;
    }
    for (const then of thens) then(segment);
    if (segment && segment.bytes >= segmentBytes) seal();
  }

  const syncTimer = setInterval(() => {
    if (current) syncSegment(current);
  }, syncIntervalMs);
  syncTimer.unref();
  const sealTimer = setInterval(() => {
    if (current && current.bytes > 0) seal();
  }, segmentMs);
  sealTimer.unref();

  return {
    forwarding(intent: CallIntent, then: (mark: IntentMark | undefined) => void): void {
      if (closed) {
        then(undefined);
        return;
      }
      lines.push(intentLine(intent));
      waiting.push(then);
      if (!scheduled) {
        scheduled = true;
        setImmediate(writeBatch);
      }
    },
    recorded(mark: IntentMark): void {
      const segment = mark.segment as Segment;
      segment.unrecorded -= 1;
      retireWhenDone(segment);
    },
    async close(committed: boolean): Promise<number> {
      // Intents queued this turn are written (their calls go on; the proxy has stopped taking new ones).
      if (scheduled) writeBatch();
      clearInterval(syncTimer);
      clearInterval(sealTimer);
      if (current) current.sealed = true;
      current = undefined;
      closed = true;
      let kept = 0;
      const deletions: Promise<void>[] = [];
      for (const segment of live) {
        if (committed && segment.unrecorded === 0) {
          closeFd(segment);
          deletions.push(
            new Promise((resolve) => {
              unlink(segment.path, () => resolve());
            }),
          );
          continue;
        }
        kept += 1;
        if (segment.fdOpen) {
          await new Promise<void>((resolve) => {
            fdatasync(segment.fd, () => resolve());
          });
        }
        closeFd(segment);
      }
      live.clear();
      await Promise.all(deletions);
      return kept;
    },
    stats: () => {
      let unrecorded = 0;
      for (const segment of live) unrecorded += segment.unrecorded;
      return { segments: live.size, unrecorded };
    },
  };
}
