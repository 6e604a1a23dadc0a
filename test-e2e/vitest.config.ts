import { defineConfig } from 'vitest/config';

// Real daemons and clients: separate processes, generous timeouts (never timings asserted).
export default defineConfig({
  test: { pool: 'forks', testTimeout: 120_000, hookTimeout: 180_000, include: ['test/**/*.test.ts'] },
});
