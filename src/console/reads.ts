import { type ExportFormat, type ExportSink, exportAuditEvents } from '../audit/export.ts';
import type { Db } from '../db/client.ts';
import {
  extensionRequestIdsOf,
  pendingRequestCounts,
  requestsMatching,
} from '../db/queries/access-requests.ts';
import { approvalsOf, type GivenApproval } from '../db/queries/approvals.ts';
import {
  type AuditBucket,
  type AuditSearchFilter,
  alertRows,
  auditSearchHistogram,
  auditSearchPage,
  type GrantCallStats,
  grantCallStats,
  grantTimelineRows,
} from '../db/queries/audit-events/reads.ts';
import { type GrantListFilter, grantsMatching } from '../db/queries/grants/console-list.ts';
import { findGrant } from '../db/queries/grants/lifecycle.ts';
import { liveGrantHolders } from '../db/queries/grants/live.ts';
import type { AccessRequest, AuditEventRow, Grant } from '../db/schema/index.ts';
import type { PolicyStore } from '../policy/index.ts';
import type { Clock } from '../shared/clock.ts';
import { canSeeResource, reachOf, seesAll, seesOthers, type Viewer } from './viewer.ts';

/** A read the viewer may not make: 403 when the page exists for others, 404 for a row out of reach. */
export type ReadOutcome<T> = { ok: true; value: T } | { ok: false; status: 403 | 404; message: string };

const ok = <T>(value: T): ReadOutcome<T> => ({ ok: true, value });
const forbidden = (message: string): ReadOutcome<never> => ({ ok: false, status: 403, message });
const notFound = (message: string): ReadOutcome<never> => ({ ok: false, status: 404, message });

const HOUR_MS = 3600_000;
const DAY_MS = 24 * HOUR_MS;

/** A bucket width that cuts `spanMs` into at most about 48 bars, in round units. */
export function bucketFor(spanMs: number): number {
  const widths = [60_000, 5 * 60_000, 15 * 60_000, HOUR_MS, 3 * HOUR_MS, 6 * HOUR_MS, DAY_MS, 7 * DAY_MS];
  return widths.find((w) => spanMs / w <= 48) ?? 30 * DAY_MS;
}

export interface GrantDetail {
  grant: Grant;
  timeline: AuditEventRow[];
  stats: GrantCallStats;
  calls: { from: Date; to: Date; bucketMs: number; buckets: AuditBucket[] };
  canRevoke: boolean;
  /** Its owner may ask for more time; an approver of its resource may give it. */
  canExtend: boolean;
}

export interface PendingRequest {
  request: AccessRequest;
  approvals: GivenApproval[];
  /** Whether the viewer approves this resource (and so is shown the decision forms). */
  canDecide: boolean;
  /** The policy's quota for the request's scope: an approver may approve for less. */
  policyQuota: { requests: number | undefined; responseBytes: number | undefined } | undefined;
}

export interface Person {
  userId: string;
  liveGrants: number;
  resources: string[];
  nextExpiry: Date | null;
  pendingRequests: number;
}

/** A search's rows over time, for the chart above the results. */
export interface SearchHistogram {
  from: Date;
  to: Date;
  bucketMs: number;
  buckets: AuditBucket[];
}

/**
 * Everything the console and `/api/v1` read, with the viewer's reach applied in the query
 * itself (never filtered after the fact), over the table modules' own queries.
 */
