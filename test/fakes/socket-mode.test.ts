import { App, type Logger, LogLevel, SocketModeReceiver } from '@slack/bolt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeSlackApi, startFakeSlackApi } from '../../src/dev/slack-stand-in/web-api.ts';
import { type FakeSocketMode, startFakeSocketMode } from './socket-mode.ts';

const APP_TOKEN = 'xapp-1-A1-123-test';

/** Keeps the errors a deliberate connection drop produces out of the test output, but available to assert on. */
function recordingLogger(): Logger & { errors: string[] } {
  const errors: string[] = [];
  let level = LogLevel.ERROR;
  return {
    errors,
    debug: () => {},
    info: () => {},
    warn: () => {},
    error: (...messages: unknown[]) => {
      errors.push(messages.map(String).join(' '));
    },
    setLevel: (next) => {
      level = next;
    },
    getLevel: () => level,
    setName: () => {},
  };
}

describe('fake Socket Mode endpoint with a real Bolt app', () => {
  let api: FakeSlackApi;
  let socket: FakeSocketMode;
  let app: App;

  beforeAll(async () => {
    socket = await startFakeSocketMode();
    api = await startFakeSlackApi({ socketUrl: socket.url });
    app = new App({
      token: 'xoxb-test',
      appToken: APP_TOKEN,
      socketMode: true,
      clientOptions: { slackApiUrl: api.url },
      logLevel: LogLevel.ERROR,
    });
    app.command('/access', async ({ ack, command, client }) => {
      await ack(`got ${command.text}`);
      await client.chat.postMessage({ channel: command.user_id, text: 'request received' });
    });
    app.action('approve', async ({ ack }) => {
      await ack();
    });
    app.view('request_access', async ({ ack }) => {
      await ack({ response_action: 'clear' });
    });
    await app.start();
  });

  afterAll(async () => {
    await app.stop();
    await socket.waitForAllClosed();
    await socket.close();
    await api.close();
  });

  it('gets its socket URL from apps.connections.open with the app-level token', async () => {
    const open = await api.waitFor('apps.connections.open');
    expect(open.token).toBe(APP_TOKEN);
    expect(socket.totalConnections).toBe(1);
  });

  it('acks a slash command envelope with the same envelope_id and the response payload', async () => {
    const envelopeId = socket.sendSlashCommand({ text: 'request billing 2h', userId: 'U1' });
    const ack = await socket.waitForAck(envelopeId);
    expect(ack.payload).toEqual({ text: 'got request billing 2h' });
    const post = await api.waitFor('chat.postMessage');
    expect(post).toMatchObject({ token: 'xoxb-test', args: { channel: 'U1', text: 'request received' } });
  });

  it('acks interactive envelopes (block_actions and view_submission)', async () => {
    const click = socket.sendBlockAction({ userId: 'U2', actionId: 'approve', value: 'req_1' });
    const submit = socket.sendViewSubmission({ userId: 'U1', callbackId: 'request_access', values: {} });
    await expect(socket.waitForAck(click)).resolves.toMatchObject({ envelope_id: click });
    expect((await socket.waitForAck(submit)).payload).toEqual({ response_action: 'clear' });
    expect(socket.otherMessages).toEqual([]);
  });

  it('reports a missing ack clearly', async () => {
    const id = socket.send({
      type: 'events_api',
      payload: { type: 'event_callback', event: { type: 'nobody_listens' } },
    });
    // Bolt acks events before listeners run, so wait for this ack and then ask for one that never comes.
    await socket.waitForAck(id);
    await expect(socket.waitForAck('no-such-envelope', 50)).rejects.toThrow(
      /no ack for envelope no-such-envelope/,
    );
  });
});

describe('Socket Mode reconnects after the connection drops', () => {
  let api: FakeSlackApi;
  let socket: FakeSocketMode;
  let app: App;
  const logger = recordingLogger();

  beforeAll(async () => {
    socket = await startFakeSocketMode();
    api = await startFakeSlackApi({ socketUrl: socket.url });
    // The default receiver waits clientPingTimeout (5 s) before reconnecting; a custom receiver shortens it.
    // It builds its own SocketModeClient, so the fake API URL must be passed again via installerOptions.
    const receiver = new SocketModeReceiver({
      appToken: APP_TOKEN,
      clientPingTimeout: 300,
      installerOptions: { clientOptions: { slackApiUrl: api.url } },
      logger,
    });
    app = new App({ token: 'xoxb-test', receiver, clientOptions: { slackApiUrl: api.url }, logger });
    app.command('/access', async ({ ack }) => {
      await ack('ok');
    });
    await app.start();
  });

  afterAll(async () => {
    await app.stop();
    await socket.waitForAllClosed();
    await socket.close();
    await api.close();
  });

  it('opens a fresh connection via apps.connections.open and keeps acking', async () => {
    await socket.waitForConnection(1);
    const before = socket.sendSlashCommand({ text: 'one', userId: 'U1' });
    await socket.waitForAck(before);

    socket.dropConnections();
    await socket.waitForConnection(2);

    expect(api.callsTo('apps.connections.open')).toHaveLength(2);
    // The client sees the drop as a socket error, which is what makes it reconnect.
    expect(logger.errors.join('\n')).toMatch(/WebSocket error/);
    const after = socket.sendSlashCommand({ text: 'two', userId: 'U1' });
    expect((await socket.waitForAck(after)).payload).toEqual({ text: 'ok' });
  });

  it('reconnects when Slack asks it to with a disconnect message', async () => {
    const connections = socket.totalConnections;
    socket.sendDisconnect('refresh_requested');
    await socket.waitForConnection(connections + 1);
    const id = socket.sendSlashCommand({ text: 'three', userId: 'U1' });
    await expect(socket.waitForAck(id)).resolves.toMatchObject({ envelope_id: id });
  });
});
