import type { Grant } from '../../db/schema/index.ts';
import { describeDuration } from '../../policy/index.ts';
import { isSlackUserId } from '../../shared/ids.ts';
import { LIMITS } from './kit.ts';

/**
 * How text reaches mrkdwn. Whatever a person typed is escaped first and cut after, on a
 * grapheme boundary, so a cut never splits an escape (`&am`) or an emoji (a lone surrogate),
 * and an escape-heavy reason cannot grow past a section's limit. It is also shown so it cannot
 * pass for jitgate's own lines: on one line, or as a quote.
 */

const graphemes = new Intl.Segmenter('en', { granularity: 'grapheme' });

/** Marks and overrides that reorder how text reads (U+202E shows `txt.exe` as `exe.txt`). */
const BIDI_CONTROLS = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/g;
/** C0 and C1 control characters (Unicode's `Cc`) other than tab and line feed (which text may carry). */
const CONTROLS = /(?![\t\n])\p{Cc}/gu;

/**
 * Slack's three control characters become entities, so `<!channel>`, `<@U1>` and
 * `<https://x|y>` written by a user show as typed and ping or link nobody.
 */
export function escapeText(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Stored text as it may be shown: bidi controls dropped, line breaks unified, other controls as spaces. */
export function displayable(text: string): string {
  return text
    .replace(BIDI_CONTROLS, '')
    .replace(/\r\n?|[\u2028\u2029]/g, '\n')
    .replace(CONTROLS, ' ');
}

/**
 * `text` rendered grapheme by grapheme with `render`, at most `max` characters long; when it
 * does not fit, as much as fits before `more`.
 */
export function fitRendered(
  text: string,
  max: number,
  render: (grapheme: string) => string,
  more = '…',
): string {
  const pieces: string[] = [];
  let total = 0;
  for (const { segment } of graphemes.segment(text)) {
    const piece = render(segment);
    pieces.push(piece);
    total += piece.length;
    // Past `max` it cannot fit; what fits before `more` is among the pieces seen so far.
    if (total > max) break;
  }
  if (total <= max) return pieces.join('');
  const budget = Math.max(0, max - more.length);
  let out = '';
  for (const piece of pieces) {
    if (out.length + piece.length > budget) break;
    out += piece;
  }
  return out + more;
}

/** User text on one line: escaped, line breaks as spaces, cut to `max`. */
export function inlineText(text: string, max = 500): string {
  const flat = displayable(text)
    .replace(/\s*\n\s*/g, ' ')
    .trim();
  return fitRendered(flat, max, escapeText);
}

/**
 * User text as a block quote (every line starts with `>`), so no line of it can look like one
 * of jitgate's `*Label:*` lines. Cut to `max` with a note saying where the whole text is.
 */
export function quotedText(text: string, max: number, what: string): string {
  const lines = displayable(text)
    .trim()
    .replace(/\n{3,}/g, '\n\n');
  const more = `…\n_(cut; the full ${what} is in the audit log)_`;
  return `>${fitRendered(lines, max - 1, (g) => (g === '\n' ? '\n>' : escapeText(g)), more)}`;
}

/**
 * A value from a request (a path, an IP, a header) as inline code: escaped so it cannot
 * mention or link, with backticks and line breaks replaced so it cannot close the code span
 * and bring `*`, `_` or `~` formatting back to life, and cut to `max`.
 */
export function codeText(value: string, max = 200): string {
  const flat = displayable(value)
    .replace(/[\p{Cc}\u2028\u2029]+/gu, ' ')
    .replace(/`/g, '\u02cb')
    .trim();
  return flat === '' ? '—' : `\`${fitRendered(flat, max, escapeText)}\``;
}

/**
 * The notification line of a message (`text`): Slack reads mentions and links there too, so it
 * is escaped like any mrkdwn, kept on one line and short.
 */
export function notificationText(text: string): string {
  return fitRendered(displayable(text).replace(/\s*\n\s*/g, ' '), LIMITS.fallbackText, escapeText);
}

/** A mention of a real user id; anything else (like `timeout` or `policy`) is shown as text. */
export function mention(userId: string): string {
  return isSlackUserId(userId) ? `<@${userId}>` : inlineText(userId, 100);
}

/** Each reader sees the time in their own zone; the fallback is UTC. */
export function slackDate(at: Date, format = '{date_short_pretty} {time}'): string {
  const unix = Math.floor(at.getTime() / 1000);
  const fallback = `${at.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
  return `<!date^${unix}^${format}|${fallback}>`;
}

export function timeLeft(until: Date, now: Date): string {
  const seconds = Math.max(0, Math.round((until.getTime() - now.getTime()) / 1000));
  return seconds === 0 ? 'ended' : `${describeDuration(seconds)} left`;
}

export const NUMBER = new Intl.NumberFormat('en-US');

export const plural = (n: number, one: string, many = `${one}s`): string =>
  `${NUMBER.format(n)} ${n === 1 ? one : many}`;

/** `1,000 calls`, `10 MB`, joined: what a quota allows, for people. */
export function describeQuota(quota: {
  requests?: number | null;
  responseBytes?: number | null;
}): string | undefined {
  const parts: string[] = [];
  if (quota.requests != null) parts.push(plural(quota.requests, 'call'));
  if (quota.responseBytes != null) parts.push(describeBytes(quota.responseBytes));
  return parts.length > 0 ? parts.join(', ') : undefined;
}

function describeBytes(bytes: number): string {
  for (const [unit, size] of [
    ['GB', 1024 ** 3],
    ['MB', 1024 ** 2],
    ['KB', 1024],
  ] as const) {
    if (bytes >= size) return `${NUMBER.format(Math.round((bytes / size) * 10) / 10)} ${unit}`;
  }
  return `${NUMBER.format(bytes)} bytes`;
}

/** `412 of 1,000 calls used` for a grant with a quota; undefined without one. */
export function quotaUse(
  grant: Pick<Grant, 'quotaRequests' | 'quotaResponseBytes' | 'usedRequests' | 'usedResponseBytes'>,
): string | undefined {
  const parts: string[] = [];
  if (grant.quotaRequests !== null) {
    parts.push(`${NUMBER.format(grant.usedRequests)} of ${NUMBER.format(grant.quotaRequests)} calls`);
  }
  if (grant.quotaResponseBytes !== null) {
    parts.push(`${describeBytes(grant.usedResponseBytes)} of ${describeBytes(grant.quotaResponseBytes)}`);
  }
  return parts.length > 0 ? `${parts.join(', ')} used` : undefined;
}

/** `*billing-api* · \`read\``: names come from the policy, but are escaped all the same. */
export function scopeLabel(resource: string, scope: string): string {
  return `*${inlineText(resource, 100)}* · \`${inlineText(scope, 64)}\``;
}

/**
 * `head` and as many of `lines` as fit in one section, then how many did not and where to see
 * them: a long list is summarised, never cut off silently.
 */
export function boundedLines(
  head: string,
  lines: readonly string[],
  seeAlso: string,
  max: number = LIMITS.sectionText,
): string {
  let text = head;
  for (const [index, line] of lines.entries()) {
    const rest = lines.length - index;
    const more = `\n…and ${NUMBER.format(rest)} more (${seeAlso})`;
    if (text.length + 1 + line.length + (rest > 1 ? more.length : 0) > max) return text + more;
    text += `\n${line}`;
  }
  return text;
}
