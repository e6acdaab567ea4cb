#!/usr/bin/env bash
# The performance report of issue 6: the floor server, Postfix's scache and
# ours side by side, measured by scache-load in one run.
#
# Usage: scripts/bench-report.sh [options]
#
# For every workload in --workloads and every K in --clients, and for the
# fill workload at every size in --fill (K = --fill-clients), runs
# "scache-load --compare" (floor, postfix, ours, interleaved, --runs runs
# each, medians), then writes to --out:
#   results.csv    one row per (configuration, daemon): medians and min/max
#   results.jsonl  the same with every run
#   syscalls.txt   strace -c syscalls per cycle, K=1 (unless --no-strace)
#   report.md      the markdown tables, the commands and the machine state
#   bench-fill.svg the plot of scripts/plot-bench.py (if python3 exists)
#   run.log        everything scache-load printed
#
# Options:
#   --runs R            runs per daemon and configuration (default 3)
#   --duration S        seconds measured per run (default 3)
#   --warmup S          seconds run before measuring (default 0.5)
#   --clients "K..."    client counts (default "1 8 64")
#   --workloads "W..."  workloads (default "endp dest miss")
#   --fill "N..."       fill sizes; "max" = hard RLIMIT_NOFILE - 500
#                       (default "1000 10000 max")
#   --fill-clients K    clients for the fill runs (default 8)
#   --pin               pin: the daemon on the last CPU, the load generator
#                       on the others. Steadier on a quiet machine (the
#                       scheduler cannot put both on one CPU, which
#                       serialises them), but on a machine shared with other
#                       busy processes a pinned process can stall for 100 ms
#                       and more; so by default nothing is pinned
#   --other-mode "K..." also measure endp and dest at these K in the other
#                       pinning mode, for comparison (default "8"; "" for
#                       none)
#   --no-strace         skip the syscall profile
#   --ours PATH         our daemon (default: scache in the release target dir)
#   --out DIR           output directory (default: <target dir>/bench-report)
#   --no-build          do not run cargo build first
#   --quick             1 run of 1 s, K "1 8", fill "1000 5000": checks the
#                       script, not the daemons
#   -h, --help          this text
#
# Exit status: 0 when every measurement ran (whatever the numbers), 1 when
# one failed (a daemon gave a wrong answer or died), 2 on bad usage.
set -euo pipefail

me=${0##*/}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

runs=3
duration=3
warmup=0.5
clients="1 8 64"
workloads="endp dest miss"
fills="1000 10000 max"
fill_clients=8
pin=
other_k="8"
strace_on=1
ours=
out=
build=1

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
die() { printf '%s: %s\n' "$me" "$*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case $1 in
        --runs) runs=$2; shift ;;
        --duration) duration=$2; shift ;;
        --warmup) warmup=$2; shift ;;
        --clients) clients=$2; shift ;;
        --workloads) workloads=$2; shift ;;
        --fill) fills=$2; shift ;;
        --fill-clients) fill_clients=$2; shift ;;
        --pin) pin=--pin ;;
        --no-pin) pin= ;;
        --other-mode) other_k=$2; shift ;;
        --no-strace) strace_on= ;;
        --ours) ours=$2; shift ;;
        --out) out=$2; shift ;;
        --no-build) build= ;;
        --quick) runs=1; duration=1; clients="1 8"; fills="1000 5000"; other_k="" ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
if [ -n "$pin" ]; then other_pin=; else other_pin=--pin; fi

cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}
bin=$target/release
if [ -n "$build" ]; then
    cargo build --release -q -p scache-benches -p scache-bin
fi
load=$bin/scache-load
[ -x "$load" ] || die "$load not found (build scache-benches, or drop --no-build)"
[ -n "$ours" ] || ours=$bin/scache
out=${out:-$target/bench-report}
mkdir -p "$out"
csv=$out/results.csv
jsonl=$out/results.jsonl
log=$out/run.log
: >"$log"
: >"$jsonl"
"$load" --csv-header >"$csv"

