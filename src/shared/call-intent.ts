/**
 * What the proxy writes down, durably, the moment before the upstream may see a call: enough
 * for an audit row if the process dies before the call's own record is written (see
 * src/audit/intent-journal.ts). Never holds the token or the upstream credential.
 */
export interface CallIntent {
  at: Date;
  requestId: string;
  resource: string;
  grantId: string;
  userId: string;
  scope: string;
  method: string;
  /** The normalised path that was checked and is forwarded. */
  path: string;
  clientIp: string;
}

/** A written intent, handed back when the call's record is offered. */
export interface IntentMark {
  readonly segment: object;
}

/**
 * The proxy's side of the intent journal. `forwarding` queues the intent; `then` runs once it
 * is written (the intents of one event-loop turn share one write), with undefined when it could
 * not be — then the call must not be forwarded.
 */
export interface CallIntentJournal {
  forwarding(intent: CallIntent, then: (mark: IntentMark | undefined) => void): void;
  /** The call's record was accepted by the audit writer; the intent is no longer needed once that commits. */
  recorded(mark: IntentMark): void;
}
