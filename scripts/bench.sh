#!/usr/bin/env bash
# The gateway side by side with JavaScript baselines in local workerd
# (docs/PERFORMANCE.md): builds the release Worker and the benchmark client,
# then runs every target in its own `wrangler dev --local` on loopback,
# interleaved over repeats.
#   scripts/bench.sh                 full run (3 repeats, then the breakdown;
#                                    ~10 min on 2 cores once built):
#                                    target/bench/tables.md and latency.png
#   scripts/bench.sh --repeats 5     more repeats
#   scripts/bench.sh --smoke         every measurement once, small, no
#                                    breakdown (≤ 90 s once built; CI runs it)
#   scripts/bench.sh --breakdown     only the breakdown (target/bench/breakdown.md)
# A full run also runs the core's criterion benchmarks (gateway/core/benches)
# and puts their medians into tables.md.
# The breakdown runs the Worker's benchmark-only `bench-cuts` build (never
# shipped), built here into target/bench/build-cuts.
# Needs scripts/setup.sh to have run once, and sqlite3 (gateway-only figures).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
export PATH="${GATEWAY_TOOLS:-$HOME/.local/share/progress-gateway}/bin:$HOME/.cargo/bin:$PATH"

smoke=0
cuts=1
core=1
for arg in "$@"; do
  case "$arg" in
    --smoke) smoke=1; cuts=0; core=0 ;;
    --quick | --no-breakdown) cuts=0; core=0 ;;
    --breakdown) core=0 ;;
  esac
done

# A Worker build in DIR is stale unless newer than everything it is built from.
stale() {
  [ ! -f "$1/index_bg.wasm" ] && { echo missing; return; }
  find gateway/worker gateway/core Cargo.toml Cargo.lock scripts/build-worker.sh \
    -path '*/target' -prune -o -newer "$1/index_bg.wasm" -print -quit 2>/dev/null || echo missing
}
if [ -n "$(stale build)" ]; then
  echo "[bench] building the Worker (release)" >&2
  scripts/build-worker.sh
fi
if [ "$cuts" = 1 ] && [ -n "$(stale target/bench/build-cuts)" ]; then
  echo "[bench] building the Worker's bench-cuts build (release, for the breakdown)" >&2
  scripts/build-worker.sh --out-dir target/bench/build-cuts --features bench-cuts
fi
cargo build --release --quiet -p gateway-bench

# The core's own cost (criterion, native): read into tables.md.
extra=()
if [ "$core" = 1 ]; then
  echo "[bench] the core's criterion benchmarks (about 1 min once built)" >&2
  rm -rf target/criterion
  cargo bench --quiet -p gateway-core --bench core -- --warm-up-time 1 --measurement-time 3 >/dev/null
  extra=(--core)
fi

# The plot's font: DejaVu Sans from the system, else from npm (pinned).
if [ "$smoke" = 0 ] && [ -z "${BENCH_FONT:-}" ] \
  && [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] \
  && [ ! -f target/bench-font/node_modules/dejavu-fonts-ttf/ttf/DejaVuSans.ttf ]; then
  npm install --no-save --no-audit --no-fund --loglevel=error \
    --prefix target/bench-font dejavu-fonts-ttf@2.37.3 >&2 || echo "[bench] no font: no plot" >&2
fi

command -v sqlite3 >/dev/null || echo "[bench] sqlite3 missing (apt-get install sqlite3): no record sizes or alarm counts" >&2
echo "[bench] load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
target/release/gateway-bench ${extra[@]+"${extra[@]}"} "$@"
echo "[bench] whole command, builds included: ${SECONDS} s" >&2
