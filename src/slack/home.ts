import type { Logger } from 'pino';
import type { AccessService } from '../access/index.ts';
import type { PolicyStore } from '../policy/index.ts';
import type { Clock } from '../shared/clock.ts';
import { homeView } from './blocks/index.ts';
import type { Notifier } from './notifier.ts';

export interface HomeTabs {
  /** Build and publish `userId`'s App Home from the current database state. */
  publish(userId: string): Promise<void>;
  /** Remember that `userId` looks at the home tab, so state changes refresh it. */
  noteViewer(userId: string): void;
  /**
   * Best effort: republish the homes of `userIds` and of home viewers who approve `resource`.
   * Only people who opened the tab since start are refreshed, so a change costs a few calls, not one per approver.
   */
  refresh(userIds: readonly string[], resource?: string): Promise<void>;
}

export function createHomeTabs(deps: {
  access: AccessService;
  notifier: Pick<Notifier, 'publishHome'>;
  policy: PolicyStore;
  clock: Clock;
  logger: Logger;
}): HomeTabs {
  const viewers = new Set<string>();
  const publish = async (userId: string): Promise<void> => {
    const [mine, approver] = await Promise.all([
      deps.access.listForUser(userId),
      deps.access.listForApprover(userId),
    ]);
    const approves =
      approver.pending.length > 0 ||
      approver.active.length > 0 ||
      (await deps.access.approvedResources(userId)).length > 0;
    await deps.notifier.publishHome(
      userId,
      homeView(mine, approves ? approver : undefined, deps.clock.now()),
    );
  };
  return {
    publish,
    noteViewer(userId) {
      viewers.add(userId);
    },
    async refresh(userIds, resource) {
      const targets = new Set(userIds.filter((u) => viewers.has(u)));
      if (resource !== undefined) {
        for (const viewer of viewers) {
          if (!targets.has(viewer) && (await deps.access.isApproverOf(resource, viewer))) targets.add(viewer);
        }
      }
      await Promise.all(
        [...targets].map((userId) =>
          publish(userId).catch((error: unknown) => {
            deps.logger.warn(
              { userId, err: error instanceof Error ? error.message : String(error) },
              'home refresh failed',
            );
          }),
        ),
      );
    },
  };
}
