#!/usr/bin/env bash
# Model-checks the client's shared state (latest-state cell, stop and
# connection-control signals) with loom: every interleaving, not a sample.
#   scripts/loom.sh                 all loom tests
#   scripts/loom.sh stop_is_never   only tests whose name contains the filter
# Uses its own target dir (a --cfg loom build shares nothing with normal builds).
# LOOM_MAX_PREEMPTIONS bounds the search (default 3 here).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
export RUSTFLAGS="--cfg loom ${RUSTFLAGS:-}"
export CARGO_TARGET_DIR="${LOOM_TARGET_DIR:-$ROOT/target/loom}"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}"
# The workspace release profile has fat LTO for the Worker; not needed here.
export CARGO_PROFILE_RELEASE_LTO=false
export CARGO_PROFILE_RELEASE_OPT_LEVEL=3
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
exec cargo test -p gateway-client --release --lib --no-default-features -- "$@"
