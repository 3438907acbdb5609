#!/usr/bin/env bash
# Crash safety: uploads and venue traces against the real ephemera-node binary, SIGKILL at
# random moments, restart on the same data folder, and check that every acknowledged upload
# and venue release survived
# (found in the killed node's store; after restart its replay answers 200 with the first
# answer's revision token) and the store opens cleanly.
# Usage: scripts/crash-safety.sh [ROUNDS] [WRITERS]   (defaults 20 and 8)
set -euo pipefail
cd "$(dirname "$0")/.."
# Writers cut off by the kill print one "panicked" line each (expected); backtraces off.
export RUST_BACKTRACE=0
export CRASH_ROUNDS="${1:-${CRASH_ROUNDS:-20}}"
export CRASH_WRITERS="${2:-${CRASH_WRITERS:-8}}"
echo "crash safety: $CRASH_ROUNDS rounds, $CRASH_WRITERS concurrent writers"
# --workspace keeps the feature resolution of `cargo test --workspace` (the README's test
# command), so after it nothing rebuilds; only ephemera-node has an `it` test target.
cargo test --locked --quiet --workspace --test it -- --ignored --exact \
  crash::sigkill_loses_no_acknowledged_upload --nocapture
