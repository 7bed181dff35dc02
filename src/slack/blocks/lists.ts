import type { AccessRequest, Grant } from '../../db/schema/index.ts';
import { describeDuration } from '../../policy/index.ts';
import { encodeListPage, encodeValue, type ListKind } from '../listeners/actions/values.ts';
import { giveUpConfirm } from './dms.ts';
import { ACTIONS, versioned } from './ids.ts';
import { type Block, button, context, header, section, withAccessory } from './kit.ts';
import { inlineText, mention, NUMBER, plural, quotaUse, scopeLabel, slackDate, timeLeft } from './text.ts';

/**
 * A person's requests and grants, and an approver's, as blocks: the same lines in `/access list`,
 * `/access active` and App Home. Long lists are paged or summarised ("12 more — use …"), so
 * nothing is dropped without a word.
 */

export interface Lists {
  pending: readonly AccessRequest[];
  active: readonly Grant[];
}

type Item = { request: AccessRequest; grant?: undefined } | { grant: Grant; request?: undefined };

/** Items per page of `/access list` and `/access active`: at most 2 blocks each, well under 50 a message. */
const PAGE_ITEMS = 15;

interface Paged<T> {
  shown: T[];
  /** 1-based, clamped to the pages there are. */
  page: number;
  pages: number;
  from: number;
  to: number;
}

function paginate<T>(items: readonly T[], page: number, size: number): Paged<T> {
  const pages = Math.max(1, Math.ceil(items.length / size));
  const current = Math.min(Math.max(1, Math.floor(page)), pages);
  const start = (current - 1) * size;
  const shown = items.slice(start, start + size);
  return { shown, page: current, pages, from: shown.length > 0 ? start + 1 : 0, to: start + shown.length };
}

function requestLine(request: AccessRequest): string {
  return `${scopeLabel(request.resource, request.scope)} for ${describeDuration(request.durationSeconds)} · asked ${slackDate(
    request.createdAt,
  )} by ${mention(request.requesterId)}`;
}

/** When a grant last carried a proxied call (written per audit batch), for approvers judging idle access. */
export function lastUse(grant: Pick<Grant, 'lastUsedAt'>): string {
  return grant.lastUsedAt ? `last used ${slackDate(grant.lastUsedAt)}` : 'never used';
}

function grantLine(grant: Grant, now: Date, withOwner: boolean): string {
  const quota = quotaUse(grant);
  return `${scopeLabel(grant.resource, grant.scope)}${withOwner ? ` · ${mention(grant.userId)}` : ''} · until ${slackDate(
    grant.expiresAt,
  )} (${timeLeft(grant.expiresAt, now)})${quota ? ` · ${quota}` : ''}${withOwner ? ` · ${lastUse(grant)}` : ''}\n\`${grant.id}\``;
}

const mineItems = (mine: Lists): Item[] => [
  ...mine.pending.map((request) => ({ request })),
  ...mine.active.map((grant) => ({ grant })),
];

function mineBlocks(items: readonly Item[], now: Date): Block[] {
  const blocks: Block[] = [];
  for (const item of items) {
    if (item.request) {
      blocks.push(
        withAccessory(
          section(`:hourglass_flowing_sand: Pending: ${requestLine(item.request)}`),
          button('Cancel', ACTIONS.cancel, item.request.id),
        ),
      );
      continue;
    }
    const grant = item.grant;
    blocks.push(
      section(`:large_green_circle: ${grantLine(grant, now, false)}`),
      versioned(`mine:${grant.id}`, {
        type: 'actions',
        elements: [
          button('Show token', ACTIONS.showToken, grant.id),
          button('Extend 1h', ACTIONS.extend, encodeValue(grant.id, 3600)),
          button('Give up', ACTIONS.giveUp, grant.id, 'danger', giveUpConfirm()),
        ],
      }),
    );
  }
  return blocks;
}

function decideBlocks(request: AccessRequest): Block[] {
  return [
    section(`${requestLine(request)}\n*Reason:* ${inlineText(request.reason, 300)}`),
    versioned(`home-decide:${request.id}`, {
      type: 'actions',
      elements: [
        button('Approve', ACTIONS.approve, request.id, 'primary'),
        button('Deny', ACTIONS.deny, request.id, 'danger'),
      ],
    }),
  ];
}

function activeGrantBlock(grant: Grant, now: Date): Block {
  return withAccessory(
    section(grantLine(grant, now, true)),
    button('Revoke', ACTIONS.revoke, grant.id, 'danger'),
  );
}

const EMPTY_MINE = 'You have no pending requests and no active grants. Use `/access` to ask for access.';

function mineSummary(mine: Lists): string {
  return `${plural(mine.pending.length, 'pending request')} and ${plural(mine.active.length, 'active grant')}`;
}

function pageNote(paged: Paged<unknown>, total: number): string {
  return paged.pages > 1
    ? ` · showing ${NUMBER.format(paged.from)}–${NUMBER.format(paged.to)} of ${NUMBER.format(total)}, page ${paged.page} of ${paged.pages}`
    : '';
}

