import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { z } from 'zod';
import { parseDuration } from './policy/duration.ts';
import { parseConfiguredKey, SigningKeyConfigError } from './tokens/keys.ts';

/**
 * The only module that reads `process.env`. Everything else receives a `Config`,
 * so a test builds its own without touching the environment.
 */

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const port = (fallback: number) =>
  z.coerce
    .number({ error: 'expects a TCP port number' })
    .int('expects a whole number')
    .min(0, 'expects a port from 0 to 65535')
    .max(65535, 'expects a port from 0 to 65535')
    .default(fallback);

const optionalText = z
  .string()
  .optional()
  .transform((value) => (value === undefined || value.trim() === '' ? undefined : value));

const urlWith = (protocols: readonly string[], what: string) =>
  optionalText.refine(
    (value) => {
      if (value === undefined) return true;
      try {
        return protocols.includes(new URL(value).protocol);
      } catch {
        return false;
      }
    },
    { message: `expects ${what}` },
  );

const envSchema = z.object({
  DATABASE_URL: urlWith(
    ['postgres:', 'postgresql:'],
    'a postgres:// connection URL (unset: embedded database)',
  ),
  JITGATE_DATA_DIR: optionalText,
  REDIS_URL: urlWith(['redis:', 'rediss:'], 'a redis:// URL (unset: in-process scheduler)'),
  SLACK_BOT_TOKEN: optionalText.refine((v) => v === undefined || v.startsWith('xoxb-'), {
    message: 'expects a bot token starting with xoxb-',
  }),
  SLACK_SIGNING_SECRET: optionalText,
  SLACK_APP_TOKEN: optionalText.refine((v) => v === undefined || v.startsWith('xapp-'), {
    message: 'expects an app-level token starting with xapp-',
  }),
  SLACK_API_URL: urlWith(
    ['http:', 'https:'],
    'an http(s) URL ending in a slash, like https://slack.com/api/',
  ).refine((v) => v === undefined || v.endsWith('/'), {
    message: 'expects a URL ending in a slash, like https://slack.com/api/',
  }),
  JITGATE_POLICY: optionalText,
  // Checked here so a bad key stops start-up with the other configuration problems, before
  // any database work.
  JITGATE_SIGNING_KEY: optionalText.superRefine((value, ctx) => {
    if (value === undefined) return;
    try {
      parseConfiguredKey(value);
    } catch (error) {
      if (!(error instanceof SigningKeyConfigError)) throw error;
      ctx.addIssue({ code: 'custom', message: error.detail });
    }
  }),
  JITGATE_MASTER_KEY: optionalText.refine((v) => v === undefined || v.length >= 16, {
    message: 'expects at least 16 characters (64 hex characters or base64 of 32 bytes is best)',
  }),
  JITGATE_PUBLIC_URL: urlWith(['http:', 'https:'], 'the http(s) URL where clients reach the proxy'),
  PORT: port(3000),
  PROXY_PORT: port(8080),
  HOST: z.string().default('0.0.0.0'),
  // The admin listener (/healthz, /readyz with detail, /metrics): loopback unless told, so the
  // port that must be public for Slack's HTTP mode does not expose readiness detail or metrics.
  ADMIN_PORT: port(9090),
  ADMIN_HOST: optionalText.refine((v) => v === undefined || !/\s/.test(v), {
    message: 'expects an interface address like 127.0.0.1 (the default) or 0.0.0.0',
  }),
  ADMIN_TOKEN: optionalText.refine((v) => v === undefined || (v.length >= 16 && !/\s/.test(v)), {
    message: 'expects a bearer token of at least 16 characters without spaces',
  }),
  LOG_LEVEL: z.enum(LOG_LEVELS, { error: `expects one of ${LOG_LEVELS.join(', ')}` }).default('info'),
  // Paths of PEM files. Each pair is all-or-nothing; loadConfig refuses a half-configured one.
  PROXY_TLS_CERT: optionalText,
  PROXY_TLS_KEY: optionalText,
  TLS_CERT: optionalText,
  TLS_KEY: optionalText,
  JITGATE_OFFBOARDING_RECHECK: optionalText.refine(
    (v) => v === undefined || v === 'off' || parseDuration(v) !== undefined,
    { message: 'expects a duration like 15m or 1h, or off' },
  ),
});

export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * A listener's certificate and key files. The variable names travel with the paths so every
 * later complaint about the files (unreadable at start, bad on reload) names what to fix.
 */
export interface TlsFiles {
  certFile: string;
  keyFile: string;
  certVariable: string;
  keyVariable: string;
}

export interface Config {
  /** postgres:// URL; undefined means the embedded database in `dataDir`. */
  databaseUrl: string | undefined;
  /** Where embedded mode keeps its database. */
  dataDir: string;
  /** redis:// URL; undefined means the in-process scheduler (one instance only). */
  redisUrl: string | undefined;
  slack: {
    botToken: string | undefined;
    signingSecret: string | undefined;
    appToken: string | undefined;
    apiUrl: string | undefined;
  };
  policyPath: string;
  /** A private Ed25519 JWK (JSON); unset: keys are generated once and kept in the database. */
  signingKey: string | undefined;
  /** Encrypts the stored private keys; unset: they are stored unencrypted (never logged). */
  masterKey: string | undefined;
  /** `iss` of grant tokens. */
  issuer: string;
  /** The environment, for `${VAR}` references in the policy file's credentials. */
  environment: Readonly<NodeJS.ProcessEnv>;
  /** Base URL printed in DMs and curl examples. */
  publicProxyUrl: string;
  host: string;
  port: number;
  proxyPort: number;
  /** The admin listener: `/healthz`, `/readyz` (with each check), `/metrics`. */
  admin: {
    host: string;
    port: number;
    /** When set, every admin request must carry `Authorization: Bearer <token>`. */
    token: string | undefined;
  };
  /** PROXY_TLS_CERT + PROXY_TLS_KEY: the proxy listener speaks HTTPS; unset: plain HTTP. */
  proxyTls: TlsFiles | undefined;
  /** TLS_CERT + TLS_KEY: the service listener on `port` speaks HTTPS; unset: plain HTTP. */
  adminTls: TlsFiles | undefined;
  logLevel: LogLevel;
  /**
   * How often the worker asks Slack whether everyone holding access is still active and
   * still a requester (catches missed `user_change` events); 0 turns it off. Default 15 min.
   */
  offboardingRecheckSeconds: number;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
  }
}

