import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { MaskRules } from '../policy/mask-paths.ts';
import type { ScopePolicy } from '../policy/types.ts';
import type { CallIntentJournal, IntentMark } from '../shared/call-intent.ts';
import type { CallRecord, CallSink, CapturedBody } from '../shared/call-record.ts';
import type { ActiveGrant } from './active-grants.ts';
import type { CallContext, CallTarget } from './authorize.ts';
import type { BodyCapture } from './body-capture.ts';
import type { CallLimits } from './limits/call-limits.ts';

/**
 * The status a call's record carries when the client left before any answer was written
 * (nginx's "client closed request"); no client ever receives it.
 */
const CLIENT_CLOSED_STATUS = 499;

const NO_TARGET: CallTarget = {
  name: '',
  normalized: { ok: false, code: 'bad_path', message: 'not read yet' },
};

/** The decision recorded for a call whose client left before the proxy refused or forwarded it. */
export const CLIENT_CLOSED = 'client_closed';

/**
 * Everything one call carries from the checks to the forward and the call record: a single
 * object per call, so the reply-from callbacks can be shared functions (built once per
 * server, not closures per call) that find their state on the request.
 */
export class Call implements CallContext {
  resourceName = '';
  path = '';
  /** The resource name and normalised path, read once when the call starts. */
  target: CallTarget = NO_TARGET;
  grant: ActiveGrant | undefined = undefined;
  claimed: CallContext['claimed'] = undefined;
  /** `allowed` once forwarded, the denial code once refused; '' while undecided. */
  decision = '';
  responseBytes = 0;
  /** `?…` as sent, or ''; forwarded unchanged. */
  query = '';
  /** Once allowed: the resource's upstream URL and the path the call takes there. */
  upstream = '';
  upstreamPath = '';
  /** Lower-cased header name and value of the upstream credential, if the policy has one. */
  credentialHeader: string | undefined = undefined;
  credentialValue = '';
  clientIp: string | undefined = undefined;
  quotaCounted = false;
  /** Set when the proxy hands the call to the upstream; from then on the upstream may have it. */
  forwarded = false;
  /** The call's line in the intent journal, written just before it was forwarded. */
  intent: IntentMark | undefined = undefined;
  /** Set once the call's record is offered; nothing about the call changes after that. */
  recorded = false;
  /** The client left while the call was still being authorised; the outcome makes the record. */
  clientGone = false;
  /** The upstream's response body, once it answered: read when the call ends, to say who cut it. */
  upstreamBody: NodeJS.ReadableStream | undefined = undefined;
  /** Set by the direct forward when the upstream broke off after its headers were sent on. */
  upstreamBroke = false;
  /**
   * The direct forward's handler, told when the client leaves (it aborts the upstream call) by
   * the call's one close listener (watchCallEnd) after the record is made: one listener per
   * call instead of one per interested party.
   */
  clientWatcher: { clientClosed(): void } | undefined = undefined;
  /** Only set when the policy turns the feature on for this call's resource or scope. */
  scope: ScopePolicy | undefined = undefined;
  mask: MaskRules | undefined = undefined;
  maskMaxBytes = 0;
  identityHeader: string | undefined = undefined;
  identityValue = '';
  requestCapture: BodyCapture | undefined = undefined;
  responseCapture: BodyCapture | undefined = undefined;

  constructor(
    readonly at: Date,
    public now: number,
    readonly started: number,
    readonly method: string,
  ) {}
}

declare module 'fastify' {
  interface FastifyRequest {
    jitgate: Call | null;
  }
  interface FastifyInstance {
    /** The proxy's calls whose record is not made yet (see closeProxyServer). */
    jitgateOpenCalls: OpenCalls;
  }
}

/**
 * Counts calls started and not yet recorded, so a shutdown can wait until every call it cut
 * off has made its record (a response's `close` comes a turn after its connection is cut).
 */
export class OpenCalls {
  private open = 0;
  private waiters: (() => void)[] = [];

  get count(): number {
    return this.open;
  }

  started(): void {
    this.open++;
  }

  recorded(): void {
    this.open--;
    if (this.open === 0) for (const wake of this.waiters.splice(0)) wake();
  }

