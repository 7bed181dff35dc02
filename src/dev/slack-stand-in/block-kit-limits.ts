import { isRecord } from '../../shared/is-record.ts';

/**
 * Slack's documented Block Kit limits, checked the way Slack checks them: a payload that breaks
 * one is refused (`invalid_blocks` for messages, `invalid_arguments` for views, `msg_too_long`
 * for the fallback text), with one `[json-pointer:…]` line per problem, as Slack answers.
 *
 * Every rule names the page of Slack's reference it comes from. Lengths are counted in UTF-16
 * code units (JavaScript's `length`), which is never less than Slack's character count, so a
 * payload that passes here passes there.
 */

const DOCS = 'https://docs.slack.dev/reference';

/** Where each limit is written down. */
export const RULES = {
  blocksPerMessage: { limit: 50, doc: `${DOCS}/block-kit/blocks` },
  blocksPerView: { limit: 100, doc: `${DOCS}/block-kit/blocks` },
  messageText: {
    limit: 40_000,
    doc: 'https://api.slack.com/changelog/2018-04-truncating-really-long-messages',
  },
  textObject: { limit: 3000, doc: `${DOCS}/block-kit/composition-objects/text-object` },
  blockId: { limit: 255, doc: `${DOCS}/block-kit/blocks` },
  actionId: { limit: 255, doc: `${DOCS}/block-kit/block-elements/button-element` },
  sectionText: { limit: 3000, doc: `${DOCS}/block-kit/blocks/section-block` },
  sectionFields: { limit: 10, doc: `${DOCS}/block-kit/blocks/section-block` },
  sectionFieldText: { limit: 2000, doc: `${DOCS}/block-kit/blocks/section-block` },
  headerText: { limit: 150, doc: `${DOCS}/block-kit/blocks/header-block` },
  contextElements: { limit: 10, doc: `${DOCS}/block-kit/blocks/context-block` },
  actionsElements: { limit: 25, doc: `${DOCS}/block-kit/blocks/actions-block` },
  inputLabel: { limit: 2000, doc: `${DOCS}/block-kit/blocks/input-block` },
  inputHint: { limit: 2000, doc: `${DOCS}/block-kit/blocks/input-block` },
  buttonText: { limit: 75, doc: `${DOCS}/block-kit/block-elements/button-element` },
  buttonValue: { limit: 2000, doc: `${DOCS}/block-kit/block-elements/button-element` },
  buttonUrl: { limit: 3000, doc: `${DOCS}/block-kit/block-elements/button-element` },
  placeholder: { limit: 150, doc: `${DOCS}/block-kit/block-elements/select-menu-element` },
  selectOptions: { limit: 100, doc: `${DOCS}/block-kit/block-elements/select-menu-element` },
  optionGroups: { limit: 100, doc: `${DOCS}/block-kit/composition-objects/option-group-object` },
  optionGroupLabel: { limit: 75, doc: `${DOCS}/block-kit/composition-objects/option-group-object` },
  optionText: { limit: 75, doc: `${DOCS}/block-kit/composition-objects/option-object` },
  optionValue: { limit: 150, doc: `${DOCS}/block-kit/composition-objects/option-object` },
  optionDescription: { limit: 75, doc: `${DOCS}/block-kit/composition-objects/option-object` },
  textInputLength: { limit: 3000, doc: `${DOCS}/block-kit/block-elements/plain-text-input-element` },
  confirmTitle: { limit: 100, doc: `${DOCS}/block-kit/composition-objects/confirmation-dialog-object` },
  confirmText: { limit: 300, doc: `${DOCS}/block-kit/composition-objects/confirmation-dialog-object` },
  confirmButton: { limit: 30, doc: `${DOCS}/block-kit/composition-objects/confirmation-dialog-object` },
  modalTitle: { limit: 24, doc: `${DOCS}/views/modal-views` },
  modalButton: { limit: 24, doc: `${DOCS}/views/modal-views` },
  privateMetadata: { limit: 3000, doc: `${DOCS}/views/modal-views` },
  callbackId: { limit: 255, doc: `${DOCS}/views/modal-views` },
} as const;

