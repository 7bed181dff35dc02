import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { type WebSocket, WebSocketServer } from 'ws';
import {
  type BlockActionsOptions,
  blockActionsPayload,
  eventCallbackPayload,
  FAKE_APP_ID,
  type SlashCommandOptions,
  slashCommandPayload,
  type ViewSubmissionOptions,
  viewSubmissionPayload,
} from '../../src/dev/slack-stand-in/signed-requests.ts';
import { isRecord } from '../../src/shared/is-record.ts';

type SocketEnvelopeType = 'slash_commands' | 'interactive' | 'events_api';

/** What Slack pushes over the socket for each request; the client must ack with the same `envelope_id`. */
interface SocketEnvelope {
  envelope_id: string;
  type: SocketEnvelopeType;
  payload: Record<string, unknown>;
  accepts_response_payload: boolean;
  retry_attempt?: number;
  retry_reason?: string;
}

interface SocketAck {
  envelope_id: string;
  /** Response payload (e.g. `{ text }` for a command, `{ response_action }` for a view submission). */
  payload?: unknown;
  at: Date;
}

interface SendEnvelopeInput {
  type: SocketEnvelopeType;
  payload: Record<string, unknown>;
  /** Defaults to Slack's behaviour: true for commands and interactions, false for events. */
  acceptsResponsePayload?: boolean;
  envelopeId?: string;
  retryAttempt?: number;
  retryReason?: string;
}

export interface FakeSocketMode {
  /** `ws://127.0.0.1:PORT/`; give it to the API fake (`fakeApi.socketUrl`) so `apps.connections.open` returns it. */
  readonly url: string;
  /** Connections accepted since start (reconnects count again). */
  readonly totalConnections: number;
  readonly openConnections: number;
  readonly sent: readonly SocketEnvelope[];
  readonly acks: readonly SocketAck[];
  /** Client messages that were not acks (should stay empty for a well-behaved client). */
  readonly otherMessages: readonly unknown[];
  /** Sends an envelope to the newest open connection and returns its `envelope_id`. */
  send(input: SendEnvelopeInput): string;
  sendSlashCommand(opts: SlashCommandOptions): string;
  sendBlockAction(opts: BlockActionsOptions): string;
  sendViewSubmission(opts: ViewSubmissionOptions): string;
  sendEvent(event: { type: string } & Record<string, unknown>): string;
  /** Asks clients to reconnect the polite way, as Slack does when it recycles a host. */
  sendDisconnect(reason?: 'refresh_requested' | 'warning' | 'link_disabled'): void;
  waitForAck(envelopeId: string, timeoutMs?: number): Promise<SocketAck>;
  /** Resolves once `totalConnections >= count` and a connection is open (i.e. the client got `hello`). */
  waitForConnection(count?: number, timeoutMs?: number): Promise<void>;
  /**
   * Resolves once no connection is open. Bolt's `app.stop()` in Socket Mode returns before the close
   * handshake finishes, so await this between `app.stop()` and `close()` to avoid a spurious socket error.
   */
  waitForAllClosed(timeoutMs?: number): Promise<void>;
  /** Kills every socket without a close frame, like a network drop, to exercise reconnects. */
  dropConnections(): void;
  close(): Promise<void>;
}

/** Re-checks waiting probes whenever socket state changes, so tests wait on events rather than sleeps. */
class Signal {
  private listeners = new Set<() => void>();
  notify(): void {
    for (const listener of [...this.listeners]) listener();
  }
  async waitForTrue(condition: () => boolean, timeoutMs: number, describe: () => string): Promise<void> {
    await this.waitFor(() => (condition() ? true : undefined), timeoutMs, describe);
  }
  /** Resolves with the first defined value `probe` returns. */
  waitFor<T>(probe: () => T | undefined, timeoutMs: number, describe: () => string): Promise<T> {
    const now = probe();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const listener = (): void => {
        const value = probe();
        if (value === undefined) return;
        clearTimeout(timer);
        this.listeners.delete(listener);
        resolve(value);
      };
      const timer = setTimeout(() => {
        this.listeners.delete(listener);
        reject(new Error(describe()));
      }, timeoutMs);
      this.listeners.add(listener);
    });
  }
}

