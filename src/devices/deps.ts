import type { Db } from '../db/client.ts';
import type { Clock } from '../shared/clock.ts';

export interface DeviceDeps {
  db: Db;
  clock: Clock;
  newId?: () => string;
  /**
   * `database.channel('grants')`, the grant feed: each revocation NOTIFYs it with
   * `device:<thumbprint>` in its transaction, so every proxy's grant view refuses the device's
   * tokens within moments of the commit (src/outbox/grant-feed.ts).
   */
  grantFeedChannel?: string;
  /** How long a pairing code stays usable. Default 10 minutes. */
  pairingSeconds?: number;
}
