import { renderPolicyResource } from '../../api/policy-view.ts';
import type { AuditEventRow, Grant } from '../../db/schema/index.ts';
import { describeDuration, formatDuration } from '../../policy/duration.ts';
import type { ResourcePolicy } from '../../policy/index.ts';
import { SLACK_USER_ID_PATTERN } from '../../shared/ids.ts';
import type { ChainStatus } from '../chain-status.ts';
import { barChart, type Series, timeChart } from '../charts.ts';
import { html, query, type SafeHtml } from '../html.ts';
import { type Names, personIn } from '../names.ts';
import {
  bucketFor,
  type GrantDetail,
  type PendingRequest,
  type Person,
  type SearchHistogram,
} from '../reads.ts';

/** The page bodies. Every value from outside (names, reasons, paths, policy text) goes through `html`. */

const csrf = (token: string) => html`<input type="hidden" name="_csrf" value="${token}">`;

/** A person (or an audit actor label) with their name when it is known; the id stays visible. */
function who(label: string, names: Names): SafeHtml {
  const id = personIn(label);
  const name = id ? names.get(id) : undefined;
  return name ? html`${name} <span class="muted">${label}</span>` : html`${label}`;
}

function when(at: Date | null | undefined): SafeHtml {
  if (!at) return html`<span class="muted">—</span>`;
  const iso = at.toISOString();
  return html`<time datetime="${iso}">${iso.slice(0, 16).replace('T', ' ')} UTC</time>`;
}

const ALLOWED: Series = { name: 'allowed calls', className: 's-allowed' };
const DENIED: Series = { name: 'denied calls', className: 's-denied' };
const OTHER: Series = { name: 'other events', className: 's-other' };

function stateOf(grant: Grant, now: Date): string {
  if (grant.status === 'active') return grant.expiresAt > now ? 'live' : 'expired';
  return grant.status;
}

function grantRows(grants: readonly Grant[], now: Date, names: Names): SafeHtml {
  return html`<table><caption class="sr-only">Grants</caption><thead><tr><th scope="col">grant</th><th scope="col">person</th><th scope="col">resource</th><th scope="col">scope</th><th scope="col">state</th><th scope="col">started</th><th scope="col">ends</th></tr></thead><tbody>${
    grants.length === 0
      ? html`<tr><td colspan="7">No grants.</td></tr>`
      : grants.map(
          (g) =>
            html`<tr><td><a href="/console/grants/${g.id}"><code>${g.id.slice(0, 8)}</code></a></td><td>${who(g.userId, names)}</td><td>${g.resource}</td><td>${g.scope}</td><td><span class="state state-${stateOf(g, now)}">${stateOf(g, now)}</span></td><td>${when(g.startsAt)}</td><td>${when(g.endedAt ?? g.expiresAt)}</td></tr>`,
        )
  }</tbody></table>`;
}

export function overviewView(input: {
  now: Date;
  liveGrants: { total: number; byResource: { label: string; value: number }[]; soonest: Grant[] };
  pendingRequests: { total: number; byResource: { label: string; value: number }[] };
  alerts: { total: number; histogram: SearchHistogram };
  denials: { total: number; histogram: SearchHistogram };
}): SafeHtml {
  const series = (h: SearchHistogram, s: Series, pick: (b: SearchHistogram['buckets'][number]) => number) =>
    timeChart({
      title: `${s.name === 'denied calls' ? 'Denied calls' : 'Alerts'} per ${describeDuration(h.bucketMs / 1000)}, last 24 h`,
      series: [s],
      buckets: h.buckets.map((b) => ({ start: b.start, values: [pick(b)] })),
      from: h.from,
      to: h.to,
      bucketMs: h.bucketMs,
    });
  return html`<div class="cards">
<section aria-labelledby="ov-grants"><h2 id="ov-grants">Active grants: ${input.liveGrants.total}</h2>
${barChart({ title: 'Active grants by resource', unit: 'grants', bars: input.liveGrants.byResource })}
<p><a href="/console/grants?state=live">All active grants</a></p></section>
<section aria-labelledby="ov-requests"><h2 id="ov-requests">Pending requests: ${input.pendingRequests.total}</h2>
${barChart({ title: 'Pending requests by resource', unit: 'requests', bars: input.pendingRequests.byResource })}
<p><a href="/console/requests">Decide requests</a></p></section>
<section aria-labelledby="ov-alerts"><h2 id="ov-alerts">Alerts in the last 24 h: ${input.alerts.total}</h2>
${series(input.alerts.histogram, { name: 'alerts', className: 's-denied' }, (b) => b.other)}
<p><a href="/console/alerts">All alerts</a></p></section>
<section aria-labelledby="ov-denials"><h2 id="ov-denials">Denied calls in the last 24 h: ${input.denials.total}</h2>
${series(input.denials.histogram, DENIED, (b) => b.denied)}
<p><a href="/console/audit${query({ decision: 'denied' })}">Search denied calls</a></p></section>
</div>`;
}

