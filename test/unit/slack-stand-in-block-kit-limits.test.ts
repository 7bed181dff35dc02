import { describe, expect, it } from 'vitest';
import {
  checkMessage,
  checkView,
  RULES,
  type RuleName,
  slackErrorLines,
  type Violation,
} from '../../src/dev/slack-stand-in/block-kit-limits.ts';

const plain = (text: string) => ({ type: 'plain_text', text });
const mrkdwn = (text: string) => ({ type: 'mrkdwn', text });
const long = (n: number) => 'x'.repeat(n);
const section = (text = 'hello') => ({ type: 'section', text: mrkdwn(text) });
const button = (over: Record<string, unknown> = {}) => ({
  type: 'button',
  text: plain('Approve'),
  action_id: 'approve',
  value: 'v',
  ...over,
});
const option = (text: string, value: string) => ({ text: plain(text), value });
const select = (over: Record<string, unknown> = {}) => ({
  type: 'static_select',
  action_id: 'pick',
  placeholder: plain('Pick'),
  options: [option('One', '1'), option('Two', '2')],
  ...over,
});
const confirm = (over: Record<string, unknown> = {}) => ({
  title: plain('Sure?'),
  text: plain('It stops at once.'),
  confirm: plain('Yes'),
  deny: plain('No'),
  ...over,
});
const modal = (over: Record<string, unknown> = {}) => ({
  type: 'modal',
  callback_id: 'request_access',
  title: plain('Request access'),
  submit: plain('Request'),
  close: plain('Cancel'),
  private_metadata: 'id',
  blocks: [
    {
      type: 'input',
      block_id: 'reason',
      label: plain('Why?'),
      element: { type: 'plain_text_input', action_id: 'reason', max_length: 2000 },
    },
  ],
  ...over,
});

const messageRules = (blocks: unknown[], text = 'fallback') => checkMessage({ text, blocks }).violations;
const rulesOf = (violations: Violation[]) => violations.map((v) => v.rule);

/** One payload per rule that breaks it (and, as the first test shows, nothing else). */
const BROKEN: Record<RuleName, () => Violation[]> = {
  blocksPerMessage: () => messageRules(Array.from({ length: 51 }, () => section())),
  blocksPerView: () => checkView({ type: 'home', blocks: Array.from({ length: 101 }, () => section()) }),
  messageText: () => checkMessage({ text: long(40_001) }).violations,
  textObject: () => messageRules([{ type: 'context', elements: [mrkdwn(long(3001))] }]),
  blockId: () => messageRules([{ ...section(), block_id: long(256) }]),
  actionId: () => messageRules([{ type: 'actions', elements: [button({ action_id: long(256) })] }]),
  sectionText: () => messageRules([section(long(3001))]),
  sectionFields: () =>
    messageRules([{ type: 'section', fields: Array.from({ length: 11 }, () => mrkdwn('f')) }]),
  sectionFieldText: () => messageRules([{ type: 'section', fields: [mrkdwn(long(2001))] }]),
  headerText: () => messageRules([{ type: 'header', text: plain(long(151)) }]),
  contextElements: () =>
    messageRules([{ type: 'context', elements: Array.from({ length: 11 }, () => mrkdwn('c')) }]),
  actionsElements: () =>
    messageRules([
      { type: 'actions', elements: Array.from({ length: 26 }, (_, i) => button({ action_id: `a${i}` })) },
    ]),
  inputLabel: () =>
    checkView(
      modal({
        blocks: [
          { type: 'input', label: plain(long(2001)), element: { type: 'plain_text_input', action_id: 'r' } },
        ],
      }),
    ),
  inputHint: () =>
    checkView(
      modal({
        blocks: [
          {
            type: 'input',
            label: plain('Why?'),
            hint: plain(long(2001)),
            element: { type: 'plain_text_input', action_id: 'r' },
          },
        ],
      }),
    ),
  buttonText: () => messageRules([{ type: 'actions', elements: [button({ text: plain(long(76)) })] }]),
  buttonValue: () => messageRules([{ type: 'actions', elements: [button({ value: long(2001) })] }]),
  buttonUrl: () =>
    messageRules([{ type: 'actions', elements: [button({ url: `https://x/${long(3000)}` })] }]),
  placeholder: () =>
    messageRules([{ type: 'actions', elements: [select({ placeholder: plain(long(151)) })] }]),
  selectOptions: () =>
    messageRules([
      {
        type: 'actions',
        elements: [select({ options: Array.from({ length: 101 }, (_, i) => option(`o${i}`, `${i}`)) })],
      },
    ]),
  optionGroups: () =>
    messageRules([
      {
        type: 'actions',
        elements: [
          select({
            options: undefined,
            option_groups: Array.from({ length: 101 }, (_, g) => ({
              label: plain(`g${g}`),
              options: [option(`o${g}`, `${g}`)],
            })),
          }),
        ],
      },
    ]),
  optionGroupLabel: () =>
    messageRules([
      {
        type: 'actions',
        elements: [
          select({
            options: undefined,
            option_groups: [{ label: plain(long(76)), options: [option('a', 'a')] }],
          }),
        ],
      },
    ]),
  optionText: () =>
    messageRules([{ type: 'actions', elements: [select({ options: [option(long(76), '1')] })] }]),
  optionValue: () =>
    messageRules([{ type: 'actions', elements: [select({ options: [option('One', long(151))] })] }]),
  optionDescription: () =>
    messageRules([
      {
        type: 'actions',
        elements: [select({ options: [{ ...option('One', '1'), description: plain(long(76)) }] })],
      },
    ]),
  textInputLength: () =>
    checkView(
      modal({
        blocks: [
          {
            type: 'input',
            label: plain('Why?'),
            element: { type: 'plain_text_input', action_id: 'r', max_length: 3001 },
          },
        ],
      }),
    ),
  confirmTitle: () =>
    messageRules([
      { type: 'actions', elements: [button({ confirm: confirm({ title: plain(long(101)) }) })] },
    ]),
  confirmText: () =>
    messageRules([{ type: 'actions', elements: [button({ confirm: confirm({ text: plain(long(301)) }) })] }]),
  confirmButton: () =>
    messageRules([
      { type: 'actions', elements: [button({ confirm: confirm({ confirm: plain(long(31)) }) })] },
    ]),
  modalTitle: () => checkView(modal({ title: plain('Request access to billing') })),
  modalButton: () => checkView(modal({ submit: plain('Request access right now!') })),
  privateMetadata: () => checkView(modal({ private_metadata: long(3001) })),
  callbackId: () => checkView(modal({ callback_id: long(256) })),
};

