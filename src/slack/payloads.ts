/**
 * Small guards over Bolt's payload unions: listeners read only what they need and never
 * pass an unchecked shape on. Anything missing or of the wrong type reads as undefined.
 */

import { isRecord } from '../shared/is-record.ts';

function field(value: unknown, ...path: string[]): unknown {
  let current = value;
  for (const key of path) {
    if (!isRecord(current)) return undefined;
    current = current[key];
  }
  return current;
}

function text(value: unknown, ...path: string[]): string | undefined {
  const found = field(value, ...path);
  return typeof found === 'string' ? found : undefined;
}

/** A button's `value` or a select's chosen option value. */
export function actionValue(action: unknown): string | undefined {
  return text(action, 'value') ?? text(action, 'selected_option', 'value');
}

export function userIdOf(body: unknown): string | undefined {
  return text(body, 'user', 'id') ?? text(body, 'user_id');
}

export function triggerIdOf(body: unknown): string | undefined {
  return text(body, 'trigger_id');
}

/** Present for clicks on messages (and commands); absent for App Home and modals. */
export function responseUrlOf(body: unknown): string | undefined {
  return text(body, 'response_url');
}

/** The value of input `blockId`/`actionId` in a submitted view's state. */
export function viewInput(view: unknown, blockId: string, actionId: string): string | undefined {
  const element = field(view, 'state', 'values', blockId, actionId);
  return text(element, 'value') ?? text(element, 'selected_option', 'value');
}

/** The modal an action came from (`view.id`, `view.hash`), if it came from one. */
export function viewOf(body: unknown): { id: string; hash: string | undefined } | undefined {
  const id = text(body, 'view', 'id');
  return id === undefined ? undefined : { id, hash: text(body, 'view', 'hash') };
}

/** When Slack saw the click (`actions[0].action_ts`, seconds with a fraction), as ms; 0 when absent. */
export function actionTsOf(body: unknown): number {
  const actions = field(body, 'actions');
  const first: unknown = Array.isArray(actions) ? actions[0] : undefined;
  const at = Number(text(first, 'action_ts'));
  return Number.isFinite(at) ? Math.round(at * 1000) : 0;
}

export function privateMetadataOf(view: unknown): string {
  return text(view, 'private_metadata') ?? '';
}
