#!/usr/bin/env bash
# Bounded property-based API fuzzing of the real Worker in local workerd from
# docs/openapi.json, with schemathesis (scripts/setup.sh --schemathesis).
#   scripts/api-fuzz.sh                 default bound: 50 examples per operation (~800-1,400 requests, ~30 s)
#   API_FUZZ_EXAMPLES=100 scripts/api-fuzz.sh
# Checks: no 5xx (not_a_server_error) and every answer matches its documented
# schema (response_schema_conformance). Two jobs are created first, so the
# path's jobId and the query's token are real and each route gets the
# credential its security scheme names (producer secret or subscriber token).
# Prints the number of requests schemathesis made (from its HAR report). Stops
# wrangler by its process group, also on failure.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
TOOLS="${GATEWAY_TOOLS:-$HOME/.local/share/progress-gateway}"
ST="$TOOLS/venv/bin/schemathesis"
EXAMPLES="${API_FUZZ_EXAMPLES:-50}"
log() { printf '[api-fuzz] %s\n' "$*" >&2; }

[ -x "$ST" ] || { log "schemathesis missing; run scripts/setup.sh --schemathesis"; exit 1; }
[ -f build/index.js ] || scripts/build-worker.sh

work="$(mktemp -d "${TMPDIR:-/tmp}/api-fuzz-XXXXXX")"
wrangler_pid=
cleanup() {
  if [ -n "$wrangler_pid" ]; then
    kill -TERM -- "-$wrangler_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 -- "-$wrangler_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$wrangler_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port="$(free_port)"
base="http://127.0.0.1:$port"
secret="api-fuzz-secret-$$-$RANDOM$RANDOM"

# The repository's config without its build step, main pointing at the built Worker.
sed -e '/^\[build\]/,/^$/d' -e "s|^main = .*|main = \"$ROOT/build/index.js\"|" wrangler.toml >"$work/wrangler.toml"
printf 'PRODUCER_SECRET=%s\n' "$secret" >"$work/.dev.vars"
mkdir -p "$work/state"

# wrangler prints request lines, with upgrade URLs (token in the query) and
# whatever schemathesis sent: never show a token or a secret.
redact() { sed -E -e 's/(token=)[^&" ]*/\1<token>/g' -e 's/([Bb]earer )[^" ]*/\1<redacted>/g'; }

log "starting wrangler dev --local on $base"
(
  cd "$work"
  export WRANGLER_SEND_METRICS=false WRANGLER_HIDE_BANNER=true CLOUDFLARE_CF_FETCH_ENABLED=false \
    WRANGLER_LOG_PATH="$work/wrangler-debug-logs" NO_COLOR=1
  exec setsid "$ROOT/node_modules/.bin/wrangler" dev --local --config wrangler.toml \
    --ip 127.0.0.1 --port "$port" --inspector-port "$(free_port)" --persist-to "$work/state" \
    --show-interactive-dev-session false
) >"$work/wrangler.log" 2>&1 &
wrangler_pid=$!

for _ in $(seq 120); do
  if curl -fsS --max-time 2 "$base/healthz" >/dev/null 2>&1; then break; fi
  kill -0 "$wrangler_pid" 2>/dev/null || { redact <"$work/wrangler.log" >&2; log "wrangler exited"; exit 1; }
  sleep 0.5
done
curl -fsS --max-time 2 "$base/healthz" >/dev/null || { tail -20 "$work/wrangler.log" | redact >&2; log "not healthy in 60 s"; exit 1; }

create() {
  curl -fsS --max-time 10 -X POST "$base/api/jobs" \
    -H "authorization: Bearer $secret" -H 'content-type: application/json' \
    -d '{"pipeline":"csv_import","totalCount":100000}'
}
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
# One job for the producer routes and the upgrade, another for the subscriber
# routes (a fuzzed cancel must not end the job the events go to).
first="$(create)"; second="$(create)"
job="$(printf '%s' "$first" | field jobId)"; token="$(printf '%s' "$first" | field token)"
job2="$(printf '%s' "$second" | field jobId)"; token2="$(printf '%s' "$second" | field token)"
log "jobs created; fuzzing with at most $EXAMPLES examples per operation"

# schemathesis 4 takes fixed parameter values and credentials from its config
# file; ${VAR} is read from the environment.
cat >"$work/schemathesis.toml" <<'TOML'
[parameters]
"path.jobId" = "${API_FUZZ_JOB}"
"query.jobId" = "${API_FUZZ_JOB}"
"query.token" = "${API_FUZZ_TOKEN}"

[auth.openapi.producerSecret]
bearer = "${API_FUZZ_SECRET}"

[auth.openapi.subscriberToken]
bearer = "${API_FUZZ_TOKEN2}"

[[operations]]
include-operation-id-regex = "^(jobState|cancelJob)$"
parameters = { "path.jobId" = "${API_FUZZ_JOB2}" }
TOML
export API_FUZZ_JOB="$job" API_FUZZ_TOKEN="$token" API_FUZZ_JOB2="$job2" API_FUZZ_TOKEN2="$token2" \
  API_FUZZ_SECRET="$secret"
status=0
timeout 240 "$ST" --config-file "$work/schemathesis.toml" run docs/openapi.json \
  --url "$base" \
  --checks not_a_server_error,response_schema_conformance \
  --max-examples "$EXAMPLES" \
  --seed 1 \
  --workers 1 \
  --request-timeout 10 \
  --report-har-path "$work/requests.har" \
  --no-color >"$work/schemathesis.log" 2>&1 || status=$?
# The log holds the secret and the token in its reproduction commands: print
# it with both masked.
sed -e "s/$secret/<PRODUCER_SECRET>/g" -e "s/$token/<token>/g" -e "s/$token2/<token>/g" \
  "$work/schemathesis.log" | redact >&2
requests="$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["log"]["entries"]))' \
  "$work/requests.har" 2>/dev/null || echo "?")"
log "requests made: $requests; exit status $status"
exit "$status"
