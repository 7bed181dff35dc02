import type { types } from '@slack/bolt';

/**
 * The Block Kit pieces every surface is made of, sized to Slack's limits
 * (https://docs.slack.dev/reference/block-kit/blocks): what a builder passes in is cut to fit,
 * so no surface can make a block Slack refuses.
 */

export type Block = types.KnownBlock;
export type ModalView = types.ModalView;
export type HomeView = types.HomeView;

/** A message: `text` is the notification/fallback line, `blocks` what people see. */
export interface SlackMessage {
  text: string;
  blocks: Block[];
}

/** Slack's limits that builders size against. */
export const LIMITS = {
  blocksPerMessage: 50,
  blocksPerView: 100,
  /** A section's text; builders keep a margin under Slack's 3000. */
  sectionText: 2900,
  headerText: 150,
  buttonText: 75,
  optionText: 75,
  optionValue: 150,
  optionsPerSelect: 100,
  optionGroups: 100,
  placeholder: 150,
  modalTitle: 24,
  /** The notification line: Slack truncates beyond 40,000; nobody reads a notification that long. */
  fallbackText: 3000,
} as const;

/**
 * Plain text cut to `max` UTF-16 units without splitting a surrogate pair: plain text is shown
 * as is, so only length and emoji halves matter here (escaping is for mrkdwn).
 */
export function plainCut(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = max - 1;
  const code = text.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end -= 1;
  return `${text.slice(0, end)}…`;
}

export const plain = (text: string, max: number = LIMITS.headerText): types.PlainTextElement => ({
  type: 'plain_text',
  text: plainCut(text === '' ? ' ' : text, max),
  emoji: true,
});

/**
 * mrkdwn the caller has escaped and sized (see text.ts), always `verbatim`: Slack then turns no
 * bare URL, `@here` or `#channel` in it into a link or a ping. Only the sequences jitgate writes
 * itself (`<@U…>`, `<#C…>`, `<!date^…>`) are read, so no user text can ping or link.
 */
export const section = (text: string): Block => ({
  type: 'section',
  text: { type: 'mrkdwn', text, verbatim: true },
});

/** A section with a button beside it (Cancel, Revoke in lists). */
export function withAccessory(block: Block, accessory: types.Button): Block {
  return block.type === 'section' ? { ...block, accessory } : block;
}

export const context = (text: string): Block => ({
  type: 'context',
  elements: [{ type: 'mrkdwn', text, verbatim: true }],
});

export const header = (text: string): Block => ({ type: 'header', text: plain(text, LIMITS.headerText) });

export const divider = (): Block => ({ type: 'divider' });

export function button(
  text: string,
  actionId: string,
  value: string,
  style?: 'primary' | 'danger',
  confirm?: types.ConfirmationDialog,
): types.Button {
  const element: types.Button = {
    type: 'button',
    text: plain(text, LIMITS.buttonText),
    action_id: actionId,
    value,
  };
  if (style) element.style = style;
  if (confirm) element.confirm = confirm;
  return element;
}

export function option(text: string, value: string, description?: string): types.PlainTextOption {
  const made: types.PlainTextOption = { text: plain(text, LIMITS.optionText), value };
  if (description) made.description = plain(description, LIMITS.optionText);
  return made;
}

export function confirmDialog(
  title: string,
  text: string,
  confirm: string,
  deny: string,
): types.ConfirmationDialog {
  return {
    title: plain(title, 100),
    text: plain(text, 300),
    confirm: plain(confirm, 30),
    deny: plain(deny, 30),
  };
}
