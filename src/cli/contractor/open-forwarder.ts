import { type Context, failed, session } from './context.ts';
import type { DeviceFile } from './device-file.ts';
import {
  createTokenSource,
  type Forwarder,
  type ForwarderOptions,
  startForwarder,
  type TokenAnswer,
} from './forwarder.ts';

/**
 * A local forwarder for `resource` on `port`, once a first token is in hand: refusals (no grant,
 * device revoked) are ours to explain before any tool runs, not the tool's to print as JSON.
 */
export async function openForwarder(
  ctx: Context,
  resource: string,
  port: number,
  onCall?: ForwarderOptions['onCall'],
): Promise<{ forwarder: Forwarder; device: DeviceFile } | number> {
  const open = await session(ctx);
  if (typeof open === 'number') return open;
  const tokens = createTokenSource(open.api, resource, ctx.clock);
  const first: TokenAnswer = await tokens.get();
  if (!first.ok) return failed(ctx, first);
  const forwarder = await startForwarder({
    resource,
    proxyUrl: open.device.proxyUrl,
    key: open.key,
    tokens,
    port,
    ...(onCall ? { onCall } : {}),
  });
  return { forwarder, device: open.device };
}
