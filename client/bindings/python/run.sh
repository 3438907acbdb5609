#!/usr/bin/env bash
# Builds the node and the client cdylib (UniFFI bindings are on by default), generates the
# Python bindings with client/uniffi-bindgen into a temporary folder outside the tree, and
# runs test_client.py against a real `ephemera-node serve` on loopback (harness.py).
# Honours CARGO_TARGET_DIR. Extra arguments select tests by name. EPHEMERA_PY_SCRIPT runs
# another script of this folder instead (traffic_analysis.py), with EPHEMERA_PYTHON (a venv's
# python, say) instead of python3; extra arguments then go to that script.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"

# --workspace keeps the feature resolution of `cargo test --workspace`: nothing rebuilds.
cargo build --locked --quiet --workspace --lib --bins
case "$(uname -s)" in
  Darwin) lib="$target/debug/libephemera_client.dylib" ;;
  *) lib="$target/debug/libephemera_client.so" ;;
esac

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
cargo run --locked --quiet --manifest-path client/uniffi-bindgen/Cargo.toml \
  --target-dir "$target/uniffi-bindgen" -- \
  generate --library "$lib" --language python --out-dir "$out"
cp "$lib" "$out/"
export EPHEMERA_NODE_BIN="$target/debug/ephemera-node"
PYTHONPATH="$out:$here" "${EPHEMERA_PYTHON:-python3}" "$here/${EPHEMERA_PY_SCRIPT:-test_client.py}" "$@"
