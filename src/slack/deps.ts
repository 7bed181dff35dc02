import type { Logger } from 'pino';
import type { AccessService, Directory, Offboarding } from '../access/index.ts';
import type { Grant } from '../db/schema/index.ts';
import type { DeviceDeps } from '../devices/index.ts';
import type { PolicyStore } from '../policy/index.ts';
import type { Clock } from '../shared/clock.ts';
import type { SummarizeGrant } from '../shared/grant-summary.ts';
import type { SlackMessage } from './blocks/index.ts';
import type { HomeTabs } from './home.ts';
import type { Notifier } from './notifier.ts';
import { responseUrlOf, userIdOf } from './payloads.ts';

/** Issues a fresh token for a grant, valid until the grant's current expiry (the tokens module). */
export type IssueToken = (grant: Grant) => Promise<string>;

/** What every listener gets; built once in `createSlackApp`. */
export interface SlackDeps {
  access: AccessService;
  policy: PolicyStore;
  clock: Clock;
  notifier: Notifier;
  issueToken: IssueToken;
  summarizeGrant: SummarizeGrant | undefined;
  logger: Logger;
  proxyUrl: string;
  /** Where the contractor CLI pairs, shown where a grant takes only device-bound tokens. */
  serverUrl: string | undefined;
  homes: HomeTabs;
  /** Ends a person's access on `user_change` / `subteam_members_changed`; events are ignored without it. */
  offboarding: Offboarding | undefined;
  /** Group membership cache, invalidated when Slack says a group changed. */
  directory: Directory | undefined;
  /** Device pairing (`/access link`, `/access devices`); those commands say so without it. */
  devices: DeviceDeps | undefined;
}

/**
 * Answers the person who clicked or typed: ephemerally through `response_url` where Slack
 * gave one (commands, message buttons), otherwise by DM (App Home, modals).
 */
export async function tell(deps: SlackDeps, body: unknown, message: SlackMessage): Promise<void> {
  const url = responseUrlOf(body);
  try {
    if (url) await deps.notifier.respond(url, message);
    else {
      const userId = userIdOf(body);
      if (userId) await deps.notifier.postMessage(userId, message);
    }
  } catch (error) {
    deps.logger.warn(
      { err: error instanceof Error ? error.message : String(error) },
      'could not answer the user',
    );
  }
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
