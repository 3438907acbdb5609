#!/usr/bin/env bash
# The client's Python (UniFFI) bindings test: builds the cdylib, generates the bindings and
# runs client/bindings/python/test_client.py, which prints its "N passed, N failed" line.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash client/bindings/python/run.sh
