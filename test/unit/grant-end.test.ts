import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { grantEndAt } from '../../src/access/transitions.ts';

describe('grantEndAt', () => {
  it('is on a whole second, never after what was approved, and less than a second before it', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 4_102_444_800_000 }),
        fc.integer({ min: 1, max: 366 * 86_400 }),
        (fromMs, seconds) => {
          const end = grantEndAt(new Date(fromMs), seconds).getTime();
          const exact = fromMs + seconds * 1000;
          expect(end % 1000).toBe(0);
          // A token's exp (whole seconds) says the same instant.
          expect(Math.floor(end / 1000) * 1000).toBe(end);
          expect(end).toBeLessThanOrEqual(exact);
          expect(exact - end).toBeLessThan(1000);
        },
      ),
    );
  });

  it('keeps an extension of a whole-second end on the second', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 4_102_444_800 }),
        fc.integer({ min: 1, max: 86_400 }),
        (s, add) => {
          expect(grantEndAt(new Date(s * 1000), add).getTime()).toBe((s + add) * 1000);
        },
      ),
    );
  });
});
