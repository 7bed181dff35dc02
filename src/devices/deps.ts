import type { Db } from '../db/client.ts';
import type { Clock } from '../shared/clock.ts';

export interface DeviceDeps {
  db: Db;
  clock: Clock;
  newId?: () => string;
  /** How long a pairing code stays usable. Default 10 minutes. */
  pairingSeconds?: number;
}
