import { createHash } from 'node:crypto';
import type { Block } from './kit.ts';

/** Action ids of every button and select jitgate shows; the listeners register the same names. */
export const ACTIONS = {
  approve: 'approve_request',
  approveShorter: 'approve_shorter',
  approveLowerQuota: 'approve_lower_quota',
  deny: 'deny_request',
  cancel: 'cancel_request',
  showToken: 'show_token',
  giveUp: 'give_up_grant',
  revoke: 'revoke_grant',
  extend: 'extend_grant',
  openRequestModal: 'open_request_modal',
  /** Next page of `/access list` or `/access active`, in place (its own id: ids are unique in a block). */
  listPage: 'list_page',
  /** The page before, likewise. */
  listPageBack: 'list_page_back',
  /** A device pairing, confirmed or refused by the person who typed its code; the value is the code. */
  linkDevice: 'link_device',
  rejectDevice: 'reject_device',
  /** `/access devices`: revoke one; the value is the device id. */
  revokeDevice: 'revoke_device',
} as const;

export const VIEWS = { request: 'request_access', deny: 'deny_reason', token: 'show_token' } as const;

/**
 * Block and action ids of the request modal's inputs; the submission handler reads them back.
 * They stay the same across `views.update`, so what the person typed is kept. `target` is the
 * single resource·scope select of modals opened before the resource and scope were chosen apart.
 */
export const REQUEST_FIELDS = {
  resource: { block: 'resource', action: 'resource' },
  scope: { block: 'scope', action: 'scope' },
  target: { block: 'target', action: 'target' },
  duration: { block: 'duration', action: 'duration' },
  reason: { block: 'reason', action: 'reason' },
} as const;

export const DENY_FIELDS = { reason: { block: 'deny_reason', action: 'deny_reason' } } as const;

/**
 * Gives `block` the id `<base>.<digest of its content>`. Slack asks for a new block_id each
 * time an updated message (or re-published view) changes a block; one derived from the content
 * changes exactly then, and a re-render of the same state keeps it. Ids stay within Slack's 255.
 */
export function versioned<T extends Block>(base: string, block: T): T {
  const digest = createHash('sha256').update(JSON.stringify(block)).digest('base64url').slice(0, 10);
  return { ...block, block_id: `${base.slice(0, 200)}.${digest}` };
}
