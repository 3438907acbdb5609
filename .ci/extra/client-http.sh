#!/usr/bin/env bash
# The client's optional HTTP transport (feature `http`, what an app without its own HTTP
# stack uses): `cargo test --workspace` never turns the feature on, so without this step
# its code and its loopback test go unbuilt (they did, for a while, and rotted).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo clippy --locked -p ephemera-client --features http --all-targets -- -D warnings
cargo test --locked -p ephemera-client --features http --test http_transport
