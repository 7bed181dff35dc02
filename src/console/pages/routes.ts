import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { LowerQuota } from '../../access/quota.ts';
import { statusOfRefusal } from '../../api/refusals.ts';
import {
  auditFilterOf,
  auditQuery,
  grantCursor,
  grantListQuery,
  parseGrantCursor,
} from '../../api/schemas.ts';
import { parseDuration, parseSize } from '../../policy/duration.ts';
import type { WebContext } from '../context.ts';
import { html, query } from '../html.ts';
import { personIn } from '../names.ts';
import { seesAll, seesOthers, type Viewer } from '../viewer.ts';
import { page } from './layout.ts';
import {
  alertsView,
  auditView,
  chainView,
  grantDetailView,
  grantsView,
  overviewView,
  peopleView,
  policyView,
  requestsView,
} from './views.ts';

/** What a successful form post says on the page it returns to (the code travels, never text). */
const NOTICES: Record<string, string> = {
  approved: 'Approved: the grant is made, the requester is told in Slack.',
  approval_added: 'Your approval is counted; more are needed.',
  denied: 'Denied: the requester is told in Slack with your reason.',
  revoked: 'Revoked: every proxy refuses the grant from now on.',
  extension_requested: 'Extension requested: the approvers are asked in Slack.',
  extended: 'Extended by policy.',
  extended_by_you: 'Extended: the owner is told in Slack.',
  revoked_all: "Done: the person's access on your resources has ended.",
  verified: 'The chain was checked; the result is below.',
};

type Form = Record<string, unknown>;
const text = (form: unknown, key: string): string => {
  const value = (form as Form | undefined)?.[key];
  return typeof value === 'string' ? value : '';
};

/** "Approve for less" on the form: empty fields leave the policy's quota; 'bad' when a field cannot be read. */
function lowerQuotaOf(form: unknown): LowerQuota | undefined | 'bad' {
  const calls = text(form, 'quota_requests').trim();
  const bytes = text(form, 'quota_bytes').trim();
  if (!calls && !bytes) return undefined;
  const requests = calls ? (/^[0-9]{1,15}$/.test(calls) ? Number(calls) : undefined) : undefined;
  const responseBytes = bytes ? parseSize(bytes) : undefined;
  if ((calls && requests === undefined) || (bytes && responseBytes === undefined)) return 'bad';
  return {
    ...(requests !== undefined ? { requests } : {}),
    ...(responseBytes !== undefined ? { responseBytes } : {}),
  };
}

/**
 * The console's pages: server-rendered HTML over the same reads and actions as `/api/v1`.
 * Forms post, the action runs, and a success redirects back (303) with a notice code; a
 * refusal is shown as a page with the service's sentence and the HTTP status it maps to.
 */
