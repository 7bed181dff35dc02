import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One Web API call as the fake received it. */
export interface RecordedCall {
  /** Slack method name (`chat.postMessage`), or `response_url` for posts to a {@link FakeSlackApi.responseUrl}. */
  method: string;
  /** Request path, e.g. `/api/chat.postMessage` or `/response/<key>`. */
  path: string;
  /** Parsed arguments; JSON-encoded form fields such as `blocks` or `view` are decoded back into objects. */
  args: Record<string, unknown>;
  /** Token from `Authorization: Bearer …`, falling back to a `token` argument; undefined when neither was sent. */
  token: string | undefined;
  at: Date;
}

/** How the fake should misbehave for a call; mirrors the ways Slack actually fails. */
export type SlackFault =
  | { status: 429; retryAfter: number }
  | { status: 500 }
  | { error: string }
  | { dropConnection: true };

export interface FaultedCall extends RecordedCall {
  fault: SlackFault;
}

/** Computes a method's answer; return the JSON body Slack would send (include `ok`). */
export type SlackResponder = (call: RecordedCall) => Record<string, unknown>;

export interface FakeSlackApiOptions {
  /** WebSocket URL handed out by `apps.connections.open` (see `startFakeSocketMode`). */
  socketUrl?: string;
  userGroups?: Record<string, string[]>;
  deactivated?: Iterable<string>;
}

export interface FakeSlackApi {
  /** Web API base URL with trailing slash, ready for `clientOptions.slackApiUrl`. */
  readonly url: string;
  /** Calls that got a normal answer, in arrival order. */
  readonly calls: readonly RecordedCall[];
  /** Calls that were answered by an injected fault; kept apart so `calls` counts deliveries. */
  readonly faultedCalls: readonly FaultedCall[];
  /** Members of each user group, by group id, for `usergroups.users.list`. */
  userGroups: Record<string, string[]>;
  /** User ids that `users.info` reports as `deleted: true`. */
  deactivated: Set<string>;
  socketUrl: string | undefined;
  callsTo(method: string): RecordedCall[];
  /** Resolves with the first call (already recorded or future) to `method` matching `predicate`. */
  waitFor(
    method: string,
    predicate?: (call: RecordedCall) => boolean,
    timeoutMs?: number,
  ): Promise<RecordedCall>;
  /** The next `times` calls to `method` get `fault` instead of a normal answer. */
  failNext(method: string, fault: SlackFault, times?: number): void;
  /** Replaces the built-in answer for `method` (until `reset`). */
  respondTo(method: string, responder: SlackResponder): void;
  /** A URL to use as a slash command's or action's `response_url`; posts to it are recorded as `response_url`. */
  responseUrl(key?: string): string;
  /** Forgets calls, pending faults and responders; directory state (userGroups, deactivated, socketUrl) stays. */
  reset(): void;
  close(): Promise<void>;
}

const TEAM_ID = 'T1';
const BOT_USER_ID = 'UBOT';
const BOT_ID = 'BBOT';
const APP_ID = 'A1';
const WORKSPACE_URL = 'https://jitgate-test.slack.com/';

// Free-text fields must stay strings even when a user types something that parses as JSON.
const FREE_TEXT_FIELDS = new Set(['text', 'fallback', 'query', 'value']);

interface Waiter {
  method: string;
  predicate: (call: RecordedCall) => boolean;
  resolve: (call: RecordedCall) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

interface PendingFault {
  fault: SlackFault;
  remaining: number;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** Reverses WebClient's form serialisation, which JSON-encodes every non-primitive argument. */
function decodeFormValue(key: string, value: string): unknown {
  if (FREE_TEXT_FIELDS.has(key)) return value;
  const first = value.trimStart()[0];
  if (first !== '{' && first !== '[') return value;
  try {
    return JSON.parse(value) as unknown;
  } catch {
    return value;
  }
}

function parseArgs(raw: string, contentType: string, query: URLSearchParams): Record<string, unknown> {
  const args: Record<string, unknown> = {};
  for (const [key, value] of query) args[key] = decodeFormValue(key, value);
  if (raw.length === 0) return args;
  if (contentType.includes('application/json')) {
    const parsed: unknown = JSON.parse(raw);
    if (!isRecord(parsed)) throw new Error('JSON body must be an object');
    return { ...args, ...parsed };
  }
  for (const [key, value] of new URLSearchParams(raw)) args[key] = decodeFormValue(key, value);
  return args;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text).toString(),
    ...headers,
  });
  res.end(text);
}

function bearerToken(req: IncomingMessage, args: Record<string, unknown>): string | undefined {
  const header = req.headers.authorization;
  if (header?.startsWith('Bearer ')) return header.slice('Bearer '.length);
  return str(args.token);
}

