#!/usr/bin/env bash
# The sample nginx front (node/deploy/nginx/ephemera.conf) in front of a real node: `nginx -t`,
# then requests through it on loopback. 127.0.0.1 plays the public internet and 127.0.0.2 the
# case workers' network. Checks the route split, caching, rate limits, and that nginx's logs
# hold no client address.
set -euo pipefail
cd "$(dirname "$0")/../.."
. .ci/lib/node.sh

need_apt nginx nginx
need_apt curl curl
need_apt openssl openssl
need_apt python3 python3
build_node

work="$(mktemp -d)"
nginx_pid_file="$work/nginx.pid"
cleanup() {
  if [ -f "$nginx_pid_file" ]; then kill -TERM "$(cat "$nginx_pid_file")" 2>/dev/null || true; fi
  stop_node
  rm -rf "$work"
}
trap cleanup EXIT

start_node --set federation.enabled=false
node_port="${node_url##*:}"
echo "node on loopback port $node_port"

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null || fail "openssl could not make a test certificate"
mkdir -p "$work/cache" "$work/logs" "$work/tmp"
# nginx workers run as an unprivileged user: they must reach the cache and temp folders.
chmod 0711 "$work"
chmod 0777 "$work/cache" "$work/tmp"

# The sample, with only its site-specific settings replaced.
sed -e "s#^\( *\)listen 443 ssl http2;#\1listen 127.0.0.1:$port ssl http2;#" \
    -e "/listen \[::\]:443/d" \
    -e "s#server 127.0.0.1:8080;#server 127.0.0.1:$node_port;#" \
    -e "s#10.0.0.0/8  1;#127.0.0.2/32 1;#" \
    -e "s#/etc/ssl/ephemera/fullchain.pem#$work/cert.pem#" \
    -e "s#/etc/ssl/ephemera/privkey.pem#$work/key.pem#" \
    -e "s#/var/cache/nginx/ephemera#$work/cache#" \
    -e "s#/var/log/nginx/#$work/logs/#" \
    node/deploy/nginx/ephemera.conf >"$work/ephemera.conf"
for setting in "127.0.0.1:$port ssl" "127.0.0.1:$node_port" "127.0.0.2/32" "$work/cert.pem" "$work/cache"; do
  grep -qF "$setting" "$work/ephemera.conf" || fail "the sample changed shape: could not set $setting"
done
cat >"$work/nginx.conf" <<CONF
worker_processes 1;
pid $nginx_pid_file;
error_log $work/logs/main-error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $work/tmp/body;
  proxy_temp_path $work/tmp/proxy;
  fastcgi_temp_path $work/tmp/fastcgi;
  uwsgi_temp_path $work/tmp/uwsgi;
  scgi_temp_path $work/tmp/scgi;
  include $work/ephemera.conf;
}
CONF

echo "--- nginx -t"
nginx -t -c "$work/nginx.conf" -p "$work" 2>&1 | tee "$work/nginx-t.out"
grep -q "syntax is ok" "$work/nginx-t.out" || fail "nginx -t rejected the sample"
nginx -c "$work/nginx.conf" -p "$work" || fail "nginx did not start"
for _ in $(seq 50); do [ -s "$nginx_pid_file" ] && break; sleep 0.1; done

base="https://127.0.0.1:$port"
# status METHOD PATH [curl args...]: prints the status code; the body goes to $work/body.
status() {
  local method="$1" path="$2"; shift 2
  curl -ks -o "$work/body" -w '%{http_code}' -X "$method" "$@" "$base$path"
}
expect() {
  local want="$1" what="$2" got="$3"
  [ "$got" = "$want" ] || fail "$what: expected $want, got $got ($(head -c 200 "$work/body"))"
  echo "ok: $what -> $got"
}

expect 200 "GET /healthz through the proxy" "$(status GET /healthz)"
grep -q '"storage_format"' "$work/body" || fail "/healthz has no storage_format: $(cat "$work/body")"
expect 200 "GET /v1/batches (batch index)" "$(status GET '/v1/batches?after=0')"
grep -q '"next_cursor"' "$work/body" || fail "the batch index is not JSON: $(cat "$work/body")"
expect 200 "GET /v1/authority" "$(status GET /v1/authority)"
# What every phone's sync and sealed report needs: the sealing key, the signed heads.
expect 200 "GET /v1/sealing-key" "$(status GET /v1/sealing-key)"
expect 200 "GET /v1/heads" "$(status GET /v1/heads)"
expect 200 "GET /v1/heads/conflicts" "$(status GET /v1/heads/conflicts)"
# The blind-token keys reach the node (an answer of the node, whatever its keys).
code="$(status GET /v2/token-keys)"
grep -q '"error"' "$work/body" || [ "$code" = 200 ] \
  || fail "GET /v2/token-keys was not answered by the node: $code $(head -c 200 "$work/body")"
echo "ok: GET /v2/token-keys reaches the node -> $code"
expect 415 "POST /v2/verify (unsealed) reaches the node" \
  "$(status POST /v2/verify -H 'content-type: application/json' --data-binary '{}')"
grep -q '"error"' "$work/body" || fail "POST /v2/verify was not answered by the node: $(cat "$work/body")"
# A phone route reaches the node: the answer is the node's JSON error, not nginx's page.
expect 400 "POST /v1/verify (malformed) reaches the node" \
  "$(status POST /v1/verify -H 'content-type: application/json' --data-binary '{}')"
