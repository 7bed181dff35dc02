import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type {
  FakeSlackApi,
  FakeSlackApiOptions,
  FaultedCall,
  RecordedCall,
  RefusedCall,
  SlackFault,
  SlackResponder,
} from './web-api-types.ts';
import { PAYLOAD_ERRORS } from './web-api-types.ts';
import { bearerToken, parseArgs, readBody, sendJson } from './web-api-wire.ts';
import { createSlackWorkspace } from './workspace.ts';

export * from './web-api-types.ts';

/**
 * A stand-in for Slack's Web API, for development (`jitgate demo`) and tests: a real HTTP
 * server on loopback that `SLACK_API_URL` points to. It answers as Slack answers, refuses
 * what Slack refuses (workspace.ts, block-kit-limits.ts), records every call, and can be told
 * to fail the way Slack fails (rate limits, 500s, dropped connections).
 */

interface Waiter {
  method: string;
  predicate: (call: RecordedCall) => boolean;
  resolve: (call: RecordedCall) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

interface PendingFault {
  fault: SlackFault;
  remaining: number;
}

export async function startFakeSlackApi(options: FakeSlackApiOptions = {}): Promise<FakeSlackApi> {
  const calls: RecordedCall[] = [];
  const faultedCalls: FaultedCall[] = [];
  const refusals: RefusedCall[] = [];
  const warnings: string[] = [];
  const now = options.now ?? Date.now;
  // Kept through reset(): what close() reports unless a test acknowledged it.
  const unexpected: string[] = [];
  const faults = new Map<string, PendingFault[]>();
  const responders = new Map<string, SlackResponder>();
  let waiters: Waiter[] = [];

  const record = (call: RecordedCall): void => {
    calls.push(call);
    const matched = waiters.filter((w) => w.method === call.method && w.predicate(call));
    if (matched.length === 0) return;
    waiters = waiters.filter((w) => !matched.includes(w));
    for (const w of matched) {
      clearTimeout(w.timer);
      w.resolve(call);
    }
  };

  const takeFault = (method: string): SlackFault | undefined =>
    takeQueued(method) ?? (method === 'response_url' ? undefined : takeQueued('*'));

  const takeQueued = (method: string): SlackFault | undefined => {
    const queue = faults.get(method);
    const head = queue?.[0];
    if (!queue || !head) return undefined;
    head.remaining -= 1;
    if (head.remaining <= 0) queue.shift();
    return head.fault;
  };

  // Requests are only answered after `fake` exists: nobody knows the port before listen resolves.
  const server = createServer((req, res) => {
    void handle(req, res).catch((error: unknown) => {
      sendJson(res, 400, { ok: false, error: 'invalid_request', detail: String(error) });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  const fake: FakeSlackApi = {
    url: `http://127.0.0.1:${port}/api/`,
    calls,
    faultedCalls,
    refusals,
    warnings,
    userGroups: { ...options.userGroups },
    deactivated: new Set(options.deactivated),
    realNames: { ...options.realNames },
    socketUrl: options.socketUrl,
    callsTo: (method) => calls.filter((c) => c.method === method),
    waitFor(method, predicate = () => true, timeoutMs = 5000) {
      const existing = calls.find((c) => c.method === method && predicate(c));
      if (existing) return Promise.resolve(existing);
      return new Promise<RecordedCall>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters = waiters.filter((w) => w.timer !== timer);
          const seen = calls.map((c) => c.method).join(', ') || '(none)';
          const faulted = faultedCalls.map((c) => c.method).join(', ') || '(none)';
          reject(
            new Error(
              `FakeSlackApi: no matching call to ${method} within ${timeoutMs} ms; recorded: ${seen}; faulted: ${faulted}`,
            ),
          );
        }, timeoutMs);
        waiters.push({ method, predicate, resolve, reject, timer });
      });
    },
    failNext(method, fault, times = 1) {
      const queue = faults.get(method) ?? [];
      queue.push({ fault, remaining: times });
      faults.set(method, queue);
    },
    respondTo(method, responder) {
      responders.set(method, responder);
    },
    payloadRefusals: () => refusals.filter((r) => PAYLOAD_ERRORS.has(r.error)),
    acknowledge() {
      unexpected.length = 0;
    },
    setChannel: (channel, state) => workspace.setChannel(channel, state),
    viewHash: (viewId) => workspace.viewHash(viewId),
    responseUrl(key = 'default') {
      return `${fake.url.replace(/api\/$/, '')}response/${encodeURIComponent(key)}`;
    },
    reset() {
      calls.length = 0;
      faultedCalls.length = 0;
      refusals.length = 0;
      warnings.length = 0;
      faults.clear();
      responders.clear();
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        const problems = unexpected.splice(0);
        const refusedPayloads = (error?: Error | null) => {
          if (error) return reject(error);
          if (problems.length === 0) return resolve();
          reject(
            new Error(
              `FakeSlackApi: Slack would have refused or warned about ${problems.length} payload(s):\n${problems
                .slice(0, 10)
                .join('\n')}`,
            ),
          );
        };
        for (const w of waiters) {
          clearTimeout(w.timer);
          w.reject(new Error(`FakeSlackApi closed while waiting for ${w.method}`));
        }
        waiters = [];
        server.closeAllConnections();
        server.close(refusedPayloads);
      }),
  };

