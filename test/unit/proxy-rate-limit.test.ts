import { describe, expect, it } from 'vitest';
import { createRateLimiter } from '../../src/proxy/rate-limit.ts';
import { manualClock } from '../../src/shared/clock.ts';

describe('rate limiter', () => {
  const limit = { requests: 3, perSeconds: 60 };

  it('allows a burst up to the limit, then says when to retry', () => {
    const clock = manualClock();
    const limiter = createRateLimiter({ clock });
    for (let i = 0; i < 3; i++) expect(limiter.take('g1', limit)).toEqual({ ok: true });
    expect(limiter.take('g1', limit)).toEqual({ ok: false, retryAfterSeconds: 20 });
    clock.advance(19_999);
    expect(limiter.take('g1', limit).ok).toBe(false);
    clock.advance(1);
    expect(limiter.take('g1', limit)).toEqual({ ok: true });
  });

  it('keeps grants apart', () => {
    const limiter = createRateLimiter({ clock: manualClock() });
    for (let i = 0; i < 3; i++) limiter.take('g1', limit);
    expect(limiter.take('g1', limit).ok).toBe(false);
    expect(limiter.take('g2', limit).ok).toBe(true);
  });

  it('never refills above capacity, and ignores a clock that goes backwards', () => {
    const clock = manualClock();
    const limiter = createRateLimiter({ clock });
    limiter.take('g', limit);
    clock.advance(3_600_000);
    for (let i = 0; i < 3; i++) expect(limiter.take('g', limit).ok).toBe(true);
    expect(limiter.take('g', limit).ok).toBe(false);
    clock.advance(-60_000);
    expect(limiter.take('g', limit).ok).toBe(false);
  });

  it('retry-after is at least one second', () => {
    const limiter = createRateLimiter({ clock: manualClock() });
    const fast = { requests: 1000, perSeconds: 1 };
    for (let i = 0; i < 1000; i++) limiter.take('g', fast);
    expect(limiter.take('g', fast)).toEqual({ ok: false, retryAfterSeconds: 1 });
  });

  it('stays within its key bound, dropping idle buckets first', () => {
    const clock = manualClock();
    const limiter = createRateLimiter({ clock, maxKeys: 100 });
    for (let i = 0; i < 100; i++) limiter.take(`idle-${i}`, limit);
    clock.advance(60_000);
    limiter.take('busy', limit);
    expect(limiter.size).toBeLessThanOrEqual(100);
    for (let i = 0; i < 1000; i++) limiter.take(`k-${i}`, limit);
    expect(limiter.size).toBeLessThanOrEqual(100);
  });

  it('forget drops a bucket', () => {
    const limiter = createRateLimiter({ clock: manualClock() });
    for (let i = 0; i < 3; i++) limiter.take('g', limit);
    limiter.forget('g');
    expect(limiter.take('g', limit).ok).toBe(true);
  });
});
