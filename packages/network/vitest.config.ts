import { defineConfig } from 'vitest/config';

// Tests make real network namespaces, bridges, veths and iptables rules: one file at a time
// (they share the host's iptables tables), separate processes, generous timeouts.
export default defineConfig({
  test: {
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    include: ['test/**/*.test.ts'],
  },
});
