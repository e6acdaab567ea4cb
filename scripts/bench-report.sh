#!/usr/bin/env bash
# The performance report: the floor server, Postfix's scache and ours side
# by side, measured by scache-load in one run, with the instruction counts,
# memory, a contended comparison and the library benchmarks.
#
# Usage: scripts/bench-report.sh [options]
#
# The comparison: for every workload in --workloads and every K in
# --clients, and for the fill workload at every size in --fill
# (K = --fill-clients), one "scache-load --compare" (floor, postfix and
# ours, runs interleaved, --runs runs each, a fresh daemon started as
# master starts it for every run). Client model: one blocking thread per
# client (--io blocking), as Postfix's delivery agents are separate
# processes each blocking on its own connection. Then, unless --no-epoll,
# the same with one thread driving all clients with epoll (--io epoll), as
# a second table. Then the contended rows: endp and dest at K=--contended
# while one busy-loop process per CPU runs (started and killed by this
# script), each daemon's throughput reported as a fraction of its quiet
# figure from the same repetition; and, as their control, the same rows
# with the busy loops at nice 19: they keep every CPU busy but give up
# their time to the daemons and clients, so a daemon that gains or loses
# there does so because no CPU is ever idle, not because CPU time was
# taken from it. With --repeat N all of that runs N times
# and every ratio is given as the median and range of the N repetitions.
#
# After the comparison (once; these do not need repeating):
#   - user-space instructions per cycle (scripts/callgrind-cycles.sh)
#   - syscalls per cycle at K=1 (strace -c)
#   - the library clients against our daemon (scache-clients: blocking
#     Client vs AsyncClient at 1/8/64 callers)
#   - the SharedCache criterion benchmark (threads 1/2/4/8)
#   - with --core: the cache core criterion benchmark
#     (scripts/criterion-report.sh core)
#
# Writes to --out:
#   report.md       the report: markdown tables, commands, machine state
#   results.jsonl   every measurement (scache-load --json, with "table" and
#                   "rep" added), every run; scripts/bench-tables.py makes
#                   the tables from it
#   fill.csv, bench-fill.svg   the fill rows and their plot
#   run.log         everything the tools printed
#
# Options:
#   --runs R            runs per daemon and configuration (default 3)
#   --duration S        seconds measured per run (default 1)
#   --warmup S          seconds run before measuring (default 0.3)
#   --repeat N          repeat the whole comparison N times (default 2)
#   --clients "K..."    client counts (default "1 8 64")
#   --workloads "W..."  workloads (default "endp dest miss")
#   --fill "N..."       fill sizes; "max" = hard RLIMIT_NOFILE - 500
#                       (default "1000 10000 max"; 19,500 with the usual
#                       20,000 limit)
#   --fill-clients K    clients for the fill runs (default 8)
#   --no-epoll          skip the second table (--io epoll)
#   --epoll-clients "K..."  client counts of the epoll table (default: the
#                       same as --clients)
#   --contended K       K of the contended rows (default 8)
#   --no-contended      skip the contended rows (and their control)
#   --no-control        skip the control rows (busy loops at nice 19)
#   --hogs N            busy-loop processes for the contended rows (default:
#                       one per CPU)
#   --pin               pin everything: the daemon on the last CPU, the
#                       load generator on the others (by default nothing is
#                       pinned: on a shared machine a pinned process can
#                       stall for 100 ms and more)
#   --other-mode "K..." also measure endp and dest at these K in the other
#                       pinning mode, as a third table (default: none)
#   --no-callgrind      skip the instruction counts
#   --no-strace         skip the syscall profile
#   --no-libs           skip scache-clients and the SharedCache benchmark
#   --core              also run the cache core's criterion benchmark
#                       (about 3 minutes more)
#   --ours PATH         our daemon (default: scache in the release target dir)
#   --out DIR           output directory (default: <target dir>/bench-report)
#   --docs              also copy the report to docs/performance.md and the
#                       plot to docs/bench-fill.svg (for a commit that
#                       records the figures of the commit it names)
#   --no-build          do not run cargo build first
#   --quick             check the script, not the daemons (~2 minutes): 1 run
#                       of 0.5 s, --repeat 2, K "1 8", epoll K "8", fill
#                       "1000 5000", short callgrind/strace/library runs
#   -h, --help          this text
#
# Exit status: 0 when every measurement ran (whatever the numbers), 1 when
# one failed (a daemon gave a wrong answer or died), 2 on bad usage.
set -euo pipefail

