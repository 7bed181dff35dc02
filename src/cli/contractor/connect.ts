import { type Context, EXIT, parse, print, resourceArg, Usage } from './context.ts';
import { openForwarder } from './open-forwarder.ts';

/** `jitgate connect`: forward a local port to the resource, so any tool works unchanged. */

export async function connect(ctx: Context, args: readonly string[]): Promise<number> {
  const { values, positionals } = parse(args, { port: { type: 'string' } });
  const resource = resourceArg(positionals, 'connect <resource> [--port 9000]');
  if (positionals.length > 1) throw new Usage('connect takes one resource');
  const port = Number(values.port ?? '9000');
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Usage('--port takes a port number');
  const opened = await openForwarder(
    ctx,
    resource,
    port,
    ctx.json ? undefined : (c) => ctx.io.stderr.write(`${c.method} ${c.path} → ${c.status} (${c.ms} ms)\n`),
  );
  if (typeof opened === 'number') return opened;
  const { forwarder, device } = opened;
  const local = `http://127.0.0.1:${forwarder.port}`;
  print(ctx, `Forwarding ${local} → ${device.proxyUrl}/${resource} (Ctrl-C to stop)`, {
    ok: true,
    url: local,
    port: forwarder.port,
    resource,
    proxyUrl: device.proxyUrl,
  });
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await forwarder.close();
  return EXIT.ok;
}
