# Helpers for .ci/extra scripts that run a real `ephemera-node serve` on loopback.
# Source it after `cd` to the repository root; defines: fail, need_apt, build_node,
# pip_venv, start_node (sets node_pid, node_url, node_work), stop_node.

fail() { echo "${0##*/}: FAIL: $*" >&2; exit 1; }

# need_apt COMMAND PACKAGE: installs Debian's PACKAGE when COMMAND is missing. When apt
# itself fails (no registry), skips the whole script with exit 0 and says so loudly.
need_apt() {
  command -v "$1" >/dev/null && return 0
  echo "installing Debian package $2 (for $1)"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "$2" >/dev/null; }; then
    echo "${0##*/}: SKIPPED: apt-get could not install $2, so $1 is missing; nothing was checked" >&2
    exit 0
  fi
  command -v "$1" >/dev/null || fail "$2 installed but $1 is still missing"
}

# pip_venv DIR REQUIREMENT: a Python venv in DIR with REQUIREMENT (pinned, from pip)
# installed, unless DIR has it already; Debian's python3-venv is installed if venv needs it.
pip_venv() {
  local venv="$1" requirement="$2"
  need_apt python3 python3
  if [ -x "$venv/bin/python" ] && "$venv/bin/pip" show --quiet "${requirement%%=*}" >/dev/null 2>&1; then
    return 0
  fi
  echo "installing $requirement into $venv"
  rm -rf "$venv"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    # Debian keeps ensurepip in a package of its own.
    rm -rf "$venv"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends python3-venv >/dev/null; } \
      || fail "python3 -m venv failed and python3-venv could not be installed"
    python3 -m venv "$venv" || fail "python3 -m venv failed"
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$requirement" \
    || fail "pip install $requirement failed"
}

# Builds the node like `cargo test --workspace` does (same features: nothing rebuilds).
# EPHEMERA_NODE_BIN names a binary built already (a local run), and skips the build.
build_node() {
  if [ -n "${EPHEMERA_NODE_BIN:-}" ]; then
    node_bin="$EPHEMERA_NODE_BIN"
    [ -x "$node_bin" ] || fail "EPHEMERA_NODE_BIN=$node_bin is not an executable"
    echo "using the node binary $node_bin"
    return 0
  fi
  cargo build --locked --quiet --workspace --bins || fail "building ephemera-node failed"
  node_bin="${CARGO_TARGET_DIR:-$(pwd)/target}/debug/ephemera-node"
  [ -x "$node_bin" ] || fail "no binary at $node_bin"
}

node_pid=""
node_work=""
# start_node [serve flags...]: a fresh data folder in a temp dir, HTTP and federation on free
# loopback ports (not federation's fixed default, so that runs side by side do not collide).
start_node() {
  node_work="$(mktemp -d)"
  # Run from the temp folder so no ./ephemera.toml of the checkout is read.
  (cd "$node_work" && exec "$node_bin" serve --data-dir "$node_work/data" \
     --listen 127.0.0.1:0 --set federation.listen=127.0.0.1:0 "$@" >"$node_work/stdout" 2>"$node_work/stderr") &
  node_pid=$!
  node_url=""
  for _ in $(seq 300); do
    node_url="$(sed -n 's/^ephemera-node listening on \(http:[^ ]*\)$/\1/p' "$node_work/stdout")"
    [ -n "$node_url" ] && break
    kill -0 "$node_pid" 2>/dev/null || { cat "$node_work/stderr" >&2; fail "the node exited at start"; }
    sleep 0.1
  done
  [ -n "$node_url" ] || fail "the node did not say where it listens within 30 s"
}

stop_node() {
  if [ -n "$node_pid" ] && kill -0 "$node_pid" 2>/dev/null; then
    kill -TERM "$node_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$node_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$node_pid" 2>/dev/null || true
  fi
  node_pid=""
  [ -n "$node_work" ] && rm -rf "$node_work"
  node_work=""
}
