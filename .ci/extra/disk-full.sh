#!/usr/bin/env bash
# A full disk loses no acknowledged upload, and starts on it leave a database that opens once
# space is freed; on a nearly full one, uploads get 503 insufficient-storage below the free-space
# reserve until space is freed (node/tests/it/disk_full.rs). Mounts a 32 MiB tmpfs of its own
# (CI runs as root); fails, never skips, when it cannot. The tests share the mount: one at a
# time.
set -euo pipefail
cd "$(dirname "$0")/../.."
mount_dir=$(mktemp -d)
mount -t tmpfs -o size=32m tmpfs "$mount_dir"
trap 'umount "$mount_dir"; rmdir "$mount_dir"' EXIT
EPHEMERA_FULL_DISK_DIR="$mount_dir" cargo test --locked -p ephemera-node --test it \
  disk_full -- --ignored --nocapture --test-threads=1