export function grantsView(input: {
  now: Date;
  filter: { resource?: string; user?: string; state?: string; scope?: string };
  resources: readonly string[];
  grants: readonly Grant[];
  nextHref: string | undefined;
  names: Names;
}): SafeHtml {
  const f = input.filter;
  const option = (value: string, label: string, selected: string | undefined) =>
    html`<option value="${value}"${value === (selected ?? '') ? html` selected` : ''}>${label}</option>`;
  return html`<form method="get" action="/console/grants" class="filters" role="search" aria-label="Filter grants">
<label>Resource <select name="resource">${option('', 'any', f.resource)}${input.resources.map((r) => option(r, r, f.resource))}</select></label>
<label>Person <input name="user" value="${f.user ?? ''}" placeholder="U0123ABCD" pattern="${SLACK_USER_ID_PATTERN}"></label>
<label>State <select name="state">${option('', 'any', f.state)}${option('live', 'live', f.state)}${option('expired', 'expired', f.state)}${option('revoked', 'revoked', f.state)}</select></label>
<label>Scope <input name="scope" value="${f.scope ?? ''}"></label>
<button type="submit">Filter</button></form>
${grantRows(input.grants, input.now, input.names)}
${input.nextHref ? html`<p><a href="${input.nextHref}" rel="next">Older grants</a></p>` : ''}`;
}

function timelineTable(rows: readonly AuditEventRow[], names: Names): SafeHtml {
  return html`<table><caption class="sr-only">Timeline</caption><thead><tr><th scope="col">when</th><th scope="col">what</th><th scope="col">by</th><th scope="col">details</th></tr></thead><tbody>${rows.map(
    (r) =>
      html`<tr><td>${when(r.at)}</td><td><code>${r.kind}</code></td><td>${who(r.actor, names)}</td><td><code class="data">${JSON.stringify(r.data)}</code></td></tr>`,
  )}</tbody></table>`;
}

