import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  delayUntil,
  grantJobIds,
  grantJobs,
  isSafeJobId,
  jobIdOf,
  MAX_TIMER_MS,
  MIN_REDELAY_MS,
  parseJob,
  redelayMs,
  reminderAt,
  requestJob,
  timerStep,
} from '../../src/scheduler/index.ts';

const GRANT = '5f0c2a4e-9d1b-4c8e-8a53-2b7f9e0d1c6a';
const t = (iso: string) => new Date(iso);

describe('job ids', () => {
  it('derive from entity and version, with BullMQ-safe separators', () => {
    expect(jobIdOf({ kind: 'expire-grant', grantId: GRANT, version: 1 })).toBe(`expire-${GRANT}-v1`);
    expect(jobIdOf({ kind: 'remind-grant', grantId: GRANT, version: 3 })).toBe(`remind-${GRANT}-v3`);
    expect(jobIdOf({ kind: 'timeout-request', requestId: GRANT })).toBe(`timeout-${GRANT}`);
  });

  it('are always safe, and differ across versions and kinds', () => {
    fc.assert(
      fc.property(fc.uuid(), fc.integer({ min: 1, max: 10_000 }), (id, version) => {
        const expire = jobIdOf({ kind: 'expire-grant', grantId: id, version });
        const remind = jobIdOf({ kind: 'remind-grant', grantId: id, version });
        const next = jobIdOf({ kind: 'expire-grant', grantId: id, version: version + 1 });
        expect(isSafeJobId(expire) && isSafeJobId(remind)).toBe(true);
        expect(new Set([expire, remind, next]).size).toBe(3);
      }),
    );
  });

  it('isSafeJobId rejects what BullMQ rejects', () => {
    expect(isSafeJobId('expire:abc:1')).toBe(false);
    expect(isSafeJobId('42')).toBe(false);
    expect(isSafeJobId('')).toBe(false);
  });

  it('grantJobIds lists both kinds for every version so far', () => {
    expect(grantJobIds(GRANT, 2)).toEqual([
      `expire-${GRANT}-v1`,
      `remind-${GRANT}-v1`,
      `expire-${GRANT}-v2`,
      `remind-${GRANT}-v2`,
    ]);
  });
});

describe('reminder time', () => {
  const grant = { startsAt: t('2026-01-05T10:00:00Z'), expiresAt: t('2026-01-05T11:00:00Z') };

  it('is remind_before ahead of expiry', () => {
    expect(reminderAt(grant, 600)).toEqual(t('2026-01-05T10:50:00Z'));
  });

  it('is skipped for a grant no longer than remind_before, or with no lead time', () => {
    expect(reminderAt(grant, 3600)).toBeUndefined();
    expect(reminderAt(grant, 7200)).toBeUndefined();
    expect(reminderAt(grant, 0)).toBeUndefined();
  });

  it('when set, always falls strictly inside the grant', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10 ** 7 }),
        fc.integer({ min: 0, max: 10 ** 7 }),
        (len, before) => {
          const g = { startsAt: new Date(0), expiresAt: new Date(len * 1000) };
          const at = reminderAt(g, before);
          if (at) {
            expect(at.getTime()).toBeGreaterThan(g.startsAt.getTime());
            expect(at.getTime()).toBeLessThan(g.expiresAt.getTime());
          } else {
            expect(before === 0 || before >= len).toBe(true);
          }
        },
      ),
    );
  });

  it('grantJobs plans expiry always and the reminder only when it has one', () => {
    const g = { id: GRANT, version: 2, ...grant };
    expect(grantJobs(g, 600).map((j) => [j.id, j.at.toISOString()])).toEqual([
      [`expire-${GRANT}-v2`, '2026-01-05T11:00:00.000Z'],
      [`remind-${GRANT}-v2`, '2026-01-05T10:50:00.000Z'],
    ]);
    expect(grantJobs(g, 3600).map((j) => j.job.kind)).toEqual(['expire-grant']);
    expect(requestJob({ id: GRANT, timeoutAt: grant.expiresAt }).id).toBe(`timeout-${GRANT}`);
  });
});

describe('delays', () => {
  it('never go negative: a past deadline runs at once', () => {
    expect(delayUntil(t('2026-01-05T10:00:00Z'), t('2026-01-05T10:00:05Z'))).toBe(0);
    expect(delayUntil(t('2026-01-05T10:00:05Z'), t('2026-01-05T10:00:00Z'))).toBe(5000);
  });

  it('timer steps are clamped to setTimeout’s 2^31-1 ms ceiling', () => {
    expect(timerStep(30 * 86_400_000)).toBe(MAX_TIMER_MS);
    expect(timerStep(MAX_TIMER_MS + 1)).toBe(MAX_TIMER_MS);
    expect(timerStep(1234)).toBe(1234);
    expect(timerStep(-5)).toBe(0);
  });

  it('an early job waits past its deadline, and never less than the minimum', () => {
    fc.assert(
      fc.property(fc.integer({ min: -(10 ** 9), max: 10 ** 9 }), (offset) => {
        const now = new Date(1_800_000_000_000);
        const at = new Date(now.getTime() + offset);
        const wait = redelayMs(at, now);
        expect(wait).toBeGreaterThanOrEqual(MIN_REDELAY_MS);
        expect(now.getTime() + wait).toBeGreaterThan(at.getTime());
      }),
    );
  });
});

describe('parseJob', () => {
  it('reads back what was stored', () => {
    expect(parseJob('expire-grant', { kind: 'expire-grant', grantId: GRANT, version: 2 })).toEqual({
      kind: 'expire-grant',
      grantId: GRANT,
      version: 2,
    });
    expect(parseJob('timeout-request', { requestId: GRANT })).toEqual({
      kind: 'timeout-request',
      requestId: GRANT,
    });
  });

  it('refuses junk', () => {
    expect(parseJob('expire-grant', { grantId: GRANT })).toBeUndefined();
    expect(parseJob('expire-grant', { grantId: GRANT, version: 0 })).toBeUndefined();
    expect(parseJob('remind-grant', null)).toBeUndefined();
    expect(parseJob('something-else', { grantId: GRANT, version: 1 })).toBeUndefined();
  });
});
