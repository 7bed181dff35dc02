import type { RecordedCall } from '../../src/dev/slack-stand-in/web-api.ts';

/**
 * jitgate's own rules for what it sends, on top of Slack's limits: no half of a surrogate pair
 * (a cut emoji), no cut escape (`&am`), and no `<` that is not one of the few control sequences
 * jitgate writes itself (a mention of a user id, a channel link, a date). Anything else means
 * user text reached mrkdwn unescaped, or an escape was cut in half. And every mrkdwn text is
 * `verbatim`, so Slack auto-links and auto-mentions nothing in it.
 */

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const BROKEN_ENTITY = /&(?!amp;|lt;|gt;)/;
const FOREIGN_CONTROL = /<(?!@[UW][A-Z0-9]+>|#[CG][A-Z0-9]+>|!date\^\d+\^[^|>]+\|[^>]+>)/;

export interface HygieneProblem {
  method: string;
  path: string;
  problem: string;
  text: string;
}

interface Visitor {
  /** A string in the payload; `mrkdwn` when Slack reads it as mrkdwn. */
  text(text: string, path: string, mrkdwn: boolean): void;
  /** A mrkdwn text object that lets Slack auto-link and auto-mention (not `verbatim`). */
  parsed(path: string): void;
}

function walk(value: unknown, path: string, visit: Visitor): void {
  if (Array.isArray(value)) {
    value.forEach((item, i) => {
      walk(item, `${path}/${i}`, visit);
    });
    return;
  }
  if (typeof value !== 'object' || value === null) return;
  const record = value as Record<string, unknown>;
  if (typeof record.text === 'string' && (record.type === 'mrkdwn' || record.type === 'plain_text')) {
    visit.text(record.text, `${path}/text`, record.type === 'mrkdwn');
    if (record.type === 'mrkdwn' && record.verbatim !== true) visit.parsed(path);
  }
  for (const [key, child] of Object.entries(record)) {
    if (key === 'text' && typeof child === 'string') continue;
    if (typeof child === 'string') visit.text(child, `${path}/${key}`, false);
    else walk(child, `${path}/${key}`, visit);
  }
}

/** Every problem in the blocks, views and fallback text of `calls`. */
export function hygieneProblems(calls: readonly RecordedCall[]): HygieneProblem[] {
  const problems: HygieneProblem[] = [];
  for (const call of calls) {
    const add = (path: string, problem: string, text: string) =>
      problems.push({ method: call.method, path, problem, text: text.slice(0, 200) });
    const visit: Visitor = {
      text(text, path, mrkdwn) {
        if (LONE_SURROGATE.test(text)) add(path, 'lone surrogate', text);
        if (mrkdwn && BROKEN_ENTITY.test(text)) add(path, 'cut or bare escape', text);
        if (mrkdwn && FOREIGN_CONTROL.test(text)) add(path, 'unescaped <', text);
      },
      parsed: (path) => add(path, 'mrkdwn not verbatim', ''),
    };
    walk(call.args.blocks, '/blocks', visit);
    walk(call.args.view, '/view', visit);
    if (typeof call.args.text === 'string' && LONE_SURROGATE.test(call.args.text)) {
      add('/text', 'lone surrogate', call.args.text);
    }
  }
  return problems;
}
