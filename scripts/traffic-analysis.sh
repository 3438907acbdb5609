#!/usr/bin/env bash
# Decoys an observer cannot tell apart (issue 30): client/bindings/python/traffic_analysis.py
# drives a real node with phones through the Python bindings (real reports with typos,
# decoy flows, a 429 window, a restart) through a recording proxy, then trains logistic
# regression and gradient boosting (scikit-learn, pinned, in a venv under the target
# folder) per observer feature and on all together, and fails if any AUC on held-out flows
# exceeds 0.55 or there are fewer than 50 real and 300 decoy flows. About 4 minutes on 2
# cores after the workspace build. TRAFFIC_ARGS passes options (e.g. "--reals 600").
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/lib/node.sh

version=1.6.1
target="${CARGO_TARGET_DIR:-$(pwd)/target}"
venv="$target/traffic-venv-$version"

need_apt python3 python3
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import sklearn" 2>/dev/null; then
  echo "installing scikit-learn $version into $venv"
  rm -rf "$venv"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    # Debian keeps ensurepip in a package of its own.
    rm -rf "$venv"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends python3-venv >/dev/null; } \
      || fail "python3 -m venv failed and python3-venv could not be installed"
    python3 -m venv "$venv" || fail "python3 -m venv failed"
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check "scikit-learn==$version" \
    || fail "pip install scikit-learn==$version failed"
fi

# shellcheck disable=SC2086
EPHEMERA_PY_SCRIPT=traffic_analysis.py EPHEMERA_PYTHON="$venv/bin/python" \
  bash client/bindings/python/run.sh ${TRAFFIC_ARGS:-}
