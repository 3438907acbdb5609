#!/usr/bin/env bash
# Runs every fuzz target for a short while (default 20 s each) on stable Rust, without
# sanitizers, starting from the committed seed corpus (fuzz/corpus, written by
# proto/tests/fuzz_seeds.rs) plus what earlier runs on this machine found (fuzz/target/corpus);
# any crash fails the script and leaves its input under fuzz/artifacts/.
#   bash fuzz/run.sh [seconds per target]
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-20}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.2 --locked
targets=$(cargo fuzz list)
cargo fuzz build --sanitizer none
for target in $targets; do
  mkdir -p "target/corpus/$target"
  echo "fuzz: $target for ${seconds}s"
  cargo fuzz run --sanitizer none "$target" "target/corpus/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len=65536 -print_final_stats=0 2>&1 | grep -E "^(Done|==|SUMMARY|thread)" || true
  if ls artifacts/"$target"/crash-* >/dev/null 2>&1; then
    echo "fuzz: $target found a crash:"; ls artifacts/"$target"/; exit 1
  fi
done
echo "fuzz: all targets ran ${seconds}s without a crash"
