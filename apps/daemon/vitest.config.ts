import { defineConfig } from 'vitest/config';

// Tests touch the real kernel (namespaces, mounts, cgroups): separate processes, generous timeouts.
export default defineConfig({
  test: { pool: 'forks', testTimeout: 60_000, hookTimeout: 60_000, include: ['test/**/*.test.ts'] },
});
