import { randomUUID } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { sql } from 'drizzle-orm';
import type { Database } from '../../src/db/client.ts';
import { accessRequests, type Grant, grants } from '../../src/db/schema/index.ts';
import { parsePolicy } from '../../src/policy/loader.ts';
import type { Policy } from '../../src/policy/types.ts';
import type { ActiveGrantView } from '../../src/proxy/active-grants.ts';
import type { CallRecord, CallSink } from '../../src/shared/call-record.ts';
import { issueGrantToken, type KeyStore } from '../../src/tokens/index.ts';
import { openTestDatabase as openSchemaDatabase } from './db.ts';

export const UPSTREAM_SECRET = 'upstream-secret-value-never-logged';

/** A fresh schema per test file, migrated; `drop()` removes it. */
export const openTestDatabase = () => openSchemaDatabase('t_proxy');

export interface SeenRequest {
  method: string;
  /** The request target exactly as it arrived. */
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** Listens on a free port of 127.0.0.1; resolves with the server's base URL and port. */
export async function listenOnLoopback(server: Server): Promise<{ url: string; port: number }> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, port };
}

/** An HTTP upstream on 127.0.0.1 that records every request and echoes it as JSON. */
export async function startEchoUpstream(): Promise<{
  url: string;
  port: number;
  seen: SeenRequest[];
  close(): Promise<void>;
}> {
  const seen: SeenRequest[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const entry: SeenRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      seen.push(entry);
      const body = JSON.stringify(entry);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  const { url, port } = await listenOnLoopback(server);
  return {
    url,
    port,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * An upstream that counts the calls it gets per `X-Test-Grant` header (tests set it to the grant
 * id), answers `?n=N` with N bytes (default 2) after `?ms=N` ms (default at once).
 */
export async function startCountingUpstream(): Promise<{
  url: string;
  hits: Map<string, number>;
  close(): Promise<void>;
}> {
  const hits = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const query = new URL(req.url ?? '/', 'http://upstream').searchParams;
    const grant = String(req.headers['x-test-grant'] ?? '');
    hits.set(grant, (hits.get(grant) ?? 0) + 1);
    const body = 'x'.repeat(Number(query.get('n') ?? 2));
    req.resume();
    setTimeout(
      () => {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
        res.end(body);
      },
      Number(query.get('ms') ?? 0),
    );
  });
  server.keepAliveTimeout = 30_000;
  const { url } = await listenOnLoopback(server);
  return {
    url,
    hits,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The policy the proxy tests use: two resources on the given upstream. */
export function testPolicy(upstreamUrl: string, options: { rateRequests?: number } = {}): Policy {
  // tiny-api: 2 calls a minute (rate-limit tests); down-api: nothing listens (502 tests).
  const text = `
resources:
  billing-api:
    upstream: ${upstreamUrl}
    credential: { header: Authorization, value: "Bearer \${BILLING_TOKEN}" }
    approvers: { users: [U0APPROVER] }
    approval_channel: C0APPROVAL
    scopes:
      read: { allow: ["GET /invoices/**", "GET /customers/*"] }
      write: { allow: ["GET /**", "POST /invoices", "PATCH /invoices/*"] }
    rate_limit: { requests: ${options.rateRequests ?? 100000}, per: 1m }
  other-api:
    upstream: ${upstreamUrl}/other
    credential: { header: X-Api-Key, value: "other-secret" }
    approvers: { users: [U0APPROVER] }
    approval_channel: C0APPROVAL
    scopes:
      read: { allow: ["GET /**"] }
  tiny-api:
    upstream: ${upstreamUrl}
    approvers: { users: [U0APPROVER] }
    approval_channel: C0APPROVAL
    scopes:
      read: { allow: ["GET /**"] }
    rate_limit: { requests: 2, per: 1m }
  down-api:
    upstream: http://127.0.0.1:1
    approvers: { users: [U0APPROVER] }
    approval_channel: C0APPROVAL
    scopes:
      read: { allow: ["GET /**"] }
`;
  return parsePolicy(text, { file: 'proxy-test.yml', env: { BILLING_TOKEN: UPSTREAM_SECRET } });
}

export interface TestGrant {
  id: string;
  userId: string;
  resource: string;
  scope: string;
  startsAt: Date;
  expiresAt: Date;
  /** The quotas fixed on the grant, when it has them. */
  quotaRequests?: number;
  quotaResponseBytes?: number;
}

/** Inserts an approved request and its active grant, and notifies the feed, in one transaction. */
export async function insertGrant(
  database: Database,
  input: {
    resource: string;
    scope: string;
    startsAt: Date;
    expiresAt: Date;
    userId?: string;
    id?: string;
    /** A request quota fixed on the grant, as approval would. */
    quotaRequests?: number;
    /** A response-byte quota fixed on the grant, as approval would. */
    quotaResponseBytes?: number;
  },
): Promise<TestGrant> {
  const grant: TestGrant = {
    id: input.id ?? randomUUID(),
    userId: input.userId ?? 'U0CONTRACTOR',
    resource: input.resource,
    scope: input.scope,
    startsAt: input.startsAt,
    expiresAt: input.expiresAt,
    ...(input.quotaRequests !== undefined ? { quotaRequests: input.quotaRequests } : {}),
    ...(input.quotaResponseBytes !== undefined ? { quotaResponseBytes: input.quotaResponseBytes } : {}),
  };
  const requestId = randomUUID();
  const createdAt = new Date(input.startsAt.getTime() - 60_000);
  await database.db.transaction(async (tx) => {
    await tx.insert(accessRequests).values({
      id: requestId,
      requesterId: grant.userId,
      resource: grant.resource,
      scope: grant.scope,
      durationSeconds: Math.max(1, Math.round((input.expiresAt.getTime() - input.startsAt.getTime()) / 1000)),
      reason: 'proxy test',
      status: 'approved',
      approvalsRequired: 1,
      createdAt,
      timeoutAt: new Date(createdAt.getTime() + 3_600_000),
      decidedAt: createdAt,
      decidedBy: 'U0APPROVER',
    });
    await tx.insert(grants).values({
      id: grant.id,
      requestId,
      userId: grant.userId,
      resource: grant.resource,
      scope: grant.scope,
      status: 'active',
      startsAt: grant.startsAt,
      expiresAt: grant.expiresAt,
      ...(input.quotaRequests !== undefined ? { quotaRequests: input.quotaRequests } : {}),
      ...(input.quotaResponseBytes !== undefined ? { quotaResponseBytes: input.quotaResponseBytes } : {}),
    });
    await tx.execute(sql`select pg_notify(${database.channel('grants')}, ${grant.id})`);
  });
  return grant;
}

/** A grant made for a proxy test: its row, its token, and the header that carries it as Bearer. */
export interface GrantWithToken {
  grant: TestGrant;
  token: string;
  auth: { authorization: string };
}

/** Where the grants go, what signs their tokens, and how to tell the proxy under test has a grant. */
export interface GrantSetup {
  database: Database;
  keys: KeyStore;
  issuer: string;
  /** Asked until it holds (see `heldByViews`, `forwardedAt`): then the proxy acts on the grant. */
  seen(made: GrantWithToken): boolean | Promise<boolean>;
  /** How long to wait for `seen` (default 5 s; a proxy in a child on a busy machine may want more). */
  waitMs?: number;
}

export interface GrantWithTokenInput {
  resource: string;
  scope: string;
  userId?: string;
  /** The time the grant is made at (default now; give the test's clock); it started a minute before. */
  now?: Date;
  /** How long the grant lasts from `now` (default a day). */
  lifetimeMs?: number;
  /** How long its token lasts from `now` (default as long as the grant). */
  tokenLifetimeMs?: number;
  quotaRequests?: number;
  quotaResponseBytes?: number;
  /** A device key's thumbprint: the token is bound to it (`cnf.jkt`), to be sent with DPoP proofs. */
  boundKey?: string;
}

const DAY_MS = 86_400_000;

/**
 * What most proxy tests begin with: an active grant inserted (and notified, see insertGrant), a
 * token issued for it, and a wait until the proxy under test has the grant, so the test's first
 * call is decided on the grant and not on the feed's timing.
 */
export async function insertGrantWithToken(
  setup: GrantSetup,
  input: GrantWithTokenInput,
): Promise<GrantWithToken> {
  const now = (input.now ?? new Date()).getTime();
  const expiresAt = new Date(now + (input.lifetimeMs ?? DAY_MS));
  const grant = await insertGrant(setup.database, {
    resource: input.resource,
    scope: input.scope,
    startsAt: new Date(now - 60_000),
    expiresAt,
    ...(input.userId !== undefined ? { userId: input.userId } : {}),
    ...(input.quotaRequests !== undefined ? { quotaRequests: input.quotaRequests } : {}),
    ...(input.quotaResponseBytes !== undefined ? { quotaResponseBytes: input.quotaResponseBytes } : {}),
  });
  const token = await issueGrantToken(setup.keys, {
    grantId: grant.id,
    userId: grant.userId,
    resource: grant.resource,
    scope: grant.scope,
    expiresAt: input.tokenLifetimeMs === undefined ? expiresAt : new Date(now + input.tokenLifetimeMs),
    issuer: setup.issuer,
    ...(input.boundKey !== undefined ? { boundKey: input.boundKey } : {}),
  });
  const made: GrantWithToken = { grant, token, auth: { authorization: `Bearer ${token}` } };
  await eventually(() => setup.seen(made), setup.waitMs);
  return made;
}

/** `seen` for proxies in this process: every view holds the grant active, with its quotas. */
export function heldByViews(...views: readonly Pick<ActiveGrantView, 'lookup'>[]): GrantSetup['seen'] {
  return ({ grant }) =>
    views.every((view) => {
      const found = view.lookup(grant.id);
      // The quotas too, so a byte quota is in the view before the first call, not only the grant.
      return (
        found.kind === 'active' &&
        found.grant.quotaRequests === grant.quotaRequests &&
        found.grant.quotaResponseBytes === grant.quotaResponseBytes
      );
    });
}

/** `seen` for a proxy in a child process: a GET of `path` with the grant's token is forwarded (200). */
export function forwardedAt(port: number, path: string): GrantSetup['seen'] {
  return async ({ auth }) => (await rawRequest(port, 'GET', path, auth)).status === 200;
}

/**
 * Inserts `users.length` approved requests and active grants (one per user, as approvals would
 * have made them) whose expiries are spread over the one second starting at `second` (epoch ms),
 * 250 rows a statement, without notifying the feed. Resolves with the grant rows.
 */
export async function insertGrantsExpiringIn(
  db: Database['db'],
  input: { second: number; users: readonly string[]; resource?: string; scope?: string },
): Promise<Grant[]> {
  const startsAt = new Date();
  const out: Grant[] = [];
  const { users } = input;
  for (let i = 0; i < users.length; i += 250) {
    const chunk = users.slice(i, i + 250).map((user) => ({ user, request: randomUUID() }));
    await db.insert(accessRequests).values(
      chunk.map((c) => ({
        id: c.request,
        requesterId: c.user,
        resource: input.resource ?? 'billing-api',
        scope: input.scope ?? 'read',
        durationSeconds: 60,
        reason: 'expiring together',
        status: 'approved' as const,
        approvalsRequired: 1,
        createdAt: startsAt,
        timeoutAt: new Date(startsAt.getTime() + 3_600_000),
        decidedAt: startsAt,
        decidedBy: 'policy',
      })),
    );
    const rows = await db
      .insert(grants)
      .values(
        chunk.map((c, j) => ({
          id: randomUUID(),
          requestId: c.request,
          userId: c.user,
          resource: input.resource ?? 'billing-api',
          scope: input.scope ?? 'read',
          startsAt,
          expiresAt: new Date(input.second + Math.floor(((i + j) * 1000) / users.length)),
        })),
      )
      .returning();
    out.push(...rows);
  }
  return out;
}

/** Revokes a grant as the access service would: update + notify in one transaction. */
export async function revokeGrant(database: Database, grantId: string, at: Date): Promise<void> {
  await database.db.transaction(async (tx) => {
    await tx.execute(
      sql`update grants set status = 'revoked', ended_at = ${at.toISOString()}, ended_by = 'test', version = version + 1 where id = ${grantId}`,
    );
    await tx.execute(sql`select pg_notify(${database.channel('grants')}, ${grantId})`);
  });
}

/** An array-backed CallSink; `full` makes it refuse, to test fail-closed auditing. */
export function arraySink(): CallSink & { records: CallRecord[]; full: boolean } {
  const sink = {
    records: [] as CallRecord[],
    full: false,
    offer(record: CallRecord) {
      if (sink.full) return false;
      sink.records.push(record);
      return true;
    },
    hasCapacity: () => !sink.full,
  };
  return sink;
}

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  json(): Record<string, unknown>;
}

/** A request whose path goes on the wire exactly as given (fetch would normalise `..` and `%2e`). */
export function rawRequest(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: text,
          json: () => JSON.parse(text) as Record<string, unknown>,
        });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A stream for a test logger (`pino(options, logTo(lines))`): each JSON line is kept in `lines`. */
export function logTo(lines: string[]): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
}

