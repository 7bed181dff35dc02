import type { AccessErrorCode } from '../../access/outcomes.ts';
import type { Device } from '../../db/schema/index.ts';
import type { DeviceOutcome, StartedPairing, StartPairingInput } from '../../devices/index.ts';
import type { DpopVerifier } from '../../tokens/dpop.ts';

/**
 * What the device API needs of the access service, in its own words, so the routes do not know
 * how the service is built: the refactor that splits it into one action per file re-points
 * `deviceAccessFrom` (access-adapter.ts), nothing here.
 */
export interface DeviceAccess {
  createRequest(input: NewRequest): Promise<AccessResult<RequestView>>;
  /** A request and, once approved, its grant; undefined when there is no such request. */
  requestStatus(requestId: string): Promise<RequestView | undefined>;
  /** The person's live (active, unexpired) grants. */
  liveGrantsOf(userId: string): Promise<GrantView[]>;
}

interface NewRequest {
  requesterId: string;
  resource: string;
  scope: string | undefined;
  durationSeconds: number;
  reason: string;
}

type AccessResult<T> = { ok: true; value: T } | { ok: false; code: AccessErrorCode; message: string };

type RequestState = 'pending' | 'approved' | 'denied' | 'expired' | 'cancelled';

export interface RequestView {
  id: string;
  requesterId: string;
  resource: string;
  scope: string;
  status: RequestState;
  durationSeconds: number;
  /** The grant an approval made (or extended), while it is live. */
  grant: GrantView | undefined;
  decidedBy: string | undefined;
  note: string | undefined;
}

export interface GrantView {
  id: string;
  userId: string;
  resource: string;
  scope: string;
  expiresAt: Date;
}

export interface DeviceApiDeps {
  access: DeviceAccess;
  devices: {
    findByThumbprint(thumbprint: string): Promise<Device | undefined>;
    startPairing(input: StartPairingInput): Promise<DeviceOutcome<StartedPairing>>;
  };
  /** Checks the proof signed by the device key that authenticates every call. */
  verifier: DpopVerifier;
  /** A token for `grant`, bound to the device's key (`cnf.jkt`). */
  issueToken(grant: GrantView, device: { userId: string; thumbprint: string }): Promise<string>;
  /**
   * The API's public base URL as clients call it (scheme, host, any prefix an ingress strips),
   * from which each call's expected `htu` is formed. A function, so a test server on port 0
   * can say it once it listens.
   */
  publicUrl(): string;
  /** Where the CLI sends proxied calls (JITGATE_PUBLIC_URL). */
  proxyUrl: string;
  /**
   * Whether one more pairing may start from this client address now (a token bucket per address);
   * unset: no limit. Pending devices are cheap but not free: each holds a row and a handle.
   */
  allowPairing?: (clientIp: string) => boolean;
  /** Seconds the CLI waits between two polls. Default 2. */
  pollSeconds?: number;
}