grep -q '"error"' "$work/body" || fail "POST /v1/verify was not answered by the node: $(cat "$work/body")"
# Console routes: refused from the public side, served to the console network.
expect 403 "GET /console from the public side" "$(status GET /console)"
expect 403 "GET /case-worker from the public side" "$(status GET /case-worker)"
expect 403 "POST /v1/session/cookie from the public side" \
  "$(status POST /v1/session/cookie -H 'content-type: application/json' --data-binary '{}')"
expect 403 "POST /v1/codes from the public side" \
  "$(status POST /v1/codes -H 'content-type: application/json' --data-binary '{}')"
expect 403 "POST /v1/session from the public side" \
  "$(status POST /v1/session -H 'content-type: application/json' --data-binary '{}')"
expect 403 "GET /v1/accounts from the public side" "$(status GET /v1/accounts)"
expect 403 "POST /v1/accounts/<name>/disable from the public side" \
  "$(status POST /v1/accounts/caseworker/disable)"
expect 403 "POST /v1/session/password from the public side" \
  "$(status POST /v1/session/password -H 'content-type: application/json' --data-binary '{}')"
expect 401 "GET /v1/accounts from the console network reaches the node" \
  "$(status GET /v1/accounts --interface 127.0.0.2)"
expect 401 "DELETE /v1/sessions from the console network reaches the node" \
  "$(status DELETE /v1/sessions --interface 127.0.0.2)"
expect 403 "GET /v1/audit from the public side" "$(status GET /v1/audit)"
expect 403 "GET /v1/api-keys from the public side" "$(status GET /v1/api-keys)"
expect 403 "GET /v1/codes/<reference> from the public side" "$(status GET /v1/codes/0123456789AB)"
expect 401 "GET /v1/audit from the console network reaches the node" \
  "$(status GET /v1/audit --interface 127.0.0.2)"
expect 403 "GET /v1/stats/chart.svg from the public side" "$(status GET /v1/stats/chart.svg)"
expect 401 "GET /v1/stats from the console network reaches the node" \
  "$(status GET /v1/stats --interface 127.0.0.2)"
expect 401 "POST /v1/api-keys/<id>/revoke from the console network reaches the node" \
  "$(status POST /v1/api-keys/0123456789abcdef/revoke --interface 127.0.0.2)"
expect 401 "GET /v1/codes/<reference> from the console network reaches the node" \
  "$(status GET /v1/codes/0123-4567-89AB --interface 127.0.0.2)"
expect 200 "GET /console from the console network" "$(status GET /console --interface 127.0.0.2)"
expect 308 "GET /case-worker from the console network (to /console)" "$(status GET /case-worker --interface 127.0.0.2)"
expect 401 "GET /v1/session/csrf from the console network reaches the node" \
  "$(status GET /v1/session/csrf --interface 127.0.0.2)"
expect 401 "POST /v1/codes from the console network reaches the node" \
  "$(status POST /v1/codes --interface 127.0.0.2 -H 'content-type: application/json' --data-binary '{}')"
expect 404 "GET /metrics is not served by the proxy" "$(status GET /metrics)"
expect 404 "GET /metrics from the console network" "$(status GET /metrics --interface 127.0.0.2)"

# A cached batch: the node cuts its first boundary at start; fetch a batch twice.
batch="$(curl -ks "$node_url/v1/batches?after=0" | python3 -c 'import json,sys; b=json.load(sys.stdin)["batches"]; print(b[0]["id"] if b else "")')"
if [ -n "$batch" ]; then
  expect 200 "GET /v1/batches/<id> (first)" "$(status GET "/v1/batches/$batch")"
  expect 200 "GET /v1/batches/<id> (second)" "$(status GET "/v1/batches/$batch")"
  # The first boundary's batch holds decoy tokens when the node accepts pet: its filter.
  expect 200 "GET /v1/batches/<id>/filter" "$(status GET "/v1/batches/$batch/filter")"
else
  fail "the node listed no batch to fetch through the cache"
fi

# Rate limit: 30 verify requests at once from one client; burst 20 lets about 21 through.
limited=0
for _ in $(seq 30); do
  code="$(status POST /v1/verify -H 'content-type: application/json' --data-binary '{}')"
  [ "$code" = 429 ] && limited=$((limited + 1))
done
[ "$limited" -gt 0 ] || fail "30 verify requests in a burst were never limited"
echo "ok: $limited of 30 burst verify requests got 429 from the proxy"

# Logs: written, without addresses and without phone report requests.
kill -USR1 "$(cat "$nginx_pid_file")" 2>/dev/null || true   # reopen = flush
sleep 0.5
access="$work/logs/ephemera-access.log"
[ -s "$access" ] || fail "the access log is empty"
grep -q ' GET /healthz 200 ' "$access" || fail "the access log has no /healthz line: $(cat "$access")"
grep -Eq "GET /v1/batches/$batch 200 [0-9]+ [0-9.]+ HIT" "$access" \
  || fail "the second batch fetch was not a cache HIT: $(grep batches "$access")"
echo "ok: the second batch fetch was served from the cache"
if grep -Eq '127\.0\.0\.[0-9]+|::1' "$access" "$work/logs/ephemera-error.log" 2>/dev/null; then
  fail "a client address is in nginx's logs: $(grep -E '127\.0\.0\.[0-9]+' "$access" "$work/logs/ephemera-error.log" | head -3)"
fi
grep -Eq '/v[12]/verify' "$access" && fail "the access log has phone verify requests"
echo "ok: $(wc -l <"$access") access-log lines, none with a client address or a phone report request"
echo "nginx sample: all checks passed"
