#!/usr/bin/env python3
"""Markdown tables of scripts/bench-report.sh's load measurements.

Usage: scripts/bench-tables.py RESULTS.jsonl [--fill-csv OUT.csv]

RESULTS.jsonl holds one line per daemon and configuration, as
`scache-load --json` prints them, with two fields the report script adds:
`table` (blocking, epoll, other, fill, contended or control: which comparison the
line belongs to) and `rep` (which repetition of the whole comparison,
1..N). Every line carries the medians of its runs and the runs themselves.

For every configuration and daemon the tables show the median over all runs
of all repetitions and, in parentheses, the spread: min-max over those
runs. A ratio (ours/floor, ours/Postfix, Postfix/floor) is computed per
repetition from that repetition's medians; the table shows the median of
the N ratios and, when N > 1, their range. So a ratio's range says how much
the whole comparison moved between repetitions, which is what a single run
on a shared machine cannot say.

--fill-csv writes the fill rows (medians and min/max over all runs) in the
CSV format of `scache-load --csv` for scripts/plot-bench.py.

Standard library only.
"""

import json
import statistics
import sys
from collections import OrderedDict

DAEMONS = ("floor", "postfix", "ours")
NAME = {"floor": "floor", "postfix": "Postfix", "ours": "ours"}
RATIOS = (("ours", "floor"), ("ours", "postfix"), ("postfix", "floor"))

CLIENT_MODEL = {
    "blocking": "one blocking thread per client (`--io blocking`), as Postfix's "
    "delivery agents are separate processes each blocking on its own connection",
    "epoll": "one load-generator thread drives every client with epoll (`--io epoll`)",
}


def load(path):
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                sys.exit(f"{path}:{n}: {e}")
    return rows


def key_of(r):
    return (r["workload"], r["clients"], r["fill"], r.get("pinned", False))


class Config:
    """One configuration of one table: per daemon, per repetition, the
    medians and the runs."""

    def __init__(self, key, io):
        self.key = key
        self.io = io
        self.reps = {}  # rep -> daemon -> line

    def add(self, r):
        self.reps.setdefault(r["rep"], {})[r["daemon"]] = r

    def runs(self, daemon, metric):
        v = []
        for rep in self.reps.values():
            line = rep.get(daemon)
            if line:
                v += [x[metric] for x in line["runs"] if x.get(metric) is not None]
        return v

    def rep_medians(self, daemon, metric):
        """rep -> median of that repetition (None when absent)."""
        out = {}
        for rep, ds in self.reps.items():
            line = ds.get(daemon)
            out[rep] = line["median"].get(metric) if line else None
        return out

    def ratio(self, a, b, metric):
        """The per-repetition ratios a/b of the medians of `metric`."""
        ma, mb = self.rep_medians(a, metric), self.rep_medians(b, metric)
        return [ma[r] / mb[r] for r in ma if ma[r] is not None and mb.get(r)]


def group(rows, table):
    out = OrderedDict()
    for r in rows:
        if r.get("table") != table:
            continue
        k = key_of(r)
        if k not in out:
            out[k] = Config(k, r.get("io", "epoll"))
        out[k].add(r)
    return out


def num(v, digits):
    if v is None:
        return "n/a"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def med_range(values, digits):
    """Median (min-max) of values."""
    if not values:
        return "n/a"
    m = statistics.median(values)
    lo, hi = min(values), max(values)
    if len(values) == 1 or num(lo, digits) == num(hi, digits):
        return num(m, digits)
    return f"{num(m, digits)} ({num(lo, digits)}–{num(hi, digits)})"


def ratio_cell(values):
    """A ratio: median of the repetitions' ratios, and their range."""
    if not values:
        return "n/a"
    m = statistics.median(values)
    if len(values) == 1:
        return f"{m:.2f}"
    return f"{m:.2f} ({min(values):.2f}–{max(values):.2f})"


def cached(k):
    return f"{k[2]:,}" if k[0] == "fill" else "-"


def workload(k, mixed_pins):
    return f"{k[0]} (pinned)" if mixed_pins and k[3] else k[0]


def reps_of(rows):
    return sorted({r["rep"] for r in rows})


def head(cols):
    s = "| " + " | ".join(cols) + " |\n"
    s += "|---|" + "---:|" * (len(cols) - 1) + "\n"
    return s


def line(cells):
    return "| " + " | ".join(cells) + " |\n"


def present(configs):
    return [d for d in DAEMONS if any(c.runs(d, "cycles_per_s") for c in configs)]


