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
/** What a proxy does with a quota grant's call while Redis cannot confirm the shared count. */
const QUOTA_WHEN_REDIS_DOWN = ['fail_closed', 'local'] as const;
export type QuotaWhenRedisDown = (typeof QUOTA_WHEN_REDIS_DOWN)[number];

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

/** Whether a URL names this machine (plain http is tolerated there, for tests and the demo). */
function isLoopbackUrl(value: string): boolean {
  try {
    const host = new URL(value).hostname;
    return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
  } catch {
    return false;
  }
}

const envSchema = z.object({
  DATABASE_URL: urlWith(
    ['postgres:', 'postgresql:'],
    'a postgres:// connection URL (unset: embedded database)',
  ),
  JITGATE_DATA_DIR: optionalText,
  JITGATE_INTENT_DIR: optionalText,
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
  // The web console (Sign in with Slack): on when SLACK_CLIENT_ID is set; loadConfig then
  // requires the secret, the team and the session key.
  SLACK_CLIENT_ID: optionalText,
  SLACK_CLIENT_SECRET: optionalText,
  SLACK_TEAM_ID: optionalText.refine((v) => v === undefined || /^[TE][A-Z0-9]{2,}$/.test(v), {
    message: 'expects a Slack team (workspace) ID like T0123ABCD',
  }),
  JITGATE_CONSOLE_URL: urlWith(
    ['http:', 'https:'],
    "the console's public http(s) URL, like https://jitgate.example.com",
  ),
  // http only on loopback (tests, the demo's local provider): a sign-in must not travel in clear.
  JITGATE_OIDC_ISSUER: urlWith(['http:', 'https:'], 'an https OpenID Connect issuer URL').refine(
    (v) => v === undefined || v.startsWith('https:') || isLoopbackUrl(v),
    { message: 'expects an https issuer URL (http only on 127.0.0.1 or localhost)' },
  ),
  JITGATE_SESSION_SECRET: optionalText.refine((v) => v === undefined || v.length >= 32, {
    message: 'expects at least 32 characters (e.g. openssl rand -base64 32)',
  }),
  JITGATE_DPOP_NONCE_SECRET: optionalText.refine((v) => v === undefined || v.length >= 32, {
    message: 'expects at least 32 characters, the same on every proxy and bot (e.g. openssl rand -base64 32)',
  }),
  JITGATE_QUOTA_WHEN_REDIS_DOWN: optionalText.refine(
    (v) => v === undefined || (QUOTA_WHEN_REDIS_DOWN as readonly string[]).includes(v),
    { message: `expects one of ${QUOTA_WHEN_REDIS_DOWN.join(', ')}` },
  ),
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

/** Sign in with Slack and the web console; present only when SLACK_CLIENT_ID is set. */
export interface ConsoleConfig {
  clientId: string;
  clientSecret: string;
  /** The console's public base URL, no trailing slash; pages live under `/console`. */
  publicUrl: string;
  /** Where the identity provider sends the browser back: `${publicUrl}/console/auth/callback`. */
  redirectUri: string;
  /** OpenID Connect issuer (discovery at `${issuer}/.well-known/openid-configuration`). */
  issuer: string;
  /** The only Slack workspace whose people may sign in. */
  teamId: string;
  /** Key material for sealing session cookies. */
  sessionSecret: string;
  /** Cookies carry `Secure` (the public URL is https). */
  secureCookies: boolean;
}

/** Slack's OpenID Connect issuer (Sign in with Slack). */
const SLACK_OIDC_ISSUER = 'https://slack.com';

export interface Config {
  /** postgres:// URL; undefined means the embedded database in `dataDir`. */
  databaseUrl: string | undefined;
  /** Where embedded mode keeps its database. */
  dataDir: string;
  /**
   * Where a proxy writes each call's intent before forwarding it (src/audit/intent-journal.ts);
   * undefined (`JITGATE_INTENT_DIR=off`) writes none, and a killed proxy loses its queued records.
   */
  intentDir: string | undefined;
  /**
   * redis:// URL; undefined means the in-process scheduler (one instance only) and per-process
   * rate limits and quotas. Set: BullMQ, and rate limits and quotas shared by every proxy.
   */
  redisUrl: string | undefined;
  /**
   * With REDIS_URL, while Redis cannot confirm a quota: `fail_closed` (default) refuses the call
   * with 503 `quota_unconfirmed`; `local` admits it against this process's own count.
   */
  quotaWhenRedisDown: QuotaWhenRedisDown;
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
  /**
   * JITGATE_DPOP_NONCE_SECRET: set, every DPoP proof (proxy and device API) must carry a nonce
   * the server issued (RFC 9449 §8), derived from this secret and the time, so every process
   * with the same secret issues and accepts the same nonces. Unset: no nonce is asked for.
   */
  dpopNonceSecret: string | undefined;
  /** `iss` of grant tokens. */
  issuer: string;
  /** The environment, for `${VAR}` references in the policy file's credentials. */
  environment: Readonly<NodeJS.ProcessEnv>;
  /** Base URL printed in DMs and curl examples. */
  publicProxyUrl: string;
  /**
   * The service listener (PORT) as people and the contractor CLI reach it: JITGATE_CONSOLE_URL,
   * else `http(s)://localhost:$PORT`. `jitgate login --server` takes it, and the device API's
   * DPoP proofs name it.
   */
  serviceUrl: string;
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
  /** SLACK_CLIENT_ID set: the web console and `/api/v1` on PORT; undefined: both off. */
  console: ConsoleConfig | undefined;
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
  const consoleConfig = consoleOf(e, adminTls !== undefined, problems);
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    databaseUrl: e.DATABASE_URL,
    dataDir: e.JITGATE_DATA_DIR ?? './.jitgate',
    intentDir:
      e.JITGATE_INTENT_DIR === 'off'
        ? undefined
        : (e.JITGATE_INTENT_DIR ?? join(e.JITGATE_DATA_DIR ?? './.jitgate', 'intents')),
    redisUrl: e.REDIS_URL,
    quotaWhenRedisDown: (e.JITGATE_QUOTA_WHEN_REDIS_DOWN as QuotaWhenRedisDown | undefined) ?? 'fail_closed',
    slack: {
      botToken: e.SLACK_BOT_TOKEN,
      signingSecret: e.SLACK_SIGNING_SECRET,
      appToken: e.SLACK_APP_TOKEN,
      apiUrl: e.SLACK_API_URL,
    },
    policyPath: e.JITGATE_POLICY ?? 'examples/policy.yml',
    signingKey: e.JITGATE_SIGNING_KEY,
    masterKey: e.JITGATE_MASTER_KEY,
    dpopNonceSecret: e.JITGATE_DPOP_NONCE_SECRET,
    issuer: 'jitgate',
    environment: { ...env },
    publicProxyUrl: (
      e.JITGATE_PUBLIC_URL ?? `${proxyTls ? 'https' : 'http'}://localhost:${e.PROXY_PORT}`
    ).replace(/\/+$/, ''),
    serviceUrl: (e.JITGATE_CONSOLE_URL ?? `${adminTls ? 'https' : 'http'}://localhost:${e.PORT}`).replace(
      /\/+$/,
      '',
    ),
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
    console: consoleConfig,
  };
}

/** The console is on when SLACK_CLIENT_ID is set; then every other piece it needs must be too. */
function consoleOf(
  e: z.output<typeof envSchema>,
  adminTls: boolean,
  problems: string[],
): ConsoleConfig | undefined {
  if (e.SLACK_CLIENT_ID === undefined) return undefined;
  const need = (value: string | undefined, problem: string): string => {
    if (value === undefined) problems.push(problem);
    return value ?? '';
  };
  const clientSecret = need(
    e.SLACK_CLIENT_SECRET,
    'SLACK_CLIENT_SECRET: expects the app client secret (Basic Information) when SLACK_CLIENT_ID is set',
  );
  const teamId = need(
    e.SLACK_TEAM_ID,
    'SLACK_TEAM_ID: expects the ID of the workspace whose people may sign in (T…) when SLACK_CLIENT_ID is set',
  );
  const sessionSecret = need(
    e.JITGATE_SESSION_SECRET,
    'JITGATE_SESSION_SECRET: expects a key of at least 32 characters for session cookies when SLACK_CLIENT_ID is set',
  );
  const publicUrl = (e.JITGATE_CONSOLE_URL ?? `${adminTls ? 'https' : 'http'}://localhost:${e.PORT}`).replace(
    /\/+$/,
    '',
  );
  return {
    clientId: e.SLACK_CLIENT_ID,
    clientSecret,
    publicUrl,
    redirectUri: `${publicUrl}/console/auth/callback`,
    // Compared with the ID token's `iss` exactly, so kept as written.
    issuer: e.JITGATE_OIDC_ISSUER ?? SLACK_OIDC_ISSUER,
    teamId,
    sessionSecret,
    secureCookies: publicUrl.startsWith('https:'),
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
