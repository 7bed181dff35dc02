import type { AccessRequest, Grant } from '../db/schema/index.ts';
import type { OutboxMessage } from '../outbox/index.ts';
import type { PolicyStore } from '../policy/index.ts';
import { remindBeforeOf } from './jobs.ts';
import { grantJobIds, grantJobs, type PlannedJob, requestJob } from './timing.ts';
import type { SchedulerAccess, SchedulerLogger } from './types.ts';

/** Where delayed jobs live (BullMQ or in-process timers); adds are idempotent by job id. */
export interface JobBackend {
  add(jobs: readonly PlannedJob[]): Promise<void>;
  /** Best effort: a job that is gone or running is left alone. */
  remove(jobIds: readonly string[]): Promise<void>;
}

export interface Planner {
  scheduleGrant(grant: Grant): Promise<void>;
  scheduleGrants(grants: readonly Grant[]): Promise<void>;
  scheduleRequest(request: AccessRequest): Promise<void>;
  scheduleRequests(requests: readonly AccessRequest[]): Promise<void>;
  onAccessEvents(events: readonly OutboxMessage[]): void;
  idle(): Promise<void>;
}

/**
 * Turns access events into job adds and removals, shared by both schedulers. Runs in the
 * background of the committing caller: an approval never waits on (or fails with) Redis.
 */
export function createPlanner(deps: {
  backend: JobBackend;
  access: SchedulerAccess;
  policy: PolicyStore;
  logger: SchedulerLogger;
}): Planner {
  const { backend, access, logger } = deps;
  const inFlight = new Set<Promise<void>>();

  const scheduleGrants = async (grants: readonly Grant[]): Promise<void> => {
    const jobs = grants
      .filter((g) => g.status === 'active')
      .flatMap((g) => grantJobs(g, remindBeforeOf(deps.policy, g.resource)));
    if (jobs.length > 0) await backend.add(jobs);
  };
  const scheduleRequests = async (requests: readonly AccessRequest[]): Promise<void> => {
    const jobs = requests.filter((r) => r.status === 'pending').map(requestJob);
    if (jobs.length > 0) await backend.add(jobs);
  };

  async function handle(event: OutboxMessage): Promise<void> {
    switch (event.kind) {
      case 'request_created': {
        const request = await access.getRequest(event.requestId);
        if (request) await scheduleRequests([request]);
        return;
      }
      case 'grant_created':
      case 'grant_extended': {
        // Read the row rather than trusting the event: a later version may already have committed.
        const grant = await access.getGrant(event.grantId);
        if (grant) await scheduleGrants([grant]);
        return;
      }
      case 'grant_revoked': {
        const grant = await access.getGrant(event.grantId);
        if (grant) await backend.remove(grantJobIds(grant.id, grant.version));
        return;
      }
      case 'grant_expired': {
        // Only the reminders: the expiry job is the one that just ran (or is about to finish),
        // and removing it would also drop the completed record that keeps a re-add a no-op.
        const grant = await access.getGrant(event.grantId);
        if (grant)
          await backend.remove(grantJobIds(grant.id, grant.version).filter((id) => id.startsWith('remind-')));
        return;
      }
      case 'request_approved':
      case 'request_denied':
      case 'request_cancelled':
        // request_expired is left out for the same reason: its timeout job is the one running.
        await backend.remove([requestJob({ id: event.requestId, timeoutAt: new Date(0) }).id]);
        return;
      default:
        return;
    }
  }

  return {
    scheduleGrant: (grant) => scheduleGrants([grant]),
    scheduleGrants,
    scheduleRequest: (request) => scheduleRequests([request]),
    scheduleRequests,
    onAccessEvents(events) {
      for (const event of events) {
        const work = handle(event).catch((error: unknown) => {
          // Not fatal: the grant is in Postgres, the proxy enforces its expiry by the clock,
          // and the next sweep re-adds whatever this failed to schedule.
          logger.warn(
            { err: error, event: event.kind },
            'scheduling after commit failed; the sweep will retry',
          );
        });
        inFlight.add(work);
        void work.finally(() => inFlight.delete(work));
      }
    },
    async idle() {
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    },
  };
}