def tables(configs, title):
    """Throughput, daemon CPU and latency tables for one comparison."""
    if not configs:
        return ""
    cs = list(configs.values())
    ds = present(cs)
    mixed = len({c.key[3] for c in cs}) > 1
    ratios = [(a, b) for a, b in RATIOS if a in ds and b in ds]
    s = f"{title}\n\n"
    s += "Cycles per second, median (min–max over runs); higher is better:\n\n"
    s += head(["workload", "K", "cached"] + [NAME[d] for d in ds] + [f"{NAME[a]}/{NAME[b]}" for a, b in ratios])
    for c in cs:
        s += line(
            [workload(c.key, mixed), str(c.key[1]), cached(c.key)]
            + [med_range(c.runs(d, "cycles_per_s"), 0) for d in ds]
            + [ratio_cell(c.ratio(a, b, "cycles_per_s")) for a, b in ratios]
        )
    s += "\nDaemon CPU time per cycle in µs (user + system, all threads), median (min–max over runs); lower is better:\n\n"
    s += head(["workload", "K", "cached"] + [NAME[d] for d in ds] + [f"{NAME[a]}/{NAME[b]}" for a, b in ratios])
    for c in cs:
        s += line(
            [workload(c.key, mixed), str(c.key[1]), cached(c.key)]
            + [med_range(c.runs(d, "daemon_cpu_us"), 2) for d in ds]
            + [ratio_cell(c.ratio(a, b, "daemon_cpu_us")) for a, b in ratios]
        )
    s += "\nCycle latency in µs as the client sees it: p50 and p99 (median over runs, min–max of p99 over runs); lower is better:\n\n"
    lat_ratios = [(a, b) for a, b in (("ours", "floor"), ("postfix", "floor")) if a in ds and b in ds]
    s += head(
        ["workload", "K", "cached"]
        + [f"{NAME[d]} p50" for d in ds]
        + [f"{NAME[d]} p99" for d in ds]
        + [f"{NAME[a]}/{NAME[b]} p99" for a, b in lat_ratios]
    )
    for c in cs:
        s += line(
            [workload(c.key, mixed), str(c.key[1]), cached(c.key)]
            + [num(statistics.median(v), 0) if (v := c.runs(d, "p50_us")) else "n/a" for d in ds]
            + [med_range(c.runs(d, "p99_us"), 0) for d in ds]
            + [ratio_cell(c.ratio(a, b, "p99_us")) for a, b in lat_ratios]
        )
    return s + "\n"


def fill_tables(configs):
    cs = [c for c in configs.values() if c.key[0] == "fill"]
    if not cs:
        return ""
    ds = present(cs)
    k = sorted({c.key[1] for c in cs})
    s = (
        f"Daemon memory per cached session (the fill rows above, K={'/'.join(map(str, k))}, blocking clients): "
        "RSS growth during the fill / sessions, bytes, median (min–max over runs):\n\n"
    )
    has = "floor" in ds
    s += head(["cached"] + [NAME[d] for d in ds] + [f"{NAME[d]}/floor" for d in ds if d != "floor" and has])
    for c in cs:
        s += line(
            [cached(c.key)]
            + [med_range(c.runs(d, "rss_bytes_per_session"), 0) for d in ds]
            + [ratio_cell(c.ratio(d, "floor", "rss_bytes_per_session")) for d in ds if d != "floor" and has]
        )
    base = min(cs, key=lambda c: c.key[2])
    s += (
        f"\nCost of a cycle against cached sessions (the same fill rows): daemon CPU µs per cycle, median "
        f"over runs, and × its cost with {base.key[2]:,} cached (per repetition, median and range):\n\n"
    )
    cols = ["cached"]
    for d in ds:
        cols += [f"{NAME[d]} µs", f"{NAME[d]} ×{base.key[2]:,}"]
    s += head(cols)
    for c in cs:
        cells = [cached(c.key)]
        for d in ds:
            v = c.runs(d, "daemon_cpu_us")
            cells.append(num(statistics.median(v), 2) if v else "n/a")
            if c is base:
                cells.append("1")
                continue
            mine, first = c.rep_medians(d, "daemon_cpu_us"), base.rep_medians(d, "daemon_cpu_us")
            rs = [mine[r] / first[r] for r in mine if mine[r] is not None and first.get(r)]
            cells.append(ratio_cell(rs))
        s += line(cells)
    return s + "\n"


def contended_table(quiet, loaded, intro):
    """Cycles/s under a competing load, the fraction of the quiet figure
    each daemon kept, the ratios, then CPU per cycle and p99; `intro`
    describes the load."""
    if not loaded:
        return ""
    cs = list(loaded.values())
    ds = present(cs)
    s = (
        intro + " Cycles per second under load, median (min–max over runs), and the fraction of "
        "each daemon's quiet figure it kept (per repetition: median under load / median of the same "
        "row of the quiet blocking table of the same repetition; median and range):\n\n"
    )
    ratios = [(a, b) for a, b in RATIOS if a in ds and b in ds]
    s += head(
        ["workload", "K"]
        + [f"{NAME[d]} cycles/s" for d in ds]
        + [f"{NAME[d]} kept" for d in ds]
        + [f"{NAME[a]}/{NAME[b]}" for a, b in ratios]
    )
    for c in cs:
        q = quiet.get(c.key)
        kept = []
        for d in ds:
            if q is None:
                kept.append("n/a")
                continue
            under, calm = c.rep_medians(d, "cycles_per_s"), q.rep_medians(d, "cycles_per_s")
            kept.append(ratio_cell([under[r] / calm[r] for r in under if under[r] is not None and calm.get(r)]))
        s += line(
            [c.key[0], str(c.key[1])]
            + [med_range(c.runs(d, "cycles_per_s"), 0) for d in ds]
            + kept
            + [ratio_cell(c.ratio(a, b, "cycles_per_s")) for a, b in ratios]
        )
    s += "\nUnder load, daemon CPU µs per cycle and p99 cycle latency in µs, median (min–max over runs):\n\n"
    s += head(["workload", "K"] + [f"{NAME[d]} CPU" for d in ds] + [f"{NAME[d]} p99" for d in ds])
    for c in cs:
        s += line(
            [c.key[0], str(c.key[1])]
            + [med_range(c.runs(d, "daemon_cpu_us"), 2) for d in ds]
            + [med_range(c.runs(d, "p99_us"), 0) for d in ds]
        )
    return s + "\n"


