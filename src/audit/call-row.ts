import type { CallRecord } from '../shared/call-record.ts';
import { isUuid } from '../shared/ids.ts';
import { canonicalJson, canonicalRowPrefix } from './chain.ts';
import type { AuditEventInput } from './chain-append.ts';

/**
 * The audit row for one proxied call: `proxy.call` when forwarded, `proxy.denied` otherwise
 * (refused, or left by its client before it was forwarded). The appender writes calls with
 * callAuditRow, the same row as text; this form is for callers that append other rows with them.
 */
export function callAuditEvent(record: CallRecord): AuditEventInput {
  const grantId = rowGrantId(record);
  return {
    kind: record.decision === 'allowed' ? 'proxy.call' : 'proxy.denied',
    actor: record.userId ? { type: 'slack', userId: record.userId } : { type: 'system', component: 'proxy' },
    at: record.at,
    resource: record.resource,
    grantId,
    data: {
      method: record.method,
      path: record.path,
      status: record.status,
      bytes: record.responseBytes,
      latencyMs: record.latencyMs,
      clientIp: record.clientIp,
      requestId: record.requestId,
      decision: record.decision,
      ...(record.scope !== undefined ? { scope: record.scope } : {}),
      ...(record.userId !== undefined ? { userId: record.userId } : {}),
      ...(record.grantId !== undefined && grantId === null ? { rawGrantId: record.grantId } : {}),
      ...(record.capture ? { capture: record.capture } : {}),
      ...(record.aborted ? { aborted: record.aborted } : {}),
      ...(record.aggregated
        ? {
            aggregated: {
              count: record.aggregated.count,
              firstAt: record.aggregated.firstAt.toISOString(),
              lastAt: record.aggregated.lastAt.toISOString(),
            },
          }
        : {}),
    },
  };
}

/**
 * The grant id is a token's jti and normally a UUID; anything else (a forged token that still
 * parsed) stays in `data` so a bad value cannot make the whole batch fail to insert.
 * Lowercased as Postgres stores uuids, so the hash covers what is read back.
 */
function rowGrantId(record: CallRecord): string | null {
  return isUuid(record.grantId) ? record.grantId.toLowerCase() : null;
}

const str = JSON.stringify;
/** canonicalJson of a number: JSON's, and null for what JSON cannot hold. */
const num = (n: number) => (Number.isFinite(n) ? String(n) : 'null');

/**
 * callAuditEvent's row as its canonical text up to the seq (canonicalRowPrefix), written
 * straight from the record: no event object, no data object, no key sort per row. The keys
 * of `data` are written in canonicalJson's order (sorted by UTF-16 code unit): aborted,
 * aggregated, bytes, capture, clientIp, decision, latencyMs, method, path, rawGrantId,
 * requestId, scope, status, userId. A property test holds it to callAuditEvent's bytes.
 */
export function callAuditRow(record: CallRecord): string {
  const grantId = rowGrantId(record);
  let data = '{';
  if (record.aborted) data += `"aborted":${str(record.aborted)},`;
  const agg = record.aggregated;
  if (agg)
    data += `"aggregated":{"count":${num(agg.count)},"firstAt":"${agg.firstAt.toISOString()}","lastAt":"${agg.lastAt.toISOString()}"},`;
  data += `"bytes":${num(record.responseBytes)},`;
  if (record.capture) data += `"capture":${canonicalJson(record.capture)},`;
  data += `"clientIp":${str(record.clientIp)},"decision":${str(record.decision)},"latencyMs":${num(record.latencyMs)},"method":${str(record.method)},"path":${str(record.path)},`;
  if (record.grantId !== undefined && grantId === null) data += `"rawGrantId":${str(record.grantId)},`;
  data += `"requestId":${str(record.requestId)},`;
  if (record.scope !== undefined) data += `"scope":${str(record.scope)},`;
  data += `"status":${num(record.status)}`;
  if (record.userId !== undefined) data += `,"userId":${str(record.userId)}`;
  data += '}';
  return canonicalRowPrefix(
    record.at.toISOString(),
    record.decision === 'allowed' ? 'proxy.call' : 'proxy.denied',
    record.userId ? `slack:${record.userId}` : 'system:proxy',
    record.resource,
    null,
    grantId,
    data,
  );
}
