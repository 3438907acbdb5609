#!/usr/bin/env bash
# The declared minimum Rust version (`rust-version` in the root Cargo.toml) is inherited by
# every crate and is not below what the locked dependencies declare.
#
# Checks, from `cargo metadata --locked` (no build):
#   1. every workspace member's Cargo.toml says `rust-version.workspace = true`;
#   2. every package in the locked graph (all targets, all platforms) declares a
#      `rust-version` no newer than ours; the highest one is printed as the floor;
#   3. ours is at least 1.85, the first release with edition 2024;
#   4. nothing turns off clippy's `incompatible_msrv` lint, which (on by default, and
#      `.ci/run` runs clippy with -D warnings) flags every standard-library API of our code
#      stabilised after the declared version (checked: `Duration::from_mins`, 1.91, fails).
# That is as close to "the declared version is the real minimum" as this machine allows.
#
# Limits: only stable (1.95) and nightly are installed and no toolchain can be downloaded, so
# nothing is compiled with the declared version itself. Language features newer than it (a
# syntax, not an API) are not caught; nor is a dependency whose `rust-version` understates
# its real needs, or one that declares none (they are listed below). `fuzz/` is a workspace of
# its own, built on nightly, and is not checked.
set -euo pipefail
cd "$(dirname "$0")/../.."

if grep -rn --include='*.rs' --include='*.toml' incompatible_msrv Cargo.toml proto client node tests; then
  echo "msrv.sh: FAIL: clippy::incompatible_msrv must stay on" >&2
  exit 1
fi

metadata="$(mktemp)"
trap 'rm -f "$metadata"' EXIT
cargo metadata --locked --format-version 1 >"$metadata"

python3 - "$metadata" <<'EOF'
import json
import re
import sys

EDITION_2024 = (1, 85)


def version(text):
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))[:3]


meta = json.load(open(sys.argv[1]))
packages = {p["id"]: p for p in meta["packages"]}
members = [packages[i] for i in meta["workspace_members"]]
failures = []

for member in members:
    manifest = open(member["manifest_path"]).read()
    if not re.search(r"(?m)^rust-version\.workspace\s*=\s*true\s*$", manifest):
        failures.append(f"{member['manifest_path']}: no `rust-version.workspace = true`")

declared = {m["rust_version"] for m in members}
if len(declared) != 1 or None in declared:
    failures.append(f"workspace members declare {sorted(map(str, declared))}, not one version")
    ours = max((version(v) for v in declared if v), default=(0, 0, 0))
else:
    ours = version(declared.pop())

floor, floor_by, undeclared = (0, 0, 0), [], []
member_ids = set(meta["workspace_members"])
for node in meta["resolve"]["nodes"]:
    if node["id"] in member_ids:
        continue
    package = packages[node["id"]]
    if not package.get("rust_version"):
        undeclared.append(package["name"])
        continue
    needed = version(package["rust_version"])
    if needed > ours:
        failures.append(
            f"{package['name']} {package['version']} needs Rust {package['rust_version']}"
        )
    if needed > floor:
        floor, floor_by = needed, [package["name"]]
    elif needed == floor:
        floor_by.append(package["name"])

if ours < version("%d.%d" % EDITION_2024):
    failures.append("edition 2024 needs Rust 1.85 or newer")

show = lambda v: ".".join(map(str, v))
print(f"msrv.sh: declared rust-version {show(ours)}; locked dependencies need at least "
      f"{show(floor)} ({', '.join(sorted(set(floor_by)))})")
print(f"msrv.sh: {len(undeclared)} locked packages declare no rust-version (not checked)")
if ours > floor and ours > version("%d.%d" % EDITION_2024):
    print(f"msrv.sh: note: {show(ours)} is above what dependencies and the edition need; "
          "keep it only if our own code needs it (clippy's incompatible_msrv would say)")
for failure in failures:
    print(f"msrv.sh: FAIL: {failure}", file=sys.stderr)
sys.exit(1 if failures else 0)
EOF
