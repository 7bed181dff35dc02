/**
 * Slack's rule for posting to one channel: about one message a second, short bursts allowed.
 * Kept as a generic cell rate (GCRA) per channel: `burst` posts at once, then one every
 * `1 / perSecond` s. The notifier uses it to wait its turn; the Slack stand-in, to refuse
 * (429) what Slack would refuse.
 */
export interface ChannelRate {
  perSecond: number;
  burst: number;
}

export interface ChannelPace {
  /** How long a post to `channel` at `nowMs` must wait for its turn (0: now); the turn is then taken. */
  take(channel: string, nowMs: number): number;
  /** How long a post to `channel` at `nowMs` would have to wait, taking the turn only when it is 0. */
  tryTake(channel: string, nowMs: number): number;
}

export function channelPace(rate: ChannelRate): ChannelPace {
  const interval = 1000 / rate.perSecond;
  const tolerance = (Math.max(1, rate.burst) - 1) * interval;
  // Per channel, the theoretical time its next post would be due at the steady rate.
  const due = new Map<string, number>();

  const prune = (nowMs: number): void => {
    if (due.size < 1000) return;
    for (const [channel, at] of due) if (at < nowMs) due.delete(channel);
  };

  const waitOf = (channel: string, nowMs: number): { wait: number; next: number } => {
    const theoretical = Math.max(due.get(channel) ?? nowMs, nowMs);
    const earliest = Math.max(nowMs, theoretical - tolerance);
    return { wait: earliest - nowMs, next: Math.max(theoretical, earliest) + interval };
  };

  return {
    take(channel, nowMs) {
      prune(nowMs);
      const { wait, next } = waitOf(channel, nowMs);
      due.set(channel, next);
      return wait;
    },
    tryTake(channel, nowMs) {
      prune(nowMs);
      const { wait, next } = waitOf(channel, nowMs);
      if (wait <= 0) due.set(channel, next);
      return wait;
    },
  };
}
