import type { WeeklyReport } from '../../audit/weekly-report.ts';
import type { Grant } from '../../db/schema/index.ts';
import type { AlertCall } from '../../outbox/index.ts';
import { SLACK_USER_ID_PATTERN } from '../../shared/ids.ts';
import { ACTIONS, versioned } from './ids.ts';
import { type Block, button, confirmDialog, context, type SlackMessage, section } from './kit.ts';
import {
  boundedLines,
  codeText,
  inlineText,
  mention,
  NUMBER,
  notificationText,
  plural,
  slackDate,
} from './text.ts';

/** The audit label of a person acting in Slack (`slack:U…`, see shared/actor.ts). */
const SLACK_ACTOR = new RegExp(`^slack:(${SLACK_USER_ID_PATTERN})$`);

/** What jitgate posts to channels on its own: anomaly alerts, offboarding notes, weekly reports. */

export interface AnomalyInput {
  resource: string;
  rule: string;
  summary: string;
  userId: string | null;
  /** The grant the alert names; shown even when its row cannot be read. */
  grantId?: string | null;
  grant: Grant | undefined;
  /** What the finding saw. It comes back from stored JSON, so every field is read with care. */
  evidence?: Readonly<Record<string, unknown>> | undefined;
  /** The call that set the alert off (alerts queued before calls were carried have none). */
  call?: Partial<AlertCall> | undefined;
  revoked: boolean;
  at: Date;
}

const MAX_EVIDENCE_ENTRIES = 15;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;
const SEE_AUDIT = 'see `jitgate audit export`';

/** `lastPath` → `last path`: evidence keys are ours, but come back from JSON, so only letters and digits stay. */
function evidenceLabel(key: string): string {
  const label = key
    .replace(/[^A-Za-z0-9_]/g, '')
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/_/g, ' ')
    .toLowerCase()
    .slice(0, 40);
  return label === '' ? 'value' : label;
}

function evidenceValue(value: unknown, depth = 0): string {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'number')
    return Number.isFinite(value) ? NUMBER.format(value) : codeText(String(value));
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (typeof value === 'string') {
    const at = ISO_TIME.test(value) ? new Date(value) : undefined;
    return at && !Number.isNaN(at.getTime())
      ? slackDate(at, '{date_short_pretty} {time_secs}')
      : codeText(value);
  }
  if (Array.isArray(value) && depth === 0) {
    const shown = value.slice(0, 5).map((item) => evidenceValue(item, 1));
    return `${shown.join(', ') || '—'}${value.length > 5 ? ` (+${value.length - 5} more)` : ''}`;
  }
  let json: string;
  try {
    json = JSON.stringify(value) ?? String(value);
  } catch {
    json = String(value);
  }
  return codeText(json);
}

function alertWho(input: AnomalyInput): string {
  const who = input.userId ? mention(input.userId) : 'an unidentified caller';
  const grantId = input.grant?.id ?? input.grantId ?? undefined;
  if (!grantId) return `*Who:* ${who} (no grant identified)`;
  const grant = input.grant;
  const detail = grant
    ? ` (${codeText(grant.scope, 100)}, ${grant.status === 'active' ? `until ${slackDate(grant.expiresAt)}` : grant.status})`
    : '';
  return `*Who:* ${who} with grant ${codeText(grantId, 64)}${detail}`;
}

function alertWhat(call: Partial<AlertCall> | undefined): string[] {
  if (!call) return [];
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
  const lines: string[] = [];
  const method = str(call.method);
  const path = str(call.path);
  if (method !== undefined || path !== undefined) {
    const status =
      typeof call.status === 'number' && Number.isInteger(call.status) ? ` → ${call.status}` : '';
    const decision = str(call.decision);
    lines.push(
      `*Call:* ${codeText(`${method ?? '?'} ${path ?? '?'}`, 500)}${status}${
        decision !== undefined ? ` ${codeText(decision, 64)}` : ''
      }`,
    );
  }
  const ip = str(call.clientIp);
  const at = new Date(str(call.at) ?? Number.NaN);
  const when = Number.isNaN(at.getTime()) ? undefined : slackDate(at, '{date_short_pretty} {time_secs}');
  if (ip !== undefined || when !== undefined) {
    lines.push(`*From:* ${ip !== undefined ? codeText(ip, 64) : '—'}${when ? ` at ${when}` : ''}`);
  }
  const requestId = str(call.requestId);
  if (requestId !== undefined) lines.push(`*Request id:* ${codeText(requestId, 100)}`);
  return lines;
}

