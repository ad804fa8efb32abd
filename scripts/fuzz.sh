#!/usr/bin/env bash
# Fuzzes gateway-core with cargo-fuzz on the stable toolchain (RUSTC_BOOTSTRAP=1,
# default AddressSanitizer; see docs/FUZZING.md). Never needs nightly.
#   scripts/fuzz.sh ci                       every target for $FUZZ_SECONDS (60) s,
#                                            fails on any crash, leak, timeout or OOM
#   scripts/fuzz.sh campaign [seconds] [target]
#                                            longer runs (default 600 s, all targets) that
#                                            keep new inputs in fuzz/corpus/<target>, then cmin
#   scripts/fuzz.sh build | list
# CI mode runs a fixed number of executions per target (ci_runs below, about
# 30-40 s each here) from a fixed seed (FUZZ_SEED, default 1), with FUZZ_SECONDS
# as the cap, so every CI run does the same amount of work whatever the load.
# (libFuzzer is not bit-for-bit repeatable even so: runs differ in what they
# find.) Campaigns use a random seed and run for their time.
# Env: FUZZ_SECONDS, FUZZ_SEED, FUZZ_JOBS (targets run at once; default: 2, at most nproc),
#      GATEWAY_TOOLS (where scripts/setup.sh --fuzz put cargo-fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS="${GATEWAY_TOOLS:-$HOME/.local/share/progress-gateway}"
export PATH="$TOOLS/bin:$PATH"
export RUSTC_BOOTSTRAP=1
FUZZ_DIR=fuzz
TARGET_DIR=fuzz/target # its own target dir (gitignored); the workspace's stays untouched
WORK="$TARGET_DIR/run"
DICT=fuzz/dict/protocol.dict
JOBS="${FUZZ_JOBS:-$(($(nproc) < 2 ? 1 : 2))}"

log() { printf '[fuzz] %s\n' "$*" >&2; }

if ! cargo fuzz --version >/dev/null 2>&1; then
  log "cargo-fuzz not found: run scripts/setup.sh --fuzz"
  exit 2
fi

cargo_fuzz() { cargo fuzz "$1" --fuzz-dir "$FUZZ_DIR" "${@:2}"; }
targets() { cargo_fuzz list; }
triple() { rustc -vV | sed -n 's/^host: //p'; }
binary() { echo "$TARGET_DIR/$(triple)/release/$1"; }

build() {
  local start=$SECONDS
  log "building every target (release, debug assertions, AddressSanitizer)"
  cargo_fuzz build --target-dir "$TARGET_DIR" >&2
  log "built in $((SECONDS - start)) s"
}

# Seeds too big to commit, made fresh each run: frames just under and over the
# limits of SPEC §3 (64 KiB subscriber frame, 1 MiB producer body).
generated_seeds() { # target -> directory
  local dir="$WORK/seeds/$1"
  rm -rf "$dir"
  mkdir -p "$dir"
  case "$1" in
    client_frame)
      python3 - "$dir" <<'EOF'
import sys
d = sys.argv[1]
def frame(n):  # a ping padded to exactly n bytes
    head, tail = '{"type":"ping","pad":"', '"}'
    return head + "a" * (n - len(head) - len(tail)) + tail
open(f"{d}/max_65536", "w").write(frame(65536))
open(f"{d}/over_65537", "w").write(frame(65537))
EOF
      ;;
    producer_body)
      python3 - "$dir" <<'EOF'
import sys
d = sys.argv[1]
def body(n):  # a progress event padded to exactly n bytes
    head, tail = '{"type":"progress","processedCount":1,"message":"', '"}'
    return head + "m" * (n - len(head) - len(tail)) + tail
open(f"{d}/max_1048576", "w").write(body(1 << 20))
open(f"{d}/over_1048577", "w").write(body((1 << 20) + 1))
EOF
      ;;
  esac
  echo "$dir"
}

# Executions per target in CI mode: about 40 s each at the rates measured here.
ci_runs() {
  case "$1" in
    client_frame | server_frame) echo 1500000 ;;
    producer_body | client_ops) echo 300000 ;;
    json_frames) echo 200000 ;;
    room_ops) echo 12000 ;;
    *) echo -1 ;; # -1: until the time cap
  esac
}

