import type { types } from '@slack/bolt';
import type { Grant } from '../../db/schema/index.ts';
import { describeDuration, type ResourcePolicy } from '../../policy/index.ts';
import { encodeValue, type QuotaChoice } from '../listeners/actions/values.ts';
import { option } from './kit.ts';

/** Durations offered in menus; each menu keeps those that fit the policy. */
const DURATION_CHOICES: readonly number[] = [
  5 * 60,
  15 * 60,
  30 * 60,
  3600,
  2 * 3600,
  4 * 3600,
  8 * 3600,
  86_400,
];

export function durationsBetween(min: number, max: number): number[] {
  return DURATION_CHOICES.filter((s) => s >= min && s <= max);
}

/**
 * Options for "Approve with a smaller quota…": a few round fractions of the quota the grant
 * would get, applied to every cap it has (calls and response bytes alike), so one click
 * gives less of everything. A fraction that would leave a cap below 1 is not offered.
 */
export function lowerQuotaChoices(quota: {
  requests?: number | null | undefined;
  responseBytes?: number | null | undefined;
}): QuotaChoice[] {
  const caps = { requests: quota.requests ?? undefined, responseBytes: quota.responseBytes ?? undefined };
  if (caps.requests === undefined && caps.responseBytes === undefined) return [];
  const choices = new Map<string, QuotaChoice>();
  for (const fraction of [0.5, 0.25, 0.1, 0.01]) {
    const choice: QuotaChoice = {};
    let usable = true;
    for (const key of ['requests', 'responseBytes'] as const) {
      const cap = caps[key];
      if (cap === undefined) continue;
      const n = Math.floor(cap * fraction);
      if (n < 1 || n >= cap) usable = false;
      choice[key] = n;
    }
    if (usable) choices.set(`${choice.requests}|${choice.responseBytes}`, choice);
  }
  return [...choices.values()];
}

/** Extension choices that fit the resource (and never exceed its max duration). */
export function extendOptions(grant: Grant, resource: ResourcePolicy | undefined): types.PlainTextOption[] {
  const max = resource?.maxDurationSeconds ?? 3600;
  const min = resource?.minDurationSeconds ?? 1;
  return durationsBetween(min, Math.min(max, 4 * 3600)).map((s) =>
    option(`Extend by ${describeDuration(s)}`, encodeValue(grant.id, s)),
  );
}
