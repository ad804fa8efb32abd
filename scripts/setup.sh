#!/usr/bin/env bash
# Installs everything the gateway needs to build, run and test, idempotently.
#   scripts/setup.sh            native + wasm toolchain, npm packages
#   scripts/setup.sh --fuzz     also cargo-fuzz
# Route 1: rustup's wasm32 target. Route 2 (fallback, when rustup cannot
# download): Debian's rustc-web with -Zbuild-std (see docs/DEPLOY.md).
set -euo pipefail
cd "$(dirname "$0")/.."

WASM_BINDGEN_VERSION=0.2.129
WORKER_BUILD_VERSION=0.8.7
CARGO_FUZZ_VERSION=0.13.2
RUST_WEB_VERSION=1.96.0+dfsg1-1~deb12u2
TOOLS="${GATEWAY_TOOLS:-$HOME/.local/share/progress-gateway}"
mkdir -p "$TOOLS/bin"

log() { printf '[setup] %s\n' "$*" >&2; }

apt_once() {
  if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq >/dev/null; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- basics -------------------------------------------------------------------
command -v curl >/dev/null || apt_once curl
command -v cc >/dev/null || apt_once gcc libc6-dev
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "[setup] Node.js >= 20 with npm is required (wrangler 4.86 runs on Node 20)" >&2
  exit 1
fi

# --- wasm target ---------------------------------------------------------
route=rustup
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  log "adding rustup target wasm32-unknown-unknown"
  if ! timeout 300 rustup target add wasm32-unknown-unknown >&2; then
    route=debian
  fi
fi
if [ "$route" = debian ]; then
  log "rustup could not add the target: falling back to Debian rustc-web + -Zbuild-std"
  if ! /usr/bin/rustc --version 2>/dev/null | grep -q '1\.96'; then
    apt_once "rustc-web=$RUST_WEB_VERSION" "cargo-web=$RUST_WEB_VERSION" \
      "rust-web-src=$RUST_WEB_VERSION" "rust-web-llvm=$RUST_WEB_VERSION" lld-22 gcc curl
  fi
  mkdir -p "$TOOLS/rust-web/bin" /usr/lib/rustlib/wasm32-unknown-unknown/lib
  for b in cargo rustc rustdoc; do ln -sf "/usr/bin/$b" "$TOOLS/rust-web/bin/$b"; done
fi
echo "$route" >"$TOOLS/wasm-route"

# --- native tools from crates.io source ------------------------------------
install_crate() { # name version binary
  if "$TOOLS/bin/$3" --version 2>/dev/null | grep -q "$2"; then return; fi
  log "cargo install $1 $2"
  cargo install --locked --quiet --root "$TOOLS" "$1" --version "$2" >&2
}
install_crate wasm-bindgen-cli "$WASM_BINDGEN_VERSION" wasm-bindgen
install_crate worker-build "$WORKER_BUILD_VERSION" worker-build
if [ "${1:-}" = "--fuzz" ]; then
  install_crate cargo-fuzz "$CARGO_FUZZ_VERSION" cargo-fuzz
fi

# --- npm: wrangler (workerd) and binaryen (wasm-opt) from the lockfile -----
if [ ! -x node_modules/.bin/wrangler ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
log "ready (wasm route: $route)"
