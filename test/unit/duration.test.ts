import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  describeDuration,
  formatDuration,
  MAX_DURATION_SECONDS,
  parseDuration,
  parseSize,
} from '../../src/policy/duration.ts';

describe('parseDuration', () => {
  it.each([
    ['30s', 30],
    ['15m', 900],
    ['2h', 7200],
    ['1d', 86_400],
    [' 2H ', 7200],
    ['90d', MAX_DURATION_SECONDS],
  ])('reads %s as %d seconds', (text, seconds) => {
    expect(parseDuration(text)).toBe(seconds);
  });

  it.each(['', '0m', '1', 'm', '1.5h', '-1h', '1h30m', '2w', '91d', '01h', '1 h', 'Infinityh', '1e3s'])(
    'refuses %j',
    (text) => {
      expect(parseDuration(text)).toBeUndefined();
    },
  );

  it('round-trips through formatDuration for every valid duration', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: MAX_DURATION_SECONDS }), (seconds) => {
        expect(parseDuration(formatDuration(seconds))).toBe(seconds);
      }),
    );
  });

  it('never throws and only returns positive bounded integers on arbitrary input', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        const seconds = parseDuration(text);
        if (seconds !== undefined) {
          expect(Number.isInteger(seconds)).toBe(true);
          expect(seconds).toBeGreaterThan(0);
          expect(seconds).toBeLessThanOrEqual(MAX_DURATION_SECONDS);
        }
      }),
    );
  });
});

describe('describeDuration', () => {
  it.each([
    [45, '45s'],
    [90 * 60, '1h 30m'],
    [86_400 + 3600, '1d 1h'],
    [0, '0s'],
  ])('%d → %s', (seconds, text) => {
    expect(describeDuration(seconds)).toBe(text);
  });
});

describe('parseSize', () => {
  it.each([
    ['10MB', 10 * 1024 * 1024],
    ['4KB', 4096],
    ['512', 512],
    [512, 512],
    ['1.5kb', 1536],
  ])('reads %j', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });
  it.each(['', 'MB', '-1', '10TB', '1e9'])('refuses %j', (text) => {
    expect(parseSize(text)).toBeUndefined();
  });
});
