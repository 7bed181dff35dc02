import { isRecord } from '../../shared/is-record.ts';
import { checkMessage, checkView, slackErrorLines } from './block-kit-limits.ts';
import { TRIGGER_LIFETIME_MS, triggerIssuedAt } from './signed-requests.ts';
import type { ChannelState, RecordedCall, SlackResponder } from './web-api-types.ts';
import { str } from './web-api-wire.ts';

/**
 * The workspace behind the Web API stand-in: its channels, posted messages, open views, home
 * tabs and spent triggers, and each method's answer as Slack gives it — a payload Slack
 * cannot show refused before anything else (block-kit-limits.ts).
 */

const TEAM_ID = 'T1';
const BOT_USER_ID = 'UBOT';
const BOT_ID = 'BBOT';
const APP_ID = 'A1';
const WORKSPACE_URL = 'https://jitgate-test.slack.com/';

/** What a test changes on the running stand-in (FakeSlackApi's own fields, read at each call). */
export interface WorkspaceDirectory {
  userGroups: Record<string, string[]>;
  deactivated: Set<string>;
  realNames: Record<string, string>;
  socketUrl: string | undefined;
}

export interface SlackWorkspace {
  /** Slack's answer to a Web API call; a `responder` replaces the built-in one after the payload check. */
  answer(call: RecordedCall, responder: SlackResponder | undefined): Record<string, unknown>;
  /** A post to a response_url takes what chat.postMessage takes, and refuses what it refuses. */
  answerResponseUrl(args: Record<string, unknown>): { status: number; body: Record<string, unknown> };
  setChannel(channel: string, state: ChannelState): void;
  viewHash(viewId: string): string | undefined;
}

const refuse = (error: string, errors: string[] = []): Record<string, unknown> =>
  errors.length > 0
    ? { ok: false, error, errors, response_metadata: { messages: errors.map((e) => `[ERROR] ${e}`) } }
    : { ok: false, error };

export function createSlackWorkspace(options: {
  /** The stand-in's clock (ms), for trigger expiry. */
  now: () => number;
  directory: WorkspaceDirectory;
  /** What Slack accepts but asks apps not to do. */
  warn: (warning: string) => void;
}): SlackWorkspace {
  const { now, directory } = options;
  const channels = new Map<string, ChannelState>();
  // Posted messages by `channel ts`, so chat.update finds (or misses) them as Slack does.
  const messages = new Map<string, { blocks: unknown }>();
  // Open views by id: each open/update/publish hands out a new hash; a stale one is a conflict.
  const views = new Map<string, { hash: string; type: 'modal' | 'home' }>();
  const homes = new Map<string, string>();
  const usedTriggers = new Set<string>();
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
        options.warn(warning);
      }
    }
  };

  const answer = (call: RecordedCall, responder: SlackResponder | undefined): Record<string, unknown> => {
    const refused = checkPayload(call);
    if (refused) return refused;
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
        const users = directory.userGroups[group];
        return users ? { ok: true, users: [...users] } : refuse('no_such_subteam');
      }
      case 'users.info': {
        const id = str(args.user);
        if (!id) return refuse('user_not_found');
        const realName = directory.realNames[id] ?? `User ${id}`;
        return {
          ok: true,
          user: {
            id,
            team_id: TEAM_ID,
            name: id.toLowerCase(),
            real_name: realName,
            deleted: directory.deactivated.has(id),
            is_bot: false,
            tz: 'Europe/Berlin',
            tz_label: 'Central European Time',
            tz_offset: 3600,
            profile: {
              real_name: realName,
              display_name: id.toLowerCase(),
              email: `${id.toLowerCase()}@example.com`,
            },
          },
        };
      }
      case 'apps.connections.open':
        // A clear error beats handing the client a URL it cannot connect to.
        return directory.socketUrl
          ? { ok: true, url: directory.socketUrl }
          : { ok: false, error: 'fake_socket_url_not_set' };
      default:
        return refuse('unknown_method');
    }
  };

  return {
    answer,
    answerResponseUrl(args) {
      const checked = checkMessage(args);
      return checked.error
        ? { status: 400, body: refuse(checked.error, slackErrorLines(checked.violations)) }
        : { status: 200, body: { ok: true } };
    },
    setChannel(channel, state) {
      if (state === 'ok') channels.delete(channel);
      else channels.set(channel, state);
    },
    viewHash: (viewId) => views.get(viewId)?.hash,
  };
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
