import { type Logger, pino } from 'pino';
import type { LogLevel } from '../config.ts';

export type { Logger };

/**
 * Paths pino blanks out wherever they appear in a log line. Tokens, credentials and
 * cookies must never reach logs (invariant 3), whichever module logs a request or error.
 */
const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  '*.token',
  '*.botToken',
  '*.appToken',
  '*.signingSecret',
  '*.signingKey',
  '*.masterKey',
  '*.credential',
  '*.privateJwk',
  'token',
  'credential',
];

export function createLogger(level: LogLevel, destination?: NodeJS.WritableStream): Logger {
  const options = {
    level,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    base: { service: 'jitgate' },
  };
  return destination ? pino(options, destination as pino.DestinationStream) : pino(options);
}