# Both the daemon and this process need one descriptor per cached session.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ]; then hard=1048576; fi
max_fill=$((hard - 500))

common=(--compare --ours "$ours" --runs "$runs" --duration "$duration" --warmup "$warmup" --json --csv)
failed=0
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u +%FT%TZ)

measure() {
    # measure ARGS...: one scache-load --compare run, rows appended.
    local res
    printf '\n=== scache-load %s\n' "$*" | tee -a "$log" >&2
    if res=$("$load" "${common[@]}" "$@" 2>>"$log"); then
        grep '^{' <<<"$res" >>"$jsonl" || true
        grep -v '^{' <<<"$res" >>"$csv" || true
        tail -n 12 "$log" | sed -n '/^workload /,$p' >&2
    else
        failed=1
        tail -n 5 "$log" >&2
    fi
}

for w in $workloads; do
    for k in $clients; do
        measure $pin --workload "$w" --clients "$k"
    done
done
for k in $other_k; do
    for w in endp dest; do
        measure $other_pin --workload "$w" --clients "$k"
    done
done
for n in $fills; do
    [ "$n" = max ] && n=$max_fill
    measure $pin --workload fill --fill "$n" --clients "$fill_clients"
done

load_after=$(cut -d' ' -f1-3 /proc/loadavg)

sys=$out/syscalls.txt
: >"$sys"
if [ -n "$strace_on" ]; then
    if command -v strace >/dev/null; then
        for d in floor postfix ours; do
            for w in endp dest miss; do
                "$load" --daemon "$d" --ours "$ours" --workload "$w" --clients 1 --cycles 5000 \
                    --strace "$out/strace-$d-$w.txt" 2>>"$log" | grep 'syscalls per cycle' \
                    | sed "s/^/$w K=1 /" >>"$sys" || echo "$w K=1 $d: n/a" >>"$sys"
            done
        done
    else
        echo "strace not installed (apt-get install strace)" >"$sys"
    fi
fi

svg=$out/bench-fill.svg
plot_note="(python3 not found: no plot)"
if command -v python3 >/dev/null && python3 "$here/plot-bench.py" "$csv" "$svg"; then
    plot_note="![cycles/s and daemon CPU per cycle against cached sessions]($(basename "$svg"))"
fi

commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=
if git -C "$root" status --porcelain 2>/dev/null | grep -q .; then
    dirty=" (with uncommitted changes)"
fi
{
    echo "# scache performance report"
    echo
    echo "Generated by \`scripts/bench-report.sh\` on $started, commit $commit$dirty."
    echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), kernel $(uname -r)."
    echo "Load average (1/5/15 min) before: $load_before, after: $load_after."
    echo "Each configuration: $runs run(s) of ${duration}s (after ${warmup}s warm-up) per daemon, runs interleaved"
    echo "floor/postfix/ours, medians; a fresh daemon for every run, started the way master starts it."
    if [ -n "$pin" ]; then
        echo "Pinned (\`--pin\`): the daemon on the last CPU, the load generator on the others,"
        echo "except the rows measured without pinning for comparison."
    else
        echo "Not pinned: the scheduler places the daemon and the load generator; rows marked"
        echo "*(pinned)* ran with \`--pin\` (the daemon on the last CPU, the load generator on the others)."
    fi
    echo
    echo "Command: \`scache-load ${common[*]} $pin --workload W --clients K\` (and \`--workload fill --fill N --clients $fill_clients\`)."
    echo
    "$load" --markdown "$csv"
    echo
    echo "Spread of cycles/s between runs (min-max) is in \`results.csv\`."
    echo
    echo "$plot_note"
    echo
    if [ -s "$sys" ]; then
        echo "Syscalls per cycle (\`strace -c -f\` attached to the daemon, K=1, 5000 cycles):"
        echo
        sed 's/^/    /' "$sys"
        echo
    fi
} >"$out/report.md"

echo "$me: wrote $out/report.md, $csv, $jsonl" >&2
exit "$failed"
