import type { AddressInfo } from 'node:net';
import { App, type Logger as BoltLogger, type CustomRoute, HTTPReceiver, LogLevel } from '@slack/bolt';
import type { Logger } from 'pino';
import type { AccessService, Directory, Offboarding } from '../access/index.ts';
import type { DeviceDeps } from '../devices/index.ts';
import type { PolicyStore } from '../policy/index.ts';
import type { Clock } from '../shared/clock.ts';
import type { SummarizeGrant } from '../shared/grant-summary.ts';
import { errorText, type IssueToken, type SlackDeps } from './deps.ts';
import { createHomeTabs, type HomeTabs } from './home.ts';
import { registerListeners } from './listeners/index.ts';
import type { BotIdentity, Notifier } from './notifier.ts';

export interface SlackAppOptions {
  slack: {
    botToken: string;
    /** HTTP mode: Bolt verifies every request's signature with it. */
    signingSecret: string | undefined;
    /** Set: Socket Mode (no public URL needed); the signing secret is then unused. */
    appToken: string | undefined;
    /** `SLACK_API_URL`; Slack's own when undefined. */
    apiUrl: string | undefined;
  };
  access: AccessService;
  policy: PolicyStore;
  clock: Clock;
  notifier: Notifier;
  issueToken: IssueToken;
  summarizeGrant?: SummarizeGrant;
  /** Reacts to deactivations and requester-group removals (`user_change`, `subteam_members_changed`). */
  offboarding?: Offboarding;
  /** Invalidated on `subteam_members_changed` when no offboarding is given (the offboarding does it otherwise). */
  directory?: Directory;
  logger: Logger;
  /** Base URL of the proxy, shown in DMs and curl examples. */
  proxyUrl: string;
  /** Where the contractor CLI pairs (`jitgate login --server <it>`): the service URL on PORT. */
  serverUrl?: string;
  /** Device pairing for `/access link` and `/access devices`. */
  devices?: DeviceDeps;
  /** HTTP mode only: extra routes served next to `/slack/events` on the same port (e.g. `/healthz`). */
  customRoutes?: CustomRoute[];
  /** Pass to share App Home refreshes with the outbox dispatcher; built here when omitted. */
  homes?: HomeTabs;
}

export interface SlackApp {
  readonly app: App;
  readonly mode: 'http' | 'socket';
  readonly homes: HomeTabs;
  /**
   * HTTP mode: Bolt's request handler for `/slack/events` (and `customRoutes`), for mounting in
   * a server of one's own instead of calling `start`. Undefined in Socket Mode.
   */
  readonly requestListener: HTTPReceiver['requestListener'] | undefined;
  /** HTTP mode: listens on `port` (0 picks a free one) and resolves with the bound port. Socket Mode: connects. */
  start(port?: number, host?: string): Promise<{ port: number | undefined }>;
  stop(): Promise<void>;
}

/** Bolt logs through pino, so Slack errors land in the same structured log (and its redaction). */
function boltLogger(logger: Logger): BoltLogger {
  const log = logger.child({ component: 'bolt' });
  let level = LogLevel.INFO;
  const line = (messages: unknown[]) =>
    messages.map((m) => (m instanceof Error ? m.message : String(m))).join(' ');
  return {
    debug: (...m) => log.debug(line(m)),
    info: (...m) => log.info(line(m)),
    warn: (...m) => log.warn(line(m)),
    error: (...m) => log.error(line(m)),
    setLevel: (next) => {
      level = next;
    },
    getLevel: () => level,
    setName: () => {},
  };
}

/** Asks Slack who the bot is until it answers, in the background; nothing waits for it. */
function learnBotIdentity(
  notifier: Notifier,
  logger: Logger,
  retryMs = 5000,
): { current(): Partial<BotIdentity>; stop(): void } {
  let known: BotIdentity | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const ask = (): void => {
    notifier.whoAmI().then(
      (answer) => {
        known = answer;
      },
      (error: unknown) => {
        logger.warn({ err: errorText(error), retryInMs: retryMs }, 'auth.test failed; asking again');
        if (!stopped) timer = setTimeout(ask, retryMs).unref();
      },
    );
  };
  ask();
  return {
    current: () => known ?? {},
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/**
 * The Bolt app: `/access`, buttons, modals and App Home. HTTP mode answers at `/slack/events`
 * (Bolt verifies the signature and the 5-minute timestamp window itself); Socket Mode when an
 * app token is given. Listeners ack first and work after; every Web API call goes through
 * the notifier.
 */
export function createSlackApp(options: SlackAppOptions): SlackApp {
  const { slack } = options;
  const logger = boltLogger(options.logger);
  const homes =
    options.homes ??
    createHomeTabs({
      access: options.access,
      notifier: options.notifier,
      policy: options.policy,
      clock: options.clock,
      logger: options.logger,
    });
  const deps: SlackDeps = {
    access: options.access,
    policy: options.policy,
    clock: options.clock,
    notifier: options.notifier,
    issueToken: options.issueToken,
    summarizeGrant: options.summarizeGrant,
    logger: options.logger.child({ component: 'slack' }),
    proxyUrl: options.proxyUrl.replace(/\/+$/, ''),
    serverUrl: options.serverUrl?.replace(/\/+$/, ''),
    homes,
    offboarding: options.offboarding,
    directory: options.directory,
    devices: options.devices,
  };
  const clientOptions = slack.apiUrl ? { slackApiUrl: slack.apiUrl } : {};
  const identity = learnBotIdentity(options.notifier, deps.logger);
  // Bolt's own authorize waits on an auth.test before every event: with Slack's Web API down, no
  // command would be acknowledged. Ours answers at once; the bot's ids (for ignoring its own
  // events) are filled in once Slack answers.
  const authorize = async () => ({ botToken: slack.botToken, ...identity.current() });

  let app: App;
  let receiver: HTTPReceiver | undefined;
  if (slack.appToken) {
    app = new App({
      authorize,
      appToken: slack.appToken,
      socketMode: true,
      clientOptions,
      logger,
    });
  } else {
    if (!slack.signingSecret)
      throw new Error('SLACK_SIGNING_SECRET is required in HTTP mode (or set SLACK_APP_TOKEN)');
    receiver = new HTTPReceiver({
      signingSecret: slack.signingSecret,
      endpoints: '/slack/events',
      // Ack goes out as soon as a listener calls ack(); the work after it continues in the background.
      processBeforeResponse: false,
      customRoutes: options.customRoutes ?? [],
      logger,
    });
    app = new App({ authorize, receiver, clientOptions, logger });
  }
  registerListeners(app, deps);
  app.error(async (error) => {
    deps.logger.error({ err: errorText(error) }, 'unhandled error in a Slack listener');
  });

  return {
    app,
    mode: receiver ? 'http' : 'socket',
    homes,
    requestListener: receiver?.requestListener,
    async start(port, host) {
      if (!receiver) {
        await app.start();
        return { port: undefined };
      }
      const server = await app.start({ port: port ?? 3000, host: host ?? '0.0.0.0' });
      const address = server.address() as AddressInfo | null;
      return { port: address?.port };
    },
    async stop() {
      identity.stop();
      await app.stop();
    },
  };
}
