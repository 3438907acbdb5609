#!/usr/bin/env bash
# A short coverage-guided fuzz run of every decoder of outside bytes (see fuzz/run.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash fuzz/run.sh "${FUZZ_SECONDS:-10}"
