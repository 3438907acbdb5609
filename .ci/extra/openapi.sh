#!/usr/bin/env bash
# The OpenAPI document is the contract (issue 16 item 1): runs the property-based fuzzer
# schemathesis (pinned, installed with pip into a venv under the target folder) against a
# real `ephemera-node serve` on loopback, signed in as the first case worker, with every
# check on (`--checks all`) and no failure allowed. It generates requests from
# GET /v1/openapi.json, valid ones and ones that break the document, and fails if the node
# accepts what the document refuses, refuses what it accepts, or answers a status, header,
# media type or body the document does not describe.
#
# Five runs, on one node:
# 1. every operation but the two phone bodies and sign-out, every check;
# 2. POST /v1/verify, POST /v2/verify and POST /v1/uploads, every check but
#    `positive_data_acceptance`: their bodies are sealed binary bodies (issue 16, decoys;
#    /v2/verify takes nothing else), generated as random bytes, and a schema-valid body is
#    still refused for its content (a body that does not open, an unknown code, a frame that
#    does not verify), which no schema can express;
# 1b. the account and session-state routes (/v1/accounts..., /v1/session/..., the console's
#    cookie sign-in and CSRF routes), every check but `positive_data_acceptance`: a
#    schema-valid body may be refused for the state it meets (a name taken, no TOTP
#    enrolment under way, a common password);
# 1c. GET /v1/session/csrf with the session as the console's cookie;
# 1d. the statistics routes (/v1/stats...), POST /v1/venues and POST /v1/venue-traces,
#    every check but `positive_data_acceptance`: two schema-valid dates may still be
#    refused together (`from` after `to`, more than 366 days apart; a venue's
#    `valid_until` before its `valid_from`; a case's times over 24 venue hours), a venue's
#    texts are capped at 100 bytes of UTF-8 where JSON Schema counts characters, and a
#    schema-valid trace code is still refused for its content (it must decode and its
#    share open with this authority's key), which JSON Schema cannot state. It runs right
#    after run 1, before run 1b's account routes can take the case worker's role away;
# 3. DELETE /v1/session and /v1/sessions, last and with a token of its own, since they sign
#    that token (and the account's others) out.
#
# The printed first password is a one-time password: the setup sets one of its own first.
#
# OPENAPI_MAX_EXAMPLES (default 100) bounds the cases per operation: about 1,700 requests,
# under a minute of fuzzing on 2 cores after the build. A failure prints the request as a
# curl line and the seed that reproduces it (`--seed`, OPENAPI_SEED).
set -euo pipefail
cd "$(dirname "$0")/../.."
. .ci/lib/node.sh

version=4.32.5
max_examples="${OPENAPI_MAX_EXAMPLES:-100}"
target="${CARGO_TARGET_DIR:-$(pwd)/target}"
venv="$target/schemathesis-$version"

pip_venv "$venv" "schemathesis==$version"
"$venv/bin/st" --version

build_node
work="$(mktemp -d)"
cleanup() { stop_node; rm -rf "$work"; }
trap cleanup EXIT
start_node
name="$(sed -n 's/^  name: *//p' "$node_work/stdout")"
password="$(sed -n 's/^  password: *//p' "$node_work/stdout")"
[ -n "$name" ] && [ -n "$password" ] || fail "the node printed no first case-worker credentials"