describe('Block Kit limits', () => {
  it('valid payloads of every kind pass', () => {
    expect(
      messageRules([
        { type: 'header', text: plain(long(150)) },
        section(long(3000)),
        { type: 'section', fields: Array.from({ length: 10 }, () => mrkdwn(long(2000))) },
        { type: 'section', text: mrkdwn('pick'), accessory: select() },
        {
          type: 'actions',
          block_id: long(255),
          elements: [button({ text: plain(long(75)), value: long(2000), confirm: confirm() }), select()],
        },
        { type: 'context', elements: Array.from({ length: 10 }, () => mrkdwn('c')) },
        { type: 'divider' },
        ...Array.from({ length: 43 }, () => section()),
      ]),
    ).toEqual([]);
    expect(checkMessage({ text: long(40_000) }).error).toBeUndefined();
    expect(checkView(modal())).toEqual([]);
    expect(checkView({ type: 'home', blocks: Array.from({ length: 100 }, () => section()) })).toEqual([]);
  });

  it.each(Object.keys(RULES) as RuleName[])(
    '%s: breaking it is refused, naming the rule and its page',
    (rule) => {
      const violations = BROKEN[rule]();
      expect(rulesOf(violations)).toContain(rule);
      // Only the broken rule (textObject rides along for text fields longer than 3000).
      expect(new Set(rulesOf(violations).filter((r) => r !== 'textObject'))).toEqual(
        rule === 'textObject' ? new Set() : new Set([rule]),
      );
      const line = slackErrorLines(violations.filter((v) => v.rule === rule))[0] ?? '';
      expect(line).toContain(RULES[rule].doc);
      expect(line).toMatch(/\[json-pointer:\/(blocks|view|text)[^\]]*\]$/);
    },
  );

  it('answers msg_too_long for long fallback text, no_text for an empty message, invalid_blocks otherwise', () => {
    expect(checkMessage({ text: long(40_001), blocks: [section()] }).error).toBe('msg_too_long');
    expect(checkMessage({ text: '  ' }).error).toBe('no_text');
    expect(checkMessage({ blocks: [section()] }).error).toBeUndefined();
    expect(checkMessage({ text: 'x', blocks: [section(long(3001))] }).error).toBe('invalid_blocks');
  });

  it('refuses block_ids used twice, action_ids used twice in one block, and option values used twice', () => {
    expect(
      messageRules([
        { ...section(), block_id: 'a' },
        { ...section(), block_id: 'a' },
      ]),
    ).toMatchObject([{ rule: 'blockId', pointer: '/blocks/1/block_id' }]);
    expect(messageRules([{ type: 'actions', elements: [button(), button()] }]).map((v) => v.pointer)).toEqual(
      ['/blocks/0/elements/1/action_id'],
    );
    // The same action_id in different blocks is fine: Slack asks for uniqueness within a block.
    expect(
      messageRules([
        { type: 'actions', elements: [button()] },
        { type: 'actions', elements: [button()] },
      ]),
    ).toEqual([]);
    expect(
      messageRules([
        { type: 'actions', elements: [select({ options: [option('a', '1'), option('b', '1')] })] },
      ]),
    ).toMatchObject([{ rule: 'optionValue' }]);
  });

  it('refuses shapes Slack does not know: types, mrkdwn where only plain_text goes, empty text, a stray initial_option', () => {
    const shapes = [
      messageRules([{ type: 'table' }]),
      messageRules([{ type: 'header', text: mrkdwn('*bold*') }]),
      messageRules([section('')]),
      messageRules([{ type: 'section' }]),
      messageRules([{ type: 'actions', elements: [] }]),
      messageRules([{ type: 'actions', elements: [{ type: 'datepicker', action_id: 'd' }] }]),
      messageRules([{ type: 'actions', elements: [select({ initial_option: option('Three', '3') })] }]),
      messageRules([{ type: 'actions', elements: [select({ option_groups: [] })] }]),
      messageRules([
        { type: 'input', label: plain('x'), element: { type: 'plain_text_input', action_id: 'x' } },
      ]),
      checkView(modal({ submit: undefined })),
      checkView(modal({ title: undefined })),
      checkView({ type: 'workflow_step', blocks: [] }),
    ];
    for (const violations of shapes) expect(violations.length).toBeGreaterThan(0);
  });

  it('counts UTF-16 code units, so emoji never slip past a limit', () => {
    const emoji = '😀'.repeat(1501); // 3002 code units, 1501 code points
    expect(rulesOf(messageRules([section(emoji)]))).toContain('sectionText');
  });
});