me=${0##*/}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
argv=("$@")

runs=3
duration=1
warmup=0.3
repeat=2
clients="1 8 64"
workloads="endp dest miss"
fills="1000 10000 max"
fill_clients=8
epoll=1
epoll_clients=
contended=8
control=1
hogs=$(nproc)
pin=
other_k=""
callgrind_on=1
strace_on=1
libs_on=1
core_on=
ours=
out=
build=1
quick=
docs=

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
die() { printf '%s: %s\n' "$me" "$*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case $1 in
        --runs) runs=$2; shift ;;
        --duration) duration=$2; shift ;;
        --warmup) warmup=$2; shift ;;
        --repeat) repeat=$2; shift ;;
        --clients) clients=$2; shift ;;
        --workloads) workloads=$2; shift ;;
        --fill) fills=$2; shift ;;
        --fill-clients) fill_clients=$2; shift ;;
        --epoll) epoll=1 ;;
        --no-epoll) epoll= ;;
        --epoll-clients) epoll_clients=$2; shift ;;
        --contended) contended=$2; shift ;;
        --no-contended) contended= ;;
        --no-control) control= ;;
        --hogs) hogs=$2; shift ;;
        --pin) pin=--pin ;;
        --no-pin) pin= ;;
        --other-mode) other_k=$2; shift ;;
        --no-callgrind) callgrind_on= ;;
        --no-strace) strace_on= ;;
        --no-libs) libs_on= ;;
        --core) core_on=1 ;;
        --ours) ours=$2; shift ;;
        --out) out=$2; shift ;;
        --no-build) build= ;;
        --docs) docs=1 ;;
        --quick)
            quick=1; runs=1; duration=0.5; warmup=0.2; repeat=2; clients="1 8"
            epoll_clients="8"; fills="1000 5000"; other_k="" ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
[[ $repeat =~ ^[1-9][0-9]*$ ]] || die "--repeat needs a positive number"
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "--runs needs a positive number"
[[ $hogs =~ ^[0-9]+$ ]] || die "--hogs needs a number"
[ -n "$epoll_clients" ] || epoll_clients=$clients
if [ -n "$pin" ]; then other_pin=; else other_pin=--pin; fi
command -v python3 >/dev/null || die "python3 is needed for the tables"

cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}
bin=$target/release
built="not rebuilt by this run (--no-build)"
if [ -n "$build" ]; then
    cargo build --release -q -p scache-benches -p scache-bin
    built="built by this run (cargo build --release)"
fi
load=$bin/scache-load
[ -x "$load" ] || die "$load not found (build scache-benches, or drop --no-build)"
[ -n "$ours" ] || ours=$bin/scache
[ -x "$ours" ] || die "our daemon $ours not found"
ours=$(cd "$(dirname "$ours")" && pwd)/$(basename "$ours")
out=${out:-$target/bench-report}
mkdir -p "$out"
out=$(cd "$out" && pwd)
jsonl=$out/results.jsonl
log=$out/run.log
: >"$log"
: >"$jsonl"
rm -f "$out"/*.md "$out"/strace-*.txt

# A path as the report shows it: relative to the repository root when it
# is inside it, else only its file name (no local paths in reports).
shown() {
    case $1 in
        "$root"/*) printf '%s' "${1#"$root"/}" ;;
        *) printf '%s' "${1##*/}" ;;
    esac
}

# Both the daemon and this process need one descriptor per cached session.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ]; then hard=1048576; fi
max_fill=$((hard - 500))

common=(--compare --ours "$ours" --runs "$runs" --duration "$duration" --warmup "$warmup" --json)
failed=0
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
load_before=$(loadavg)
rep_loads=()
started=$(date -u +%FT%TZ)
t_start=$(date +%s)

# The busy loops of the contended rows; killed (by pid) on any exit.
hog_pids=()
stop_hogs() {
    local p
    for p in ${hog_pids[@]+"${hog_pids[@]}"}; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    hog_pids=()
}
trap stop_hogs EXIT
start_hogs() {
    # start_hogs NICENESS
    local i
    for ((i = 0; i < hogs; i++)); do
        nice -n "$1" sh -c 'while :; do :; done' &
        hog_pids+=($!)
    done
    sleep 0.5 # let the scheduler spread them
}

measure() {
    # measure TABLE REP ARGS...: one scache-load --compare, its JSON lines
    # tagged with the table and the repetition.
    local table=$1 rep=$2 res
    shift 2
    printf '\n=== [%s %s/%s] scache-load %s\n' "$table" "$rep" "$repeat" "$*" | tee -a "$log" >&2
    if res=$("$load" "${common[@]}" "$@" 2>>"$log"); then
        grep '^{' <<<"$res" | sed "s/^{/{\"table\":\"$table\",\"rep\":$rep,/" >>"$jsonl" || true
        tail -n 12 "$log" | sed -n '/^workload /,$p' >&2
    else
        failed=1
        tail -n 5 "$log" >&2
    fi
}

contended_w=""
for w in endp dest; do
    case " $workloads " in *" $w "*) contended_w="$contended_w $w" ;; esac
