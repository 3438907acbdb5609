#!/usr/bin/env bash
# Monitoring assets against a real node: `promtool check rules` and `promtool test rules` on
# node/deploy/prometheus/, `promtool check metrics` on a real /metrics scrape, and every
# metric the alert rules and the Grafana dashboard (node/deploy/grafana/) name must be in
# that scrape (with its # HELP line).
set -euo pipefail
cd "$(dirname "$0")/../.."
. .ci/lib/node.sh

need_apt promtool prometheus
need_apt curl curl
need_apt python3 python3
rules=node/deploy/prometheus/ephemera.rules.yml
dashboard=node/deploy/grafana/ephemera-node.json

echo "--- promtool check rules"
promtool check rules "$rules" || fail "promtool check rules"
echo "--- promtool test rules"
(cd "$(dirname "$rules")" && promtool test rules ephemera.rules.test.yml) || fail "promtool test rules"

build_node
trap stop_node EXIT
# Federation on (loopback, no peers) so that its metrics are exported too.
start_node
scrape="$(mktemp)"
curl -fsS "$node_url/healthz" >/dev/null || fail "/healthz"
curl -fsS "$node_url/metrics" >"$scrape" || fail "scraping /metrics"
echo "--- promtool check metrics (a real scrape, $(grep -c '^# TYPE' "$scrape") metrics)"
# One known false positive: ephemera_federation_sync_lag_days counts sync days whose digests
# differ (a count, not a duration), so the "base unit seconds" advice does not apply.
lint="$(promtool check metrics <"$scrape" 2>&1 || true)"
problems="$(grep -v '^ephemera_federation_sync_lag_days use base unit "seconds" instead of "days"$' <<<"$lint" || true)"
[ -z "$problems" ] || fail "promtool check metrics found problems in the exposition: $problems"
[ -z "$lint" ] || echo "known and accepted: $lint"

echo "--- every metric in the rules and the dashboard is exported"
python3 - "$scrape" "$rules" "$dashboard" <<'PY'
import json, re, sys

scrape, rules, dashboard = sys.argv[1:]
text = open(scrape).read()
types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
helps = set(re.findall(r"^# HELP (\S+) ", text, re.M))
exported = set(types)
for name, kind in types.items():
    if kind == "histogram":
        exported |= {name + "_bucket", name + "_count", name + "_sum"}
    if name not in helps:
        sys.exit(f"FAIL: {name} has no # HELP line")

# Every name must be exported (nothing pending).
pending = set()

try:
    dash = json.load(open(dashboard))
except ValueError as e:
    sys.exit(f"FAIL: {dashboard} is not JSON: {e}")
exprs = []
def walk(node):
    if isinstance(node, dict):
        if isinstance(node.get("expr"), str):
            exprs.append(("dashboard", node["expr"]))
        for v in node.values():
            walk(v)
    elif isinstance(node, list):
        for v in node:
            walk(v)
walk(dash)
exprs += [("rules", e) for e in re.findall(r"ephemera_[a-z0-9_]+", open(rules).read())]
if not any(w == "dashboard" for w, _ in exprs):
    sys.exit("FAIL: the dashboard has no queries")

missing, waiting, seen = set(), set(), set()
for where, expr in exprs:
    for name in re.findall(r"\bephemera_[a-z0-9_]+", expr):
        seen.add(name)
        if name in exported:
            continue
        (waiting if name in pending else missing).add(f"{name} ({where})")
if missing:
    sys.exit("FAIL: not in the node's /metrics: " + ", ".join(sorted(missing)))
for name in sorted(waiting):
    print(f"NOTICE: {name} is not exported by this build yet (clock safety, issue 29 item 3)")
pending_names = {w.split()[0] for w in waiting}
print(f"ok: {len(seen)} metric names in the rules and dashboard, all exported"
      + (f" but the {len(pending_names)} pending ones" if waiting else ""))
PY
echo "monitoring: all checks passed"
