import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  canMoveGrant,
  canMoveRequest,
  GRANT_TRANSITIONS,
  grantedSeconds,
  isGrantLive,
  REQUEST_TRANSITIONS,
} from '../../src/access/transitions.ts';
import { GRANT_STATUSES, REQUEST_STATUSES } from '../../src/db/schema/index.ts';

describe('state machine', () => {
  it('a request leaves pending once and never comes back', () => {
    for (const to of ['approved', 'denied', 'expired', 'cancelled'] as const)
      expect(canMoveRequest('pending', to)).toBe(true);
    for (const from of REQUEST_STATUSES.filter((s) => s !== 'pending')) {
      for (const to of REQUEST_STATUSES) expect(canMoveRequest(from, to)).toBe(false);
    }
    expect(Object.keys(REQUEST_TRANSITIONS).sort()).toEqual([...REQUEST_STATUSES].sort());
  });

  it('a grant ends once: active → expired | revoked', () => {
    expect(canMoveGrant('active', 'expired')).toBe(true);
    expect(canMoveGrant('active', 'revoked')).toBe(true);
    expect(canMoveGrant('active', 'active')).toBe(false);
    for (const to of GRANT_STATUSES) {
      expect(canMoveGrant('expired', to)).toBe(false);
      expect(canMoveGrant('revoked', to)).toBe(false);
    }
    expect(Object.keys(GRANT_TRANSITIONS).sort()).toEqual([...GRANT_STATUSES].sort());
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
