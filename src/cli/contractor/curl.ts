import { spawn } from 'node:child_process';
import { type Context, EXIT, resourceArg, Usage } from './context.ts';
import { openForwarder } from './open-forwarder.ts';

/** `jitgate curl`: curl through a one-off local forwarder that adds the token and a fresh proof. */

export async function curl(ctx: Context, args: readonly string[]): Promise<number> {
  // Everything after <resource> <path> is curl's, untouched: no parsing of its flags here.
  const [resource, path, ...curlArgs] = args;
  if (resource === undefined || path === undefined || !path.startsWith('/')) {
    throw new Usage('curl <resource> <path starting with /> [curl args…]');
  }
  resourceArg([resource], 'curl <resource> <path> [curl args…]');
  // curl talks to a one-off local forwarder, which makes the proof for the method curl really
  // uses; the token never appears in curl's arguments (visible to every local user in `ps`).
  const opened = await openForwarder(ctx, resource, 0);
  if (typeof opened === 'number') return opened;
  const { forwarder } = opened;
  try {
    const child = spawn(
      'curl',
      [...curlArgs, '--noproxy', '*', `http://127.0.0.1:${forwarder.port}${path}`],
      {
        stdio: 'inherit',
      },
    );
    return await new Promise<number>((resolve) => {
      child.on('error', (error) => {
        ctx.io.stderr.write(`jitgate: could not run curl: ${error.message}\n`);
        resolve(EXIT.refused);
      });
      child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 + 2 : EXIT.refused)));
    });
  } finally {
    await forwarder.close();
  }
}
