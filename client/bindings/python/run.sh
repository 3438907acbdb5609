#!/usr/bin/env bash
# Builds the client cdylib with the UniFFI bindings, generates the Python bindings with the
# uniffi-bindgen of client/uniffi-bindgen, and runs test_client.py against them.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
cd "$root"

cargo build -p ephemera-client --features test-node
case "$(uname -s)" in
  Darwin) lib="target/debug/libephemera_client.dylib" ;;
  *) lib="target/debug/libephemera_client.so" ;;
esac

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
cargo run --quiet --manifest-path client/uniffi-bindgen/Cargo.toml \
  --target-dir target/uniffi-bindgen -- \
  generate --library "$lib" --language python --out-dir "$out"
cp "$lib" "$out/"
PYTHONPATH="$out" python3 "$here/test_client.py"