/**
 * Parse an environment into a Config. Each problem is one line naming the variable
 * and what it expects; values are never echoed because some of them are secrets.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const name = String(issue.path[0] ?? 'environment');
      return `${name}: ${issue.message}`;
    });
    throw new ConfigError(problems);
  }
  const e = parsed.data;
  const problems: string[] = [];
  if (e.SLACK_APP_TOKEN && !e.SLACK_BOT_TOKEN) {
    problems.push('SLACK_BOT_TOKEN: expects a bot token (xoxb-…) when SLACK_APP_TOKEN is set');
  }
  if (e.SLACK_BOT_TOKEN && !e.SLACK_APP_TOKEN && !e.SLACK_SIGNING_SECRET) {
    problems.push(
      'SLACK_SIGNING_SECRET: expects the app signing secret in HTTP mode (or set SLACK_APP_TOKEN for Socket Mode)',
    );
  }
  // Port 0 asks for any free port, so only fixed ports can collide.
  if (e.ADMIN_PORT !== 0 && e.ADMIN_PORT === e.PORT) {
    problems.push(`ADMIN_PORT: expects a port other than PORT (both are ${e.PORT})`);
  } else if (e.ADMIN_PORT !== 0 && e.ADMIN_PORT === e.PROXY_PORT) {
    problems.push(`ADMIN_PORT: expects a port other than PROXY_PORT (both are ${e.PROXY_PORT})`);
  }
  const proxyTls = tlsPair(e.PROXY_TLS_CERT, e.PROXY_TLS_KEY, 'PROXY_TLS_CERT', 'PROXY_TLS_KEY', problems);
  const adminTls = tlsPair(e.TLS_CERT, e.TLS_KEY, 'TLS_CERT', 'TLS_KEY', problems);
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    databaseUrl: e.DATABASE_URL,
    dataDir: e.JITGATE_DATA_DIR ?? './.jitgate',
    redisUrl: e.REDIS_URL,
    slack: {
      botToken: e.SLACK_BOT_TOKEN,
      signingSecret: e.SLACK_SIGNING_SECRET,
      appToken: e.SLACK_APP_TOKEN,
      apiUrl: e.SLACK_API_URL,
    },
    policyPath: e.JITGATE_POLICY ?? 'examples/policy.yml',
    signingKey: e.JITGATE_SIGNING_KEY,
    masterKey: e.JITGATE_MASTER_KEY,
    issuer: 'jitgate',
    environment: { ...env },
    publicProxyUrl: (
      e.JITGATE_PUBLIC_URL ?? `${proxyTls ? 'https' : 'http'}://localhost:${e.PROXY_PORT}`
    ).replace(/\/+$/, ''),
    host: e.HOST,
    port: e.PORT,
    proxyPort: e.PROXY_PORT,
    admin: { host: e.ADMIN_HOST ?? '127.0.0.1', port: e.ADMIN_PORT, token: e.ADMIN_TOKEN },
    proxyTls,
    adminTls,
    logLevel: e.LOG_LEVEL,
    offboardingRecheckSeconds:
      e.JITGATE_OFFBOARDING_RECHECK === 'off'
        ? 0
        : e.JITGATE_OFFBOARDING_RECHECK === undefined
          ? 15 * 60
          : (parseDuration(e.JITGATE_OFFBOARDING_RECHECK) ?? 15 * 60),
  };
}

/**
 * A certificate without its key (or the reverse) is refused rather than served as plain HTTP:
 * an operator who set one of the two meant TLS, and silently listening in clear would expose
 * bearer tokens. The problem names the variable that is missing.
 */
function tlsPair(
  certFile: string | undefined,
  keyFile: string | undefined,
  certVariable: string,
  keyVariable: string,
  problems: string[],
): TlsFiles | undefined {
  if (certFile !== undefined && keyFile !== undefined)
    return { certFile, keyFile, certVariable, keyVariable };
  if (certFile !== undefined) {
    problems.push(
      `${keyVariable}: expects the private key file (PEM) for ${certVariable}; set both or neither (TLS is half-configured)`,
    );
  } else if (keyFile !== undefined) {
    problems.push(
      `${certVariable}: expects the certificate file (PEM) for ${keyVariable}; set both or neither (TLS is half-configured)`,
    );
  }
  return undefined;
}

/**
 * What the contractor CLI (`jitgate login|request|token|curl|connect`) takes from the
 * environment: where it keeps its device key. Nothing of the server's configuration is read, so
 * the CLI runs on a laptop where none of it is set.
 */
export interface ClientConfig {
  /** `$XDG_CONFIG_HOME/jitgate`, else `~/.config/jitgate`. */
  configDir: string;
}

export function loadClientConfig(
  env: NodeJS.ProcessEnv = process.env,
  home: string = homedir(),
): ClientConfig {
  const xdg = env.XDG_CONFIG_HOME?.trim();
  // The XDG spec: a relative XDG_CONFIG_HOME is invalid and ignored.
  const base = xdg && isAbsolute(xdg) ? xdg : join(home, '.config');
  return { configDir: join(base, 'jitgate') };
}
