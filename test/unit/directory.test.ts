import { describe, expect, it } from 'vitest';
import { cachedDirectory } from '../../src/access/directory.ts';
import { manualClock } from '../../src/shared/clock.ts';

describe('cached directory', () => {
  it('asks Slack once per group per TTL and answers membership', async () => {
    const clock = manualClock();
    const asked: string[] = [];
    const directory = cachedDirectory(
      async (group) => {
        asked.push(group);
        return group === 'SA' ? ['U1', 'U2'] : ['U3'];
      },
      clock,
      60_000,
    );
    expect([...(await directory.groupsOf('U1', ['SA', 'SB']))]).toEqual(['SA']);
    expect([...(await directory.groupsOf('U3', ['SA', 'SB']))]).toEqual(['SB']);
    expect(asked.sort()).toEqual(['SA', 'SB']);
    clock.advance(60_001);
    await directory.groupsOf('U1', ['SA']);
    expect(asked.filter((g) => g === 'SA')).toHaveLength(2);
    directory.invalidate('SA');
    await directory.groupsOf('U1', ['SA']);
    expect(asked.filter((g) => g === 'SA')).toHaveLength(3);
  });

  it('a failed lookup proves nothing and is not cached', async () => {
    let fail = true;
    const directory = cachedDirectory(async () => {
      if (fail) throw new Error('slack down');
      return ['U1'];
    }, manualClock());
    expect((await directory.groupsOf('U1', ['SA'])).size).toBe(0);
    fail = false;
    expect([...(await directory.groupsOf('U1', ['SA']))]).toEqual(['SA']);
  });
});
