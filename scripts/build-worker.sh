#!/usr/bin/env bash
# Builds the Worker (gateway/worker) to wasm, offline: build/index.js + build/index_bg.wasm.
#   scripts/build-worker.sh            release build (what wrangler runs as [build] command)
#   scripts/build-worker.sh --dev      unoptimised build, faster
# Needs scripts/setup.sh to have run once. worker-build would download
# wasm-bindgen, wasm-opt and esbuild; the *_BIN variables point it at the pinned
# copies instead (see docs/DEPLOY.md, "Toolchain").
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOOLS="${GATEWAY_TOOLS:-$HOME/.local/share/progress-gateway}"
PROFILE="--release"
if [ "${1:-}" = "--dev" ]; then PROFILE="--dev"; fi

need() { [ -x "$1" ] || { echo "build-worker: $1 missing; run scripts/setup.sh first" >&2; exit 1; }; }
need "$TOOLS/bin/worker-build"
need "$TOOLS/bin/wasm-bindgen"
need "$ROOT/node_modules/binaryen/bin/wasm-opt"
need "$ROOT/node_modules/@esbuild/linux-x64/bin/esbuild"

export WASM_BINDGEN_BIN="$TOOLS/bin/wasm-bindgen"
export WASM_OPT_BIN="$ROOT/node_modules/binaryen/bin/wasm-opt"
export ESBUILD_BIN="$ROOT/node_modules/@esbuild/linux-x64/bin/esbuild"

route="$(cat "$TOOLS/wasm-route" 2>/dev/null || echo rustup)"
if [ "$route" = debian ]; then
  # Debian's rustc-web rebuilds std for wasm32 (no prebuilt rust-std there).
  export PATH="$TOOLS/rust-web/bin:$PATH"
  export RUSTC_BOOTSTRAP=1
  export CARGO_UNSTABLE_BUILD_STD=std,panic_abort
fi

cd "$ROOT/gateway/worker"
exec "$TOOLS/bin/worker-build" "$PROFILE" --out-dir "$ROOT/build"
