#!/usr/bin/env bash
# Headless-Chromium tests of the console, per role: installs Debian's chromium and the
# pinned playwright-core, starts a node on loopback with a temporary data folder (its first
# start prints the first admin's one-time password), and runs node/tests/browser/console.mjs
# (admin, case worker, bulk issuer, auditor; TOTP, CSRF and role refusals, a keyboard-only
# path, accessible names). Screenshots land in $BROWSER_ARTIFACTS (default target/browser).
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$(pwd)"
fail() { echo "browser.sh: FAIL: $*" >&2; exit 1; }

if [ ! -x /usr/bin/chromium ]; then
  echo "installing Debian chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || fail "apt-get update failed"
  apt-get install -y -qq chromium >/dev/null || fail "apt-get install chromium failed"
fi
command -v node >/dev/null || fail "Node.js is not installed"
(cd node/tests/browser && npm ci --no-audit --no-fund --loglevel=error >/dev/null) \
  || fail "npm ci (playwright-core) failed"

# --workspace keeps the feature resolution of `cargo test --workspace`, so nothing rebuilds.
cargo build --locked --quiet --workspace --bins || fail "building ephemera-node failed"
bin="${CARGO_TARGET_DIR:-$root/target}/debug/ephemera-node"
artifacts="${BROWSER_ARTIFACTS:-$root/target/browser}"
mkdir -p "$artifacts"
rm -f "$artifacts"/console*.png

work="$(mktemp -d)"
node_pid=""
cleanup() {
  if [ -n "$node_pid" ] && kill -0 "$node_pid" 2>/dev/null; then
    kill -TERM "$node_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$node_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$node_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Run from the temp folder so no ./ephemera.toml of the checkout is read; port 0 = any free.
(cd "$work" && exec "$bin" serve --data-dir "$work/data" --listen 127.0.0.1:0 \
  --set federation.listen=127.0.0.1:0 \
  >"$work/stdout" 2>"$work/stderr") &
node_pid=$!
url=""
for _ in $(seq 300); do
  url="$(sed -n 's/^ephemera-node listening on \(http:[^ ]*\)$/\1/p' "$work/stdout")"
  [ -n "$url" ] && break
  kill -0 "$node_pid" 2>/dev/null || { cat "$work/stderr" >&2; fail "the node exited at start"; }
  sleep 0.1
done
[ -n "$url" ] || fail "the node did not say where it listens within 30 s"
name="$(sed -n 's/^  name: *//p' "$work/stdout")"
password="$(sed -n 's/^  password: *//p' "$work/stdout")"
[ -n "$name" ] && [ -n "$password" ] || fail "the node printed no first case-worker credentials"
echo "node started on a loopback port; case worker '$name' created"

status=0
(cd node/tests/browser && timeout 300 node console.mjs "$url" "$name" "$password" "$artifacts") \
  || status=$?
kill -TERM "$node_pid"
for _ in $(seq 100); do kill -0 "$node_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$node_pid" 2>/dev/null && fail "the node did not stop within 10 s of SIGTERM"
node_pid=""
[ "$status" -eq 0 ] || fail "the console test failed (screenshots in $artifacts)"
echo "browser test passed; screenshots in $artifacts"
