import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { checkMessage, checkView, slackErrorLines } from './block-kit-limits.ts';
import { TRIGGER_LIFETIME_MS, triggerIssuedAt } from './slack-signing.ts';

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
  /** What the fake answered (set once answered), e.g. the `view.id` a `views.open` got. */
  answer?: Record<string, unknown>;
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

/** A call Slack would refuse (`ok: false`), answered as Slack answers it and kept apart from `calls`. */
export interface RefusedCall extends RecordedCall {
  error: string;
  /** Slack's `errors` lines for `invalid_blocks` / `invalid_arguments` (`… [json-pointer:/blocks/0/…]`). */
  errors: string[];
}

/** How a channel answers the bot: Slack's refusals for a channel it cannot post to. */
export type ChannelState = 'ok' | 'not_in_channel' | 'channel_not_found' | 'is_archived';

/** Refusals that mean jitgate built something Slack does not accept (as opposed to Slack state). */
export const PAYLOAD_ERRORS: ReadonlySet<string> = new Set([
  'invalid_blocks',
  'invalid_arguments',
  'msg_too_long',
  'no_text',
]);

/** Computes a method's answer; return the JSON body Slack would send (include `ok`). */
export type SlackResponder = (call: RecordedCall) => Record<string, unknown>;

export interface FakeSlackApiOptions {
  /** WebSocket URL handed out by `apps.connections.open` (see `startFakeSocketMode`). */
  socketUrl?: string;
  userGroups?: Record<string, string[]>;
  deactivated?: Iterable<string>;
  /** The fake's clock (ms), for trigger expiry; `Date.now` unless a test holds time. */
  now?: () => number;
}

export interface FakeSlackApi {
  /** Web API base URL with trailing slash, ready for `clientOptions.slackApiUrl`. */
  readonly url: string;
  /** Calls that got a normal answer, in arrival order. */
  readonly calls: readonly RecordedCall[];
  /** Calls that were answered by an injected fault; kept apart so `calls` counts deliveries. */
  readonly faultedCalls: readonly FaultedCall[];
  /** Calls answered `ok: false` (a payload Slack refuses, an expired trigger, a stale hash, a channel the bot cannot post to). */
  readonly refusals: readonly RefusedCall[];
  /**
   * What Slack accepts but asks apps not to do (an updated message keeping a block_id whose
   * block changed). The harnesses fail a test file that leaves any.
   */
  readonly warnings: readonly string[];
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
  /** Replaces the built-in answer for `method` (until `reset`); payloads are still checked first. */
  respondTo(method: string, responder: SlackResponder): void;
  /** Refusals of payloads jitgate built (`invalid_blocks`, `msg_too_long`, …): a test expects none unless it says so. */
  payloadRefusals(): RefusedCall[];
  /**
   * Marks the payload refusals and warnings so far as expected. `close` fails on any that were
   * not, so a test that never looks at a message still learns that Slack would have refused it.
   */
  acknowledge(): void;
  /** How posts to `channel` are answered from now on (`ok` again to undo). */
  setChannel(channel: string, state: ChannelState): void;
  /** The current hash of an open view (what a `block_actions` payload from it carries). */
  viewHash(viewId: string): string | undefined;
  /** A URL to use as a slash command's or action's `response_url`; posts to it are recorded as `response_url`. */
  responseUrl(key?: string): string;
  /**
   * Forgets calls, refusals, warnings, pending faults and responders; Slack's own state (directory,
   * channels, posted messages, open views, used triggers, socketUrl) stays.
   */
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
  const refusals: RefusedCall[] = [];
  const warnings: string[] = [];
  const now = options.now ?? Date.now;
  const channels = new Map<string, ChannelState>();
  // Posted messages by `channel ts`, so chat.update finds (or misses) them as Slack does.
  const messages = new Map<string, { blocks: unknown }>();
  // Open views by id: each open/update/publish hands out a new hash; a stale one is a conflict.
  const views = new Map<string, { hash: string; type: 'modal' | 'home' }>();
  const homes = new Map<string, string>();
  const usedTriggers = new Set<string>();
  // Kept through reset(): what close() reports unless a test acknowledged it.
  const unexpected: string[] = [];
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

  const takeFault = (method: string): SlackFault | undefined =>
    takeQueued(method) ?? (method === 'response_url' ? undefined : takeQueued('*'));