  /** Resolves when no call is open, or after `timeoutMs` whatever is left. */
  whenNone(timeoutMs: number): Promise<void> {
    if (this.open === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

/** What the functions that handle a call share; built once per server (src/proxy/server.ts). */
export interface CallRuntime {
  logger: Logger;
  recording: CallRecording;
  limits: CallLimits;
}

/**
 * Counts response bytes as they leave (or, with a content-length, when the headers do),
 * not when the call is over: the response's end reaches the client before the call's record
 * is made, so a client that calls again at once must already find its bytes counted against
 * a byte quota. Nothing is counted once the record is made (its bytes are settled with it).
 */
export function countResponseBytes(limits: CallLimits, call: Call, bytes: number): void {
  if (call.recorded) return;
  call.responseBytes += bytes;
  if (call.quotaCounted && call.grant) limits.addBytes(call.grant.id, bytes);
}

/**
 * The one point where a call becomes its audit record: when the client's response closes.
 *
 * Node emits `close` on a ServerResponse exactly once, whether the answer was written to the
 * end, the client went away first, or the response was destroyed because the upstream broke
 * off mid-body — unlike fastify's onResponse hook (`finish`), which never runs when the answer
 * cannot be written, and so used to lose the record of a call the upstream had already
 * received. `recorded` makes the record once even if a later fault path looks again.
 *
 * How a call ended, from the response's own state at that moment:
 * - written to the end: the status sent;
 * - cut off: `aborted: 'upstream'` if the upstream's body failed, else `aborted: 'client'`;
 *   the status sent if the headers were written, else 499 (nothing reached the client);
 * - left before it was forwarded (while its token's signature was checked, or its identity
 *   assertion signed): decision `client_closed` — or the denial it got — and nothing is
 *   forwarded afterwards. The record then waits for the check's outcome, so a call the quota
 *   admitted is counted in it.
 *
 * A forwarded call also has its intent in the journal (written before the forward, see
 * src/audit/intent-journal.ts); the journal is told once the record is accepted.
 */
export interface CallRecording {
  sink: CallSink;
  logger: Logger;
  open: OpenCalls;
  journal?: CallIntentJournal;
}

export function watchCallEnd(
  call: Call,
  request: FastifyRequest,
  reply: FastifyReply,
  recording: CallRecording,
): void {
  recording.open.started();
  reply.raw.on('close', () => {
    // Still being authorised (a token's first signature check is asynchronous): the record waits
    // for the outcome, so it says what was decided and what was counted against the grant.
    if (call.decision === '') call.clientGone = true;
    else recordCall(call, request, reply, recording);
    call.clientWatcher?.clientClosed();
  });
}

/** Offers the call's record, once; later calls do nothing. */
export function recordCall(
  call: Call,
  request: FastifyRequest,
  reply: FastifyReply,
  recording: CallRecording,
): void {
  if (call.recorded) return;
  call.recorded = true;
  try {
    const accepted = recording.sink.offer(callRecord(call, request, reply, recording.logger));
    // Refused by a full writer: the intent stays unrecorded, so the next start audits the call.
    if (accepted && call.intent) recording.journal?.recorded(call.intent);
  } catch (error) {
    // A sink must not throw; if one does, the call is still over and the process stays up.
    recording.logger.error({ reqId: request.id, err: error }, 'call record could not be offered');
  } finally {
    recording.open.recorded();
  }
}

function callRecord(call: Call, request: FastifyRequest, reply: FastifyReply, logger: Logger): CallRecord {
  const res = reply.raw;
  const aborted = res.writableFinished
    ? undefined
    : call.upstreamBroke || upstreamFailed(call.upstreamBody)
      ? 'upstream'
      : 'client';
  // Allowed but never handed on (the client left while its identity assertion was signed).
  if (call.decision === '' || (call.decision === 'allowed' && !call.forwarded)) call.decision = CLIENT_CLOSED;
  const grant = call.grant;
  let capture: CallRecord['capture'];
  if (call.requestCapture || call.responseCapture) {
    try {
      capture = capturedBodies(request, reply, call);
    } catch (error) {
      // The call is recorded without its bodies rather than not at all.
      logger.error({ reqId: request.id, err: error }, 'call capture failed');
    }
  }
  return {
    at: call.at,
    requestId: request.id,
    resource: call.resourceName,
    // A denied call is attributed to the grant its (verified) token names.
    grantId: grant?.id ?? call.claimed?.grantId,
    userId: grant?.userId ?? call.claimed?.userId,
    scope: grant?.scope ?? call.claimed?.scope,
    method: call.method,
    path: call.path,
    clientIp: call.clientIp ?? request.ip,
    decision: call.decision,
    status: res.headersSent ? res.statusCode : CLIENT_CLOSED_STATUS,
    responseBytes: call.responseBytes,
    latencyMs: performance.now() - call.started,
    ...(aborted ? { aborted } : {}),
    ...(capture ? { capture } : {}),
    quotaCounted: call.quotaCounted,
  };
}

function upstreamFailed(body: NodeJS.ReadableStream | undefined): boolean {
  return body !== undefined && (body as NodeJS.ReadableStream & { errored?: unknown }).errored != null;
}

/** What the call's audit row keeps of its bodies (policy `capture`), masked with the scope's rules. */
function capturedBodies(
  request: FastifyRequest,
  reply: FastifyReply,
  call: Call,
): { request: CapturedBody | undefined; response: CapturedBody | undefined } {
  const mask = call.scope?.mask;
  const required = call.scope?.maskRequired ?? false;
  const requestType = request.headers['content-type'];
  const responseType = reply.getHeader('content-type');
  // What the proxy injected upstream: never in an audit row, whoever echoes it.
  const secrets = [call.credentialValue, call.identityValue].filter((value) => value !== '');
  return {
    // A call without a body (a GET) keeps no request entry at all.
    request: call.requestCapture?.total
      ? call.requestCapture.result(requestType, mask, required, secrets)
      : undefined,
    response: call.responseCapture?.result(
      typeof responseType === 'string' ? responseType : undefined,
      mask,
      required,
      secrets,
    ),
  };
}