CSV_HEADER = (
    "workload,clients,fill,endpoints,pinned,daemon,runs,cycles_per_s,cycles_per_s_min,"
    "cycles_per_s_max,p50_us,p99_us,daemon_cpu_us,loadgen_cpu_us,rss_kib_start,rss_kib_end,"
    "rss_bytes_per_session,fill_s"
)


def fill_csv(configs, path):
    with open(path, "w") as f:
        f.write(CSV_HEADER + "\n")
        for c in configs.values():
            if c.key[0] != "fill":
                continue
            for d in DAEMONS:
                v = c.runs(d, "cycles_per_s")
                if not v:
                    continue

                def m(metric, digits):
                    x = c.runs(d, metric)
                    return f"{statistics.median(x):.{digits}f}" if x else ""

                endpoints = next(
                    (rep[d]["endpoints"] for rep in c.reps.values() if d in rep), 0
                )
                f.write(
                    ",".join(
                        [
                            "fill",
                            str(c.key[1]),
                            str(c.key[2]),
                            str(endpoints),
                            "1" if c.key[3] else "0",
                            d,
                            str(len(v)),
                            f"{statistics.median(v):.1f}",
                            f"{min(v):.1f}",
                            f"{max(v):.1f}",
                            m("p50_us", 2),
                            m("p99_us", 2),
                            m("daemon_cpu_us", 3),
                            m("loadgen_cpu_us", 3),
                            m("rss_kib_start", 0),
                            m("rss_kib_end", 0),
                            m("rss_bytes_per_session", 1),
                            m("fill_seconds", 2),
                        ]
                    )
                    + "\n"
                )


def main(argv):
    args = argv[1:]
    csv_out = None
    hogs = "?"
    while args and args[0].startswith("--"):
        if args[0] == "--fill-csv" and len(args) > 1:
            csv_out = args[1]
            args = args[2:]
        elif args[0] == "--hogs" and len(args) > 1:
            hogs = args[1]
            args = args[2:]
        else:
            sys.exit(__doc__)
    if len(args) != 1:
        sys.exit(__doc__)
    rows = load(args[0])
    if not rows:
        sys.exit(f"{args[0]}: no measurements")
    n = len(reps_of(rows))
    out = []
    if n > 1:
        out.append(
            f"The whole comparison ran {n} times (`--repeat {n}`). Daemon columns: median and min–max "
            f"over every run of the {n} repetitions; ratio columns: median and range of the {n} "
            "per-repetition ratios of medians.\n\n"
        )
    else:
        out.append(
            "Daemon columns: median and min–max over runs; ratio columns: ratio of the medians "
            "(`--repeat N` gives their range over N repetitions of the whole comparison).\n\n"
        )
    blocking = group(rows, "blocking")
    fills = group(rows, "fill")
    out.append(
        tables(
            OrderedDict(list(blocking.items()) + list(fills.items())),
            "### Client model: " + CLIENT_MODEL["blocking"] + " (the headline)",
        )
    )
    out.append(fill_tables(fills))
    loaded = group(rows, "contended")
    if loaded:
        out.append("### Contended (client model: one blocking thread per client, `--io blocking`)\n\n")
        out.append(
            contended_table(
                blocking,
                loaded,
                f"Throughput under a known competing load: {hogs} busy-loop process(es) "
                "(`while :; do :; done`, one per CPU, ordinary priority) run during these "
                "measurements only.",
            )
        )
    control = group(rows, "control")
    if control:
        out.append(
            "#### Control: the same busy loops at nice 19\n\n"
            + contended_table(
                blocking,
                control,
                f"The same {hogs} busy loop(s) at nice 19: every CPU stays busy (never idle), but "
                "the loops yield their time to the daemons and clients. A daemon that gains or "
                "loses here does so because no CPU is ever idle, not because CPU time was taken "
                "from it.",
            )
        )
    epoll = group(rows, "epoll")
    out.append(tables(epoll, "### Client model: " + CLIENT_MODEL["epoll"]))
    other = group(rows, "other")
    if other:
        pinned = next(iter(other.values())).key[3]
        io = next(iter(other.values())).io
        out.append(
            tables(
                other,
                f"### {'Pinned' if pinned else 'Not pinned'}, for comparison (client model: "
                f"{CLIENT_MODEL.get(io, io)})",
            )
        )
    sys.stdout.write("".join(out))
    if csv_out:
        fill_csv(fills, csv_out)


if __name__ == "__main__":
    main(sys.argv)
