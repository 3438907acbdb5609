#!/usr/bin/env bash
# kill -9 during uploads loses no acknowledged upload (20 SIGKILLs; see scripts/crash-safety.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/crash-safety.sh "${CRASH_ROUNDS:-20}" 8