export async function startFakeSocketMode(options: { appId?: string } = {}): Promise<FakeSocketMode> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', reject);
  });
  const { port } = wss.address() as AddressInfo;
  const url = `ws://127.0.0.1:${port}/`;

  const open: WebSocket[] = [];
  const sent: SocketEnvelope[] = [];
  const acks: SocketAck[] = [];
  const otherMessages: unknown[] = [];
  const signal = new Signal();
  let totalConnections = 0;

  wss.on('connection', (socket) => {
    totalConnections += 1;
    open.push(socket);
    socket.send(
      JSON.stringify({
        type: 'hello',
        num_connections: open.length,
        debug_info: {
          host: 'applink-fake-1',
          build_number: 1,
          approximate_connection_time: 18060,
        },
        connection_info: { app_id: options.appId ?? FAKE_APP_ID },
      }),
    );
    socket.on('message', (data, isBinary) => {
      if (isBinary) return;
      let message: unknown;
      try {
        message = JSON.parse(data.toString()) as unknown;
      } catch {
        otherMessages.push(data.toString());
        return;
      }
      if (isRecord(message) && typeof message.envelope_id === 'string') {
        acks.push({ envelope_id: message.envelope_id, payload: message.payload, at: new Date() });
      } else {
        otherMessages.push(message);
      }
      signal.notify();
    });
    socket.on('close', () => {
      const index = open.indexOf(socket);
      if (index >= 0) open.splice(index, 1);
      signal.notify();
    });
    signal.notify();
  });

  const send = (input: SendEnvelopeInput): string => {
    const socket = open.at(-1);
    if (!socket) {
      throw new Error('FakeSocketMode: no open connection to send to (await waitForConnection() first)');
    }
    const envelope: SocketEnvelope = {
      envelope_id: input.envelopeId ?? randomUUID(),
      type: input.type,
      payload: input.payload,
      accepts_response_payload: input.acceptsResponsePayload ?? input.type !== 'events_api',
    };
    if (input.retryAttempt !== undefined) envelope.retry_attempt = input.retryAttempt;
    if (input.retryReason !== undefined) envelope.retry_reason = input.retryReason;
    sent.push(envelope);
    socket.send(JSON.stringify(envelope));
    return envelope.envelope_id;
  };

  return {
    url,
    get totalConnections() {
      return totalConnections;
    },
    get openConnections() {
      return open.length;
    },
    sent,
    acks,
    otherMessages,
    send,
    sendSlashCommand: (opts) => send({ type: 'slash_commands', payload: slashCommandPayload(opts) }),
    sendBlockAction: (opts) => send({ type: 'interactive', payload: blockActionsPayload(opts) }),
    sendViewSubmission: (opts) => send({ type: 'interactive', payload: viewSubmissionPayload(opts) }),
    sendEvent: (event) =>
      send({ type: 'events_api', payload: eventCallbackPayload(event), retryAttempt: 0, retryReason: '' }),
    sendDisconnect(reason = 'refresh_requested') {
      for (const socket of open) {
        socket.send(JSON.stringify({ type: 'disconnect', reason, debug_info: { host: 'applink-fake-1' } }));
      }
    },
    waitForAck(envelopeId, timeoutMs = 5000) {
      return signal.waitFor(
        () => acks.find((a) => a.envelope_id === envelopeId),
        timeoutMs,
        () =>
          `FakeSocketMode: no ack for envelope ${envelopeId} within ${timeoutMs} ms; acked: ${
            acks.map((a) => a.envelope_id).join(', ') || '(none)'
          }`,
      );
    },
    waitForConnection(count = 1, timeoutMs = 5000) {
      return signal.waitForTrue(
        () => totalConnections >= count && open.length > 0,
        timeoutMs,
        () =>
          `FakeSocketMode: expected connection #${count} within ${timeoutMs} ms; total ${totalConnections}, open ${open.length}`,
      );
    },
    waitForAllClosed(timeoutMs = 5000) {
      return signal.waitForTrue(
        () => open.length === 0,
        timeoutMs,
        () => `FakeSocketMode: ${open.length} connection(s) still open after ${timeoutMs} ms`,
      );
    },
    dropConnections() {
      for (const socket of [...open]) socket.terminate();
    },
    close() {
      for (const socket of wss.clients) socket.terminate();
      return new Promise<void>((resolve, reject) =>
        wss.close((error) => (error ? reject(error) : resolve())),
      );
    },
  };
}