export type RuleName = keyof typeof RULES;

export interface Violation {
  rule: RuleName | 'shape';
  /** JSON pointer into the payload, as Slack writes it (`/blocks/0/text/text`). */
  pointer: string;
  message: string;
}

/** Where blocks are shown; the allowed count and a few rules depend on it. */
type Surface = 'message' | 'modal' | 'home';

const BLOCK_TYPES = new Set(['section', 'divider', 'header', 'context', 'actions', 'input', 'image']);

class Checker {
  readonly violations: Violation[] = [];

  fail(rule: Violation['rule'], pointer: string, message: string): void {
    this.violations.push({ rule, pointer, message });
  }

  max(rule: RuleName, pointer: string, length: number, what: string): void {
    const { limit, doc } = RULES[rule];
    if (length > limit) {
      this.fail(rule, pointer, `${what} must be at most ${limit} characters, not ${length} (${doc})`);
    }
  }

  count(rule: RuleName, pointer: string, items: readonly unknown[], what: string, min = 1): void {
    const { limit, doc } = RULES[rule];
    if (items.length > limit) {
      this.fail(rule, pointer, `${what} may hold at most ${limit} items, not ${items.length} (${doc})`);
    } else if (items.length < min) {
      this.fail(rule, pointer, `${what} must hold at least ${min} item${min === 1 ? '' : 's'} (${doc})`);
    }
  }

  /** A text object; `plainOnly` where Slack accepts only `plain_text`. */
  text(value: unknown, pointer: string, rule: RuleName, what: string, plainOnly: boolean): void {
    if (!isRecord(value)) {
      this.fail('shape', pointer, `${what} must be a text object`);
      return;
    }
    const type = value.type;
    if (type !== 'plain_text' && type !== 'mrkdwn') {
      this.fail('shape', `${pointer}/type`, `${what} must be plain_text or mrkdwn`);
      return;
    }
    if (plainOnly && type !== 'plain_text') {
      this.fail('shape', `${pointer}/type`, `${what} must be plain_text (${RULES[rule].doc})`);
    }
    if (typeof value.text !== 'string' || value.text.length === 0) {
      this.fail('textObject', `${pointer}/text`, `${what} must be a string of at least 1 character`);
      return;
    }
    this.max('textObject', `${pointer}/text`, value.text.length, what);
    if (rule !== 'textObject') this.max(rule, `${pointer}/text`, value.text.length, what);
  }

  id(value: unknown, pointer: string, rule: 'blockId' | 'actionId' | 'callbackId', what: string): void {
    if (value === undefined) return;
    if (typeof value !== 'string' || value.length === 0) {
      this.fail('shape', pointer, `${what} must be a non-empty string`);
      return;
    }
    this.max(rule, pointer, value.length, what);
  }

  confirm(value: unknown, pointer: string): void {
    if (value === undefined) return;
    if (!isRecord(value)) {
      this.fail('shape', pointer, 'confirm must be a confirmation dialog object');
      return;
    }
    this.text(value.title, `${pointer}/title`, 'confirmTitle', 'confirm title', true);
    this.text(value.text, `${pointer}/text`, 'confirmText', 'confirm text', true);
    this.text(value.confirm, `${pointer}/confirm`, 'confirmButton', 'confirm button', true);
    this.text(value.deny, `${pointer}/deny`, 'confirmButton', 'deny button', true);
  }

