import type { Logger } from 'pino';

/**
 * postgres.js 3.4.x can throw from a `setImmediate` after a connection closed under it
 * (`socket.write` on a null socket in `nextWrite`; upstream porsager/postgres#1154, #1208,
 * fix not released). Thrown there, no try/catch can see it and the process dies — a
 * database blip would take every proxy down at once. By then the connection's queries
 * have already been rejected with CONNECTION_CLOSED, so the write is moot and skipping it
 * is safe. Only that exact fault is survived; anything else still ends the process.
 */
export function isPostgresNullSocketWrite(error: unknown): boolean {
  return (
    error instanceof TypeError &&
    /\(reading 'write'\)/.test(error.message) &&
    typeof error.stack === 'string' &&
    /nextWrite[^\n]*postgres[\\/]src[\\/]connection\.js/.test(error.stack)
  );
}

export function installPostgresCrashGuard(logger: Pick<Logger, 'warn' | 'fatal'>): () => void {
  const onUncaught = (error: Error) => {
    if (isPostgresNullSocketWrite(error)) {
      logger.warn('a PostgreSQL connection closed mid-write; its queries were already failed and retried');
      return;
    }
    logger.fatal({ err: error }, 'uncaught exception; exiting');
    process.exit(1);
  };
  process.on('uncaughtException', onUncaught);
  return () => process.off('uncaughtException', onUncaught);
}