export function grantDetailView(input: {
  detail: GrantDetail;
  now: Date;
  csrfToken: string;
  isOwner: boolean;
  names: Names;
}): SafeHtml {
  const { grant, stats, calls, timeline } = input.detail;
  const live = grant.status === 'active' && grant.expiresAt > input.now;
  const totals = stats.totals;
  return html`<dl class="facts">
<dt>Grant</dt><dd><code>${grant.id}</code></dd>
<dt>Person</dt><dd>${who(grant.userId, input.names)}</dd>
<dt>Resource and scope</dt><dd>${grant.resource} · ${grant.scope}</dd>
<dt>State</dt><dd><span class="state state-${stateOf(grant, input.now)}">${stateOf(grant, input.now)}</span>${grant.endReason ? html` — ${grant.endReason}` : ''}</dd>
<dt>Started</dt><dd>${when(grant.startsAt)}</dd>
<dt>${live ? 'Expires' : 'Ended'}</dt><dd>${when(live ? grant.expiresAt : (grant.endedAt ?? grant.expiresAt))}</dd>
<dt>Extensions</dt><dd>${grant.extensions}</dd>
<dt>Quota</dt><dd>${grant.quotaRequests === null && grant.quotaResponseBytes === null ? 'none' : `${grant.usedRequests} of ${grant.quotaRequests ?? '∞'} calls, ${grant.usedResponseBytes} of ${grant.quotaResponseBytes ?? '∞'} bytes`}</dd>
<dt>Calls</dt><dd>${totals?.total ?? 0} (${totals?.denied ?? 0} denied), ${totals?.bytes ?? 0} bytes; last ${when(totals?.last ?? null)}</dd>
</dl>
${
  input.detail.canRevoke
    ? html`<form method="post" action="/console/grants/${grant.id}/revoke" class="action">
${csrf(input.csrfToken)}<label>Reason <input name="reason" maxlength="2000" required></label>
<button type="submit" class="danger">${input.isOwner ? 'Give up this grant' : 'Revoke grant'}</button></form>`
    : ''
}
${
  input.detail.canExtend
    ? html`<form method="post" action="/console/grants/${grant.id}/extend" class="action">
${csrf(input.csrfToken)}<label>More time <input name="duration" value="1h" pattern="[1-9][0-9]*[smhd]" required></label>
<label>Reason <input name="reason" maxlength="2000"></label><button type="submit">${input.isOwner ? 'Ask for an extension' : 'Extend grant'}</button></form>`
    : ''
}
<section aria-labelledby="g-calls"><h2 id="g-calls">Calls over time</h2>
${timeChart({
  title: `Calls per ${describeDuration(calls.bucketMs / 1000)}, allowed and denied`,
  series: [ALLOWED, DENIED],
  buckets: calls.buckets.map((b) => ({ start: b.start, values: [b.allowed, b.denied] })),
  from: calls.from,
  to: calls.to,
  bucketMs: calls.bucketMs,
})}</section>
<div class="cards">
<section aria-labelledby="g-paths"><h2 id="g-paths">Top paths</h2>
<table><caption class="sr-only">Top paths</caption><thead><tr><th scope="col">method</th><th scope="col">path</th><th scope="col">calls</th></tr></thead><tbody>${
    stats.topPaths.length === 0
      ? html`<tr><td colspan="3">No calls yet.</td></tr>`
      : stats.topPaths.map(
          (p) => html`<tr><td>${p.method}</td><td><code>${p.path}</code></td><td>${p.count}</td></tr>`,
        )
  }</tbody></table></section>
<section aria-labelledby="g-ips"><h2 id="g-ips">Client IPs</h2>
${stats.ips.length === 0 ? html`<p>None yet.</p>` : html`<ul>${stats.ips.map((i) => html`<li><code>${i.ip}</code></li>`)}</ul>`}</section>
</div>
<section aria-labelledby="g-timeline"><h2 id="g-timeline">Timeline</h2>${timelineTable(timeline, input.names)}</section>`;
}