export async function startFakeSlackApi(options: FakeSlackApiOptions = {}): Promise<FakeSlackApi> {
  const calls: RecordedCall[] = [];
  const faultedCalls: FaultedCall[] = [];
  const faults = new Map<string, PendingFault[]>();
  const responders = new Map<string, SlackResponder>();
  let waiters: Waiter[] = [];
  // Counters live for the server's lifetime (not reset) so ids and ts never repeat within a run.
  let tsCounter = 0;
  let viewCounter = 0;

  const nextTs = (): string => {
    tsCounter += 100;
    const seconds = 1_700_000_000 + Math.floor(tsCounter / 1_000_000);
    return `${seconds}.${String(tsCounter % 1_000_000).padStart(6, '0')}`;
  };
  const nextViewId = (): string => {
    viewCounter += 1;
    return `V${String(viewCounter).padStart(10, '0')}`;
  };

  const record = (call: RecordedCall): void => {
    calls.push(call);
    const matched = waiters.filter((w) => w.method === call.method && w.predicate(call));
    if (matched.length === 0) return;
    waiters = waiters.filter((w) => !matched.includes(w));
    for (const w of matched) {
      clearTimeout(w.timer);
      w.resolve(call);
    }
  };

  const takeFault = (method: string): SlackFault | undefined => {
    const queue = faults.get(method);
    const head = queue?.[0];
    if (!queue || !head) return undefined;
    head.remaining -= 1;
    if (head.remaining <= 0) queue.shift();
    return head.fault;
  };

  // Requests are only answered after `fake` exists: nobody knows the port before listen resolves.
  const server = createServer((req, res) => {
    void handle(req, res).catch((error: unknown) => {
      sendJson(res, 400, { ok: false, error: 'invalid_request', detail: String(error) });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  const fake: FakeSlackApi = {
    url: `http://127.0.0.1:${port}/api/`,
    calls,
    faultedCalls,
    userGroups: { ...options.userGroups },
    deactivated: new Set(options.deactivated),
    socketUrl: options.socketUrl,
    callsTo: (method) => calls.filter((c) => c.method === method),
    waitFor(method, predicate = () => true, timeoutMs = 5000) {
      const existing = calls.find((c) => c.method === method && predicate(c));
      if (existing) return Promise.resolve(existing);
      return new Promise<RecordedCall>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters = waiters.filter((w) => w.timer !== timer);
          const seen = calls.map((c) => c.method).join(', ') || '(none)';
          const faulted = faultedCalls.map((c) => c.method).join(', ') || '(none)';
          reject(
            new Error(
              `FakeSlackApi: no matching call to ${method} within ${timeoutMs} ms; recorded: ${seen}; faulted: ${faulted}`,
            ),
          );
        }, timeoutMs);
        waiters.push({ method, predicate, resolve, reject, timer });
      });
    },
    failNext(method, fault, times = 1) {
      const queue = faults.get(method) ?? [];
      queue.push({ fault, remaining: times });
      faults.set(method, queue);
    },
    respondTo(method, responder) {
      responders.set(method, responder);
    },
    responseUrl(key = 'default') {
      return `${fake.url.replace(/api\/$/, '')}response/${encodeURIComponent(key)}`;
    },
    reset() {
      calls.length = 0;
      faultedCalls.length = 0;
      faults.clear();
      responders.clear();
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        for (const w of waiters) {
          clearTimeout(w.timer);
          w.reject(new Error(`FakeSlackApi closed while waiting for ${w.method}`));
        }
        waiters = [];
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };

  const answer = (call: RecordedCall): Record<string, unknown> => {
    const responder = responders.get(call.method);
    if (responder) return responder(call);
    const { args } = call;
    switch (call.method) {
      case 'api.test':
        return { ok: true, args };
      case 'auth.test':
        return {
          ok: true,
          url: WORKSPACE_URL,
          team: 'jitgate-test',
          user: 'jitgate',
          team_id: TEAM_ID,
          user_id: BOT_USER_ID,
          bot_id: BOT_ID,
          is_enterprise_install: false,
        };
      case 'chat.postMessage': {
        const requested = str(args.channel) ?? '';
        // Posting to a user id lands in the bot's DM with them, and Slack answers with that D-channel.
        const channel = /^[UW]/.test(requested) ? `D${requested}` : requested;
        if (!channel) return { ok: false, error: 'channel_not_found' };
        const ts = nextTs();
        return { ok: true, channel, ts, message: botMessage(args, ts) };
      }
      case 'chat.update': {
        const ts = str(args.ts);
        if (!ts) return { ok: false, error: 'message_not_found' };
        return {
          ok: true,
          channel: str(args.channel),
          ts,
          text: str(args.text) ?? '',
          message: botMessage(args, ts),
        };
      }
      case 'chat.postEphemeral':
        return { ok: true, message_ts: nextTs() };
      case 'chat.delete':
        return { ok: true, channel: str(args.channel), ts: str(args.ts) };
      case 'chat.getPermalink':
        return {
          ok: true,
          channel: str(args.channel),
          permalink: `${WORKSPACE_URL}archives/${str(args.channel) ?? ''}/p${(str(args.message_ts) ?? '').replace('.', '')}`,
        };
      case 'views.open':
      case 'views.push':
      case 'views.update':
      case 'views.publish': {
        const view = isRecord(args.view) ? args.view : {};
        const id = (call.method === 'views.update' ? str(args.view_id) : undefined) ?? nextViewId();
        return {
          ok: true,
          view: {
            id,
            team_id: TEAM_ID,
            type: call.method === 'views.publish' ? 'home' : 'modal',
            private_metadata: '',
            callback_id: '',
            state: { values: {} },
            hash: `${nextTs()}.abcdef`,
            root_view_id: id,
            app_id: APP_ID,
            bot_id: BOT_ID,
            ...view,
          },
        };
      }
      case 'conversations.open': {
        const user = (str(args.users) ?? '').split(',')[0]?.trim();
        if (!user) return { ok: false, error: 'users_list_not_supplied' };
        return { ok: true, channel: { id: `D${user}` } };
      }
      case 'usergroups.users.list': {
        const group = str(args.usergroup) ?? '';
        const users = fake.userGroups[group];
        return users ? { ok: true, users: [...users] } : { ok: false, error: 'no_such_subteam' };
      }
      case 'users.info': {
        const id = str(args.user);
        if (!id) return { ok: false, error: 'user_not_found' };
        return {
          ok: true,
          user: {
            id,
            team_id: TEAM_ID,
            name: id.toLowerCase(),
            real_name: `User ${id}`,
            deleted: fake.deactivated.has(id),
            is_bot: false,
            tz: 'Europe/Berlin',
            tz_label: 'Central European Time',
            tz_offset: 3600,
            profile: {
              real_name: `User ${id}`,
              display_name: id.toLowerCase(),
              email: `${id.toLowerCase()}@example.com`,
            },
          },
        };
      }
      case 'apps.connections.open':
        // A clear error beats handing the client a URL it cannot connect to.
        return fake.socketUrl
          ? { ok: true, url: fake.socketUrl }
          : { ok: false, error: 'fake_socket_url_not_set' };
      default:
        return { ok: false, error: 'unknown_method' };
    }
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const requestUrl = new URL(req.url ?? '/', 'http://127.0.0.1');
    const raw = await readBody(req);
    const args = parseArgs(raw, req.headers['content-type'] ?? '', requestUrl.searchParams);
    const at = new Date();

    if (requestUrl.pathname.startsWith('/response/')) {
      record({ method: 'response_url', path: requestUrl.pathname, args, token: undefined, at });
      sendJson(res, 200, { ok: true });
      return;
    }
    const match = /^\/api\/([A-Za-z0-9_.]+)$/.exec(requestUrl.pathname);
    if (!match?.[1]) {
      sendJson(res, 404, { ok: false, error: 'not_found' });
      return;
    }
    const call: RecordedCall = {
      method: match[1],
      path: requestUrl.pathname,
      args,
      token: bearerToken(req, args),
      at,
    };

    const fault = takeFault(call.method);
    if (fault) {
      faultedCalls.push({ ...call, fault });
      if ('dropConnection' in fault) {
        req.socket.destroy();
      } else if ('error' in fault) {
        sendJson(res, 200, { ok: false, error: fault.error });
      } else if (fault.status === 429) {
        sendJson(res, 429, { ok: false, error: 'ratelimited' }, { 'retry-after': String(fault.retryAfter) });
      } else {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end('Internal Server Error');
      }
      return;
    }

    const body = answer(call);
    record(call);
    sendJson(res, 200, body);
  };

  return fake;
}

function botMessage(args: Record<string, unknown>, ts: string): Record<string, unknown> {
  const message: Record<string, unknown> = {
    type: 'message',
    user: BOT_USER_ID,
    bot_id: BOT_ID,
    app_id: APP_ID,
    team: TEAM_ID,
    text: str(args.text) ?? '',
    ts,
  };
  if (args.blocks !== undefined) message.blocks = args.blocks;
  if (args.attachments !== undefined) message.attachments = args.attachments;
  if (args.thread_ts !== undefined) message.thread_ts = args.thread_ts;
  if (args.metadata !== undefined) message.metadata = args.metadata;
  return message;
}
