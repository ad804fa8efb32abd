#!/usr/bin/env bash
# Sets up, builds the Worker, starts it in local workerd, runs the demo job end
# to end with a live progress bar, then keeps the gateway serving, with the demo
# page (web/: a job watched by the TypeScript client), until Ctrl-C.
#   PORT=8787 PAGE_PORT=8788 scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${GATEWAY_TOOLS:-$HOME/.local/share/progress-gateway}/bin:$HOME/.cargo/bin:$PATH"
PORT="${PORT:-8787}"
PAGE_PORT="${PAGE_PORT:-8788}"
PERSIST="${PERSIST_DIR:-.wrangler/demo-state}"

scripts/setup.sh
scripts/build-worker.sh
cargo build --release -q -p gateway-client --bin progress-gateway
node_modules/.bin/tsc -p clients/ts

[ -f .dev.vars ] || cp .dev.vars.example .dev.vars
SECRET="$(sed -n 's/^PRODUCER_SECRET=//p' .dev.vars | head -n1)"

log="$(mktemp)"
setsid env WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false WRANGLER_HIDE_BANNER=true \
  node_modules/.bin/wrangler dev --local --ip 127.0.0.1 --port "$PORT" --persist-to "$PERSIST" \
  >"$log" 2>&1 &
WRANGLER=$!
PAGE=
stop() {
  if [ -n "$PAGE" ]; then kill "$PAGE" 2>/dev/null || true; wait "$PAGE" 2>/dev/null || true; fi
  kill -- "-$WRANGLER" 2>/dev/null || true; wait "$WRANGLER" 2>/dev/null || true; rm -f "$log"
}
trap stop EXIT
trap 'exit 130' INT TERM

for _ in $(seq 1 360); do # wrangler runs the [build] command again first: allow 3 min on a busy machine
  curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  if ! kill -0 "$WRANGLER" 2>/dev/null; then cat "$log"; echo "wrangler exited" >&2; exit 1; fi
  sleep 0.5
done
curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null || { cat "$log"; exit 1; }

# The secret through the environment: an argument would show in `ps`.
PRODUCER_SECRET="$SECRET" target/release/progress-gateway demo --url "http://127.0.0.1:$PORT"

# The page's server plays the app's backend: it alone holds the producer secret.
PRODUCER_SECRET="$SECRET" node web/server.mjs --gateway "http://127.0.0.1:$PORT" --port "$PAGE_PORT" &
PAGE=$!

cat <<TXT

The gateway keeps serving (Ctrl-C stops it):
  page       http://127.0.0.1:$PAGE_PORT/   (a new demo job per load: progress, reconnects, cancel)
  health     http://127.0.0.1:$PORT/healthz
  create     POST http://127.0.0.1:$PORT/api/jobs   (Authorization: Bearer \$PRODUCER_SECRET from .dev.vars)
  subscribe  ws://127.0.0.1:$PORT/ws/progress?jobId=…&token=…
  watch      GATEWAY_TOKEN=<token> target/release/progress-gateway watch --url http://127.0.0.1:$PORT --job <jobId>
TXT
wait "$WRANGLER"
