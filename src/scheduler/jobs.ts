import type { Grant } from '../db/schema/index.ts';
import type { PolicyStore } from '../policy/index.ts';
import type { Clock } from '../shared/clock.ts';
import { reminderAt, type SchedulerJob } from './timing.ts';
import type { SchedulerAccess } from './types.ts';

/**
 * What running a job came to. `later`: it fired before its deadline (clock skew, a clamped
 * timer) and must run again at `at`. `stale` jobs belong to an older grant version; the
 * caller makes sure the current version is scheduled, so a lost reschedule heals itself.
 */
export type JobOutcome =
  | { kind: 'done'; result: string }
  | { kind: 'later'; at: Date }
  | { kind: 'stale'; grant: Grant };

export interface JobContext {
  access: SchedulerAccess;
  policy: PolicyStore;
  clock: Clock;
}

/** Default `remind_before` when the grant's resource has left the policy. */
const DEFAULT_REMIND_BEFORE_SECONDS = 600;

export function remindBeforeOf(policy: PolicyStore, resource: string): number {
  const resources = policy.current().resources;
  return Object.hasOwn(resources, resource)
    ? (resources[resource]?.remindBeforeSeconds ?? DEFAULT_REMIND_BEFORE_SECONDS)
    : DEFAULT_REMIND_BEFORE_SECONDS;
}

/**
 * Run one job. Every transition goes through the access service, whose conditional
 * updates make a repeat (retry, second worker, sweep) change nothing and write no second
 * outbox event: that is what makes "exactly once" hold on top of at-least-once delivery.
 */
export async function runJob(job: SchedulerJob, ctx: JobContext): Promise<JobOutcome> {
  const { access, clock } = ctx;
  switch (job.kind) {
    case 'expire-grant': {
      // Grants tend to fall due together: expire every due one in a single transaction, so
      // the jobs of the others find their work done.
      const expiredNow = await access.expireDueGrants();
      if (expiredNow.includes(job.grantId)) return { kind: 'done', result: 'expired' };
      const result = await access.expireGrant(job.grantId);
      if (result.ok) return { kind: 'done', result: 'expired' };
      if (result.code !== 'not_due') return { kind: 'done', result: result.code };
      const grant = await access.getGrant(job.grantId);
      if (grant?.status !== 'active') return { kind: 'done', result: 'grant_not_active' };
      if (grant.version !== job.version) return { kind: 'stale', grant };
      return { kind: 'later', at: grant.expiresAt };
    }
    case 'remind-grant': {
      const grant = await access.getGrant(job.grantId);
      if (grant?.status !== 'active' || grant.expiresAt <= clock.now()) {
        return { kind: 'done', result: 'grant_not_active' };
      }
      if (grant.version !== job.version) return { kind: 'stale', grant };
      const at = reminderAt(grant, remindBeforeOf(ctx.policy, grant.resource));
      if (!at) return { kind: 'done', result: 'no_reminder' };
      if (at > clock.now()) return { kind: 'later', at };
      const result = await access.remindGrant(job.grantId, job.version);
      if (!result.ok && result.code === 'grant_version_changed') {
        const current = await access.getGrant(job.grantId);
        if (current?.status === 'active') return { kind: 'stale', grant: current };
      }
      return { kind: 'done', result: result.ok ? 'reminded' : result.code };
    }
    case 'timeout-request': {
      const result = await access.expireRequest(job.requestId);
      if (result.ok) return { kind: 'done', result: 'expired' };
      if (result.code !== 'not_due') return { kind: 'done', result: result.code };
      const request = await access.getRequest(job.requestId);
      if (request?.status !== 'pending') return { kind: 'done', result: 'request_not_pending' };
      return { kind: 'later', at: request.timeoutAt };
    }
  }
}
