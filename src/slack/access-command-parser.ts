import { parseDuration } from '../policy/index.ts';
import { isSlackUserId, isUuid, SLACK_USER_ID_PATTERN } from '../shared/ids.ts';
import { plainCut } from './blocks/kit.ts';

/**
 * `/access` text → a command, or a problem to show the user. Pure and total: any input
 * (empty, huge, control characters) yields a value, never an exception.
 */
export type AccessCommand =
  | { kind: 'modal' }
  | {
      kind: 'request';
      resource: string;
      scope: string | undefined;
      durationSeconds: number;
      reason: string;
    }
  | { kind: 'list' }
  | { kind: 'active' }
  | { kind: 'help' }
  | { kind: 'revoke'; grantId: string; reason: string | undefined }
  | { kind: 'extend'; grantId: string; durationSeconds: number }
  | { kind: 'audit'; grantId: string }
  | { kind: 'revoke-all'; userId: string; reason: string | undefined }
  | { kind: 'link'; code: string }
  | { kind: 'devices' };

export type ParsedCommand = { ok: true; command: AccessCommand } | { ok: false; problem: string };

const RESOURCE = /^[a-z][a-z0-9-]{0,62}$/;
const SCOPE = /^[a-z][a-z0-9_-]{0,31}$/;
const MAX_TEXT = 4000;
/** A user as Slack sends a picked mention (`<@U123>` or `<@U123|name>`), or a bare user id. */
const USER_MENTION = new RegExp(`^<@(${SLACK_USER_ID_PATTERN})(?:\\|[^>]*)?>$`);

const fail = (problem: string): ParsedCommand => ({ ok: false, problem });
const done = (command: AccessCommand): ParsedCommand => ({ ok: true, command });

/** Shown verbatim in answers, so cut long words (never inside an emoji) and keep only printable characters. */
function quote(word: string): string {
  const printable = word.replace(/[^\x20-\x7e\u00a0-\u{10ffff}]/gu, '?');
  return `"${plainCut(printable, 41)}"`;
}

/**
 * Command text with Slack's three entities decoded: Slack sends `&`, `<` and `>` typed by a
 * person as `&amp;`, `&lt;`, `&gt;`, and its own sequences (`<@U123|alice>`, `<!channel>`)
 * raw. Stored so, a reason reads as typed; wherever it is shown it is escaped again, so a
 * sequence in it shows as text and pings or links nobody.
 */
export function plainCommandText(text: string): string {
  return text.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

function grantIdOf(word: string | undefined, verb: string): string | ParsedCommand {
  if (word === undefined) return fail(`\`${verb}\` needs a grant id (see \`/access list\`).`);
  if (!isUuid(word))
    return fail(`${quote(word)} is not a grant id; grant ids look like 3f2b…-…, see \`/access list\`.`);
  return word.toLowerCase();
}

export function parseAccessCommand(text: string): ParsedCommand {
  if (text.length > MAX_TEXT)
    return fail(`That command is ${text.length} characters long; keep it under ${MAX_TEXT}.`);
  const trimmed = text.trim();
  if (trimmed === '') return done({ kind: 'modal' });
  const words = trimmed.split(/\s+/);
  const verb = (words[0] ?? '').toLowerCase();
  const rest = words.slice(1);
  switch (verb) {
    case 'help':
      return done({ kind: 'help' });
    case 'link':
      return rest.length === 1 && rest[0]!.length <= 32
        ? done({ kind: 'link', code: rest[0]! })
        : fail('`link` takes the code `jitgate login` shows, like `/access link K7QF-3M9X`.');
    case 'devices':
    case 'list':
    case 'active':
      return rest.length === 0 ? done({ kind: verb }) : fail(`\`${verb}\` takes no arguments.`);
    case 'revoke': {
      const id = grantIdOf(rest[0], 'revoke');
      if (typeof id !== 'string') return id;
      const reason = plainCommandText(rest.slice(1).join(' '));
      return done({ kind: 'revoke', grantId: id, reason: reason === '' ? undefined : reason });
    }
    case 'audit': {
      const id = grantIdOf(rest[0], 'audit');
      if (typeof id !== 'string') return id;
      return rest.length === 1 ? done({ kind: 'audit', grantId: id }) : fail('`audit` takes one grant id.');
    }
    case 'extend': {
      const id = grantIdOf(rest[0], 'extend');
      if (typeof id !== 'string') return id;
      if (rest[1] === undefined) return fail('`extend` needs a duration, like `30m` or `2h`.');
      const seconds = parseDuration(rest[1]);
      if (seconds === undefined)
        return fail(`${quote(rest[1])} is not a duration; use one like 30m, 2h or 1d.`);
      return rest.length === 2
        ? done({ kind: 'extend', grantId: id, durationSeconds: seconds })
        : fail('`extend` takes a grant id and a duration.');
    }
    case 'revoke-all': {
      const who = rest[0];
      if (who === undefined) return fail('`revoke-all` needs a person, like `/access revoke-all @alice`.');
      const userId = USER_MENTION.exec(who)?.[1] ?? (isSlackUserId(who) ? who : undefined);
      if (userId === undefined) {
        return fail(
          `${quote(who)} is not a Slack user; pick the person from the @ suggestions or give their user ID (U…).`,
        );
      }
      const reason = plainCommandText(rest.slice(1).join(' '));
      return done({ kind: 'revoke-all', userId, reason: reason === '' ? undefined : reason });
    }
    case 'request':
      return parseRequest(rest);
    default:
      return fail(`Unknown command ${quote(words[0] ?? '')}.`);
  }
}

/** `request <resource> [scope] <duration> <reason…>`: the scope is present when word 2 is not a duration. */
function parseRequest(words: readonly string[]): ParsedCommand {
  const [resourceWord, second, third] = words;
  if (resourceWord === undefined) return fail('`request` needs a resource, a duration and a reason.');
  const resource = resourceWord.toLowerCase();
  if (!RESOURCE.test(resource)) return fail(`${quote(resourceWord)} is not a resource name.`);
  if (second === undefined) return fail('`request` needs a duration (like `30m`) and a reason.');
  let scope: string | undefined;
  let durationWord = second;
  let reasonStart = 2;
  if (parseDuration(second) === undefined) {
    if (!SCOPE.test(second.toLowerCase())) {
      return fail(`${quote(second)} is neither a scope nor a duration (like 30m, 2h or 1d).`);
    }
    scope = second.toLowerCase();
    if (third === undefined) return fail('`request` needs a duration (like `30m`) and a reason.');
    durationWord = third;
    reasonStart = 3;
  }
  const seconds = parseDuration(durationWord);
  if (seconds === undefined)
    return fail(`${quote(durationWord)} is not a duration; use one like 30m, 2h or 1d.`);
  const reason = plainCommandText(words.slice(reasonStart).join(' ')).trim();
  if (reason === '') return fail('Say why you need access: the reason comes after the duration.');
  return done({ kind: 'request', resource, scope, durationSeconds: seconds, reason });
}
