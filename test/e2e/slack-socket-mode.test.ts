import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeSocketMode, startFakeSocketMode } from '../fakes/socket-mode.ts';
import { APP_TOKEN, blockText, type SlackHarness, startSlackHarness } from '../helpers/slack-harness.ts';

let socket: FakeSocketMode;
let h: SlackHarness;

beforeAll(async () => {
  socket = await startFakeSocketMode();
  h = await startSlackHarness({ socketUrl: socket.url });
  await socket.waitForConnection(1);
});
afterAll(async () => {
  await h?.slack.stop();
  await socket?.waitForAllClosed().catch(() => undefined);
  await h?.close().catch(() => undefined);
  await socket?.close();
});

describe('Socket Mode', () => {
  it('connects with the app-level token and acks every envelope with its envelope_id', async () => {
    const open = await h.api.waitFor('apps.connections.open');
    expect(open.token).toBe(APP_TOKEN);
    expect(h.slack.mode).toBe('socket');

    const help = socket.sendSlashCommand({ userId: 'UREQUESTER', text: 'help' });
    const helpAck = await socket.waitForAck(help);
    expect(helpAck.payload).toMatchObject({ response_type: 'ephemeral', text: 'How to use /access' });

    const cmd = socket.sendSlashCommand({
      userId: 'UREQUESTER',
      text: 'request billing-api write 1h socket SM-1',
      responseUrl: h.api.responseUrl('sm-1'),
    });
    await socket.waitForAck(cmd);
    expect(blockText(await h.answer('sm-1'))).toContain('waiting for 1 approval');
    const post = await h.api.waitFor('chat.postMessage', (c) => blockText(c).includes('SM-1'));
    expect(post.args.channel).toBe('CAPPROVALS');
  });

  it('after a dropped socket it reconnects, and a redelivered click is not handled twice', async () => {
    const [pending] = (await h.access.listForUser('UREQUESTER')).pending;
    expect(pending).toBeDefined();
    const requestId = pending!.id;
    const click = {
      userId: 'UAPPROVER1',
      actionId: 'approve_request',
      value: requestId,
      channelId: 'CAPPROVALS',
      responseUrl: h.api.responseUrl('sm-click'),
    };
    const first = socket.sendBlockAction(click);
    await socket.waitForAck(first);
    await h.api.waitFor('chat.update', (c) => blockText(c).includes('Approved by'));

    socket.dropConnections();
    await socket.waitForConnection(2, 15_000);
    expect(h.api.callsTo('apps.connections.open').length).toBeGreaterThanOrEqual(2);

    // Slack redelivers an envelope it did not see acked; the same click must not make a second grant.
    const redelivered = socket.send({
      type: 'interactive',
      payload: (await import('../../src/dev/slack-stand-in/signed-requests.ts')).blockActionsPayload(click),
      envelopeId: first,
      retryAttempt: 1,
      retryReason: 'timeout',
    });
    const acks = await socket.waitForAck(redelivered);
    expect(acks.envelope_id).toBe(first);
    expect(blockText(await h.answer('sm-click'))).toContain('already approved');
    await h.dispatcher.drain();
    const grants = (await h.access.listForUser('UREQUESTER')).active.filter((g) => g.requestId === requestId);
    expect(grants).toHaveLength(1);
    const dms = h.api
      .callsTo('chat.postMessage')
      .filter((c) => c.args.channel === 'UREQUESTER' && blockText(c).includes('is approved'));
    expect(dms).toHaveLength(1);
  });
});
