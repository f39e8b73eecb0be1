import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    // Some files run a short campaign in beforeAll: under a full parallel run that can take
    // longer than the default 10 s on 2 cores.
    hookTimeout: 60_000,
  },
});
