import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Every integration file works in a schema and queue of its own, so files may run side by side.
    pool: 'forks',
    reporters: ['default'],
  },
});
