#!/usr/bin/env bash
# Mutation testing of the core with cargo-mutants (pinned, installed here
# idempotently): each mutant is a small bug put into a production file; a test
# must fail for it. See docs/TESTING.md.
#   scripts/mutants.sh full            the campaign: every production file of
#                                      the core (the test machinery is the
#                                      separate crate gateway/sim),
#                                      checked by gateway-core's and
#                                      gateway-client's tests (about 3 h;
#                                      `--sharding round-robin --shard 0/2`
#                                      runs every other mutant)
#   scripts/mutants.sh ci              what CI runs: the mutants of the lines
#                                      the last commit changed in the files
#                                      the rules tests pin, checked by the
#                                      core's unit and rules tests; fails on a
#                                      timeout or a miss not accepted in
#                                      docs/TESTING.md (at most 40 mutants)
#   scripts/mutants.sh file PATH...    only these files, gateway-core's tests
#                                      (and gateway-client's, when the client
#                                      machine client.rs is among them)
#     MUTANTS_TESTS="rules_client scenarios" narrows file mode to these test
#     targets of gateway-core (built and run; no unit tests, no client
#     crate): a quick loop while writing tests. Extra cargo-mutants options
#     go after the files (e.g. --iterate, --re REGEX).
# MUTANTS_JOBS (default 1) mutants build and test at once; MUTANTS_TIMEOUT
# (default 30) seconds per test run. Output: mutants.out/ (gitignored).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

CARGO_MUTANTS_VERSION=27.1.0
TOOLS="${GATEWAY_TOOLS:-$HOME/.local/share/progress-gateway}"
export PATH="$TOOLS/bin:$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR=never
JOBS="${MUTANTS_JOBS:-1}"
TIMEOUT="${MUTANTS_TIMEOUT:-30}"
# No debug info: mutants link faster and tests read no backtraces.
export CARGO_PROFILE_TEST_DEBUG=false
# One mutant at a time can share a target folder with the runs before it, so
# only the first run builds the dependencies.
if [ "$JOBS" = 1 ]; then export CARGO_TARGET_DIR="${MUTANTS_TARGET_DIR:-$ROOT/target/mutants}"; fi
# The files whose rules gateway/core/tests/rules_*.rs pin; CI mutates these.
PINNED=(http protocol error close_code entropy token timer time client)
# At most this many mutants in one CI run (a fixed slice beyond it).
CI_CAP="${MUTANTS_CI_CAP:-40}"

log() { printf '[mutants] %s\n' "$*" >&2; }

install() {
  if "$TOOLS/bin/cargo-mutants" mutants --version 2>/dev/null | grep -qx "cargo-mutants $CARGO_MUTANTS_VERSION"; then return; fi
  log "cargo install cargo-mutants $CARGO_MUTANTS_VERSION"
  mkdir -p "$TOOLS/bin"
  cargo install --locked --quiet --root "$TOOLS" cargo-mutants --version "$CARGO_MUTANTS_VERSION" >&2
}

# Mutant names without line:column, as docs/TESTING.md lists the accepted ones.
strip_pos() { sed -E 's/^([^:]+):[0-9]+:[0-9]+: /\1: /'; }

# The accepted (equivalent) mutants listed in docs/TESTING.md.
accepted() {
  sed -n '/<!-- accepted-mutants:start -->/,/<!-- accepted-mutants:end -->/p' docs/TESTING.md |
    grep -oE '^- `[^`]+`' | sed -E 's/^- `(.*)`$/\1/'
}

# Per file: caught, missed, timeout, unviable, and the score over viable mutants.
report() {
  local out=mutants.out
  mkdir -p "$out"
  for kind in caught missed timeout unviable; do
    [ -f "$out/$kind.txt" ] || : >"$out/$kind.txt"
  done
  awk -F: '
    FNR == 1 { kind = FILENAME; sub(/.*\//, "", kind); sub(/\.txt$/, "", kind) }
    NF > 1 { n[$1, kind]++; files[$1] = 1; total[kind]++ }
    END {
      printf "%-36s %7s %7s %7s %9s %7s\n", "file", "caught", "missed", "timeout", "unviable", "score"
      for (f in files) {
        v = n[f, "caught"] + n[f, "missed"] + n[f, "timeout"]
        printf "%-36s %7d %7d %7d %9d %6.1f%%\n", f, n[f, "caught"], n[f, "missed"], n[f, "timeout"], n[f, "unviable"], v ? 100 * n[f, "caught"] / v : 100
      }
      v = total["caught"] + total["missed"] + total["timeout"]
      printf "%-36s %7d %7d %7d %9d %6.1f%%\n", "all", total["caught"], total["missed"], total["timeout"], total["unviable"], v ? 100 * total["caught"] / v : 100
    }' "$out/caught.txt" "$out/missed.txt" "$out/timeout.txt" "$out/unviable.txt" |
    { IFS= read -r head; echo "$head"; sort | awk '$1 == "all" { t = $0; next } { print } END { print t }'; }
  local acc
  acc=$(strip_pos <"$out/missed.txt" | sort -u | comm -12 - <(accepted | sort -u) | grep -c . || true)
  echo "of the missed, $acc are accepted as equivalent in docs/TESTING.md"
}

run() { # extra cargo-mutants args...
  local rc=0
  cargo mutants --package gateway-core --jobs "$JOBS" --timeout "$TIMEOUT" \
    --no-shuffle "$@" || rc=$?
  # 0: all caught; 2: some missed; 3: some timed out. Anything else is a failure to run.
  case $rc in 0 | 2 | 3) ;; *) log "cargo mutants failed ($rc)"; exit "$rc" ;; esac
  report
}