done
[ -n "$contended_w" ] || contended_w="endp dest"

for ((rep = 1; rep <= repeat; rep++)); do
    rep_loads+=("$(loadavg)")
    for w in $workloads; do
        for k in $clients; do
            measure blocking "$rep" $pin --io blocking --workload "$w" --clients "$k"
        done
    done
    if [ -n "$contended" ]; then
        # The quiet figures the contended rows are compared with, unless
        # the rows above measured them already.
        for w in $contended_w; do
            case " $clients " in
                *" $contended "*) case " $workloads " in *" $w "*) continue ;; esac ;;
            esac
            measure blocking "$rep" $pin --io blocking --workload "$w" --clients "$contended"
        done
    fi
    for n in $fills; do
        [ "$n" = max ] && n=$max_fill
        measure fill "$rep" $pin --io blocking --workload fill --fill "$n" --clients "$fill_clients"
    done
    if [ -n "$contended" ] && [ "$hogs" -gt 0 ]; then
        start_hogs 0
        for w in $contended_w; do
            measure contended "$rep" $pin --io blocking --workload "$w" --clients "$contended"
        done
        stop_hogs
        if [ -n "$control" ]; then
            start_hogs 19
            for w in $contended_w; do
                measure control "$rep" $pin --io blocking --workload "$w" --clients "$contended"
            done
            stop_hogs
        fi
    fi
    if [ -n "$epoll" ]; then
        for w in $workloads; do
            for k in $epoll_clients; do
                measure epoll "$rep" $pin --io epoll --workload "$w" --clients "$k"
            done
        done
    fi
    for k in $other_k; do
        for w in endp dest; do
            measure other "$rep" $other_pin --io blocking --workload "$w" --clients "$k"
        done
    done
done
load_after=$(loadavg)
t_compare=$(($(date +%s) - t_start))
timings="comparison ${t_compare}s"
lap=$(date +%s)
# took NAME: adds the time since the last lap to the report's timings.
took() {
    local now
    now=$(date +%s)
    timings="$timings, $1 $((now - lap))s"
    lap=$now
}

# Once: instructions, syscalls, library benchmarks.
callgrind_md=$out/callgrind.md
if [ -n "$callgrind_on" ]; then
    echo "=== callgrind" >&2
    cg_args=(--markdown --no-build --ours "$ours")
    [ -n "$quick" ] && cg_args+=(--small 500 --large 1000)
    if ! "$here/callgrind-cycles.sh" "${cg_args[@]}" >"$callgrind_md" 2>>"$log"; then
        echo "(callgrind-cycles.sh failed: see run.log)" >"$callgrind_md"
        failed=1
    fi
    took callgrind
fi

sys=$out/syscalls.txt
: >"$sys"
cycles=5000
[ -n "$quick" ] && cycles=1000
if [ -n "$strace_on" ]; then
    echo "=== strace" >&2
    if command -v strace >/dev/null; then
        for d in floor postfix ours; do
            for w in endp dest miss; do
                "$load" --daemon "$d" --ours "$ours" --io blocking --workload "$w" --clients 1 \
                    --cycles "$cycles" --strace "$out/strace-$d-$w.txt" 2>>"$log" \
                    | grep 'syscalls per cycle' | sed "s/^/$w K=1 /" >>"$sys" \
                    || echo "$w K=1 $d: n/a" >>"$sys"
            done
        done
    else
        echo "strace not installed (apt-get install strace)" >"$sys"
    fi
    took strace
fi

clients_md=$out/clients.md
shared_md=$out/shared.md
if [ -n "$libs_on" ]; then
    echo "=== scache-clients" >&2
    cl_args=(--ours "$ours" --markdown --runs 3 --duration 1)
    [ -n "$quick" ] && cl_args=(--ours "$ours" --markdown --runs 1 --duration 0.3)
    if ! "$bin/scache-clients" "${cl_args[@]}" >"$clients_md" 2>>"$log"; then
        echo "(scache-clients failed: see run.log)" >"$clients_md"
        failed=1
    fi
    took scache-clients
    echo "=== SharedCache criterion bench" >&2
    cr_args=(shared --markdown)
    [ -n "$quick" ] && cr_args+=(--quick)
    if ! "$here/criterion-report.sh" "${cr_args[@]}" --out "$out/criterion" >"$shared_md" 2>>"$log"; then
        echo "(criterion-report.sh shared failed: see run.log)" >"$shared_md"
        failed=1
    fi
    took "SharedCache bench"
fi
core_md=$out/core.md
if [ -n "$core_on" ]; then
    echo "=== core criterion bench" >&2
    cr_args=(core --markdown)
    [ -n "$quick" ] && cr_args+=(--quick)
    if ! "$here/criterion-report.sh" "${cr_args[@]}" --out "$out/criterion" >"$core_md" 2>>"$log"; then
        echo "(criterion-report.sh core failed: see run.log)" >"$core_md"
        failed=1
    fi
    took "core bench"