function pageButtons(list: ListKind, paged: Paged<unknown>): Block[] {
  if (paged.pages <= 1) return [];
  const elements = [];
  if (paged.page > 1) {
    elements.push(button('‹ Previous', ACTIONS.listPageBack, encodeListPage({ list, page: paged.page - 1 })));
  }
  if (paged.page < paged.pages) {
    elements.push(
      button('Next ›', ACTIONS.listPage, encodeListPage({ list, page: paged.page + 1 }), 'primary'),
    );
  }
  return [versioned(`page:${list}`, { type: 'actions', elements })];
}

/** One page of `/access list`: the person's pending requests, then their active grants. */
export function myAccessPage(mine: Lists, now: Date, page = 1): Block[] {
  const blocks: Block[] = [header('Your access')];
  const items = mineItems(mine);
  if (items.length === 0) return [...blocks, section(EMPTY_MINE)];
  const paged = paginate(items, page, PAGE_ITEMS);
  blocks.push(context(`${mineSummary(mine)}${pageNote(paged, items.length)}`));
  return [...blocks, ...mineBlocks(paged.shown, now), ...pageButtons('mine', paged)];
}

const approverItems = (lists: Lists): Item[] => [
  ...lists.pending.map((request) => ({ request })),
  ...lists.active.map((grant) => ({ grant })),
];

function approverSummary(lists: Lists): string {
  return `${plural(lists.pending.length, 'request')} to decide and ${plural(lists.active.length, 'active grant')}`;
}

/** One page of `/access active`: requests to decide, then active grants, each under its heading. */
export function approverPage(lists: Lists, now: Date, page = 1): Block[] {
  const items = approverItems(lists);
  const paged = paginate(items, page, PAGE_ITEMS);
  const blocks: Block[] = [
    header('To decide'),
    context(`${approverSummary(lists)}${pageNote(paged, items.length)}`),
  ];
  const requests = paged.shown.filter((i) => i.request !== undefined);
  const grants = paged.shown.flatMap((i) => (i.grant ? [i.grant] : []));
  if (lists.pending.length === 0) blocks.push(context('Nothing is waiting for a decision.'));
  for (const item of requests) if (item.request) blocks.push(...decideBlocks(item.request));
  if (grants.length > 0 || (lists.active.length === 0 && paged.page === paged.pages)) {
    blocks.push(header('Active grants'));
    if (lists.active.length === 0) blocks.push(context('No active grants on the resources you approve.'));
    for (const grant of grants) blocks.push(activeGrantBlock(grant, now));
  }
  return [...blocks, ...pageButtons('active', paged)];
}

/** How many items of each half App Home shows before summing up the rest. */
const HOME_LIMITS = { mine: 12, decide: 10, active: 25 } as const;

function moreLine(parts: string[], where: string): Block[] {
  return parts.length > 0 ? [context(`${parts.join(' and ')} — use ${where} to see them all.`)] : [];
}

/** The requester half of App Home: the first few items, then how many more. */
export function homeMine(mine: Lists, now: Date): Block[] {
  const blocks: Block[] = [header('Your access')];
  const items = mineItems(mine);
  if (items.length === 0) return [...blocks, section(EMPTY_MINE)];
  const shown = items.slice(0, HOME_LIMITS.mine);
  const hiddenRequests = mine.pending.length - shown.filter((i) => i.request).length;
  const hiddenGrants = mine.active.length - shown.filter((i) => i.grant).length;
  const more: string[] = [];
  if (hiddenRequests > 0) more.push(`${NUMBER.format(hiddenRequests)} more of your pending requests`);
  if (hiddenGrants > 0) more.push(`${NUMBER.format(hiddenGrants)} more of your grants`);
  blocks.push(context(mineSummary(mine)), ...mineBlocks(shown, now), ...moreLine(more, '`/access list`'));
  return blocks;
}

/** The approver half of App Home: both headings always, the first few of each, then how many more. */
export function homeApprover(lists: Lists, now: Date): Block[] {
  const blocks: Block[] = [header('To decide')];
  if (lists.pending.length === 0) blocks.push(context('Nothing is waiting for a decision.'));
  for (const request of lists.pending.slice(0, HOME_LIMITS.decide)) blocks.push(...decideBlocks(request));
  const hiddenRequests = lists.pending.length - HOME_LIMITS.decide;
  blocks.push(
    ...moreLine(
      hiddenRequests > 0 ? [`${NUMBER.format(hiddenRequests)} more requests to decide`] : [],
      '`/access active`',
    ),
  );
  blocks.push(header('Active grants'));
  if (lists.active.length === 0) blocks.push(context('No active grants on the resources you approve.'));
  for (const grant of lists.active.slice(0, HOME_LIMITS.active)) blocks.push(activeGrantBlock(grant, now));
  const hiddenGrants = lists.active.length - HOME_LIMITS.active;
  blocks.push(
    ...moreLine(
      hiddenGrants > 0 ? [`${NUMBER.format(hiddenGrants)} more active grants`] : [],
      '`/access active`',
    ),
  );
  return blocks;
}
