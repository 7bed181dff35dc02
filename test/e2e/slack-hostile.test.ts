import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { count } from 'drizzle-orm';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accessRequests, auditEvents, grants } from '../../src/db/schema/index.ts';
import { DEMO_SIGNING_SECRET, type Stack, startStack } from '../../src/demo/stack.ts';
import {
  interactiveBody,
  postSigned,
  signSlackRequest,
  slashCommandBody,
} from '../../src/dev/slack-stand-in/signed-requests.ts';
import { MAX_SLACK_BODY_BYTES } from '../../src/ops/admin-server.ts';
import { TEST_DATABASE_URL } from '../helpers/db.ts';

const schemaName = `t_hostile_${randomBytes(5).toString('hex')}`;
let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ databaseUrl: TEST_DATABASE_URL, schemaName });
});

afterAll(async () => {
  await stack?.close();
  const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`drop schema if exists "${schemaName}" cascade`);
  await admin.end({ timeout: 5 });
});

async function rows() {
  const db = stack.running.core.database.db;
  const [r] = await db.select({ n: count() }).from(accessRequests);
  const [g] = await db.select({ n: count() }).from(grants);
  const [a] = await db.select({ n: count() }).from(auditEvents);
  return { requests: r?.n, grants: g?.n, audit: a?.n };
}

const requestBody = (text = 'request billing-api write 1h hostile') =>
  slashCommandBody({ userId: 'UCONTRACTOR', text, responseUrl: stack.slackApi.responseUrl('hostile') });

/** Sends a body with chunked encoding (no Content-Length), which Node's fetch cannot do. */
function postChunked(body: string): Promise<number> {
  const url = new URL(`${stack.slackUrl}/slack/events`);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        headers: { ...signSlackRequest(DEMO_SIGNING_SECRET, body) },
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    req.write(body.slice(0, 10));
    req.end(body.slice(10));
  });
}

describe('hostile Slack requests against the running service', () => {
  it('refuses stale, forged and unsigned requests and writes nothing', async () => {
    const before = await rows();
    const body = requestBody();
    const stale = await postSigned(stack.slackUrl, '/slack/events', body, DEMO_SIGNING_SECRET, {
      timestamp: Math.floor(Date.now() / 1000) - 6 * 60,
    });
    expect(stale.status).toBe(401);
    const forged = await postSigned(stack.slackUrl, '/slack/events', body, 'not-the-secret');
    expect(forged.status).toBe(401);
    const unsigned = await fetch(`${stack.slackUrl}/slack/events`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(unsigned.status).toBe(401);
    expect(await rows()).toEqual(before);
  });

  it('refuses oversized bodies before reading them, and bodies without a length', async () => {
    const before = await rows();
    const huge = requestBody(`request billing-api write 1h ${'x'.repeat(MAX_SLACK_BODY_BYTES)}`);
    const response = await postSigned(stack.slackUrl, '/slack/events', huge, DEMO_SIGNING_SECRET);
    expect(response.status).toBe(413);
    expect(await postChunked(requestBody())).toBe(411);
    expect(await rows()).toEqual(before);
  });

  it('answers malformed but correctly signed payloads without changing anything or falling over', async () => {
    const before = await rows();
    for (const body of [
      'payload=%7Bnot%20json',
      interactiveBody({
        type: 'block_actions',
        user: { id: 'UCONTRACTOR' },
        actions: [{ action_id: 'approve_request', value: 'not-a-uuid' }],
      }),
      interactiveBody({
        type: 'view_submission',
        user: { id: 'UCONTRACTOR' },
        view: { callback_id: 'request_access', state: { values: {} } },
      }),
      'command=%2Faccess&text=request&user_id=',
      '',
    ]) {
      const response = await postSigned(stack.slackUrl, '/slack/events', body, DEMO_SIGNING_SECRET);
      expect(response.status, body.slice(0, 40)).toBeLessThan(500);
    }
    const tooLong = await stack.command('UCONTRACTOR', `request billing-api write 1h ${'y'.repeat(2100)}`);
    expect(tooLong.status).toBe(200);
    const answer = await stack.slackApi.waitFor('response_url', (c) =>
      JSON.stringify(c.args).includes('2000'),
    );
    expect(JSON.stringify(answer.args)).toContain('under 2000');
    expect(await rows()).toEqual(before);
    expect((await fetch(`${stack.slackUrl}/healthz`)).status).toBe(200);
  });
});