/** Polls `check` every few ms until it holds; for state changes driven by the feed, not for timing asserts. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * Wraps a Database so its NOTIFY subscriptions can be made to go silent: the connection stays
 * up and reports nothing (no onDisconnect), it just stops delivering messages — what a NAT
 * dropping an idle connection or a frozen host looks like from the client. `silence()` affects
 * the subscriptions that exist at that moment; a re-subscription gets a healthy one.
 */
export function silenceableFeed(database: Database): {
  database: Database;
  silence(): void;
  readonly subscriptions: number;
} {
  const subscriptions: { silent: boolean }[] = [];
  const wrapped: Database = {
    ...database,
    async listen(channel, handlers) {
      const subscription = { silent: false };
      subscriptions.push(subscription);
      return database.listen(channel, {
        onMessage: (payload) => {
          if (!subscription.silent) handlers.onMessage(payload);
        },
        onConnect: () => handlers.onConnect(),
        onDisconnect: () => handlers.onDisconnect(),
      });
    },
  };
  return {
    database: wrapped,
    silence() {
      for (const s of subscriptions) s.silent = true;
    },
    get subscriptions() {
      return subscriptions.length;
    },
  };
}

/** One call as it passed a recording relay on its way to the proxy. */
export interface RelayedCall {
  method: string;
  /** The request target as the client sent it. */
  path: string;
  authorization: string | undefined;
  proof: string | undefined;
  body: string;
  /** What the proxy answered. */
  status: number;
}