  option(value: unknown, pointer: string, values: Set<string>): Record<string, unknown> | undefined {
    if (!isRecord(value)) {
      this.fail('shape', pointer, 'an option must be an option object');
      return undefined;
    }
    this.text(value.text, `${pointer}/text`, 'optionText', 'option text', true);
    if (typeof value.value !== 'string' || value.value.length === 0) {
      this.fail('shape', `${pointer}/value`, 'option value must be a non-empty string');
    } else {
      this.max('optionValue', `${pointer}/value`, value.value.length, 'option value');
      // Slack's option object: "a unique string value that will be passed to your app".
      if (values.has(value.value)) {
        this.fail(
          'optionValue',
          `${pointer}/value`,
          `option value ${JSON.stringify(value.value)} is not unique`,
        );
      }
      values.add(value.value);
    }
    if (value.description !== undefined) {
      this.text(value.description, `${pointer}/description`, 'optionDescription', 'option description', true);
    }
    return value;
  }

  staticSelect(element: Record<string, unknown>, pointer: string): void {
    const { options, option_groups: groups } = element;
    const values = new Set<string>();
    const all: Record<string, unknown>[] = [];
    if ((options === undefined) === (groups === undefined)) {
      this.fail('shape', pointer, 'a static select takes exactly one of options or option_groups');
    }
    if (options !== undefined) {
      if (!Array.isArray(options)) this.fail('shape', `${pointer}/options`, 'options must be an array');
      else {
        this.count('selectOptions', `${pointer}/options`, options, 'options');
        options.forEach((o, i) => {
          const checked = this.option(o, `${pointer}/options/${i}`, values);
          if (checked) all.push(checked);
        });
      }
    }
    if (groups !== undefined) {
      if (!Array.isArray(groups))
        this.fail('shape', `${pointer}/option_groups`, 'option_groups must be an array');
      else {
        this.count('optionGroups', `${pointer}/option_groups`, groups, 'option_groups');
        groups.forEach((group, g) => {
          const at = `${pointer}/option_groups/${g}`;
          if (!isRecord(group)) {
            this.fail('shape', at, 'an option group must be an object');
            return;
          }
          this.text(group.label, `${at}/label`, 'optionGroupLabel', 'option group label', true);
          if (!Array.isArray(group.options)) {
            this.fail('shape', `${at}/options`, 'an option group needs options');
            return;
          }
          this.count('selectOptions', `${at}/options`, group.options, 'option group options');
          group.options.forEach((o, i) => {
            const checked = this.option(o, `${at}/options/${i}`, values);
            if (checked) all.push(checked);
          });
        });
      }
    }
    const initial = element.initial_option;
    if (initial !== undefined) {
      // "A single option that exactly matches one of the options within options or option_groups."
      const match =
        isRecord(initial) &&
        all.some((o) => o.value === initial.value && JSON.stringify(o.text) === JSON.stringify(initial.text));
      if (!match) {
        this.fail(
          'shape',
          `${pointer}/initial_option`,
          `initial_option must exactly match one of the options (${RULES.selectOptions.doc})`,
        );
      }
    }
  }