export function createConsoleReads(deps: { db: Db; clock: Clock; policy: PolicyStore }) {
  const { db, clock } = deps;

  const grantVisible = (viewer: Viewer, grant: Pick<Grant, 'resource' | 'userId'>) =>
    grant.userId === viewer.userId || canSeeResource(viewer, grant.resource);

  /** The filter as asked, narrowed to the viewer: people who see only their own rows get only those. */
  const searchOf = (viewer: Viewer, filter: AuditSearchFilter): AuditSearchFilter => {
    const reach = reachOf(viewer);
    if (!reach) return filter;
    return seesOthers(viewer) ? { ...filter, reach } : { ...filter, userId: viewer.userId, reach };
  };

  /** Counts over `[from, to)`, the range widened to whole buckets so bars and ticks line up. */
  async function histogram(filter: AuditSearchFilter, from: Date, to: Date): Promise<SearchHistogram> {
    const bucketMs = bucketFor(to.getTime() - from.getTime());
    const start = new Date(Math.floor(from.getTime() / bucketMs) * bucketMs);
    const end = new Date(Math.max(start.getTime() + bucketMs, Math.ceil(to.getTime() / bucketMs) * bucketMs));
    const buckets = await auditSearchHistogram(db, { ...filter, since: from, until: to }, bucketMs / 1000);
    return { from: start, to: end, bucketMs, buckets };
  }

  return {
    async overview(viewer: Viewer) {
      const now = clock.now();
      const since = new Date(now.getTime() - DAY_MS);
      const reach = reachOf(viewer);
      const [live, pending, alerts, denials] = await Promise.all([
        grantsMatching(db, { state: 'live', ...(reach ? { reach } : {}) }, { now, limit: 1000 }),
        requestsMatching(db, { status: 'pending', ...(reach ? { reach } : {}) }, 1000),
        histogram(searchOf(viewer, { kinds: ['anomaly.alert'] }), since, now),
        histogram(searchOf(viewer, { decision: 'denied' }), since, now),
      ]);
      const byResource = (rows: readonly { resource: string }[]) => {
        const counts = new Map<string, number>();
        for (const r of rows) counts.set(r.resource, (counts.get(r.resource) ?? 0) + 1);
        return [...counts].sort(([a], [b]) => a.localeCompare(b)).map(([label, value]) => ({ label, value }));
      };
      return {
        liveGrants: { total: live.length, byResource: byResource(live), soonest: live.slice(0, 5) },
        pendingRequests: {
          total: pending.length,
          byResource: byResource(pending),
          oldest: pending.slice(-5),
        },
        alerts: { total: alerts.buckets.reduce((s, b) => s + b.other, 0), histogram: alerts },
        denials: { total: denials.buckets.reduce((s, b) => s + b.denied, 0), histogram: denials },
      };
    },

    async grants(
      viewer: Viewer,
      filter: Omit<GrantListFilter, 'reach'>,
      page: { limit: number; before?: { startsAt: Date; id: string } },
    ): Promise<{ grants: Grant[]; next: { startsAt: Date; id: string } | undefined }> {
      const reach = reachOf(viewer);
      const rows = await grantsMatching(
        db,
        { ...filter, ...(reach ? { reach } : {}) },
        { now: clock.now(), limit: page.limit + 1, ...(page.before ? { before: page.before } : {}) },
      );
      const more = rows.length > page.limit;
      const grants = rows.slice(0, page.limit);
      const last = grants.at(-1);
      return { grants, next: more && last ? { startsAt: last.startsAt, id: last.id } : undefined };
    },

    async grant(viewer: Viewer, grantId: string): Promise<ReadOutcome<GrantDetail>> {
      const grant = await findGrant(db, grantId);
      if (!grant || !grantVisible(viewer, grant)) return notFound('No such grant, or not one you can see.');
      const now = clock.now();
      const extensions = await extensionRequestIdsOf(db, grant.id);
      // Up to now, not the grant's end: calls refused after it ended (a revoked token still in use) belong here.
      const to = now;
      // At least an hour, so a young grant's calls are bars in a readable axis, not one slab.
      const from = new Date(Math.min(grant.startsAt.getTime(), to.getTime() - HOUR_MS));
      const [timeline, stats, calls] = await Promise.all([
        grantTimelineRows(db, grant.id, [grant.requestId, ...extensions]),
        grantCallStats(db, grant.id, { kinds: ['proxy.call', 'proxy.denied'], topPaths: 10, maxIps: 20 }),
        histogram({ grantId: grant.id, kinds: ['proxy.call', 'proxy.denied'] }, from, to),
      ]);
      const live = grant.status === 'active' && grant.expiresAt > now;
      return ok({
        grant,
        timeline,
        stats,
        calls,
        canRevoke:
          live && (viewer.admin || viewer.approves.has(grant.resource) || grant.userId === viewer.userId),
        canExtend: live && (viewer.approves.has(grant.resource) || grant.userId === viewer.userId),
      });
    },

    async requests(viewer: Viewer, status: AccessRequest['status'] = 'pending'): Promise<PendingRequest[]> {
      const reach = reachOf(viewer);
      const rows = await requestsMatching(db, { status, ...(reach ? { reach } : {}) }, 200);
      const policy = deps.policy.current();
      return Promise.all(
        rows.map(async (request) => {
          const quota = policy.resources[request.resource]?.scopes[request.scope]?.quota;
          return {
            request,
            approvals: await approvalsOf(db, request.id),
            canDecide:
              request.status === 'pending' &&
              viewer.approves.has(request.resource) &&
              request.requesterId !== viewer.userId,
            policyQuota: quota ? { requests: quota.requests, responseBytes: quota.responseBytes } : undefined,
          };
        }),
      );
    },

    async people(viewer: Viewer): Promise<ReadOutcome<Person[]>> {
      if (!seesOthers(viewer)) return forbidden('People are shown to approvers, auditors and admins.');
      const resources = seesAll(viewer) ? undefined : [...viewer.approves];
      const [holders, pending] = await Promise.all([
        liveGrantHolders(db, clock.now(), resources),
        pendingRequestCounts(db, resources),
      ]);
      const people = new Map<string, Person>();
      for (const h of holders) {
        people.set(h.userId, {
          userId: h.userId,
          liveGrants: h.grants,
          resources: h.resources,
          nextExpiry: h.nextExpiry,
          pendingRequests: 0,
        });
      }
      for (const p of pending) {
        const person = people.get(p.userId) ?? {
          userId: p.userId,
          liveGrants: 0,
          resources: [],
          nextExpiry: null,
          pendingRequests: 0,
        };
        person.pendingRequests = p.pending;
        people.set(p.userId, person);
      }
      return ok([...people.values()].sort((a, b) => a.userId.localeCompare(b.userId)));
    },

    async alerts(viewer: Viewer, sinceMs = 7 * DAY_MS) {
      const now = clock.now();
      const reach = reachOf(viewer);
      const rows = await alertRows(db, {
        since: new Date(now.getTime() - sinceMs),
        limit: 200,
        ...(reach ? { reach } : {}),
      });
      const grantIds = [...new Set(rows.map((r) => r.grantId).filter((id): id is string => id !== null))];
      const grants = new Map<string, Grant>();
      for (const id of grantIds) {
        const grant = await findGrant(db, id);
        if (grant) grants.set(id, grant);
      }
      return rows.map((row) => {
        const grant = row.grantId ? grants.get(row.grantId) : undefined;
        const live = grant !== undefined && grant.status === 'active' && grant.expiresAt > now;
        return {
          row,
          grant,
          canRevoke:
            live && (viewer.admin || viewer.approves.has(grant.resource) || grant.userId === viewer.userId),
        };
      });
    },

    async auditSearch(
      viewer: Viewer,
      filter: AuditSearchFilter,
      page: { before?: number; limit: number },
    ): Promise<{ rows: AuditEventRow[]; next: number | undefined }> {
      const rows = await auditSearchPage(db, searchOf(viewer, filter), { ...page, limit: page.limit + 1 });
      const more = rows.length > page.limit;
      const shown = rows.slice(0, page.limit);
      return { rows: shown, next: more ? shown.at(-1)?.seq : undefined };
    },

    /** The search's rows over its time range (the last 24 h when it names none). */
    auditHistogram(viewer: Viewer, filter: AuditSearchFilter): Promise<SearchHistogram> {
      const now = clock.now();
      const to = filter.until && filter.until < now ? filter.until : now;
      const from = filter.since ?? new Date(to.getTime() - DAY_MS);
      return histogram(searchOf(viewer, filter), from, to);
    },

    /** The search's rows, oldest first, written as JSON Lines or CSV (the CLI export's encoders). */
    auditExport(viewer: Viewer, filter: AuditSearchFilter, format: ExportFormat, out: ExportSink) {
      return exportAuditEvents(db, out, { ...searchOf(viewer, filter), format });
    },

    policy(viewer: Viewer) {
      const policy = deps.policy.current();
      return Object.values(policy.resources)
        .sort((a, b) => a.name.localeCompare(b.name))
        .map((r) => ({ resource: r, full: canSeeResource(viewer, r.name) }));
    },
  };
}

export type ConsoleReads = ReturnType<typeof createConsoleReads>;