  const workspace = createSlackWorkspace({
    now,
    directory: fake,
    warn: (warning) => {
      warnings.push(warning);
      unexpected.push(warning);
    },
  });

  const recordAnswer = (call: RecordedCall, body: Record<string, unknown>): void => {
    call.answer = body;
    if (body.ok === false) {
      const errors = Array.isArray(body.errors)
        ? body.errors.filter((e): e is string => typeof e === 'string')
        : [];
      refusals.push({ ...call, error: String(body.error), errors });
      if (PAYLOAD_ERRORS.has(String(body.error))) {
        unexpected.push(`${call.method} → ${String(body.error)}: ${errors.slice(0, 3).join('; ')}`);
      }
      return;
    }
    record(call);
  };

  const sendFault = (req: IncomingMessage, res: ServerResponse, fault: SlackFault): void => {
    if ('dropConnection' in fault) {
      req.socket.destroy();
    } else if ('error' in fault) {
      sendJson(res, 200, { ok: false, error: fault.error });
    } else if (fault.status === 429) {
      sendJson(res, 429, { ok: false, error: 'ratelimited' }, { 'retry-after': String(fault.retryAfter) });
    } else {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('Internal Server Error');
    }
  };

  /** Answers `call` with the next injected fault for its method, if there is one. */
  const answeredByFault = (req: IncomingMessage, res: ServerResponse, call: RecordedCall): boolean => {
    const fault = takeFault(call.method);
    if (!fault) return false;
    faultedCalls.push({ ...call, fault });
    sendFault(req, res, fault);
    return true;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const requestUrl = new URL(req.url ?? '/', 'http://127.0.0.1');
    const raw = await readBody(req);
    const args = parseArgs(raw, req.headers['content-type'] ?? '', requestUrl.searchParams);
    const at = new Date();

    if (requestUrl.pathname.startsWith('/response/')) {
      const call: RecordedCall = {
        method: 'response_url',
        path: requestUrl.pathname,
        args,
        token: undefined,
        at,
      };
      if (answeredByFault(req, res, call)) return;
      const { status, body } = workspace.answerResponseUrl(args);
      recordAnswer(call, body);
      sendJson(res, status, body);
      return;
    }
    const match = /^\/api\/([A-Za-z0-9_.]+)$/.exec(requestUrl.pathname);
    if (!match?.[1]) {
      sendJson(res, 404, { ok: false, error: 'not_found' });
      return;
    }
    const call: RecordedCall = {
      method: match[1],
      path: requestUrl.pathname,
      args,
      token: bearerToken(req, args),
      at,
    };
    if (answeredByFault(req, res, call)) return;
    const body = workspace.answer(call, responders.get(call.method));
    recordAnswer(call, body);
    sendJson(res, 200, body);
  };

  return fake;
}
