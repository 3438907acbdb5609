#!/usr/bin/env bash
# The client's Python (UniFFI) bindings test: builds the node and the cdylib, generates the
# bindings (outside the tree) and runs client/bindings/python/test_client.py against a real
# `ephemera-node serve` on 127.0.0.1 (port 0): kill-and-restart, clock, forgetting on
# disk, contact time, the API, the sunset (a real node's order ends the phone; four federated
# nodes and their phones end under one order and keep nothing), and the
# docs/MOBILE.md example app, unchanged. Prints its
# "N passed, N failed" line. Needs python3 only (standard library); about 40 s after the
# workspace build, plus about 80 s the first time to build uniffi-bindgen.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash client/bindings/python/run.sh