export async function consolePages(app: FastifyInstance, ctx: WebContext): Promise<void> {
  app.addHook('preHandler', async (request, reply) => {
    reply.header('cache-control', 'no-store');
    if (ctx.viewer(request)) return;
    if (request.method === 'GET') {
      return reply.redirect(`/console/auth/login${query({ return: request.url })}`, 302);
    }
    return reply.code(401).type('text/html; charset=utf-8').send('Sign in first.');
  });
  app.addHook('preHandler', (request, reply, done) => {
    if (request.method === 'GET' || request.method === 'HEAD') return done();
    ctx.checkCsrf(request, reply, done);
  });

  const viewerOf = (request: FastifyRequest): Viewer => {
    const viewer = ctx.viewer(request);
    if (!viewer) throw new Error('page reached without a viewer');
    return viewer;
  };
  const send = (
    request: FastifyRequest,
    reply: FastifyReply,
    title: string,
    current: string,
    body: ReturnType<typeof html>,
    status = 200,
  ) => {
    const notice = NOTICES[String((request.query as Form | undefined)?.notice ?? '')];
    return reply
      .code(status)
      .type('text/html; charset=utf-8')
      .send(
        page({
          title,
          current,
          viewer: viewerOf(request),
          csrfToken: ctx.csrfToken(request, reply),
          notice,
          body,
        }),
      );
  };
  const refusedPage = (
    request: FastifyRequest,
    reply: FastifyReply,
    status: number,
    message: string,
    back: string,
  ) =>
    send(
      request,
      reply,
      'Not done',
      '',
      html`<p class="problem" role="alert">${message}</p><p><a href="${back}">Back</a></p>`,
      status,
    );
  const done = (reply: FastifyReply, back: string, notice: string) =>
    reply.redirect(`${back}${back.includes('?') ? '&' : '?'}notice=${notice}`, 303);
  const resourceNames = () => Object.keys(ctx.policy.current().resources).sort();

  app.get('/', async (request, reply) => {
    const overview = await ctx.reads.overview(viewerOf(request));
    return send(request, reply, 'Overview', '/console', overviewView({ now: ctx.clock.now(), ...overview }));
  });

  app.get('/grants', async (request, reply) => {
    const parsed = grantListQuery.safeParse(request.query);
    const q = parsed.success ? parsed.data : {};
    const before = parseGrantCursor(q.cursor);
    const result = await ctx.reads.grants(
      viewerOf(request),
      {
        ...(q.resource ? { resource: q.resource } : {}),
        ...(q.user ? { userId: q.user } : {}),
        ...(q.state ? { state: q.state } : {}),
        ...(q.scope ? { scope: q.scope } : {}),
      },
      { limit: 50, ...(before ? { before } : {}) },
    );
    const filter = { resource: q.resource, user: q.user, state: q.state, scope: q.scope };
    return send(
      request,
      reply,
      'Grants',
      '/console/grants',
      grantsView({
        now: ctx.clock.now(),
        filter: Object.fromEntries(Object.entries(filter).filter(([, v]) => v !== undefined)),
        resources: resourceNames(),
        grants: result.grants,
        names: await ctx.names.of(result.grants.map((g) => g.userId)),
        nextHref: result.next
          ? `/console/grants${query({ ...filter, cursor: grantCursor(result.next) })}`
          : undefined,
      }),
    );
  });

  app.get('/grants/:id', async (request, reply) => {
    const { id } = request.params as { id: string };
    const viewer = viewerOf(request);
    const found = /^[0-9a-f-]{36}$/.test(id) ? await ctx.reads.grant(viewer, id) : undefined;
    if (!found?.ok) {
      return refusedPage(request, reply, 404, 'No such grant, or not one you can see.', '/console/grants');
    }
    return send(
      request,
      reply,
      `Grant ${id.slice(0, 8)}`,
      '/console/grants',
      grantDetailView({
        detail: found.value,
        now: ctx.clock.now(),
        csrfToken: ctx.csrfToken(request, reply),
        isOwner: found.value.grant.userId === viewer.userId,
        names: await ctx.names.of([
          found.value.grant.userId,
          ...found.value.timeline.map((r) => personIn(r.actor) ?? ''),
        ]),
      }),
    );
  });

  app.post('/grants/:id/revoke', async (request, reply) => {
    const { id } = request.params as { id: string };
    const back = text(request.headers, 'referer').includes('/console/alerts')
      ? '/console/alerts'
      : `/console/grants/${id}`;
    const result = await ctx.actions.revokeGrant(viewerOf(request), {
      grantId: id,
      reason: text(request.body, 'reason'),
    });
    if (!result.ok) return refusedPage(request, reply, statusOfRefusal(result.code), result.message, back);
    return done(reply, back, 'revoked');
  });

  app.post('/grants/:id/extend', async (request, reply) => {
    const { id } = request.params as { id: string };
    const back = `/console/grants/${id}`;
    const seconds = parseDuration(text(request.body, 'duration'));
    if (seconds === undefined)
      return refusedPage(request, reply, 422, 'Give a duration like 30m or 2h.', back);
    const reason = text(request.body, 'reason');
    const result = await ctx.actions.extendGrant(viewerOf(request), {
      grantId: id,
      durationSeconds: seconds,
      ...(reason ? { reason } : {}),
    });
    if (!result.ok) return refusedPage(request, reply, statusOfRefusal(result.code), result.message, back);
    const { request: asked, grant } = result.value;
    if (asked.requesterId !== viewerOf(request).userId) {
      return done(reply, back, grant ? 'extended_by_you' : 'approval_added');
    }
    return done(reply, back, grant ? 'extended' : 'extension_requested');
  });

  app.get('/requests', async (request, reply) => {
    const requests = await ctx.reads.requests(viewerOf(request));
    return send(
      request,
      reply,
      'Pending requests',
      '/console/requests',
      requestsView({
        requests,
        csrfToken: ctx.csrfToken(request, reply),
        names: await ctx.names.of(requests.map((r) => r.request.requesterId)),
      }),
    );
  });

  app.post('/requests/:id/approve', async (request, reply) => {
    const { id } = request.params as { id: string };
    const duration = text(request.body, 'duration');
    const seconds = duration ? parseDuration(duration) : undefined;
    if (duration && seconds === undefined) {
      return refusedPage(request, reply, 422, 'Give a duration like 30m or 2h.', '/console/requests');
    }
    const quota = lowerQuotaOf(request.body);
    if (quota === 'bad') {
      return refusedPage(
        request,
        reply,
        422,
        'Give a quota as a whole number of calls, and bytes like 512KB or 10MB.',
        '/console/requests',
      );
    }
    const result = await ctx.actions.approve(viewerOf(request), {
      requestId: id,
      ...(seconds !== undefined ? { durationSeconds: seconds } : {}),
      ...(quota !== undefined ? { quota } : {}),
    });
    if (!result.ok) {
      return refusedPage(request, reply, statusOfRefusal(result.code), result.message, '/console/requests');
    }
    return done(reply, '/console/requests', result.value.grant ? 'approved' : 'approval_added');
  });

  app.post('/requests/:id/deny', async (request, reply) => {
    const { id } = request.params as { id: string };
    const reason = text(request.body, 'reason').trim();
    if (!reason) return refusedPage(request, reply, 422, 'Say why you deny it.', '/console/requests');
    const result = await ctx.actions.deny(viewerOf(request), { requestId: id, reason });
    if (!result.ok) {
      return refusedPage(request, reply, statusOfRefusal(result.code), result.message, '/console/requests');
    }
    return done(reply, '/console/requests', 'denied');
  });

  app.get('/people', async (request, reply) => {
    const viewer = viewerOf(request);
    const people = await ctx.reads.people(viewer);
    if (!people.ok) return refusedPage(request, reply, people.status, people.message, '/console');
    return send(
      request,
      reply,
      'People with access',
      '/console/people',
      peopleView({
        people: people.value,
        canRevokeAll: viewer.admin || viewer.approves.size > 0,
        csrfToken: ctx.csrfToken(request, reply),
        names: await ctx.names.of(people.value.map((p) => p.userId)),
      }),
    );
  });

  app.post('/people/:userId/revoke-all', async (request, reply) => {
    const { userId } = request.params as { userId: string };
    const result = await ctx.actions.revokeAll(viewerOf(request), {
      userId,
      reason: text(request.body, 'reason'),
    });
    if (!result.ok)
      return refusedPage(request, reply, statusOfRefusal(result.code), result.message, '/console/people');
    return done(reply, '/console/people', 'revoked_all');
  });

  app.get('/alerts', async (request, reply) => {
    const alerts = await ctx.reads.alerts(viewerOf(request));
    return send(
      request,
      reply,
      'Alerts',
      '/console/alerts',
      alertsView({
        alerts,
        csrfToken: ctx.csrfToken(request, reply),
        names: await ctx.names.of(alerts.map((a) => String(a.row.data.userId ?? ''))),
      }),
    );
  });

  app.get('/audit', async (request, reply) => {
    const viewer = viewerOf(request);
    const raw = (request.query ?? {}) as Record<string, string | undefined>;
    const parsed = auditQuery.safeParse(raw);
    const form = {
      since: raw.since,
      until: raw.until,
      user: raw.user,
      grant: raw.grant,
      resource: raw.resource,
      decision: raw.decision,
      method: raw.method,
      path: raw.path,
      ip: raw.ip,
    };
    if (!parsed.success) {
      const problem = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
      return send(
        request,
        reply,
        'Audit search',
        '/console/audit',
        auditView({
          form,
          problem,
          rows: [],
          histogram: undefined,
          nextHref: undefined,
          exportQuery: '',
          names: new Map(),
        }),
        400,
      );
    }
    const q = parsed.data;
    const filter = auditFilterOf(q);
    const [result, histogram] = await Promise.all([
      ctx.reads.auditSearch(viewer, filter, {
        limit: 100,
        ...(q.cursor !== undefined ? { before: q.cursor } : {}),
      }),
      ctx.reads.auditHistogram(viewer, filter),
    ]);
    const exportQuery = query(form);
    return send(
      request,
      reply,
      seesOthers(viewer) ? 'Audit search' : 'My audit trail',
      '/console/audit',
      auditView({
        form,
        problem: undefined,
        rows: result.rows,
        histogram,
        nextHref:
          result.next === undefined ? undefined : `/console/audit${query({ ...form, cursor: result.next })}`,
        exportQuery,
        names: await ctx.names.of(
          result.rows.flatMap((r) => [personIn(r.actor) ?? '', String(r.data.userId ?? '')]),
        ),
      }),
    );
  });

  app.get('/chain', async (request, reply) => {
    if (!seesAll(viewerOf(request))) {
      return refusedPage(request, reply, 403, 'The chain status is for auditors and admins.', '/console');
    }
    const status = await ctx.chain.status();
    return send(
      request,
      reply,
      'Audit chain',
      '/console/chain',
      chainView({
        status,
        csrfToken: ctx.csrfToken(request, reply),
        names: await ctx.names.of([personIn(status.lastCheck?.by) ?? '']),
      }),
    );
  });

  app.post('/chain/verify', async (request, reply) => {
    const viewer = viewerOf(request);
    if (!seesAll(viewer)) return refusedPage(request, reply, 403, 'For auditors and admins.', '/console');
    await ctx.chain.verify({ type: 'console', userId: viewer.userId });
    return done(reply, '/console/chain', 'verified');
  });

  app.get('/policy', async (request, reply) =>
    send(
      request,
      reply,
      'Policy',
      '/console/policy',
      policyView({ resources: ctx.reads.policy(viewerOf(request)) }),
    ),
  );
}
