#!/usr/bin/env bash
# The shipped unit (node/deploy/ephemera-node.service) must score OK or better in
# `systemd-analyze security --offline=true`: an overall exposure under 5.0. systemd's own
# levels (src/analyze/analyze-security.c): 0.0 PERFECT, from 0.1 SAFE, from 1.0 OK, from 5.0
# MEDIUM, from 7.5 EXPOSED, from 9.0 UNSAFE, 10.0 DANGEROUS. Every directive must be known to
# systemd (a misspelt one would be ignored silently at runtime) and the sandbox must keep
# what the node needs (netlink for libp2p, no capabilities, no core dumps).
set -euo pipefail
cd "$(dirname "$0")/../.."
. .ci/lib/node.sh

need_apt systemd-analyze systemd
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
unit="$work/ephemera-node.service"
cp node/deploy/ephemera-node.service "$unit"

for line in 'LimitNOFILE=' 'LimitCORE=0' 'CapabilityBoundingSet=$' 'ProtectClock=yes' \
            'SystemCallFilter=@system-service' 'NoNewPrivileges=yes'; do
  grep -q "^$line" "$unit" || fail "the unit lost '$line'"
done
grep -E '^RestrictAddressFamilies=' "$unit" | grep -qw AF_NETLINK \
  || fail "RestrictAddressFamilies must allow AF_NETLINK (libp2p lists interfaces through it)"

status=0
systemd-analyze security --offline=true --no-pager "$unit" >"$work/out" 2>"$work/err" || status=$?
cat "$work/out"
if grep -Ei 'unknown|ignoring|failed to parse|invalid' "$work/err"; then
  fail "systemd did not understand a line of the unit (above)"
fi
[ "$status" -eq 0 ] || { cat "$work/err" >&2; fail "systemd-analyze security exited $status"; }
line="$(grep 'Overall exposure level' "$work/out")" || fail "no overall exposure level in the output"
score="$(sed -n 's/.*: \([0-9][0-9]*\.[0-9]\) \([A-Z][A-Z]*\).*/\1/p' <<<"$line")"
level="$(sed -n 's/.*: \([0-9][0-9]*\.[0-9]\) \([A-Z][A-Z]*\).*/\2/p' <<<"$line")"
[ -n "$score" ] && [ -n "$level" ] || fail "could not read the score from: $line"
# Tenths, as integers: OK or better is below 5.0 (50).
tenths=$(( 10#${score%.*} * 10 + 10#${score#*.} ))
case "$level" in OK|SAFE|PERFECT) ;; *) fail "exposure $score is $level, not OK or better" ;; esac
[ "$tenths" -lt 50 ] || fail "exposure $score is not under 5.0"
echo "systemd unit: exposure $score $level (OK or better: under 5.0)"