# Runs one target; its libFuzzer log goes to $WORK/<target>.log.
run_target() { # target seconds corpus-dir [runs seed]
  local t=$1 secs=$2 corpus=$3 dict=() seeds bounds=()
  [ -n "${4:-}" ] && bounds=(-runs="$4" -seed="$5")
  mkdir -p "$corpus" "fuzz/artifacts/$t" "fuzz/corpus/$t"
  seeds=$(generated_seeds "$t")
  case "$t" in client_frame | producer_body | server_frame) dict=(-dict="$DICT") ;; esac
  # The first directory receives new inputs; the committed corpus and the
  # generated seeds are only read.
  local dirs=("$corpus")
  [ "$corpus" != "fuzz/corpus/$t" ] && dirs+=("fuzz/corpus/$t")
  dirs+=("$seeds")
  local rc=0
  "$(binary "$t")" "${dirs[@]}" "${dict[@]}" "${bounds[@]}" \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -detect_leaks=1 \
    -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" \
    >"$WORK/$t.log" 2>&1 || rc=$?
  echo "$rc" >"$WORK/$t.rc"
}

# "exec/s cov ft corpus-files" from a finished log.
stats() {
  local log=$1 done_line
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
  [ -n "$done_line" ] || done_line=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  local execs cov ft corp
  execs=$(sed -n 's/^stat::average_exec_per_sec:[[:space:]]*//p' "$log" | tail -1)
  cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$done_line")
  ft=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$done_line")
  corp=$(sed -n 's/.*corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$done_line")
  echo "${execs:-?} ${cov:-?} ${ft:-?} ${corp:-?}"
}

# Runs targets $JOBS at a time, then prints a table; non-zero if any failed.
fuzz_all() { # seconds keep(0|1) targets...
  local secs=$1 keep=$2
  shift 2
  mkdir -p "$WORK"
  local -A rc=() secs_of=()
  local running=0 t
  for t in "$@"; do
    local s=$secs corpus
    [ "$t" = close_code ] && [ "$s" -gt 10 ] && s=10 # 65,536 inputs in all
    secs_of[$t]=$s
    if [ "$keep" = 1 ]; then corpus="fuzz/corpus/$t"; else
      corpus="$WORK/corpus/$t"
      rm -rf "$corpus"
    fi
    rm -f "$WORK/$t.rc"
    if [ "$keep" = 1 ]; then
      log "$t: ${s} s"
      run_target "$t" "$s" "$corpus" &
    else
      log "$t: $(ci_runs "$t") runs, seed ${FUZZ_SEED:-1}, at most ${s} s"
      run_target "$t" "$s" "$corpus" "$(ci_runs "$t")" "${FUZZ_SEED:-1}" &
    fi
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then
      wait -n || true
      running=$((running - 1))
    fi
  done
  local failed=0
  wait
  for t in "$@"; do rc[$t]=$(cat "$WORK/$t.rc" 2>/dev/null || echo 1); done
  printf '\n%-14s %6s %10s %7s %7s %14s  %s\n' target secs exec/s cov ft corpus result
  for t in "$@"; do
    local result=ok
    if [ "${rc[$t]}" != 0 ]; then
      failed=1
      result="FAILED (exit ${rc[$t]}): $(grep -m1 -oE 'ERROR: [^)]*|panicked at [^ ]*|deadly signal|timeout|out-of-memory|leak' "$WORK/$t.log" || echo see log)"
    fi
    # shellcheck disable=SC2046
    printf '%-14s %6s %10s %7s %7s %14s  %s\n' "$t" "${secs_of[$t]}" $(stats "$WORK/$t.log") "$result"
  done
  if [ "$failed" = 1 ]; then
    for t in "$@"; do
      [ "${rc[$t]}" = 0 ] && continue
      log "---- $t (last lines of $WORK/$t.log)"
      grep -vE '^#[0-9]+' "$WORK/$t.log" | tail -40 >&2
      for a in "fuzz/artifacts/$t"/*; do
        [ -e "$a" ] && log "reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz $t $a"
      done
    done
  fi
  return "$failed"
}

cmin() { # target
  local t=$1 before after
  before=$(find "fuzz/corpus/$t" -type f | wc -l)
  cargo_fuzz cmin --target-dir "$TARGET_DIR" "$t" "fuzz/corpus/$t" >"$WORK/$t.cmin.log" 2>&1
  after=$(find "fuzz/corpus/$t" -type f | wc -l)
  log "$t: corpus $before -> $after files ($(du -sh "fuzz/corpus/$t" | cut -f1))"
}

case "${1:-ci}" in
  list) targets ;;
  build) build ;;
  ci)
    start=$SECONDS
    build
    mapfile -t all < <(targets)
    status=0
    fuzz_all "${FUZZ_SECONDS:-60}" 0 "${all[@]}" || status=$?
    log "fuzz step took $((SECONDS - start)) s"
    exit $status
    ;;
  campaign)
    secs="${2:-600}"
    if [ -n "${3:-}" ]; then all=("$3"); else mapfile -t all < <(targets); fi
    build
    status=0
    fuzz_all "$secs" 1 "${all[@]}" || status=$?
    for t in "${all[@]}"; do cmin "$t"; done
    exit $status
    ;;
  *)
    sed -n '2,12p' "$0" >&2
    exit 2
    ;;
esac
