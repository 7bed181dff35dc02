import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  GRANT_MACHINE,
  grantedSeconds,
  isGrantLive,
  type Machine,
  REQUEST_MACHINE,
  type Transition,
} from '../../src/access/transitions.ts';
import { GRANT_STATUSES, REQUEST_STATUSES } from '../../src/db/schema/index.ts';

/** Whether some transition of `machine` takes a row from `from` to `to`. */
function canMove<S extends string>(machine: Machine<S, string>, from: S, to: S): boolean {
  return Object.values<Transition<S>>(machine.transitions).some((t) => t.to === to && t.from.includes(from));
}

/** The states a row can move to from `state` (itself included where a transition keeps it). */
function exitsOf<S extends string>(machine: Machine<S, string>, state: S): S[] {
  const exits = Object.values<Transition<S>>(machine.transitions)
    .filter((t) => t.from.includes(state))
    .map((t) => t.to);
  return [...new Set(exits)];
}

/** The states a machine can reach from its initial state. */
function reachable<S extends string>(machine: Machine<S, string>): Set<S> {
  const seen = new Set<S>([machine.initial]);
  const todo: S[] = [machine.initial];
  for (let state = todo.pop(); state !== undefined; state = todo.pop()) {
    for (const next of exitsOf(machine, state)) {
      if (!seen.has(next)) {
        seen.add(next);
        todo.push(next);
      }
    }
  }
  return seen;
}

/** States with no way out but themselves. */
const terminal = <S extends string>(machine: Machine<S, string>, states: readonly S[]): S[] =>
  states.filter((s) => exitsOf(machine, s).every((to) => to === s));

describe('state machine', () => {
  it('a request leaves pending once and never comes back', () => {
    for (const to of ['approved', 'denied', 'expired', 'cancelled'] as const)
      expect(canMove(REQUEST_MACHINE, 'pending', to)).toBe(true);
    for (const from of REQUEST_STATUSES.filter((s) => s !== 'pending')) {
      for (const to of REQUEST_STATUSES) expect(canMove(REQUEST_MACHINE, from, to)).toBe(false);
    }
    expect(canMove(REQUEST_MACHINE, 'pending', 'pending')).toBe(false);
  });

  it('a grant ends once: active → expired | revoked; an extension keeps it active', () => {
    expect(canMove(GRANT_MACHINE, 'active', 'expired')).toBe(true);
    expect(canMove(GRANT_MACHINE, 'active', 'revoked')).toBe(true);
    expect(GRANT_MACHINE.transitions.extend).toEqual({ from: ['active'], to: 'active' });
    for (const to of GRANT_STATUSES) {
      expect(canMove(GRANT_MACHINE, 'expired', to)).toBe(false);
      expect(canMove(GRANT_MACHINE, 'revoked', to)).toBe(false);
    }
  });

  it('every status is reachable from where a row starts, and every state but that one is terminal', () => {
    expect([...reachable(REQUEST_MACHINE)].sort()).toEqual([...REQUEST_STATUSES].sort());
    expect([...reachable(GRANT_MACHINE)].sort()).toEqual([...GRANT_STATUSES].sort());
    expect(terminal(REQUEST_MACHINE, REQUEST_STATUSES).sort()).toEqual(
      REQUEST_STATUSES.filter((s) => s !== REQUEST_MACHINE.initial).sort(),
    );
    expect(terminal(GRANT_MACHINE, GRANT_STATUSES).sort()).toEqual(
      GRANT_STATUSES.filter((s) => s !== GRANT_MACHINE.initial).sort(),
    );
  });

  it('terminal states have no exits, and no transition starts in one', () => {
    for (const machine of [REQUEST_MACHINE, GRANT_MACHINE] as Machine<string, string>[]) {
      const statuses =
        machine === (REQUEST_MACHINE as Machine<string, string>) ? REQUEST_STATUSES : GRANT_STATUSES;
      const ends = terminal(machine, statuses);
      expect(ends.length).toBeGreaterThan(0);
      for (const transition of Object.values(machine.transitions)) {
        for (const from of transition.from) expect(ends).not.toContain(from);
        expect(statuses).toContain(transition.to);
      }
    }
  });

  it('grants the shortest of what was asked and what approvers allowed', () => {
    expect(grantedSeconds(7200, [])).toBe(7200);
    expect(grantedSeconds(7200, [null, 3600, 5400])).toBe(3600);
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1e6 }),
        fc.array(fc.option(fc.integer({ min: 1, max: 1e6 }))),
        (asked, limits) => {
          const granted = grantedSeconds(asked, limits);
          expect(granted).toBeLessThanOrEqual(asked);
          for (const limit of limits) if (limit !== null) expect(granted).toBeLessThanOrEqual(limit);
          expect([asked, ...limits]).toContain(granted);
        },
      ),
    );
  });

  it('a grant is live only while active and before its expiry', () => {
    const expiresAt = new Date('2026-01-01T10:00:00Z');
    expect(isGrantLive({ status: 'active', expiresAt }, new Date('2026-01-01T09:59:59.999Z'))).toBe(true);
    expect(isGrantLive({ status: 'active', expiresAt }, expiresAt)).toBe(false);
    expect(isGrantLive({ status: 'revoked', expiresAt }, new Date('2026-01-01T09:00:00Z'))).toBe(false);
    expect(isGrantLive({ status: 'expired', expiresAt }, new Date('2026-01-01T09:00:00Z'))).toBe(false);
  });
});
