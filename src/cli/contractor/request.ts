import { describeDuration } from '../../policy/duration.ts';
import { parseAccessCommand } from '../../slack/access-command-parser.ts';
import type { ApiAnswer } from './api-client.ts';
import { type Context, EXIT, failed, print, session, Usage, waitFor } from './context.ts';

/** `jitgate request`: ask for access with /access's syntax, and wait for the decision. */

interface RequestJson {
  request: {
    id: string;
    resource: string;
    scope: string;
    status: 'pending' | 'approved' | 'denied' | 'expired' | 'cancelled';
    durationSeconds: number;
    grant?: { grantId: string; scope: string; expiresAt: string };
    decidedBy?: string;
    note?: string;
  };
  pollSeconds: number;
}

export async function request(ctx: Context, args: readonly string[]): Promise<number> {
  const parsed = parseAccessCommand(`request ${args.join(' ')}`);
  if (!parsed.ok) throw new Usage(parsed.problem.replace(/`/g, ''));
  if (parsed.command.kind !== 'request') throw new Usage('request <resource> [scope] <duration> <reason…>');
  const { resource, scope, durationSeconds, reason } = parsed.command;
  const open = await session(ctx);
  if (typeof open === 'number') return open;
  const created = await open.api.call<RequestJson>('POST', '/requests', {
    resource,
    ...(scope ? { scope } : {}),
    durationSeconds,
    reason,
  });
  if (!created.ok) return failed(ctx, created);
  let current = created.value;
  if (current.request.status === 'pending') {
    const decided = await waitFor(
      ctx,
      `Waiting for approval of ${resource} (${describeDuration(durationSeconds)}) in Slack…`,
      current.pollSeconds,
      async (): Promise<ApiAnswer<RequestJson> | undefined> => {
        const answer = await open.api.call<RequestJson>('GET', `/requests/${current.request.id}`);
        return !answer.ok || answer.value.request.status !== 'pending' ? answer : undefined;
      },
    );
    if (!decided.ok) return failed(ctx, decided);
    current = decided.value;
  }
  const r = current.request;
  const result = {
    ok: r.status === 'approved',
    requestId: r.id,
    status: r.status,
    resource: r.resource,
    scope: r.scope,
    grant: r.grant,
    decidedBy: r.decidedBy,
    note: r.note,
  };
  switch (r.status) {
    case 'approved': {
      const until = r.grant ? ` until ${new Date(r.grant.expiresAt).toLocaleString()}` : '';
      print(
        ctx,
        `Approved: ${r.resource} (${r.scope})${until}. Next: jitgate curl ${r.resource} / or jitgate connect ${r.resource}`,
        result,
      );
      return EXIT.ok;
    }
    case 'denied':
      print(ctx, `Denied${r.decidedBy ? ` by ${r.decidedBy}` : ''}${r.note ? `: ${r.note}` : '.'}`, result);
      return EXIT.denied;
    case 'expired':
      print(
        ctx,
        'Nobody decided in time: the request has timed out. Ask again, or ask an approver directly.',
        result,
      );
      return EXIT.timedOut;
    case 'cancelled':
    case 'pending':
      print(ctx, `The request was ${r.status}.`, result);
      return EXIT.refused;
  }
}