# Two sessions: one for the runs, one for the sign-out run (run 1 spends the sign-in
# budget of this source with wrong passwords, so both are opened first).
read -r token token_out onset_window < <(python3 - "$node_url" "$name" "$password" <<'PY'
import json, sys, urllib.request
url, name, password = sys.argv[1:]
def post(path, body, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    request = urllib.request.Request(
        url + path, method="POST", data=json.dumps(body).encode(), headers=headers)
    return urllib.request.urlopen(request)
def sign_in():
    return json.load(post("/v1/session", {"name": name, "password": password}))["token"]
# The printed password is a one-time password: the first sign-in sets one of its own.
first = sign_in()
chosen = "openapi-" + password
post("/v1/session/password", {"current_password": password, "new_password": chosen}, first)
password = chosen
authority = json.load(urllib.request.urlopen(url + "/v1/authority"))
# A symptom onset may lie up to retention + 14 days back (node/core/src/authority.rs).
print(sign_in(), sign_in(), authority["retention_days"] + 14)
PY
) || fail "signing in as the case worker failed"
[ -n "$onset_window" ] || fail "no session"

# A symptom onset is a `format: date` that must also lie in a window ending today, which
# JSON Schema cannot state: dates are drawn from that window (the document's description
# says so), so valid requests are valid. Every other format keeps schemathesis' own.
cat >"$work/ephemera_hooks.py" <<'PY'
import datetime
import os

import schemathesis
from hypothesis import strategies as st

window = int(os.environ["EPHEMERA_ONSET_WINDOW_DAYS"])
today = datetime.datetime.now(datetime.timezone.utc).date()
schemathesis.openapi.format(
    "date",
    st.dates(
        min_value=today - datetime.timedelta(days=window - 1),
        max_value=today - datetime.timedelta(days=1),
    ).map(lambda day: day.isoformat()),
)
# Sealed phone bodies (proto::sealed): bytes of the sizes the document allows; none opens.
schemathesis.openapi.media_type(
    "application/ephemera-sealed", st.binary(min_size=56, max_size=4096)
)
PY

st_run() {
  local bearer="$1"
  shift
  # From the temp folder: schemathesis keeps a cache (.schemathesis/) in its working folder.
  (cd "$work" && PYTHONPATH="$work" SCHEMATHESIS_HOOKS=ephemera_hooks \
    EPHEMERA_ONSET_WINDOW_DAYS="$onset_window" timeout 600 "$venv/bin/st" run "$node_url/v1/openapi.json" \
      --checks all --max-examples "$max_examples" --request-timeout 30 \
      ${OPENAPI_SEED:+--seed "$OPENAPI_SEED"} \
      -H "Authorization: Bearer $bearer" "$@")
}

# Account and session-state routes: a schema-valid body may still be refused for the state
# it meets (a name already taken, no TOTP enrolment under way, a common password), so
# they run without positive_data_acceptance, in a run of their own.
account_paths=(--include-path-regex '^/v1/(accounts|session/)')
echo "--- run 1: every operation but the phone bodies, account routes and sign-out, every check"
st_run "$token" --exclude-path /v1/verify --exclude-path /v2/verify --exclude-path /v1/uploads \
  --exclude-path-regex '^/v1/(accounts|session/|stats|venues|venue-traces)' --exclude-method DELETE \
  || fail "schemathesis found contract failures (run 1)"
# Before run 1b, whose account routes may take the case worker's role away.
echo "--- run 1d: statistics, venue and venue-trace routes (every check but positive_data_acceptance)"
st_run "$token" --include-path-regex '^/v1/(stats|venues|venue-traces)' \
  --exclude-checks positive_data_acceptance \
  || fail "schemathesis found contract failures (run 1d)"
echo "--- run 1b: account and session routes (every check but positive_data_acceptance)"
st_run "$token" "${account_paths[@]}" --exclude-method DELETE \
  --exclude-checks positive_data_acceptance \
  || fail "schemathesis found contract failures (run 1b)"
# GET /v1/session/csrf takes the console's cookie only: the session rides as that cookie.
# The header is the harness's, which schemathesis cannot take away, so its "missing
# cookie must be refused" case (negative_data_rejection) cannot be made here; run 1b
# checks the refusal without the cookie.
echo "--- run 1c: GET /v1/session/csrf with the console's cookie"
st_run "$token" --include-path /v1/session/csrf \
  -H "Cookie: __Host-ephemera-session=$token" \
  --exclude-checks negative_data_rejection \
  || fail "schemathesis found contract failures (run 1c)"
echo "--- run 2: POST /v1/verify, /v2/verify, /v1/uploads (every check but positive_data_acceptance)"
st_run "$token" --include-path /v1/verify --include-path /v2/verify --include-path /v1/uploads \
  --exclude-checks positive_data_acceptance \
  || fail "schemathesis found contract failures (run 2)"
echo "--- run 3: DELETE /v1/session and /v1/sessions"
st_run "$token_out" --include-method DELETE \
  || fail "schemathesis found contract failures (run 3)"
kill -0 "$node_pid" 2>/dev/null || fail "the node died during the runs"
echo "openapi: the node keeps its OpenAPI document (schemathesis $version, every check, 0 failures)"
