import type { Db, Tx } from '../db/client.ts';
import { enqueueOutboxRows, isQueued } from '../db/queries/outbox.ts';
import { dedupeKey, type OutboxMessage } from './messages.ts';

export interface EnqueueOptions {
  /**
   * Recorded as handled without sending anything (a quiet weekly report): the dedupe key is
   * taken, so the message is not built again, and the payload carries `quiet: true`.
   */
  quiet?: boolean;
}

/**
 * Adds messages in the caller's transaction, so they exist exactly when the change that
 * caused them commits. A message whose dedupe key is already there is skipped.
 */
export async function enqueue(
  tx: Db | Tx,
  messages: readonly OutboxMessage[],
  now: Date,
  options: EnqueueOptions = {},
): Promise<void> {
  if (messages.length === 0) return;
  await enqueueOutboxRows(
    tx,
    messages.map((message) => ({
      dedupeKey: dedupeKey(message),
      kind: message.kind,
      payload: (options.quiet ? { ...message, quiet: true } : message) as unknown as Record<string, unknown>,
      createdAt: now,
      nextAttemptAt: now,
      ...(options.quiet ? { sentAt: now } : {}),
    })),
  );
}

/** Whether this message was enqueued before (delivered or not). */
export const isEnqueued = (tx: Db | Tx, message: OutboxMessage): Promise<boolean> =>
  isQueued(tx, dedupeKey(message));