  element(value: unknown, pointer: string, actionIds: Set<string>): void {
    if (!isRecord(value)) {
      this.fail('shape', pointer, 'an element must be an object');
      return;
    }
    this.id(value.action_id, `${pointer}/action_id`, 'actionId', 'action_id');
    if (typeof value.action_id === 'string') {
      // "Should be unique among all other action_ids in the containing block."
      if (actionIds.has(value.action_id)) {
        this.fail(
          'actionId',
          `${pointer}/action_id`,
          `action_id ${JSON.stringify(value.action_id)} is not unique in its block`,
        );
      }
      actionIds.add(value.action_id);
    }
    if (value.placeholder !== undefined) {
      this.text(value.placeholder, `${pointer}/placeholder`, 'placeholder', 'placeholder', true);
    }
    this.confirm(value.confirm, `${pointer}/confirm`);
    switch (value.type) {
      case 'button':
        this.text(value.text, `${pointer}/text`, 'buttonText', 'button text', true);
        if (value.value !== undefined) {
          if (typeof value.value !== 'string')
            this.fail('shape', `${pointer}/value`, 'button value must be a string');
          else this.max('buttonValue', `${pointer}/value`, value.value.length, 'button value');
        }
        if (typeof value.url === 'string')
          this.max('buttonUrl', `${pointer}/url`, value.url.length, 'button url');
        if (value.style !== undefined && value.style !== 'primary' && value.style !== 'danger') {
          this.fail('shape', `${pointer}/style`, 'button style must be primary or danger');
        }
        return;
      case 'static_select':
        this.staticSelect(value, pointer);
        return;
      case 'plain_text_input':
        for (const key of ['max_length', 'min_length'] as const) {
          const n = value[key];
          if (n === undefined) continue;
          if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > RULES.textInputLength.limit) {
            this.fail(
              'textInputLength',
              `${pointer}/${key}`,
              `${key} must be a whole number up to ${RULES.textInputLength.limit} (${RULES.textInputLength.doc})`,
            );
          }
        }
        if (typeof value.initial_value === 'string') {
          this.max(
            'textInputLength',
            `${pointer}/initial_value`,
            value.initial_value.length,
            'initial_value',
          );
        }
        return;
      case 'image':
        return;
      default:
        this.fail('shape', `${pointer}/type`, `unsupported element type ${JSON.stringify(value.type)}`);
    }
  }

  block(value: unknown, pointer: string, surface: Surface, blockIds: Set<string>): void {
    if (!isRecord(value)) {
      this.fail('shape', pointer, 'a block must be an object');
      return;
    }
    const type = value.type;
    if (typeof type !== 'string' || !BLOCK_TYPES.has(type)) {
      this.fail('shape', `${pointer}/type`, `unsupported block type ${JSON.stringify(type)}`);
      return;
    }
    this.id(value.block_id, `${pointer}/block_id`, 'blockId', 'block_id');
    if (typeof value.block_id === 'string') {
      if (blockIds.has(value.block_id)) {
        this.fail(
          'blockId',
          `${pointer}/block_id`,
          `block_id ${JSON.stringify(value.block_id)} is not unique (${RULES.blockId.doc})`,
        );
      }
      blockIds.add(value.block_id);
    }
    const actionIds = new Set<string>();
    switch (type) {
      case 'section': {
        if (value.text === undefined && value.fields === undefined) {
          this.fail('shape', pointer, 'a section needs text or fields');
        }
        if (value.text !== undefined)
          this.text(value.text, `${pointer}/text`, 'sectionText', 'section text', false);
        if (value.fields !== undefined) {
          if (!Array.isArray(value.fields))
            this.fail('shape', `${pointer}/fields`, 'fields must be an array');
          else {
            this.count('sectionFields', `${pointer}/fields`, value.fields, 'section fields');
            value.fields.forEach((f, i) => {
              this.text(f, `${pointer}/fields/${i}`, 'sectionFieldText', 'section field', false);
            });
          }
        }
        if (value.accessory !== undefined) this.element(value.accessory, `${pointer}/accessory`, actionIds);
        return;
      }
      case 'header':
        this.text(value.text, `${pointer}/text`, 'headerText', 'header text', true);
        return;
      case 'context': {
        if (!Array.isArray(value.elements)) {
          this.fail('shape', `${pointer}/elements`, 'context elements must be an array');
          return;
        }
        this.count('contextElements', `${pointer}/elements`, value.elements, 'context elements');
        value.elements.forEach((e, i) => {
          if (isRecord(e) && e.type === 'image') return;
          this.text(e, `${pointer}/elements/${i}`, 'textObject', 'context text', false);
        });
        return;
      }
      case 'actions': {
        if (!Array.isArray(value.elements)) {
          this.fail('shape', `${pointer}/elements`, 'actions elements must be an array');
          return;
        }
        this.count('actionsElements', `${pointer}/elements`, value.elements, 'actions elements');
        value.elements.forEach((e, i) => {
          this.element(e, `${pointer}/elements/${i}`, actionIds);
        });
        return;
      }
      case 'input':
        if (surface === 'message') this.fail('shape', pointer, 'input blocks belong in modals and Home tabs');
        this.text(value.label, `${pointer}/label`, 'inputLabel', 'input label', true);
        if (value.hint !== undefined)
          this.text(value.hint, `${pointer}/hint`, 'inputHint', 'input hint', true);
        if (value.element === undefined)
          this.fail('shape', `${pointer}/element`, 'an input block needs an element');
        else this.element(value.element, `${pointer}/element`, actionIds);
        return;
      default:
        return;
    }
  }

  blocks(value: unknown, pointer: string, surface: Surface): void {
    if (!Array.isArray(value)) {
      this.fail('shape', pointer, 'blocks must be an array');
      return;
    }
    const rule = surface === 'message' ? 'blocksPerMessage' : 'blocksPerView';
    this.count(rule, pointer, value, `blocks in a ${surface}`, 0);
    const blockIds = new Set<string>();
    value.forEach((block, i) => {
      this.block(block, `${pointer}/${i}`, surface, blockIds);
    });
  }
}

