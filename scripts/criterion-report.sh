#!/usr/bin/env bash
# Runs one of the criterion benchmarks of scache-benches and prints its
# figures as a table read from criterion's own estimates
# (<dir>/<benchmark>/new/estimates.json: the median time per iteration and
# its 95 % confidence interval), with the lines the benchmark prints itself
# (record sizes, memory per session).
#
# Usage: scripts/criterion-report.sh BENCH [--markdown] [--quick] [--out DIR]
#
#   BENCH       shared (SharedCache under contention: threads 1/2/4/8) or
#               core (the cache core: save/find cycles at 1k/100k/1M
#               sessions, the 1k-session working set, save_dest cycles,
#               expiring 1M sessions, memory per session)
#   --markdown  a markdown table (default: aligned text)
#   --quick     criterion's --quick (stops once the estimate is stable);
#               for checking, not for figures
#   --out DIR   where criterion writes (CRITERION_HOME; default
#               <target dir>/criterion-report); DIR/BENCH is emptied first
#               so that only this run's figures are read
#
# The command and commit are printed with the table.
set -euo pipefail

me=${0##*/}
root=$(cd "$(dirname "$0")/.." && pwd)
bench=
markdown=
quick=
out=

while [ $# -gt 0 ]; do
    case $1 in
        --markdown) markdown=1 ;;
        --quick) quick=1 ;;
        --out) out=$2; shift ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        -*) printf '%s: unknown option %s\n' "$me" "$1" >&2; exit 2 ;;
        *) [ -z "$bench" ] || { echo "$me: one benchmark at a time" >&2; exit 2; }; bench=$1 ;;
    esac
    shift
done
case $bench in
    shared|core) ;;
    *) echo "$me: BENCH must be shared or core (see --help)" >&2; exit 2 ;;
esac
command -v python3 >/dev/null || { echo "$me: python3 is needed" >&2; exit 1; }

cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}
out=${out:-$target/criterion-report}
home=$out/$bench
rm -rf "$home"
mkdir -p "$home"
home=$(cd "$home" && pwd)

crit_args=(--noplot)
[ -n "$quick" ] && crit_args+=(--quick)
printed=$(mktemp)
trap 'rm -f "$printed"' EXIT
# The benchmark's own lines (records, memory) go to stdout with criterion's.
CRITERION_HOME=$home cargo bench -q -p scache-benches --bench "$bench" -- "${crit_args[@]}" >"$printed"

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo ", dirty tree" || true)
shown_cmd="cargo bench -p scache-benches --bench $bench${quick:+ -- --quick}"
case $bench in
    shared) what="One iteration: one save_endp + find_endp cycle, T threads sharing one SharedCache (1,000 sessions cached, each thread on its own endpoints: they share only the lock); per second: cycles per second of all threads together." ;;
    core) what="One iteration: one cycle through the cache core (dummy descriptors, 71-byte properties) with N sessions cached, on a random endpoint (or within a 1k-session working set); expire: one call expiring 1M sessions." ;;
esac

python3 - "$home" "$printed" "$shown_cmd" "$commit$dirty" "$markdown" "$what" <<'EOF'
import json, os, re, sys

home, printed, cmd, commit, markdown, what = sys.argv[1:7]
rows = []
for dirpath, dirs, files in os.walk(home):
    if os.path.basename(dirpath) != "new" or "estimates.json" not in files:
        continue
    with open(os.path.join(dirpath, "benchmark.json")) as f:
        b = json.load(f)
    with open(os.path.join(dirpath, "estimates.json")) as f:
        e = json.load(f)
    med = e["median"]
    tp = b.get("throughput") or {}
    elements = tp.get("Elements") or tp.get("elements") or 1
    value = b.get("value_str") or ""
    if value.isdigit():
        value = f"{int(value):,}"
    param = " ".join(x for x in (b.get("function_id"), value) if x)
    rows.append((b["group_id"], param, med, elements, b.get("full_id", "")))

# In the order the benchmark ran them (criterion prints each id on stdout).
text = open(printed, errors="replace").read()

def ran_at(full_id):
    m = re.search("^" + re.escape(full_id) + r"(\s|$)", text, re.M)
    return m.start() if m else len(text)

rows.sort(key=lambda r: (ran_at(r[4]), r[4]))
rows = [r[:4] for r in rows]

def t(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.1f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.1f} ns"

lines = [l.rstrip() for l in open(printed) if l.startswith(("records:", "memory:"))]
head = (f"Command: `{cmd}` (commit {commit}). {what} Median time per iteration and its 95 % "
        "confidence interval, from criterion's estimates:")
# "per element" only when a benchmark counts several elements per
# iteration (expire: 1M sessions per call).
batched = any(n > 1 for *_, n in rows)
table = [("benchmark", "parameter", "median", "95 % CI") + (("per element",) if batched else ()) + ("per second",)]
for g, p, med, n in rows:
    ns = med["point_estimate"]
    ci = med["confidence_interval"]
    per = ns / n
    table.append((g, p, t(ns), f"{t(ci['lower_bound'])} – {t(ci['upper_bound'])}")
                 + ((t(per) if n > 1 else "-",) if batched else ())
                 + (f"{1e9 / per:,.0f}",))
print(head)
print()
if markdown:
    print("| " + " | ".join(table[0]) + " |")
    print("|---|---|" + "---:|" * (len(table[0]) - 2))
    for r in table[1:]:
        print("| " + " | ".join(r) + " |")
else:
    w = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        print("  ".join(c.ljust(w[i]) if i < 2 else c.rjust(w[i]) for i, c in enumerate(r)))
if lines:
    print()
    print("Printed by the benchmark:")
    print()
    for l in lines:
        print(f"    {l}")
EOF
