#!/usr/bin/env bash
# Runs every package's tests against the real kernel, then prints one closing line; then lint.
set -uo pipefail
cd "$(dirname "$0")/.."
rm -rf test-results && mkdir -p test-results
pnpm exec turbo run test --concurrency=2 --continue --output-logs=full
status=$?
node scripts/sweep-networks.mjs || true
node scripts/summarize-tests.mjs test-results || status=1
# Lint and formatting (biome check .): a second, cheap gate after the tests.
if ! pnpm exec biome check . --reporter=summary; then
  echo "lint: biome check . failed (npm run lint shows where)"
  status=1
fi
exit $status