/** Evidence entries as `• *label:* value`, skipping what the call lines already show. */
function alertEvidence(evidence: AnomalyInput['evidence'], call: Partial<AlertCall> | undefined): string[] {
  if (!evidence || typeof evidence !== 'object' || Array.isArray(evidence)) return [];
  const lines: string[] = [];
  for (const [key, value] of Object.entries(evidence)) {
    if (key === 'revokeNote') continue;
    if (key === 'requestId' && call?.requestId === value) continue;
    lines.push(`• *${evidenceLabel(key)}:* ${evidenceValue(value)}`);
  }
  return lines.length > MAX_EVIDENCE_ENTRIES
    ? [...lines.slice(0, MAX_EVIDENCE_ENTRIES), `• …and ${lines.length - MAX_EVIDENCE_ENTRIES} more`]
    : lines;
}

/**
 * The alert in the resource's alert channel: who (person and grant), what (the call that set
 * it off: method and path, client IP, time, decision, request id), the finding's evidence,
 * and Revoke while the grant is active. Every value from a request is shown as escaped code,
 * so a hostile path cannot ping, link or format; every section stays under Slack's limit.
 */
export function anomalyAlert(input: AnomalyInput): SlackMessage {
  const who = input.userId ? ` by ${mention(input.userId)}` : '';
  const lines = [
    `:rotating_light: *Unusual activity* on *${inlineText(input.resource, 100)}*${who}`,
    `*Rule:* ${codeText(input.rule, 100)}`,
    inlineText(input.summary, 1000),
  ];
  const blocks: Block[] = [section(lines.join('\n'))];
  const facts = [alertWho(input), ...alertWhat(input.call)];
  const revokeNote = input.evidence?.revokeNote;
  if (typeof revokeNote === 'string') facts.push(`*Automatic revoke failed:* ${inlineText(revokeNote, 300)}`);
  blocks.push(section(boundedLines(facts[0] ?? '', facts.slice(1), SEE_AUDIT)));
  const evidence = alertEvidence(input.evidence, input.call);
  if (evidence.length > 0) blocks.push(section(boundedLines('*Evidence*', evidence, SEE_AUDIT)));
  if (input.grant) {
    if (input.revoked || input.grant.status !== 'active') {
      blocks.push(context(`Grant \`${input.grant.id}\` is ${input.grant.status}.`));
    } else {
      blocks.push(
        versioned(`alert:${input.grant.id}`, {
          type: 'actions',
          elements: [
            button(
              'Revoke grant',
              ACTIONS.revoke,
              input.grant.id,
              'danger',
              confirmDialog('Revoke this grant?', 'The token stops working at once.', 'Revoke', 'Cancel'),
            ),
          ],
        }),
      );
    }
  }
  blocks.push(context(`Detected ${slackDate(input.at)}`));
  return {
    text: notificationText(
      `Unusual activity on ${input.resource.slice(0, 100)}: ${input.rule.slice(0, 100)}`,
    ),
    blocks,
  };
}

/** The note to a resource's approval channel when a person's access there ended at once. */
export function offboardedNote(input: {
  resource: string;
  userId: string;
  reason: string;
  by: string;
  grantIds: readonly string[];
  requestIds: readonly string[];
  at: Date;
}): SlackMessage {
  const byUser = SLACK_ACTOR.exec(input.by)?.[1];
  const lines = [
    `:door: *Access ended* for ${mention(input.userId)} on *${inlineText(input.resource, 100)}*`,
    `*Why:* ${inlineText(input.reason, 500)}${byUser ? ` (by ${mention(byUser)})` : ''}`,
    `${plural(input.grantIds.length, 'grant')} revoked, ${plural(input.requestIds.length, 'pending request')} ended.`,
  ];
  const blocks: Block[] = [section(lines.join('\n'))];
  if (input.grantIds.length > 0) {
    const ids = input.grantIds.map((id) => `\`${inlineText(id, 64)}\``);
    blocks.push(section(boundedLines('Grants:', ids, `all ${input.grantIds.length} are in the audit log`)));
  }
  blocks.push(context(`Ended ${slackDate(input.at)}`));
  return {
    text: notificationText(`Access ended for ${input.userId} on ${input.resource}: ${input.reason}`),
    blocks,
  };
}

export function weeklyReportMessage(report: WeeklyReport): SlackMessage {
  const lines = [
    `:bar_chart: *Weekly access report* for *${inlineText(report.resource, 100)}*`,
    `${slackDate(report.periodStart, '{date_short}')} – ${slackDate(report.periodEnd, '{date_short}')}`,
    `*Grants made:* ${report.grantsMade} · *used:* ${report.grantsUsed} · *unused:* ${report.grantsUnused}`,
    `*Calls:* ${report.calls} · *denied:* ${report.deniedCalls} · *alerts:* ${report.alerts}`,
    `*Revoked for idleness:* ${report.idleRevoked} · *offboarded:* ${report.offboarded}`,
  ];
  const blocks: Block[] = [section(lines.join('\n'))];
  if (report.grantsUnused > 0) {
    blocks.push(
      context('Unused grants were approved but never carried a call: worth asking whether they were needed.'),
    );
  }
  return { text: notificationText(`Weekly access report for ${report.resource}`), blocks };
}
