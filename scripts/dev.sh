#!/usr/bin/env bash
# Runs the gateway locally in workerd (wrangler dev), loopback only.
#   scripts/dev.sh [PORT]     default 8787; storage persists in .wrangler/state
# wrangler runs scripts/build-worker.sh first (wrangler.toml [build]) and
# rebuilds when gateway/worker or gateway/core sources change.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f .dev.vars ]; then
  cp .dev.vars.example .dev.vars
  echo "dev: created .dev.vars from .dev.vars.example (development secret only)" >&2
fi
export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false
exec node_modules/.bin/wrangler dev --local --ip 127.0.0.1 --port "${1:-8787}" \
  --persist-to .wrangler/state
