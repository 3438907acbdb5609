#!/usr/bin/env bash
# Size of what an app ships: builds the client library (UniFFI bindings included) with the
# `mobile` profile as a shared library (Android .so, loaded by JNA) and a static library
# (iOS XCFramework), prints their sizes per target, and fails when the stripped x86_64
# shared library (the proxy here for arm64: same code, similar density) passes its bar:
# - without venue check-in (`--no-default-features --features ffi`): 2 MiB, the bar the
#   library has always had;
# - with it (the default, full library): 2.2 MiB. Venue check-in (feature `venue`,
#   CrowdNotifier) links blst's BLS12-381 pairings, hash-to-curve and G_T arithmetic:
#   +170 KiB measured (1.98 → 2.15 MiB, 2026-12-07); blst's `no-threads` saved 448 bytes
#   and `portable` added 20 KB, so neither is used (docs/MOBILE.md §4).
# Other targets are built when their Rust target and linker are installed, and reported
# as skipped otherwise. Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$(pwd)"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
limit=$((2 * 1024 * 1024))
full_limit=$((22 * 1024 * 1024 / 10))
fail() { echo "client-size.sh: FAIL: $*" >&2; exit 1; }

build() { # build TARGET (empty: host) [FEATURE ARGS…] -> prints the output folder
  local triple="$1" args=()
  shift
  [ -n "$triple" ] && args=(--target "$triple")
  cargo rustc --locked --quiet -p ephemera-client --lib --profile mobile "${args[@]}" "$@" \
    --crate-type cdylib,staticlib >&2
  if [ -n "$triple" ]; then echo "$target_dir/$triple/mobile"; else echo "$target_dir/mobile"; fi
}

human() { awk -v b="$1" 'BEGIN { printf "%.2f MiB (%d bytes)", b / 1048576, b }'; }

report() { # report LABEL DIR
  local label="$1" dir="$2" so="$2/libephemera_client.so" a="$2/libephemera_client.a"
  local stripped gz
  stripped="$(mktemp)"
  cp "$so" "$stripped"
  strip --strip-all "$stripped" 2>/dev/null || true
  gz="$(gzip -9 -c "$stripped" | wc -c)"
  echo "$label shared library, stripped: $(human "$(stat -c %s "$stripped")"), gzipped $(human "$gz")"
  echo "$label static library (unstripped archive, what Xcode links and strips): $(human "$(stat -c %s "$a")")"
  stat -c %s "$stripped"
  rm -f "$stripped"
}

# The library without venue check-in first (the same output folder is rebuilt after).
host_dir="$(build "" --no-default-features --features ffi)"
out="$(report "x86_64-unknown-linux-gnu, without venue check-in," "$host_dir")"
echo "$out" | head -n 2
size="$(echo "$out" | tail -n 1)"
host_dir="$(build "")"
out="$(report "x86_64-unknown-linux-gnu, full (default features)," "$host_dir")"
echo "$out" | head -n 2
full_size="$(echo "$out" | tail -n 1)"

installed="$(rustup target list --installed 2>/dev/null || true)"
for triple in aarch64-linux-android armv7-linux-androideabi x86_64-linux-android \
  aarch64-apple-ios aarch64-apple-ios-sim; do
  if echo "$installed" | grep -qx "$triple"; then
    if dir="$(build "$triple" 2>/dev/null)"; then
      report "$triple" "$dir" | head -n 2
    else
      echo "$triple: installed, but no linker for it here (skipped)"
    fi
  else
    echo "$triple: Rust target not installed here (skipped; see docs/MOBILE.md)"
  fi
done

[ "$size" -le "$limit" ] || fail "the stripped x86_64 library without venue check-in is $(human "$size"), over $(human "$limit")"
[ "$full_size" -le "$full_limit" ] || fail "the stripped x86_64 full library is $(human "$full_size"), over $(human "$full_limit")"
echo "client-size.sh: ok (stripped x86_64 library $(human "$size") <= 2 MiB without venue check-in, $(human "$full_size") <= 2.2 MiB full)"
