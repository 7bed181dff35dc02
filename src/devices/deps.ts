import type { Db } from '../db/client.ts';
import type { Clock } from '../shared/clock.ts';

export interface DeviceDeps {
  db: Db;
  clock: Clock;
  newId?: () => string;
  /**
   * `database.channel('devices')`: each revocation NOTIFYs it with the key's thumbprint in its
   * transaction, so every proxy refuses the device's tokens within moments of the commit.
   */
  revocationChannel?: string;
  /** How long a pairing code stays usable. Default 10 minutes. */
  pairingSeconds?: number;
}
