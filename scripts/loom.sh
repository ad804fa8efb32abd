#!/usr/bin/env bash
# Model-checks hand-written shared state with loom: every interleaving, not a sample.
#   scripts/loom.sh [filter]
# No crate has any today: the Rust client's shared state (stop, cancel and
# drop requests, the latest view) is tokio_util's CancellationToken and a
# tokio::sync::watch channel, which tokio model-checks with loom upstream.
# When hand-written shared state returns, put its tests under `cfg(loom)` and
# run them here, e.g.:
#   RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
#     cargo test -p <crate> --release --lib -- "$@"
# (a --cfg loom build shares nothing with normal builds; LOOM_MAX_PREEMPTIONS
# bounds the search).
set -euo pipefail
echo "loom: no hand-written shared state to model-check (see scripts/loom.sh)"