/**
 * A plain pass-through in front of a real proxy (a load balancer, as deployments have one):
 * each call goes on to `127.0.0.1:<target>` unchanged, and is recorded with what the proxy
 * answered, so a test can read the tokens and proofs a client really sent. Point the proxy's
 * JITGATE_PUBLIC_URL at `url`: that is the URL the client's proofs name. `target` is set once
 * the proxy listens.
 */
export async function startRecordingRelay(): Promise<{
  url: string;
  calls: RelayedCall[];
  target: number | undefined;
  close(): Promise<void>;
}> {
  const calls: RelayedCall[] = [];
  const relay = {
    url: '',
    calls,
    target: undefined as number | undefined,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const call: RelayedCall = {
        method: req.method ?? '',
        path: req.url ?? '',
        authorization: req.headers.authorization,
        proof: typeof req.headers.dpop === 'string' ? req.headers.dpop : undefined,
        body: body.toString('utf8'),
        status: 0,
      };
      calls.push(call);
      const onward = httpRequest(
        { host: '127.0.0.1', port: relay.target, method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          call.status = answer.statusCode ?? 0;
          res.writeHead(call.status, answer.headers);
          answer.pipe(res);
        },
      );
      onward.on('error', () => {
        call.status = 502;
        res.writeHead(502).end();
      });
      onward.end(body);
    });
  });
  relay.url = (await listenOnLoopback(server)).url;
  return relay;
}
