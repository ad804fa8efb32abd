#!/usr/bin/env bash
# Builds the Worker (gateway/worker) to wasm, offline: build/index.js + build/index_bg.wasm.
#   scripts/build-worker.sh            release build (what wrangler runs as [build] command)
#   scripts/build-worker.sh --dev      unoptimised build, faster
#   scripts/build-worker.sh --out-dir DIR --features LIST
#                                      another build (scripts/bench.sh builds
#                                      the benchmark-only `bench-cuts` so)
# Needs scripts/setup.sh to have run once. worker-build would download
# wasm-bindgen, wasm-opt and esbuild; the *_BIN variables point it at the pinned
# copies instead (see docs/DEPLOY.md, "Toolchain").
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOOLS="${GATEWAY_TOOLS:-$HOME/.local/share/progress-gateway}"
PROFILE="--release"
OUT="$ROOT/build"
FEATURES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dev) PROFILE="--dev" ;;
    --out-dir) OUT="$(mkdir -p "${2:?--out-dir needs a directory}" && cd "$2" && pwd)"; shift ;;
    --features) FEATURES=(--features "${2:?--features needs a list}"); shift ;;
    *) echo "build-worker: unknown option $1 (--dev, --out-dir DIR, --features LIST)" >&2; exit 2 ;;
  esac
  shift
done

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

# The Worker is built for size (the workspace's release profile stays at "s"
# for native builds such as the model check).
if [ "$PROFILE" = "--release" ]; then export CARGO_PROFILE_RELEASE_OPT_LEVEL=z; fi

cd "$ROOT/gateway/worker"
"$TOOLS/bin/worker-build" "$PROFILE" --out-dir "$OUT" ${FEATURES[@]+"${FEATURES[@]}"}
if [ "$PROFILE" = "--release" ]; then
  # worker-build keeps the wasm name section (--debuginfo); the release drops
  # it (a sixth of the module; panics still log their message). The features
  # are the ones worker-build enables.
  "$WASM_OPT_BIN" "$OUT/index_bg.wasm" -o "$OUT/index_bg.wasm" \
    --strip-debug --strip-producers --enable-mutable-globals --enable-sign-ext \
    --enable-nontrapping-float-to-int --enable-bulk-memory --enable-multivalue \
    --enable-reference-types --enable-exception-handling
fi
