import type { types } from '@slack/bolt';
import type { AccessRequest, Grant } from '../../db/schema/index.ts';
import { describeDuration, MAX_REASON_LENGTH, type Policy, type ResourcePolicy } from '../../policy/index.ts';
import { durationsBetween } from './choices.ts';
import { curlExample } from './dms.ts';
import { DENY_FIELDS, REQUEST_FIELDS, VIEWS } from './ids.ts';
import { type Block, context, LIMITS, type ModalView, option, plain, section } from './kit.ts';
import { escapeText, fitRendered, mention, NUMBER, scopeLabel, slackDate } from './text.ts';

/** Modals: the request form, the deny form, the token, and what is shown while jitgate looks things up. */

/**
 * `options` as a select takes them: a plain list up to Slack's 100, else groups of 100 (up to
 * 100 groups). What still does not fit is counted, so the form can say so.
 */
interface PlainOptionGroup {
  label: types.PlainTextElement;
  options: types.PlainTextOption[];
}

function selectOptions(
  options: types.PlainTextOption[],
  groupLabel: (from: number, to: number) => string,
): { options: types.PlainTextOption[] } | { option_groups: PlainOptionGroup[]; hidden: number } {
  const per = LIMITS.optionsPerSelect;
  if (options.length <= per) return { options };
  const groups: PlainOptionGroup[] = [];
  for (let start = 0; start < options.length && groups.length < LIMITS.optionGroups; start += per) {
    const chunk = options.slice(start, start + per);
    groups.push({ label: plain(groupLabel(start + 1, start + chunk.length), 75), options: chunk });
  }
  return { option_groups: groups, hidden: Math.max(0, options.length - per * LIMITS.optionGroups) };
}

function staticSelect(
  actionId: string,
  placeholder: string,
  options: types.PlainTextOption[],
  groupLabel: (from: number, to: number) => string,
  initial: string | undefined,
): { element: types.StaticSelect; hidden: number } {
  const made = selectOptions(options, groupLabel);
  const element: types.StaticSelect = {
    type: 'static_select',
    action_id: actionId,
    placeholder: plain(placeholder),
  };
  let hidden = 0;
  if ('option_groups' in made) {
    element.option_groups = made.option_groups;
    hidden = made.hidden;
  } else element.options = made.options;
  const offered = 'option_groups' in made ? made.option_groups.flatMap((g) => g.options) : made.options;
  const chosen = offered.find((o) => o.value === initial);
  if (chosen) element.initial_option = chosen;
  return { element, hidden };
}

function resourceOf(policy: Policy, name: string | undefined): ResourcePolicy | undefined {
  return name !== undefined && Object.hasOwn(policy.resources, name) ? policy.resources[name] : undefined;
}

function durationOptions(min: number, max: number): types.PlainTextOption[] {
  const choices = durationsBetween(min, max);
  // A resource whose range holds none of the usual choices still offers its own bounds.
  const offered = choices.length > 0 ? choices : [...new Set([min, max])].filter((s) => s > 0);
  return offered.map((s) => option(describeDuration(s), String(s)));
}

/**
 * The request form, in two steps within one modal: a resource (every one the policy names, in
 * groups when there are more than 100), then that resource's scopes and the durations it
 * allows. Until a resource is chosen the durations span every resource. Choosing one sends
 * it at once (`dispatch_action`), and the form is updated with `chosen.resource`.
 */
export function requestModal(policy: Policy, chosen: { resource?: string; scope?: string } = {}): ModalView {
  const resources = Object.values(policy.resources).sort((a, b) => a.name.localeCompare(b.name));
  const resource = resourceOf(policy, chosen.resource);
  const resourcePick = staticSelect(
    REQUEST_FIELDS.resource.action,
    'Choose a resource',
    resources.map((r) => option(r.name, r.name, r.description)),
    (from, to) => `Resources ${from}–${to}`,
    resource?.name,
  );
  const span = resource ? [resource] : resources;
  const shortest = Math.min(...span.map((r) => r.minDurationSeconds));
  const longest = Math.max(...span.map((r) => r.maxDurationSeconds));
  const blocks: Block[] = [
    {
      type: 'input',
      block_id: REQUEST_FIELDS.resource.block,
      // A choice is sent at once, so the scopes and durations follow the chosen resource.
      dispatch_action: true,
      label: plain('Resource'),
      element: resourcePick.element,
    },
  ];
  if (resourcePick.hidden > 0) {
    blocks.push(
      context(
        `${NUMBER.format(resourcePick.hidden)} more resources do not fit in this list; ask for them with \`/access request &lt;resource&gt; …\`.`,
      ),
    );
  }
  if (resource) {
    const scopes = Object.values(resource.scopes).map((scope) =>
      option(
        `${scope.name}${scope.autoApproveMaxSeconds !== undefined ? ` · instant ≤ ${describeDuration(scope.autoApproveMaxSeconds)}` : ''}`,
        scope.name,
        scope.description,
      ),
    );
    const initialScope =
      chosen.scope !== undefined && Object.hasOwn(resource.scopes, chosen.scope)
        ? chosen.scope
        : resource.defaultScope;
    blocks.push({
      type: 'input',
      block_id: REQUEST_FIELDS.scope.block,
      label: plain('Scope'),
      element: staticSelect(
        REQUEST_FIELDS.scope.action,
        'Choose a scope',
        scopes,
        (f, t) => `Scopes ${f}–${t}`,
        initialScope,
      ).element,
    });
  } else {
    blocks.push(context('Choose a resource to see its scopes and how long you may ask for.'));
  }
  blocks.push(
    {
      type: 'input',
      block_id: REQUEST_FIELDS.duration.block,
      label: plain('For how long'),
      element: {
        type: 'static_select',
        action_id: REQUEST_FIELDS.duration.action,
        placeholder: plain('Duration'),
        options: durationOptions(shortest, longest),
      },
    },
    {
      type: 'input',
      block_id: REQUEST_FIELDS.reason.block,
      label: plain('Why do you need it?'),
      element: {
        type: 'plain_text_input',
        action_id: REQUEST_FIELDS.reason.action,
        multiline: true,
        max_length: MAX_REASON_LENGTH,
        placeholder: plain('Ticket or incident, and what you will do'),
      },
    },
  );
  return {
    type: 'modal',
    callback_id: VIEWS.request,
    title: plain('Request access', LIMITS.modalTitle),
    submit: plain('Request', LIMITS.modalTitle),
    close: plain('Cancel', LIMITS.modalTitle),
    blocks,
  };
}

