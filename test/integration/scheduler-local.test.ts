import { afterEach, describe, expect, it } from 'vitest';
import { createLocalScheduler } from '../../src/scheduler/index.ts';
import { systemClock } from '../../src/shared/clock.ts';
import { slackUser } from '../helpers/actors.ts';
import { openSchedulerWorld, type SchedulerWorld, waitFor } from '../helpers/redis-fixtures.ts';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

async function setup(yamlEdit?: (yaml: string) => string) {
  const w: SchedulerWorld = await openSchedulerWorld(yamlEdit);
  cleanups.push(() => w.drop());
  const s = createLocalScheduler({
    access: w.access,
    store: w.store,
    policy: w.policy,
    clock: systemClock,
    sweepEveryMs: 1_000,
  });
  cleanups.push(() => s.stop());
  w.setListener(s.onAccessEvents);
  await s.start();
  return { w, s };
}

const status = async (w: SchedulerWorld, id: string) => (await w.access.getGrant(id))?.status;

describe('in-process scheduler (embedded mode)', () => {
  it('expires a grant once and reminds once', async () => {
    const { w, s } = await setup((y) => y.replace('remind_before: 10m', 'remind_before: 1s'));
    const grant = await w.grant(2);
    await s.idle();
    expect(s.pendingJobIds().sort()).toEqual([`expire-${grant.id}-v1`, `remind-${grant.id}-v1`]);
    await waitFor(async () => (await status(w, grant.id)) === 'expired', { what: 'expired' });
    await s.sweep();
    expect(await w.outboxCount(`grant_expired:${grant.id}`)).toBe(1);
    expect(await w.outboxCount(`grant_reminder:${grant.id}:1`)).toBe(1);
    expect(await w.auditCount('grant.expired', grant.id)).toBe(1);
  });

  it('reschedules on extension and times out requests', async () => {
    const { w } = await setup((y) => y.replace('request_timeout: 1h', 'request_timeout: 1s'));
    const grant = await w.grant(1);
    const ext = await w.access.requestExtension({
      grantId: grant.id,
      actor: slackUser('UCONTRACTOR'),
      durationSeconds: 2,
    });
    if (!ext.ok || !ext.value.grant) throw new Error('no extension');
    const req = await w.access.createRequest({
      actor: slackUser('UCONTRACTOR'),
      resource: 'billing-api',
      scope: 'write',
      durationSeconds: 60,
      reason: 'x',
    });
    if (!req.ok) throw new Error(req.code);
    await waitFor(async () => (await status(w, grant.id)) === 'expired', { what: 'expired' });
    const ended = await w.access.getGrant(grant.id);
    expect(ended!.endedAt!.getTime()).toBeGreaterThanOrEqual(ext.value.grant.expiresAt.getTime());
    await waitFor(async () => (await w.access.getRequest(req.value.request.id))?.status === 'expired', {
      what: 'request expired',
    });
    expect(await w.outboxCount(`request_expired:${req.value.request.id}`)).toBe(1);
  });

  it('after a restart (timers lost) the start-up sweep catches up', async () => {
    const { w, s } = await setup();
    const grant = await w.grant(1);
    await s.stop(); // timers gone, like a crashed process
    await waitFor(() => Date.now() > grant.expiresAt.getTime(), { what: 'expiry time' });
    expect(await status(w, grant.id)).toBe('active');
    await s.start();
    expect(await status(w, grant.id)).toBe('expired');
    expect(await w.outboxCount(`grant_expired:${grant.id}`)).toBe(1);
  });
});
