#!/usr/bin/env bash
# User-space instructions per cycle of each daemon, counted by
# valgrind --tool=callgrind: for each daemon and workload, the instruction
# count of a run of 4,000 cycles minus that of a run of 2,000, divided by
# 2,000; one client (scache-load --clients 1, blocking), the daemon started
# the way master starts it (the harness). The count repeats exactly for the
# same binary and inputs, whatever else the machine is doing, so it is the
# figure to judge an optimisation by.
#
# Usage: scripts/callgrind-cycles.sh [--daemons "floor postfix ours"]
#            [--workloads "endp dest"] [--small N] [--large N] [--markdown]
#            [--ours PATH] [--no-build]
#
# Prints one line per daemon and workload (or a markdown table), and the
# ratios to the floor.
set -euo pipefail

me=${0##*/}
root=$(cd "$(dirname "$0")/.." && pwd)
daemons="floor postfix ours"
workloads="endp dest"
small=2000
large=4000
markdown=
build=1
ours=

while [ $# -gt 0 ]; do
    case $1 in
        --daemons) daemons=$2; shift ;;
        --workloads) workloads=$2; shift ;;
        --small) small=$2; shift ;;
        --large) large=$2; shift ;;
        --markdown) markdown=1 ;;
        --ours) ours=$2; shift ;;
        --no-build) build= ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) printf '%s: unknown option %s\n' "$me" "$1" >&2; exit 2 ;;
    esac
    shift
done

command -v valgrind >/dev/null || { echo "$me: valgrind is not installed" >&2; exit 1; }
target=$(cd "$root" && cargo metadata --format-version 1 --no-deps 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
if [ -n "$build" ]; then
    (cd "$root" && cargo build --release -q -p scache-bin -p scache-benches)
fi
load=$target/release/scache-load
[ -n "$ours" ] || ours=$target/release/scache
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

program_of() {
    case $1 in
        floor) echo "$target/release/scache-floor" ;;
        postfix) echo /usr/lib/postfix/sbin/scache ;;
        ours) echo "$ours" ;;
    esac
}

# Instructions counted in the daemon for one run of $3 cycles of workload
# $2 with daemon $1. The harness gives the daemon no PATH: the wrapper
# names everything absolutely.
count() {
    local daemon=$1 workload=$2 cycles=$3 out=$tmp/$1-$2-$3
    local program
    program=$(program_of "$daemon")
    mkdir -p "$out"
    cat > "$out/wrap" <<EOF
#!/bin/sh
exec $(command -v valgrind) --tool=callgrind --callgrind-out-file=$out/callgrind.%p $program "\$@"
EOF
    chmod +x "$out/wrap"
    local floor_io=()
    [ "$daemon" = floor ] && floor_io=(--floor "$out/wrap")
    if [ "$daemon" = floor ]; then
        "$load" --daemon floor "${floor_io[@]}" --io blocking --clients 1 \
            --cycles "$cycles" --workload "$workload" >"$out/log" 2>&1
    else
        "$load" --daemon "$out/wrap" --io blocking --clients 1 \
            --cycles "$cycles" --workload "$workload" >"$out/log" 2>&1
    fi || { echo "$me: $daemon $workload $cycles cycles failed:" >&2; cat "$out/log" >&2; exit 1; }
    local total
    total=$(awk '/^totals:/ {s += $2} END {print s + 0}' "$out"/callgrind.*)
    [ "$total" -gt 0 ] || { echo "$me: no callgrind output for $daemon" >&2; exit 1; }
    echo "$total"
}

declare -A per_cycle
for d in $daemons; do
    program=$(program_of "$d")
    if [ ! -x "$program" ]; then
        echo "$me: $d: $program not found, skipped" >&2
        continue
    fi
    for w in $workloads; do
        a=$(count "$d" "$w" "$small")
        b=$(count "$d" "$w" "$large")
        per_cycle[$d,$w]=$(( (b - a) / (large - small) ))
    done
done

commit=$(git -C "$root" rev-parse --short HEAD)
dirty=$(git -C "$root" status --porcelain --untracked-files=no | grep -q . && echo ", dirty tree" || true)
if [ -n "$markdown" ]; then
    echo "User-space instructions per cycle (callgrind; ($large-cycle run - $small-cycle run) / $((large - small)); one blocking client; commit $commit$dirty):"
    echo
    printf '| workload |'; for d in $daemons; do printf ' %s |' "$d"; done
    for d in $daemons; do [ "$d" = floor ] || printf ' %s/floor |' "$d"; done; echo
    printf '|---|'; for d in $daemons; do printf -- '---:|'; done
    for d in $daemons; do [ "$d" = floor ] || printf -- '---:|'; done; echo
fi
for w in $workloads; do
    if [ -n "$markdown" ]; then
        printf '| %s |' "$w"
        for d in $daemons; do printf ' %s |' "${per_cycle[$d,$w]:--}"; done
        for d in $daemons; do
            [ "$d" = floor ] && continue
            if [ -n "${per_cycle[floor,$w]:-}" ] && [ -n "${per_cycle[$d,$w]:-}" ]; then
                printf ' %s |' "$(python3 -c "print(f'{${per_cycle[$d,$w]}/${per_cycle[floor,$w]}:.2f}')")"
            else
                printf ' - |'
            fi
        done
        echo
    else
        for d in $daemons; do
            printf '%-8s %-5s %8s instructions/cycle\n' "$d" "$w" "${per_cycle[$d,$w]:--}"
        done
    fi
done