mode="${1:-}"
shift || true
case "$mode" in
  full)
    install
    # The test machinery (gateway/sim) is another package: never mutated,
    # but its scenario users in gateway/core/tests run against each mutant.
    run --test-package gateway-core --test-package gateway-client \
      --cargo-test-arg=--lib --cargo-test-arg=--tests "$@"
    ;;
  file)
    [ $# -gt 0 ] || { echo "usage: $0 file gateway/core/src/FILE.rs..." >&2; exit 64; }
    install
    args=(--test-package gateway-core)
    [ -n "${MUTANTS_TESTS:-}" ] || args+=(--cargo-test-arg=--lib)
    extra=()
    for f in "$@"; do
      # The first option ends the files: the rest goes to cargo-mutants.
      if [ ${#extra[@]} -gt 0 ] || [[ $f == -* ]]; then extra+=("$f"); continue; fi
      args+=(--file "$f")
      # The client machine is driven mostly through the client crate's driver.
      case "$f" in */client.rs) [ -n "${MUTANTS_TESTS:-}" ] || args+=(--test-package gateway-client) ;; esac
    done
    if [ -n "${MUTANTS_TESTS:-}" ]; then
      # --cargo-arg, not --cargo-test-arg: each mutant then builds only these
      # targets too, and the mutated crates without optimisation (about 45 s
      # a mutant instead of 2 min on a busy 2-core machine).
      for t in $MUTANTS_TESTS; do args+=("--cargo-arg=--test=$t"); done
      for p in gateway-core gateway-sim; do args+=("--cargo-arg=--config=profile.test.package.$p.opt-level=0"); done
    else
      args+=(--cargo-test-arg=--tests)
    fi
    run "${args[@]}" "${extra[@]}"
    ;;
  ci)
    rm -rf mutants.out
    files=()
    for f in "${PINNED[@]}"; do files+=("gateway/core/src/$f.rs"); done
    if ! git rev-parse -q --verify HEAD^1 >/dev/null; then
      log "no parent commit: no changed lines, nothing to mutate"
      exit 0
    fi
    diff="$(mktemp)"
    trap 'rm -f "$diff"' EXIT
    git diff HEAD^1 HEAD -- "${files[@]}" >"$diff"
    # The unit tests and the rules tests pin these files; the scenarios and
    # properties are left to the full campaign, to keep each mutant short.
    # --cargo-arg, not --cargo-test-arg: each mutant then builds only these
    # targets (as file mode with MUTANTS_TESTS), the mutated crate without
    # optimisation.
    args=(--test-package gateway-core --cargo-arg=--lib '--cargo-arg=--test=rules_*'
      --cargo-arg=--config=profile.test.package.gateway-core.opt-level=0 --in-diff "$diff")
    n=0
    if [ -s "$diff" ]; then
      install
      n=$(cargo mutants --package gateway-core "${args[@]}" --list | grep -c . || true)
    fi
    log "the last commit ($(git rev-parse --short HEAD)) changed $n mutable places in ${PINNED[*]}"
    [ "$n" -gt 0 ] || exit 0
    if [ "$n" -gt "$CI_CAP" ]; then
      # A fixed slice, chosen by the commit: bounded, and the same for a commit.
      shards=$(((n + CI_CAP - 1) / CI_CAP))
      shard=$(($(printf '%d' "0x$(git rev-parse --short=7 HEAD)") % shards))
      log "over $CI_CAP: testing slice $shard of $shards (round robin)"
      args+=(--shard "$shard/$shards" --sharding round-robin)
    fi
    run "${args[@]}"
    missed=$(strip_pos <mutants.out/missed.txt | sort -u | comm -23 - <(accepted | sort -u))
    timeouts=$(cat mutants.out/timeout.txt)
    if [ -n "$missed$timeouts" ]; then
      [ -z "$missed" ] || printf 'missed, and not accepted in docs/TESTING.md:\n%s\n' "$missed" >&2
      [ -z "$timeouts" ] || printf 'timed out (a test must fail, not hang):\n%s\n' "$timeouts" >&2
      exit 1
    fi
    log "every mutant caught or accepted"
    ;;
  *)
    sed -n '2,23p' "$0" >&2
    exit 64
    ;;
esac