fi

tables_md=$out/tables.md
if ! python3 "$here/bench-tables.py" --hogs "$hogs" --fill-csv "$out/fill.csv" "$jsonl" >"$tables_md"; then
    echo "(bench-tables.py failed)" >"$tables_md"
    failed=1
fi
svg=$out/bench-fill.svg
plot_note=""
if [ -s "$out/fill.csv" ] && python3 "$here/plot-bench.py" "$out/fill.csv" "$svg" 2>>"$log"; then
    plot_note="![cycles/s and daemon CPU per cycle against cached sessions]($(basename "$svg"))"
fi

commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty="clean tree"
if git -C "$root" status --porcelain --untracked-files=no 2>/dev/null | grep -q .; then
    dirty="**dirty tree** (uncommitted changes to tracked files)"
fi
postfix_version=$(postconf -dh mail_version 2>/dev/null || echo unknown)
t_total=$(($(date +%s) - t_start))
# The options as given, with local paths shown relative to the repository.
shown_argv=()
for a in ${argv[@]+"${argv[@]}"}; do
    case $a in /*) shown_argv+=("$(shown "$a")") ;; *) shown_argv+=("$a") ;; esac
done
shown_common="--compare --runs $runs --duration $duration --warmup $warmup"
[ -n "$pin" ] && shown_common="$shown_common --pin"
{
    echo "# scache performance report"
    echo
    echo "Generated by \`scripts/bench-report.sh${shown_argv[*]:+ ${shown_argv[*]}}\` on $started,"
    echo "commit $commit, $dirty. Our daemon: \`$(shown "$ours")\`, $built."
    echo "Postfix $postfix_version (\`/usr/lib/postfix/sbin/scache\`)."
    echo
    echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), kernel $(uname -r)."
    echo "Load average (1/5/15 min) before: $load_before; at the start of each repetition: $(IFS=';'; echo "${rep_loads[*]}" | sed 's/;/; /g'); after: $load_after."
    echo "Time taken: $timings; the whole report ${t_total}s."
    echo
    echo "Each configuration: $runs run(s) of ${duration}s (after ${warmup}s warm-up) per daemon, runs"
    echo "interleaved floor/Postfix/ours, a fresh daemon for every run, started the way master starts it;"
    echo "the whole comparison repeated $repeat time(s)."
    if [ -n "$pin" ]; then
        echo "Pinned (\`--pin\`): the daemon on the last CPU, the load generator on the others."
    else
        echo "Not pinned: the scheduler places the daemon and the load generator."
    fi
    echo
    echo "Commands: \`scache-load $shown_common --io blocking --workload W --clients K\`"
    echo "(\`--workload fill --fill N --clients $fill_clients\` for the fill rows; \`--io epoll\` for the second table)."
    echo
    cat "$tables_md"
    if [ -n "$plot_note" ]; then
        echo "$plot_note"
        echo
    fi
    if [ -s "$callgrind_md" ]; then
        echo "### Instructions"
        echo
        echo "Command: \`scripts/callgrind-cycles.sh --markdown\`."
        echo
        cat "$callgrind_md"
        echo
    fi
    if [ -s "$sys" ]; then
        echo "### Syscalls"
        echo
        echo "Syscalls per cycle (\`strace -c -f\` attached to the daemon, K=1 blocking client, $cycles cycles):"
        echo
        sed 's/^/    /' "$sys"
        echo
    fi
    if [ -s "$clients_md" ]; then
        echo "### The library clients against our daemon"
        echo
        echo "Command: \`target/release/scache-clients ${cl_args[*]:2}\` (save_endp + find_endp cycles with a"
        echo "real descriptor, each caller on its own endpoint; the blocking \`Client\` one per thread, one"
        echo "\`AsyncClient\` shared by tokio tasks):"
        echo
        cat "$clients_md"
        echo
    fi
    if [ -s "$shared_md" ]; then
        echo "### SharedCache under contention (in process, criterion)"
        echo
        cat "$shared_md"
        echo
    fi
    if [ -s "$core_md" ]; then
        echo "### The cache core alone (criterion)"
        echo
        cat "$core_md"
        echo
    fi
} >"$out/report.md"

echo "$me: wrote $(shown "$out")/report.md (and results.jsonl, run.log) in ${t_total}s" >&2
if [ -n "$docs" ]; then
    cp "$out/report.md" "$root/docs/performance.md"
    [ -s "$svg" ] && cp "$svg" "$root/docs/bench-fill.svg"
    echo "$me: copied the report to docs/performance.md" >&2
fi
exit "$failed"
