import { isRecord } from '../shared/is-record.ts';

/**
 * Renders Block Kit as plain text, the way a reader would see it in Slack, for the demo's
 * transcript: mentions as @U…, dates by their fallback, buttons as [ Label ].
 */

/** Slack mrkdwn → what a reader sees. */
function readMrkdwn(text: string): string {
  return text
    .replace(/<!date\^\d+\^[^|>]*\|([^>]*)>/g, '$1')
    .replace(/<@([A-Z0-9]+)>/g, '@$1')
    .replace(/<#([A-Z0-9]+)(?:\|[^>]*)?>/g, '#$1')
    .replace(/<(https?:[^|>]+)\|([^>]+)>/g, '$2 ($1)')
    .replace(/<(https?:[^>]+)>/g, '$1')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

function textOf(value: unknown): string | undefined {
  if (isRecord(value) && typeof value.text === 'string') return readMrkdwn(value.text);
  return undefined;
}

function renderElement(element: unknown): string | undefined {
  if (!isRecord(element)) return undefined;
  if (element.type === 'button') return `[ ${textOf(element.text) ?? '?'} ]`;
  if (element.type === 'static_select' || element.type === 'overflow') {
    return `[ ${textOf(element.placeholder) ?? 'choose'} ▾ ]`;
  }
  return textOf(element);
}

export function renderBlocks(blocks: unknown): string[] {
  if (!Array.isArray(blocks)) return [];
  const lines: string[] = [];
  for (const block of blocks) {
    if (!isRecord(block)) continue;
    switch (block.type) {
      case 'header':
      case 'section': {
        const text = textOf(block.text);
        if (text) lines.push(...text.split('\n'));
        if (Array.isArray(block.fields)) {
          for (const field of block.fields) {
            const line = textOf(field);
            if (line) lines.push(...line.split('\n'));
          }
        }
        const accessory = renderElement(block.accessory);
        if (accessory) lines.push(accessory);
        break;
      }
      case 'context':
      case 'actions': {
        const parts = Array.isArray(block.elements) ? block.elements.map(renderElement).filter(Boolean) : [];
        if (parts.length > 0) lines.push(parts.join('  '));
        break;
      }
      case 'input': {
        lines.push(`${textOf(block.label) ?? 'input'}: ____`);
        break;
      }
      case 'divider':
        lines.push('────────');
        break;
      default:
        break;
    }
  }
  return lines;
}

/** Finds the first button with this action id in a message's blocks. */
export function findButton(
  blocks: unknown,
  actionId: string,
): { value: string; blockId: string } | undefined {
  if (!Array.isArray(blocks)) return undefined;
  for (const block of blocks) {
    if (!isRecord(block)) continue;
    const elements = Array.isArray(block.elements) ? block.elements : [block.accessory];
    for (const element of elements) {
      if (isRecord(element) && element.action_id === actionId && typeof element.value === 'string') {
        return { value: element.value, blockId: typeof block.block_id === 'string' ? block.block_id : '' };
      }
    }
  }
  return undefined;
}