/** Shown instead of the request form to someone the policy's `requesters` leave out. */
export const NOT_A_REQUESTER_TEXT =
  'You are not among the people this workspace lets request access. If you need it, ask your security team to add you to the requesters in the jitgate policy.';

export function notARequesterModal(): ModalView {
  return noticeModal('Request access', NOT_A_REQUESTER_TEXT);
}

/** A modal that only says something (a refusal found after a loading modal was opened). */
export function noticeModal(title: string, text: string): ModalView {
  return {
    type: 'modal',
    title: plain(title, LIMITS.modalTitle),
    close: plain('Close', LIMITS.modalTitle),
    blocks: [section(fitRendered(text, LIMITS.sectionText, escapeText))],
  };
}

/**
 * Opened at once when what the modal will show needs a slow lookup (a user group asked of
 * Slack): a trigger id lives 3 s, the lookup may take longer, so the modal is updated after.
 */
export function loadingModal(title: string): ModalView {
  return {
    type: 'modal',
    title: plain(title, LIMITS.modalTitle),
    close: plain('Close', LIMITS.modalTitle),
    blocks: [section(':hourglass_flowing_sand: One moment…')],
  };
}

export function denyModal(request: AccessRequest): ModalView {
  return {
    type: 'modal',
    callback_id: VIEWS.deny,
    private_metadata: request.id,
    title: plain('Deny request', LIMITS.modalTitle),
    submit: plain('Deny', LIMITS.modalTitle),
    close: plain('Cancel', LIMITS.modalTitle),
    blocks: [
      section(
        `Deny ${mention(request.requesterId)}'s request for ${scopeLabel(request.resource, request.scope)}?`,
      ),
      {
        type: 'input',
        block_id: DENY_FIELDS.reason.block,
        label: plain('Reason (sent to the requester)'),
        element: {
          type: 'plain_text_input',
          action_id: DENY_FIELDS.reason.action,
          multiline: true,
          max_length: MAX_REASON_LENGTH,
        },
      },
    ],
  };
}

/** The only place a token is ever shown: a modal, which Slack does not keep in history. */
export function tokenModal(grant: Grant, token: string, proxyUrl: string): ModalView {
  return {
    type: 'modal',
    callback_id: VIEWS.token,
    title: plain('Your access token', LIMITS.modalTitle),
    close: plain('Done', LIMITS.modalTitle),
    blocks: [
      section(
        `Token for ${scopeLabel(grant.resource, grant.scope)}, valid until ${slackDate(grant.expiresAt)}. ` +
          'Copy it now; it is not stored in Slack.',
      ),
      section(`\`\`\`${token}\`\`\``),
      section(
        `\`\`\`export JITGATE_TOKEN='${token}'\n${escapeText(curlExample(proxyUrl, grant.resource))}\`\`\``,
      ),
    ],
  };
}

/**
 * In place of the token, for a grant whose policy says `sender_constraint: dpop`: a bearer token
 * would be refused, and a token the CLI fetches is bound to a key that never leaves the machine.
 */
export function cliTokenModal(grant: Grant, serverUrl: string | undefined): ModalView {
  const server = serverUrl ? escapeText(serverUrl) : '<jitgate server URL>';
  return {
    type: 'modal',
    callback_id: VIEWS.token,
    title: plain('Use the jitgate CLI', LIMITS.modalTitle),
    close: plain('Done', LIMITS.modalTitle),
    blocks: [
      section(
        `${scopeLabel(grant.resource, grant.scope)} takes only tokens bound to your device, so no token is shown here. ` +
          `Your grant is valid until ${slackDate(grant.expiresAt)}; use it from the jitgate CLI on your machine:`,
      ),
      section(
        `\`\`\`jitgate login --server ${server}   # once per machine: confirm the code with /access link\n` +
          `jitgate connect ${grant.resource} --port 9000   # then call http://127.0.0.1:9000/…\n` +
          `jitgate curl ${grant.resource} /path   # or one call at a time\`\`\``,
      ),
      context('A copied bound token is useless without your device key, which never leaves your machine.'),
    ],
  };
}