/** A byte count as the quota field takes it back (`10MB`, `512KB`, `300`). */
function describeBytes(bytes: number): string {
  for (const [unit, size] of [
    ['GB', 1024 ** 3],
    ['MB', 1024 ** 2],
    ['KB', 1024],
  ] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return String(bytes);
}

/** Durations an approver may approve for: what was asked, and standard shorter ones. */
function lessThan(seconds: number): number[] {
  const standard = [15 * 60, 30 * 60, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 86_400];
  return [seconds, ...standard.filter((s) => s < seconds).reverse()];
}

export function requestsView(input: {
  requests: readonly PendingRequest[];
  csrfToken: string;
  names: Names;
}): SafeHtml {
  if (input.requests.length === 0) return html`<p>No pending requests you can see.</p>`;
  return html`<ul class="requests">${input.requests.map(
    ({ request: r, approvals, canDecide, policyQuota }) => {
      const id = `req-${r.id}`;
      return html`<li><article aria-labelledby="${id}">
<h2 id="${id}">${who(r.requesterId, input.names)} asks for ${r.resource} · ${r.scope} for ${describeDuration(r.durationSeconds)}</h2>
<p class="reason">${r.reason}</p>
<p class="muted">Asked ${when(r.createdAt)} · times out ${when(r.timeoutAt)} · ${approvals.length} of ${r.approvalsRequired} approvals${r.extendsGrantId ? html` · extends grant <a href="/console/grants/${r.extendsGrantId}"><code>${r.extendsGrantId.slice(0, 8)}</code></a>` : ''}</p>
${
  canDecide
    ? html`<div class="decide"><form method="post" action="/console/requests/${r.id}/approve" class="action">${csrf(input.csrfToken)}
<label>Approve for <select name="duration">${lessThan(r.durationSeconds).map((s, i) => html`<option value="${formatDuration(s)}">${describeDuration(s)}${i === 0 ? ' (as asked)' : ''}</option>`)}</select></label>
<label>At most <input name="quota_requests" inputmode="numeric" pattern="[1-9][0-9]*" size="7" placeholder="${policyQuota?.requests ?? 'no cap'}"> calls</label>
<label>At most <input name="quota_bytes" pattern="[0-9]+([.][0-9]+)? ?([kKmMgG]?[bB])?" size="7" placeholder="${policyQuota?.responseBytes === undefined ? 'no cap' : describeBytes(policyQuota.responseBytes)}"> response bytes</label>
<button type="submit">Approve</button></form>
<form method="post" action="/console/requests/${r.id}/deny" class="action">${csrf(input.csrfToken)}
<label>Reason for denying <input name="reason" maxlength="2000" required></label>
<button type="submit" class="danger">Deny</button></form></div>`
    : ''
}
</article></li>`;
    },
  )}</ul>`;
}

export function peopleView(input: {
  people: readonly Person[];
  canRevokeAll: boolean;
  csrfToken: string;
  names: Names;
}): SafeHtml {
  return html`<table><caption class="sr-only">People with access</caption><thead><tr><th scope="col">person</th><th scope="col">active grants</th><th scope="col">resources</th><th scope="col">next expiry</th><th scope="col">pending requests</th>${input.canRevokeAll ? html`<th scope="col">revoke all</th>` : ''}</tr></thead><tbody>${
    input.people.length === 0
      ? html`<tr><td colspan="6">Nobody holds access now.</td></tr>`
      : input.people.map(
          (p) =>
            html`<tr><td><a href="/console/grants${query({ user: p.userId, state: 'live' })}">${who(p.userId, input.names)}</a></td><td>${p.liveGrants}</td><td>${p.resources.join(', ')}</td><td>${when(p.nextExpiry)}</td><td>${p.pendingRequests}</td>${
              input.canRevokeAll
                ? html`<td><form method="post" action="/console/people/${p.userId}/revoke-all" class="inline">${csrf(input.csrfToken)}<label class="sr-only" for="ra-${p.userId}">Reason for ending ${p.userId}'s access</label><input id="ra-${p.userId}" name="reason" placeholder="reason" maxlength="2000"><button type="submit" class="danger">Revoke all</button></form></td>`
                : ''
            }</tr>`,
        )
  }</tbody></table>`;
}

export function alertsView(input: {
  alerts: readonly { row: AuditEventRow; grant: Grant | undefined; canRevoke: boolean }[];
  csrfToken: string;
  names: Names;
}): SafeHtml {
  return html`<table><caption class="sr-only">Alerts of the last 7 days</caption><thead><tr><th scope="col">when</th><th scope="col">resource</th><th scope="col">person</th><th scope="col">rule</th><th scope="col">what</th><th scope="col">grant</th></tr></thead><tbody>${
    input.alerts.length === 0
      ? html`<tr><td colspan="6">No alerts in the last 7 days.</td></tr>`
      : input.alerts.map(({ row, grant, canRevoke }) => {
          const d = row.data;
          const evidence = (d.evidence ?? {}) as Record<string, unknown>;
          return html`<tr><td>${when(row.at)}</td><td>${row.resource ?? ''}</td><td>${typeof d.userId === 'string' ? who(d.userId, input.names) : '—'}</td><td><code>${String(d.rule ?? '')}</code></td><td>${String(d.summary ?? '')}${typeof d.clientIp === 'string' ? html`<br><span class="muted">from <code>${d.clientIp}</code>${typeof evidence.requestId === 'string' ? html`, request <code>${evidence.requestId}</code>` : ''}</span>` : ''}</td><td>${
            grant
              ? html`<a href="/console/grants/${grant.id}"><code>${grant.id.slice(0, 8)}</code></a> ${grant.status}${
                  canRevoke
                    ? html`<form method="post" action="/console/grants/${grant.id}/revoke" class="inline">${csrf(input.csrfToken)}<input type="hidden" name="reason" value="${`alert ${String(d.rule ?? '')}`}"><button type="submit" class="danger">Revoke</button></form>`
                    : ''
                }`
              : '—'
          }</td></tr>`;
        })
  }</tbody></table>`;
}

export interface AuditFormValues {
  since?: string | undefined;
  until?: string | undefined;
  user?: string | undefined;
  grant?: string | undefined;
  resource?: string | undefined;
  decision?: string | undefined;
  method?: string | undefined;
  path?: string | undefined;
  ip?: string | undefined;
}

export function auditView(input: {
  form: AuditFormValues;
  problem: string | undefined;
  rows: readonly AuditEventRow[];
  histogram: SearchHistogram | undefined;
  nextHref: string | undefined;
  exportQuery: string;
  names: Names;
}): SafeHtml {
  const f = input.form;
  const field = (name: keyof AuditFormValues, label: string, hint = '') =>
    html`<label>${label} <input name="${name}" value="${f[name] ?? ''}"${hint ? html` placeholder="${hint}"` : ''}></label>`;
  const h = input.histogram;
  return html`<form method="get" action="/console/audit" class="filters" role="search" aria-label="Search the audit log">
${field('since', 'From', '2026-01-05T00:00:00Z')}${field('until', 'Until', '2026-01-06T00:00:00Z')}
${field('user', 'Person', 'U0123ABCD')}${field('grant', 'Grant id')}${field('resource', 'Resource')}
${field('decision', 'Decision', 'allowed, denied, out_of_scope…')}${field('method', 'Method', 'GET')}
${field('path', 'Path contains')}${field('ip', 'Client IP')}
<button type="submit">Search</button></form>
${input.problem ? html`<p class="problem" role="alert">${input.problem}</p>` : ''}
${
  h
    ? timeChart({
        title: `Matching rows per ${describeDuration(h.bucketMs / 1000)}`,
        series: [ALLOWED, DENIED, OTHER],
        buckets: h.buckets.map((b) => ({ start: b.start, values: [b.allowed, b.denied, b.other] })),
        from: h.from,
        to: h.to,
        bucketMs: h.bucketMs || bucketFor(h.to.getTime() - h.from.getTime()),
      })
    : ''
}
<p>Export these rows: <a href="/api/v1/audit/export${input.exportQuery}${input.exportQuery ? '&' : '?'}format=jsonl">JSON Lines</a> · <a href="/api/v1/audit/export${input.exportQuery}${input.exportQuery ? '&' : '?'}format=csv">CSV</a></p>
<table class="audit"><caption class="sr-only">Matching audit rows, newest first</caption><thead><tr><th scope="col">seq</th><th scope="col">when</th><th scope="col">kind</th><th scope="col">actor</th><th scope="col">resource</th><th scope="col">call</th><th scope="col">grant</th></tr></thead><tbody>${
    input.rows.length === 0
      ? html`<tr><td colspan="7">No rows match.</td></tr>`
      : input.rows.map((r) => {
          const d = r.data;
          const call =
            typeof d.method === 'string'
              ? html`<code>${d.method} ${String(d.path ?? '')}</code> → ${String(d.status ?? '')} <span class="muted">${String(d.decision ?? '')} · ${String(d.clientIp ?? '')}</span>`
              : html`<code class="data">${JSON.stringify(d).slice(0, 160)}</code>`;
          return html`<tr><td>${r.seq}</td><td>${when(r.at)}</td><td><code>${r.kind}</code></td><td>${who(r.actor, input.names)}</td><td>${r.resource ?? ''}</td><td>${call}</td><td>${r.grantId ? html`<a href="/console/grants/${r.grantId}"><code>${r.grantId.slice(0, 8)}</code></a>` : ''}</td></tr>`;
        })
  }</tbody></table>
${input.nextHref ? html`<p><a href="${input.nextHref}" rel="next">Older rows</a></p>` : ''}`;
}

export function chainView(input: { status: ChainStatus; csrfToken: string; names: Names }): SafeHtml {
  const { lastCheck, tail, rowsSinceCheck } = input.status;
  return html`<dl class="facts">
<dt>Last check</dt><dd>${lastCheck ? html`${when(new Date(lastCheck.at))} by ${who(lastCheck.by, input.names)}: ${lastCheck.ok ? html`<strong class="ok">intact</strong>` : html`<strong class="bad">broken</strong>`}` : 'never checked from the console'}</dd>
${lastCheck?.ok ? html`<dt>Rows checked</dt><dd>${lastCheck.rows}</dd><dt>Verified head</dt><dd>seq ${lastCheck.headSeq ?? ''} · <code>${lastCheck.headHash ?? ''}</code></dd>` : ''}
${lastCheck?.brokenAt ? html`<dt>First bad row</dt><dd>seq ${lastCheck.brokenAt.seq}: ${lastCheck.brokenAt.reason} — ${lastCheck.brokenAt.message}</dd>` : ''}
<dt>Newest row now</dt><dd>${tail ? html`seq ${tail.seq} · <code>${tail.hash}</code>` : 'the log is empty'}</dd>
<dt>Rows since the check</dt><dd>${rowsSinceCheck}</dd>
</dl>
<form method="post" action="/console/chain/verify" class="action">${csrf(input.csrfToken)}<button type="submit">Verify the whole chain now</button></form>`;
}

export function policyView(input: {
  resources: readonly { resource: ResourcePolicy; full: boolean }[];
}): SafeHtml {
  return html`${input.resources.map(({ resource, full }) => {
    const r = renderPolicyResource(resource, full);
    const id = `res-${resource.name}`;
    return html`<section aria-labelledby="${id}"><h2 id="${id}">${resource.name}</h2>
${resource.description ? html`<p>${resource.description}</p>` : ''}
<dl class="facts">
${full ? html`<dt>Upstream</dt><dd><code>${resource.upstream}</code></dd>` : ''}
<dt>Approvers</dt><dd>${[...resource.approvers.users, ...resource.approvers.groups].join(', ')} (${resource.approvalsRequired} needed)</dd>
<dt>Durations</dt><dd>${describeDuration(resource.minDurationSeconds)} to ${describeDuration(resource.maxDurationSeconds)}, up to ${resource.maxExtensions} extensions</dd>
<dt>Rate limit</dt><dd>${String(r.rateLimit)}</dd>
${full ? html`<dt>Channels</dt><dd>approvals ${resource.approvalChannel}, alerts ${resource.alertChannel}</dd>` : ''}
${full ? html`<dt>Anomaly rules</dt><dd>${Object.keys(resource.anomalies).sort().join(', ') || 'none'}</dd>` : ''}
</dl>
<table><caption>Scopes of ${resource.name}</caption><thead><tr><th scope="col">scope</th><th scope="col">rules</th><th scope="col">auto-approved up to</th><th scope="col">quota</th></tr></thead><tbody>${Object.values(
      resource.scopes,
    ).map(
      (s) =>
        html`<tr><th scope="row">${s.name}${s.readOnly ? html` <span class="muted">(read-only)</span>` : ''}</th><td><ul class="rules">${s.rules.map((rule) => html`<li><code>${rule.source}</code></li>`)}</ul></td><td>${s.autoApproveMaxSeconds === undefined ? '—' : describeDuration(s.autoApproveMaxSeconds)}</td><td>${s.quota ? `${s.quota.requests ?? '∞'} calls, ${s.quota.responseBytes ?? '∞'} bytes` : '—'}</td></tr>`,
    )}</tbody></table></section>`;
  })}`;
}
