#!/usr/bin/env bash
# The gateway side by side with JavaScript baselines in local workerd
# (docs/PERFORMANCE.md): builds the release Worker and the benchmark client,
# then runs every target in its own `wrangler dev --local` on loopback,
# interleaved over repeats.
#   scripts/bench.sh                 full run (3 repeats, ~12 min on 2 cores):
#                                    target/bench/tables.md and latency.png
#   scripts/bench.sh --repeats 5     more repeats
#   scripts/bench.sh --smoke         every measurement once, small (≤ 90 s
#                                    once built; CI runs it)
# Needs scripts/setup.sh to have run once, and sqlite3 (gateway-only figures).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
export PATH="${GATEWAY_TOOLS:-$HOME/.local/share/progress-gateway}/bin:$HOME/.cargo/bin:$PATH"

smoke=0
for arg in "$@"; do [ "$arg" = "--smoke" ] && smoke=1; done

# The release Worker, unless build/ is newer than everything it is built from.
stale="$(find gateway/worker gateway/core Cargo.toml Cargo.lock scripts/build-worker.sh \
  -path '*/target' -prune -o -newer build/index_bg.wasm -print -quit 2>/dev/null || echo missing)"
if [ ! -f build/index_bg.wasm ] || [ -n "$stale" ]; then
  echo "[bench] building the Worker (release)" >&2
  scripts/build-worker.sh
fi
cargo build --release --quiet -p gateway-bench

# The plot's font: DejaVu Sans from the system, else from npm (pinned).
if [ "$smoke" = 0 ] && [ -z "${BENCH_FONT:-}" ] \
  && [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] \
  && [ ! -f target/bench-font/node_modules/dejavu-fonts-ttf/ttf/DejaVuSans.ttf ]; then
  npm install --no-save --no-audit --no-fund --loglevel=error \
    --prefix target/bench-font dejavu-fonts-ttf@2.37.3 >&2 || echo "[bench] no font: no plot" >&2
fi

command -v sqlite3 >/dev/null || echo "[bench] sqlite3 missing (apt-get install sqlite3): no record sizes or alarm counts" >&2
echo "[bench] load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
exec target/release/gateway-bench "$@"
