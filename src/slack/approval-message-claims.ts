import type { Db } from '../db/client.ts';
import {
  claimApprovalMessageTs,
  findApprovalMessageTs,
  releaseApprovalMessageClaim,
  setApprovalMessage,
} from '../db/queries/access-requests.ts';
import type { AccessRequest } from '../db/schema/index.ts';
import type { Clock } from '../shared/clock.ts';

/**
 * Where a request's approval message lives in Slack, and who may post it. Slack bookkeeping,
 * kept on the request row (`approval_message_ts`) so every instance sees it: the access
 * actions never read or write it.
 */

/** Stands in `approval_message_ts` while one instance posts the approval message. */
const POSTING_MARKER = 'posting:';
/** Stands in it after a post whose outcome is unknown (a timeout): the next poster looks for it first. */
const UNSURE_MARKER = 'unsure:';

const isMarker = (ts: string): boolean => ts.startsWith(POSTING_MARKER) || ts.startsWith(UNSURE_MARKER);

/** The Slack ts of a request's approval message, or undefined while none is recorded yet. */
export function approvalMessageTs(request: AccessRequest): string | undefined {
  const ts = request.approvalMessageTs;
  return ts === null || isMarker(ts) ? undefined : ts;
}

/**
 * `claimed_after_unknown`: the right to post, taken over from a poster whose outcome is unknown
 * (it timed out, or crashed): the message may be in Slack already, so look before posting.
 */
type ApprovalMessageClaim =
  | 'claimed'
  | 'claimed_after_unknown'
  | 'posting_elsewhere'
  | 'already_posted'
  | 'not_found';

export interface ApprovalMessageClaims {
  /**
   * Reserve the right to post a request's approval message. Two bot instances delivering
   * events of one request at once must not both post: the first compare-and-set of the
   * empty slot to a `posting:<ms>` marker wins; a marker older than `staleMs` (a poster
   * that crashed before recording the ts) may be taken over.
   */
  claim(requestId: string, staleMs?: number): Promise<ApprovalMessageClaim>;
  /**
   * Gives up a claim after Slack answered that it posted nothing (a refusal, a 429), so the
   * next attempt may post at once instead of waiting for the claim to go stale.
   */
  release(requestId: string): Promise<void>;
  /** Gives up a claim after a post whose outcome is unknown: the next claim is `claimed_after_unknown`. */
  releaseUnsure(requestId: string): Promise<void>;
  /** Records where the approval message lives, so later outcomes update it in place. */
  record(requestId: string, channel: string, ts: string): Promise<void>;
}

export function createApprovalMessageClaims(deps: { db: Db; clock: Clock }): ApprovalMessageClaims {
  const { db, clock } = deps;
  return {
    async claim(requestId, staleMs = 60_000) {
      const row = await findApprovalMessageTs(db, requestId);
      if (!row) return 'not_found';
      const now = clock.now().getTime();
      if (row.ts !== null && !row.ts.startsWith(UNSURE_MARKER)) {
        const postingSince = row.ts.startsWith(POSTING_MARKER)
          ? Number(row.ts.slice(POSTING_MARKER.length))
          : undefined;
        if (postingSince === undefined) return 'already_posted';
        if (now - postingSince < staleMs) return 'posting_elsewhere';
      }
      const claimed = await claimApprovalMessageTs(db, requestId, row.ts, `${POSTING_MARKER}${now}`);
      if (!claimed) return 'posting_elsewhere';
      return row.ts === null ? 'claimed' : 'claimed_after_unknown';
    },
    release: (requestId) => releaseApprovalMessageClaim(db, requestId, POSTING_MARKER),
    releaseUnsure: (requestId) =>
      releaseApprovalMessageClaim(db, requestId, POSTING_MARKER, `${UNSURE_MARKER}${clock.now().getTime()}`),
    record: (requestId, channel, ts) => setApprovalMessage(db, requestId, channel, ts),
  };
}
