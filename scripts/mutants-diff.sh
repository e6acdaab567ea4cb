#!/usr/bin/env bash
# Mutation testing of what a change touched: cargo-mutants --in-diff on the
# mutation-tested code (all of scache-core; scache-proto's attr, message,
# server and client modules; scache-bin's backend.rs), with the same test
# sets as the full runs in docs/testing.md, within a time budget.
#
# Usage: scripts/mutants-diff.sh [BASE]
#   BASE   the commit to diff against (default HEAD~1: the last commit).
#
# Environment:
#   MUTANTS_BUDGET   seconds for all three packages together (default 360)
#   MUTANTS_JOBS     parallel cargo-mutants jobs (default 2)
#   MUTANTS_TIMEOUT  test timeout per mutant, seconds (default 90)
#   MUTANTS_OUT      where the mutants.out directories go
#                    (default target/mutants-diff)
#   MUTANTS_MEM_KB   address-space limit for cargo-mutants and everything it
#                    runs, in KiB (default 8 GiB): some mutants make a test
#                    allocate without bound (an iterator that never ends),
#                    which must fail that test, not exhaust the machine
#
# Equivalent mutants are excluded by .cargo/mutants.toml (each with its
# reason). Exit status:
#   0  every mutant on a changed line was caught (or no such mutant), or a
#      mutant made the tests hang (cargo-mutants counts that as a timeout:
#      the suite did not pass with it, so it is reported but not a failure);
#   1  a mutant was missed, the unmutated tree failed its tests, or
#      cargo-mutants could not run;
#   2  on a usage error.
# When the budget runs out, whatever was missed so far still fails the run,
# and the output says INCOMPLETE with how many mutants were left untested.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."

base="${1:-HEAD~1}"
budget="${MUTANTS_BUDGET:-360}"
jobs="${MUTANTS_JOBS:-2}"
test_timeout="${MUTANTS_TIMEOUT:-90}"
out="${MUTANTS_OUT:-target/mutants-diff}"
mem_kb="${MUTANTS_MEM_KB:-8388608}"

if [ "$#" -gt 1 ]; then
    echo "usage: $0 [BASE]" >&2
    exit 2
fi
if ! git rev-parse --verify --quiet "$base^{commit}" >/dev/null; then
    echo "mutants-diff: no commit $base to diff against (shallow clone?)" >&2
    exit 1
fi
if ! cargo mutants --version >/dev/null 2>&1; then
    echo "mutants-diff: cargo-mutants is not installed (cargo install --locked cargo-mutants)" >&2
    exit 1
fi

# What each package is tested with; keep in step with docs/testing.md.
core_files=(scache-core/src)
proto_files=(scache-proto/src/attr.rs scache-proto/src/message.rs scache-proto/src/server.rs scache-proto/src/client)
backend_files=(scache-bin/src/backend.rs)

mkdir -p "$out"
deadline=$(($(date +%s) + budget))
status=0
incomplete=()

# run NAME PATHSPEC... -- CARGO_MUTANTS_ARGS...
run() {
    local name=$1
    shift
    local paths=()
    while [ "$1" != "--" ]; do
        paths+=("$1")
        shift
    done
    shift
    local diff="$out/$name.diff"
    git diff "$base" -- "${paths[@]}" >"$diff"
    if [ ! -s "$diff" ]; then
        echo "mutants-diff: $name: no change since $base"
        return
    fi
    local left=$((deadline - $(date +%s)))
    if [ "$left" -le 30 ]; then
        echo "mutants-diff: $name: INCOMPLETE: no time left in the ${budget}s budget; its changed lines were not mutation-tested"
        incomplete+=("$name")
        return
    fi
    echo "mutants-diff: $name: changed since $base: $(grep -c '^+++ ' "$diff") file(s); ${left}s of budget left"
    local rc=0
    ( ulimit -v "$mem_kb" && exec timeout --signal=INT --kill-after=30 "$left" \
        cargo mutants --in-diff "$diff" --jobs "$jobs" --timeout "$test_timeout" \
        --no-shuffle --colors never -o "$out/$name" "$@" ) || rc=$?
    local mo="$out/$name/mutants.out"
    local missed=0 timeouts=0 caught=0
    [ -f "$mo/missed.txt" ] && missed=$(grep -c . "$mo/missed.txt")
    [ -f "$mo/timeout.txt" ] && timeouts=$(grep -c . "$mo/timeout.txt")
    [ -f "$mo/caught.txt" ] && caught=$(grep -c . "$mo/caught.txt")
    case "$rc" in
        0) echo "mutants-diff: $name: ok ($caught caught)" ;;
        2)
            echo "mutants-diff: $name: FAILED: $missed mutant(s) missed:"
            sed 's/^/    /' "$mo/missed.txt"
            status=1
            ;;
        3) echo "mutants-diff: $name: ok ($caught caught; $timeouts made the tests hang, counted as caught)" ;;
        124 | 130 | 137)
            echo "mutants-diff: $name: INCOMPLETE: the budget ran out ($caught caught, $missed missed so far)"
            incomplete+=("$name")
            if [ "$missed" -gt 0 ]; then
                sed 's/^/    missed: /' "$mo/missed.txt"
                status=1
            fi
            ;;
        *)
            echo "mutants-diff: $name: FAILED: cargo-mutants exited with $rc (baseline tests failing?)"
            status=1
            ;;
    esac
}

run scache-core "${core_files[@]}" -- -p scache-core
# The four tests against Postfix's own daemon (real_postfix.rs, names
# ending in against_postfix or agrees_with_postfix) are left out: the
# results must not depend on whether Postfix is installed.
run scache-proto "${proto_files[@]}" -- -p scache-proto \
    -f scache-proto/src/attr.rs -f scache-proto/src/message.rs \
    -f scache-proto/src/server.rs -f 'scache-proto/src/client/*.rs' \
    -- -- --skip against_postfix --skip agrees_with_postfix
# backend.rs is tested by scache-bin's unit tests and `beyond`, and by
# scache-testkit's fuzz corpus replay. cargo-mutants 27 runs its baseline
# with the mutated package's tests only (where `--test fuzz_corpus` does
# not exist), so the baseline is skipped: CI has just run these tests on
# the unmutated tree.
run backend "${backend_files[@]}" -- -p scache-bin -f scache-bin/src/backend.rs \
    --test-package scache-bin --test-package scache-testkit --baseline skip \
    -- --lib --test beyond --test fuzz_corpus

if [ "${#incomplete[@]}" -gt 0 ]; then
    echo "mutants-diff: INCOMPLETE for ${incomplete[*]}: raise MUTANTS_BUDGET or run the full commands in docs/testing.md"
fi
exit "$status"
