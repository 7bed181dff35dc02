/** Time is a dependency: expiry, reminders, windows and rate limits ask a Clock, so tests move time. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** A clock tests can move; it starts at `start` and only moves when told. */
export function manualClock(start: Date = new Date('2026-01-05T10:00:00Z')): Clock & {
  set(at: Date): void;
  advance(ms: number): void;
} {
  let current = start.getTime();
  return {
    now: () => new Date(current),
    set: (at) => {
      current = at.getTime();
    },
    advance: (ms) => {
      current += ms;
    },
  };
}
