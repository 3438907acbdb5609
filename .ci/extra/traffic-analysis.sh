#!/usr/bin/env bash
# Decoys an observer cannot tell apart (issue 30): client/bindings/python/traffic_analysis.py
# drives a real node with phones through the Python bindings (real reports with typos,
# decoy flows, a 429 window, a restart) through a recording proxy, then trains logistic
# regression and gradient boosting (scikit-learn, pinned, in a venv under the target
# folder) per observer feature and on all together, and fails if any held-out AUC exceeds
# 0.55 or there are fewer than 50 real and 300 decoy flows. TRAFFIC_ARGS passes options
# (e.g. "--reals 600 --dump flows.json").
set -euo pipefail
cd "$(dirname "$0")/../.."
. .ci/lib/node.sh

version=1.6.1
target="${CARGO_TARGET_DIR:-$(pwd)/target}"
venv="$target/traffic-venv-$version"
pip_venv "$venv" "scikit-learn==$version"

# shellcheck disable=SC2086
EPHEMERA_PY_SCRIPT=traffic_analysis.py EPHEMERA_PYTHON="$venv/bin/python" \
  bash client/bindings/python/run.sh ${TRAFFIC_ARGS:-}