export interface MessageCheck {
  /** `msg_too_long`, `no_text` or `invalid_blocks`: what Slack answers; undefined when valid. */
  error: 'msg_too_long' | 'no_text' | 'invalid_blocks' | undefined;
  violations: Violation[];
}

/** A message for `chat.postMessage`, `chat.update`, `chat.postEphemeral` or a `response_url`. */
export function checkMessage(args: { text?: unknown; blocks?: unknown }): MessageCheck {
  const checker = new Checker();
  const { text, blocks } = args;
  if (typeof text === 'string' && text.length > RULES.messageText.limit) {
    checker.max('messageText', '/text', text.length, 'message text');
    return { error: 'msg_too_long', violations: checker.violations };
  }
  const hasText = typeof text === 'string' && text.trim() !== '';
  if (blocks === undefined || (Array.isArray(blocks) && blocks.length === 0)) {
    return hasText ? { error: undefined, violations: [] } : { error: 'no_text', violations: [] };
  }
  checker.blocks(blocks, '/blocks', 'message');
  return {
    error: checker.violations.length > 0 ? 'invalid_blocks' : undefined,
    violations: checker.violations,
  };
}

/** A view for `views.open`, `views.update`, `views.push` or `views.publish`. */
export function checkView(view: unknown): Violation[] {
  const checker = new Checker();
  if (!isRecord(view)) {
    checker.fail('shape', '/view', 'view must be an object');
    return checker.violations;
  }
  const surface: Surface | undefined =
    view.type === 'modal' ? 'modal' : view.type === 'home' ? 'home' : undefined;
  if (!surface) {
    checker.fail('shape', '/view/type', 'view type must be modal or home');
    return checker.violations;
  }
  checker.blocks(view.blocks, '/view/blocks', surface);
  if (typeof view.private_metadata === 'string') {
    checker.max(
      'privateMetadata',
      '/view/private_metadata',
      view.private_metadata.length,
      'private_metadata',
    );
  }
  checker.id(view.callback_id, '/view/callback_id', 'callbackId', 'callback_id');
  if (surface === 'modal') {
    checker.text(view.title, '/view/title', 'modalTitle', 'modal title', true);
    if (view.submit !== undefined) checker.text(view.submit, '/view/submit', 'modalButton', 'submit', true);
    if (view.close !== undefined) checker.text(view.close, '/view/close', 'modalButton', 'close', true);
    const hasInput = Array.isArray(view.blocks) && view.blocks.some((b) => isRecord(b) && b.type === 'input');
    if (hasInput && view.submit === undefined) {
      checker.fail(
        'shape',
        '/view/submit',
        `submit is required when a modal has an input block (${RULES.modalButton.doc})`,
      );
    }
  }
  return checker.violations;
}

/** The `errors` Slack lists in a refusal: `must be … [json-pointer:/blocks/0/text/text]`. */
export function slackErrorLines(violations: readonly Violation[]): string[] {
  return violations.map((v) => `${v.message} [json-pointer:${v.pointer}]`);
}
