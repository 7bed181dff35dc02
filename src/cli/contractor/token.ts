import { type Context, EXIT, failed, parse, print, resourceArg, session, Usage } from './context.ts';
import { createTokenSource } from './forwarder.ts';

/** `jitgate token`: print a grant token bound to this device's key. */

export async function token(ctx: Context, args: readonly string[]): Promise<number> {
  const { positionals } = parse(args, {});
  const resource = resourceArg(positionals, 'token <resource>');
  if (positionals.length > 1) throw new Usage('token takes one resource');
  const open = await session(ctx);
  if (typeof open === 'number') return open;
  const answer = await createTokenSource(open.api, resource, ctx.clock).get();
  if (!answer.ok) return failed(ctx, answer);
  const { value } = answer;
  print(ctx, value.token, {
    ok: true,
    token: value.token,
    tokenType: 'DPoP',
    grantId: value.grantId,
    scope: value.scope,
    expiresAt: value.expiresAt.toISOString(),
    proxyUrl: open.device.proxyUrl,
  });
  return EXIT.ok;
}
