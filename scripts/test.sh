#!/usr/bin/env bash
# Sets up and runs every test: format, lints, unit/scenario/property tests,
# the end-to-end suite against the real Worker in local workerd, the
# TypeScript client (type check, tests, conformance vectors), the demo page in
# headless Chromium against the real Worker, bounded API fuzzing from the
# OpenAPI document (schemathesis), the mutants of the last commit's
# core changes, a smoke run of the benchmark, the model check and bounded
# fuzzing of every target.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${GATEWAY_TOOLS:-$HOME/.local/share/progress-gateway}/bin:$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR=never

step() { printf '\n=== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

step "setup"
scripts/setup.sh --fuzz --browser --schemathesis

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p gateway-sim --all-targets --features fuzzing -- -D warnings

step "the core stays sans-IO: no worker, tokio, wasm or test machinery in gateway-core's dependencies"
if cargo tree -p gateway-core -e normal --prefix none | grep -E '^(worker|tokio|wasm-bindgen|js-sys|gateway-sim|arbitrary)[ -]'; then
  echo "gateway-core must not depend on the runtime or on gateway-sim" >&2
  exit 1
fi

step "cargo test --workspace (unit, scenarios, properties, end-to-end in workerd)"
cargo test --workspace

step "TypeScript client: type check and build, unit and shell tests, conformance vectors"
node_modules/.bin/tsc -p clients/ts
node --test --test-timeout=30000 clients/ts/test/*.test.mjs

step "browser test: the demo page in headless Chromium against the real Worker (bounded: 300 s)"
[ -f build/index.js ] || scripts/build-worker.sh
timeout 300 node --test --test-timeout=120000 web/test/browser.test.mjs

step "API fuzzing: schemathesis from docs/openapi.json against the local Worker (bounded: scripts/api-fuzz.sh)"
scripts/api-fuzz.sh

step "mutation check: the last commit's mutants in the rules-pinned core files (scripts/mutants.sh ci)"
scripts/mutants.sh ci

step "benchmark smoke run: scripts/bench.sh --smoke (baselines build and run; ~60 s)"
scripts/bench.sh --smoke >/dev/null

step "model check: cargo run -p model --release"
cargo run -p model --release

step "fuzz (bounded)"
scripts/fuzz.sh ci

step "all tests passed"
