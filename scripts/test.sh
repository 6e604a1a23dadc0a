#!/usr/bin/env bash
# Runs every package's tests against the real kernel, then prints one closing line.
set -uo pipefail
cd "$(dirname "$0")/.."
rm -rf test-results && mkdir -p test-results
pnpm exec turbo run test --concurrency=2 --continue --output-logs=full
status=$?
node scripts/sweep-networks.mjs || true
node scripts/summarize-tests.mjs test-results || status=1
exit $status
