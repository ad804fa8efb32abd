#!/usr/bin/env bash
# Installs everything the gateway needs to build, run and test, idempotently.
#   scripts/setup.sh            native + wasm toolchain, npm packages
#   scripts/setup.sh --fuzz     also cargo-fuzz
#   scripts/setup.sh --browser  also Debian's chromium, for the browser test
#   scripts/setup.sh --schemathesis  also schemathesis in a virtualenv, for scripts/api-fuzz.sh
#   (flags combine: scripts/setup.sh --fuzz --browser --schemathesis)
# Route 1: rustup's wasm32 target. Route 2 (fallback, when rustup cannot
# download): Debian's rustc-web with -Zbuild-std (see docs/DEPLOY.md).
set -euo pipefail
cd "$(dirname "$0")/.."

WASM_BINDGEN_VERSION=0.2.129
WORKER_BUILD_VERSION=0.8.7
CARGO_FUZZ_VERSION=0.13.2
SCHEMATHESIS_VERSION=4.32.5
RUST_WEB_VERSION=1.96.0+dfsg1-1~deb12u2
TOOLS="${GATEWAY_TOOLS:-$HOME/.local/share/progress-gateway}"
mkdir -p "$TOOLS/bin"

log() { printf '[setup] %s\n' "$*" >&2; }

FUZZ=
BROWSER=
SCHEMATHESIS=
for arg in "$@"; do
  case "$arg" in
    --fuzz) FUZZ=1 ;;
    --browser) BROWSER=1 ;;
    --schemathesis) SCHEMATHESIS=1 ;;
    *) echo "[setup] unknown option $arg (--fuzz, --browser, --schemathesis)" >&2; exit 2 ;;
  esac
done

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
if [ -n "$FUZZ" ]; then
  install_crate cargo-fuzz "$CARGO_FUZZ_VERSION" cargo-fuzz
fi

# --- npm from the lockfile: wrangler (workerd), binaryen (wasm-opt), and the
# TypeScript client's and page's tools (typescript, ws, playwright-core) ------
if [ ! -x node_modules/.bin/wrangler ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
# --- browser test: Debian's chromium, driven by playwright-core (never a
# browser download). Not version-pinned: Debian's security archive keeps only
# the current chromium, and playwright-core speaks the stable DevTools protocol.
if [ -n "$BROWSER" ] && [ ! -x /usr/bin/chromium ]; then
  log "apt-get install chromium"
  apt_once chromium
fi
# --- API fuzzing: schemathesis from PyPI, pinned, in its own virtualenv -------
if [ -n "$SCHEMATHESIS" ]; then
  venv="$TOOLS/venv"
  if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    command -v python3 >/dev/null || apt_once python3 python3-venv
    python3 -m venv "$venv" >&2 || { apt_once python3-venv; python3 -m venv "$venv" >&2; }
    log "pip install schemathesis==$SCHEMATHESIS_VERSION"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" >&2
  fi
fi
log "ready (wasm route: $route)"