  const takeQueued = (method: string): SlackFault | undefined => {
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
    refusals,
    warnings,
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
    payloadRefusals: () => refusals.filter((r) => PAYLOAD_ERRORS.has(r.error)),
    acknowledge() {
      unexpected.length = 0;
    },
    setChannel(channel, state) {
      if (state === 'ok') channels.delete(channel);
      else channels.set(channel, state);
    },
    viewHash: (viewId) => views.get(viewId)?.hash,
    responseUrl(key = 'default') {
      return `${fake.url.replace(/api\/$/, '')}response/${encodeURIComponent(key)}`;
    },
    reset() {
      calls.length = 0;
      faultedCalls.length = 0;
      refusals.length = 0;
      warnings.length = 0;
      faults.clear();
      responders.clear();
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        const problems = unexpected.splice(0);
        const refusedPayloads = (error?: Error | null) => {
          if (error) return reject(error);
          if (problems.length === 0) return resolve();
          reject(
            new Error(
              `FakeSlackApi: Slack would have refused or warned about ${problems.length} payload(s):\n${problems
                .slice(0, 10)
                .join('\n')}`,
            ),
          );
        };
        for (const w of waiters) {
          clearTimeout(w.timer);
          w.reject(new Error(`FakeSlackApi closed while waiting for ${w.method}`));
        }
        waiters = [];
        server.closeAllConnections();
        server.close(refusedPayloads);
      }),
  };

  const refuse = (error: string, errors: string[] = []): Record<string, unknown> =>
    errors.length > 0
      ? { ok: false, error, errors, response_metadata: { messages: errors.map((e) => `[ERROR] ${e}`) } }
      : { ok: false, error };

  /** Slack checks the payload before anything else: a message or view it cannot show is refused. */
  const checkPayload = (call: RecordedCall): Record<string, unknown> | undefined => {
    const { method, args } = call;
    if (method === 'chat.postMessage' || method === 'chat.update' || method === 'chat.postEphemeral') {
      const checked = checkMessage(args);
      return checked.error ? refuse(checked.error, slackErrorLines(checked.violations)) : undefined;
    }
    if (
      method === 'views.open' ||
      method === 'views.update' ||
      method === 'views.push' ||
      method === 'views.publish'
    ) {
      const violations = checkView(args.view);
      if (method === 'views.publish' && isRecord(args.view) && args.view.type !== 'home') {
        return refuse('invalid_arguments', ['views.publish takes a home view [json-pointer:/view/type]']);
      }
      return violations.length > 0 ? refuse('invalid_arguments', slackErrorLines(violations)) : undefined;
    }
    return undefined;
  };

  /** A trigger lives 3 s and is spent by one call; its issue time is part of the id the helpers mint. */
  const spendTrigger = (args: Record<string, unknown>): Record<string, unknown> | undefined => {
    const trigger = str(args.trigger_id);
    const issuedAt = trigger === undefined ? undefined : triggerIssuedAt(trigger);
    if (trigger === undefined || issuedAt === undefined) return refuse('invalid_trigger_id');
    if (usedTriggers.has(trigger)) return refuse('exchanged_trigger_id');
    if (now() - issuedAt > TRIGGER_LIFETIME_MS) return refuse('expired_trigger_id');
    usedTriggers.add(trigger);
    return undefined;
  };

  const channelRefusal = (channel: string | undefined): Record<string, unknown> | undefined => {
    if (!channel || !/^[CGDUW][A-Z0-9]{1,}$/.test(channel)) return refuse('channel_not_found');
    const state = channels.get(channel);
    return state && state !== 'ok' ? refuse(state) : undefined;
  };

  const newView = (type: 'modal' | 'home', id = nextViewId()): { id: string; hash: string } => {
    const hash = `${nextTs()}.${Math.random().toString(16).slice(2, 10)}`;
    views.set(id, { hash, type });
    return { id, hash };
  };

  const viewAnswer = (
    call: RecordedCall,
    view: Record<string, unknown>,
    opened: { id: string; hash: string },
    type: 'modal' | 'home',
  ) => ({
    ok: true,
    view: {
      team_id: TEAM_ID,
      private_metadata: '',
      callback_id: '',
      state: { values: {} },
      root_view_id: opened.id,
      app_id: APP_ID,
      bot_id: BOT_ID,
      ...view,
      ...(call.method === 'views.publish' ? { user_id: str(call.args.user_id) } : {}),
      id: opened.id,
      type,
      hash: opened.hash,
    },
  });

  /** Slack asks for a new block_id when an updated message changes a block; say so when one is kept. */
  const noteReusedBlockIds = (key: string, blocks: unknown): void => {
    const before = messages.get(key)?.blocks;
    if (!Array.isArray(before) || !Array.isArray(blocks)) return;
    const old = new Map<string, string>();
    for (const block of before) {
      if (isRecord(block) && typeof block.block_id === 'string')
        old.set(block.block_id, JSON.stringify(block));
    }
    for (const block of blocks) {
      if (!isRecord(block) || typeof block.block_id !== 'string') continue;
      const previous = old.get(block.block_id);
      if (previous !== undefined && previous !== JSON.stringify(block)) {
        const warning = `chat.update ${key}: block_id ${block.block_id} kept for a changed block`;
        warnings.push(warning);
        unexpected.push(warning);
      }
    }
  };

  const answer = (call: RecordedCall): Record<string, unknown> => {
    const refused = checkPayload(call);
    if (refused) return refused;
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
        const requested = str(args.channel);
        const cannot = channelRefusal(requested);
        if (cannot) return cannot;
        // Posting to a user id lands in the bot's DM with them, and Slack answers with that D-channel.
        const channel = /^[UW]/.test(requested ?? '') ? `D${requested}` : (requested ?? '');
        const ts = nextTs();
        messages.set(`${channel} ${ts}`, { blocks: args.blocks });
        return { ok: true, channel, ts, message: botMessage(args, ts) };
      }
      case 'chat.update': {
        const channel = str(args.channel);
        const cannot = channelRefusal(channel);
        if (cannot) return cannot;
        const ts = str(args.ts);
        const key = `${channel ?? ''} ${ts ?? ''}`;
        if (!ts || !messages.has(key)) return refuse('message_not_found');
        noteReusedBlockIds(key, args.blocks);
        messages.set(key, { blocks: args.blocks });
        return { ok: true, channel, ts, text: str(args.text) ?? '', message: botMessage(args, ts) };
      }
      case 'chat.postEphemeral': {
        const cannot = channelRefusal(str(args.channel));
        if (cannot) return cannot;
        if (!str(args.user)) return refuse('user_not_found');
        return { ok: true, message_ts: nextTs() };
      }
      case 'chat.delete':
        return { ok: true, channel: str(args.channel), ts: str(args.ts) };
      case 'chat.getPermalink':
        return {
          ok: true,
          channel: str(args.channel),
          permalink: `${WORKSPACE_URL}archives/${str(args.channel) ?? ''}/p${(str(args.message_ts) ?? '').replace('.', '')}`,
        };
      case 'views.open':
      case 'views.push': {
        const spent = spendTrigger(args);
        if (spent) return spent;
        const view = isRecord(args.view) ? args.view : {};
        return viewAnswer(call, view, newView('modal'), 'modal');
      }
      case 'views.update': {
        const id = str(args.view_id);
        const current = id === undefined ? undefined : views.get(id);
        if (id === undefined || !current) return refuse('not_found');
        const hash = str(args.hash);
        if (hash !== undefined && hash !== current.hash) return refuse('hash_conflict');
        const view = isRecord(args.view) ? args.view : {};
        return viewAnswer(call, view, newView(current.type, id), current.type);
      }
      case 'views.publish': {
        const user = str(args.user_id);
        if (!user || !/^[UW][A-Z0-9]{1,}$/.test(user)) return refuse('invalid_arguments');
        const known = homes.get(user);
        const hash = str(args.hash);
        if (hash !== undefined && known !== undefined && hash !== views.get(known)?.hash) {
          return refuse('hash_conflict');
        }
        const opened = newView('home', known);
        homes.set(user, opened.id);
        const view = isRecord(args.view) ? args.view : {};
        return viewAnswer(call, view, opened, 'home');
      }
      case 'conversations.open': {
        const user = (str(args.users) ?? '').split(',')[0]?.trim();
        if (!user) return refuse('users_list_not_supplied');
        return { ok: true, channel: { id: `D${user}` } };
      }
      case 'usergroups.users.list': {
        const group = str(args.usergroup) ?? '';
        const users = fake.userGroups[group];
        return users ? { ok: true, users: [...users] } : refuse('no_such_subteam');
      }
      case 'users.info': {
        const id = str(args.user);
        if (!id) return refuse('user_not_found');
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
        return refuse('unknown_method');
    }
  };

  const recordAnswer = (call: RecordedCall, body: Record<string, unknown>): void => {
    call.answer = body;
    if (body.ok === false) {
      const errors = Array.isArray(body.errors)
        ? body.errors.filter((e): e is string => typeof e === 'string')
        : [];
      refusals.push({ ...call, error: String(body.error), errors });
      if (PAYLOAD_ERRORS.has(String(body.error))) {
        unexpected.push(`${call.method} → ${String(body.error)}: ${errors.slice(0, 3).join('; ')}`);
      }
      return;
    }
    record(call);
  };

  const sendFault = (req: IncomingMessage, res: ServerResponse, fault: SlackFault): void => {
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
  };

  /** Answers `call` with the next injected fault for its method, if there is one. */
  const answeredByFault = (req: IncomingMessage, res: ServerResponse, call: RecordedCall): boolean => {
    const fault = takeFault(call.method);
    if (!fault) return false;
    faultedCalls.push({ ...call, fault });
    sendFault(req, res, fault);
    return true;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const requestUrl = new URL(req.url ?? '/', 'http://127.0.0.1');
    const raw = await readBody(req);
    const args = parseArgs(raw, req.headers['content-type'] ?? '', requestUrl.searchParams);
    const at = new Date();

    if (requestUrl.pathname.startsWith('/response/')) {
      const call: RecordedCall = {
        method: 'response_url',
        path: requestUrl.pathname,
        args,
        token: undefined,
        at,
      };
      if (answeredByFault(req, res, call)) return;
      // A response_url takes what chat.postMessage takes, and refuses what it refuses.
      const checked = checkMessage(args);
      const body = checked.error ? refuse(checked.error, slackErrorLines(checked.violations)) : { ok: true };
      recordAnswer(call, body);
      sendJson(res, checked.error ? 400 : 200, body);
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
    if (answeredByFault(req, res, call)) return;
    const body = answer(call);
    recordAnswer(call, body);
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
