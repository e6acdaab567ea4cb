#!/usr/bin/env python3
"""Measures the figures of docs/robustness.md and writes them into it.

Usage: scripts/robustness-report.py [--no-soak] [--soak-secs S] [--release]
           [--dry-run] [--from DIR] [--out DIR]

Runs, in the repository (debug build, as CI runs them, unless --release):

1. `cargo test -p scache-bin --test hostile` and `--test faults` as CI runs
   them (tests in parallel), for the running times;
2. the same with `SCACHE_MEASURE_POSTFIX=1 ... -- --test-threads=1`:
   every hostile and fault scenario against our daemon (asserted) and then
   against Postfix's (recorded), each printing what it saw;
3. the soak (`--test soak`, 60 s as in CI; --soak-secs), unless --no-soak.

Then it rewrites the measured figures of docs/robustness.md: every value
between `<!--m:KEY-->` and `<!--/m-->` (inline, in the tables), and every
block between `<!--begin:NAME-->` and `<!--end:NAME-->` (the stamp naming
this command and the commit, the soak paragraph, the running times). Text
outside the markers is never touched. A marker whose value was not measured
(Postfix not installed, --no-soak) keeps its old value, and the stamp says
which ones did.

  --no-soak      skip the soak; its paragraph keeps its old figures and
                 stamp
  --soak-secs S  soak length (default 60, the CI profile)
  --release      build the tests in release mode (default: debug, as CI)
  --dry-run      measure and print the values; do not write the doc
  --from DIR     do not run anything: read the logs an earlier run left in
                 DIR (for re-rendering)
  --out DIR      where the logs go (default: <target dir>/robustness-report)

Standard library only.
"""

import datetime
import json
import os
import re
import subprocess
import sys
import textwrap
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "robustness.md")
ME = "scripts/robustness-report.py"


def die(msg, code=2):
    sys.stderr.write(f"robustness-report: {msg}\n")
    sys.exit(code)


def parse_args(argv):
    o = {"soak": True, "soak_secs": 60, "release": False, "dry": False, "from": None, "out": None}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--no-soak":
            o["soak"] = False
        elif a == "--soak-secs" and i + 1 < len(argv):
            o["soak_secs"] = int(argv[i + 1])
            i += 1
        elif a == "--release":
            o["release"] = True
        elif a == "--dry-run":
            o["dry"] = True
        elif a == "--from" and i + 1 < len(argv):
            o["from"] = argv[i + 1]
            i += 1
        elif a == "--out" and i + 1 < len(argv):
            o["out"] = argv[i + 1]
            i += 1
        elif a in ("-h", "--help"):
            print(__doc__)
            sys.exit(0)
        else:
            die(f"unknown option {a} (see --help)")
        i += 1
    return o


# ---------------------------------------------------------------------------
# Running the tests.


def target_dir():
    if os.environ.get("CARGO_TARGET_DIR"):
        return os.environ["CARGO_TARGET_DIR"]
    meta = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    return json.loads(meta.stdout)["target_directory"]


def cargo_test(profile, tests, env=None, args=(), log=None):
    """Runs cargo test on these test targets; returns (seconds, output)."""
    cmd = ["cargo", "test", "-q", "-p", "scache-bin"] + profile
    for t in tests:
        cmd += ["--test", t]
    cmd += ["--"] + list(args)
    e = dict(os.environ)
    e.update(env or {})
    t0 = time.monotonic()
    p = subprocess.run(cmd, cwd=ROOT, env=e, capture_output=True, text=True, errors="replace")
    secs = time.monotonic() - t0
    text = p.stdout + p.stderr
    if log:
        with open(log, "w") as f:
            f.write(f"$ {' '.join(cmd)}\n{text}")
    if p.returncode != 0:
        sys.stderr.write(text[-4000:])
        die(f"failed: {' '.join(cmd)} (log: {log})", 1)
    return secs, text


def run_all(o, out):
    load_before = open("/proc/loadavg").read().split()[:3]
    profile = ["--release"] if o["release"] else []
    sys.stderr.write("robustness-report: building the tests\n")
    subprocess.run(
        ["cargo", "test", "-q", "-p", "scache-bin"] + profile
        + ["--test", "hostile", "--test", "faults", "--test", "soak", "--no-run"],
        cwd=ROOT, check=True,
    )
    times = {}
    for t in ("hostile", "faults"):
        sys.stderr.write(f"robustness-report: {t}, as CI runs it\n")
        times[t], _ = cargo_test(profile, [t], log=os.path.join(out, f"{t}.log"))
    measure = os.path.join(out, "measure.txt")
    if os.path.exists(measure):
        os.remove(measure)
    for t in ("hostile", "faults"):
        sys.stderr.write(f"robustness-report: {t}, measurement mode (ours, then Postfix)\n")
        times[f"{t}_measure"], _ = cargo_test(
            profile, [t],
            env={"SCACHE_MEASURE_POSTFIX": "1", "SCACHE_MEASURE_OUT": measure},
            args=["--test-threads=1"],
            log=os.path.join(out, f"{t}-measure.log"),
        )
    if o["soak"]:
        sys.stderr.write(f"robustness-report: soak, {o['soak_secs']} s\n")
        times["soak"], _ = cargo_test(
            profile, ["soak"],
            env={"SCACHE_SOAK_SECS": str(o["soak_secs"])},
            args=["--nocapture"],
            log=os.path.join(out, "soak.log"),
        )
    with open(os.path.join(out, "run.json"), "w") as f:
        json.dump(
            {
                "times": times,
                "soak_secs": o["soak_secs"] if o["soak"] else None,
                "profile": "release" if o["release"] else "debug",
                "commit": git("rev-parse", "--short", "HEAD"),
                "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
                "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
                "cpus": os.cpu_count(),
                "load_before": load_before,
                "load": open("/proc/loadavg").read().split()[:3],
                "postfix": postfix_version(),
            },
            f,
        )


def git(*args):
    p = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return p.stdout.strip()


def postfix_version():
    p = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "postfix"], capture_output=True, text=True
    )
    return p.stdout.strip() if p.returncode == 0 else None


# ---------------------------------------------------------------------------
# Reading what the tests printed.


def blocks(text):
    """(who, test) -> the lines of its measurement report."""
    out = {}
    cur = None
    for line in text.splitlines():
        m = re.match(r"^(OURS|POSTFIX-MEASURE) \[(\w+)\]$", line)
        if m:
            cur = ("ours" if m.group(1) == "OURS" else "postfix", m.group(2))
            out[cur] = []
        elif cur and line.startswith("  "):
            out[cur].append(line.strip())
        elif cur:
            out[cur][-1:] = [(out[cur][-1] if out[cur] else "") + "\n" + line]
    return out


UNITS = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def secs(debug):
    """A Rust Duration's Debug text (`10.892345ms`, `3.95s`, `0ns`) in seconds."""
    m = re.fullmatch(r"([\d.]+)(ns|µs|us|ms|s)", debug)
    if not m:
        raise ValueError(f"not a duration: {debug!r}")
    return float(m.group(1)) * UNITS[m.group(2)]


def fmt_time(s):
    if s >= 1:
        return f"{s:.1f} s"
    ms = s * 1e3
    if ms >= 10:
        return f"{ms:.0f} ms"
    if ms >= 1:
        return f"{ms:.1f} ms"
    if ms == 0:
        return "0 ms"
    return f"{ms:.2f} ms"


def fmt_kib(k, sign="+"):
    if k >= 10240:
        return f"{sign}{k / 1024:.1f} MiB"
    return f"{sign}{k:,} KiB"


def find(lines, pattern):
    for line in lines:
        m = re.search(pattern, line)
        if m:
            return m
    return None


def values(measured):
    """KEY -> text for every inline marker, from the measurement reports."""
    v = {}

    def get(who, test):
        return measured.get((who, test))

    for who in ("ours", "postfix"):
        for test, steps in (
            ("label_10mb", ["save_endp with a 10 MB label"]),
            ("property_10mb", ["save_endp with a 10 MB property"]),
            ("find_label_10mb", ["find_endp with a 10 MB label", "find_dest with a 10 MB label"]),
        ):
            lines = get(who, test)
            if lines is None:
                continue
            grown = []
            for step in steps:
                m = find(lines, re.escape(step) + r": RSS \d+ KiB -> \d+ KiB \(\+(\d+) KiB\)")
                if m:
                    grown.append(fmt_kib(int(m.group(1))))
            if len(grown) == len(steps):
                v[f"{test}.{who}.rss"] = " and ".join(grown)

        lines = get(who, "client_never_reads_replies")
        if lines:
            m = find(lines, r"requests \((\d+) KiB\) written before its writes blocked for 1 s; "
                     r"RSS Some\((\d+)\) -> Some\((\d+)\) KiB")
            if m:
                v[f"never_reads.{who}.written"] = f"{int(m.group(1)):,} KiB"
                v[f"never_reads.{who}.rss"] = fmt_kib(max(0, int(m.group(3)) - int(m.group(2))))
            m = find(lines, r"then it reads: (\d+) of the first 1000 replies")
            if m:
                v[f"never_reads.{who}.replies"] = m.group(1)

        lines = get(who, "slow_client_does_not_stall_others")
        if lines:
            m = find(lines, r"while one client sends a byte every 100 ms: longest wait (\S+),")
            if m:
                v[f"slow.{who}.wait"] = fmt_time(secs(m.group(1)))

        lines = get(who, "thousand_idle_clients")
        if lines:
            m = find(lines, r"10 busy clients next to them: \d+ requests, longest wait (\S+),")
            if m:
                v[f"thousand.{who}.wait"] = fmt_time(secs(m.group(1)))

        lines = get(who, "sigkill_client_before_sending_descriptor_or_mid_request")
        if lines:
            waits = [
                secs(m.group(1))
                for line in lines
                if (m := re.search(r"another client served while the client is stuck: Ok\(\(\)\) in (\S+)", line))
            ]
            if len(waits) == 2:
                v[f"stuck.{who}.served"] = fmt_time(max(waits))

        lines = get(who, "rlimit_nofile_exhaustion")
        if lines:
            m = find(lines, r"CPU used over 2 s idle: (\S+)")
            if m:
                v[f"rlimit.{who}.idle_cpu"] = fmt_time(secs(m.group(1)))
            m = find(lines, r"whole test: \S+ wall, (\S+) CPU")
            if m:
                v[f"rlimit.{who}.cpu"] = fmt_time(secs(m.group(1)))
            # The last limit tried (Postfix does not start at the first).
            m = None
            for line in lines:
                m = re.search(r"^(\d+) saves on one connection: \{(.*)\}", line) or m
            if m:
                v[f"rlimit.{who}.saves"] = m.group(1)
                refused = re.search(r'status\\\\02\\\\0\\\\0": (\d+)', m.group(2))
                v[f"rlimit.{who}.refused"] = refused.group(1) if refused else "0"
    return v


def soak_paragraph(text, run):
    """The soak paragraph, from the lines the soak test prints."""

    def need(pattern):
        m = re.search(pattern, text, re.M)
        if not m:
            die(f"soak output: no line matching {pattern!r}", 1)
        return m

    ops = need(r"^soak: (\d+) operations in (\S+): (\d+) saves \((\d+) failed\), (\d+) endp hits, "
               r"(\d+) dest hits, (\d+) misses, (\d+) abandoned finds, (\d+) aborts, (\d+) disconnects")
    final = dict(re.findall(r'"(\w+)": (\d+)', need(r"^soak: final counters \{(.*)\}$").group(1)))
    final = {k: int(x) for k, x in final.items()}
    fds = need(r"^soak: descriptors (\d+) -> peak (\d+) -> end (\d+) .*; RSS (\d+) KiB -> after 1/4 "
               r"(?:Some\((\d+)\)|None) -> peak (\d+) -> end (\d+) KiB")
    n = lambda x: f"{int(x):,}"
    causes = {
        k[len("evicted_sessions_"):].replace("_", " "): x
        for k, x in final.items()
        if k.startswith("evicted_sessions_") and x > 0
    }
    causes = sorted(causes.items(), key=lambda kv: -kv[1])
    evicted = sum(x for k, x in final.items() if k.startswith("evicted_sessions_"))
    g = lambda k: final.get(k, 0)
    eq = (f"{g('saves_endp')} + {g('put_backs')} = {g('endp_hits')} + {g('dest_hits')} + "
          f"{g('expired_sessions')} + {evicted} + {g('sess_count')}")
    profile = f"{run['profile']} build, {run['cpus']} CPUs, load average {run['load'][0]} after the runs"
    mid = f"{n(fds.group(5))} KiB after a quarter of the run, " if fds.group(5) else ""
    return (
        f"A {run['soak_secs']} s run ({profile}; commit {run['commit']}{', dirty tree' if run['dirty'] else ''}, "
        f"{run['date']}; `{ME}`): "
        f"{n(ops.group(1))} operations; {n(ops.group(3))} sessions saved, {n(ops.group(5))} `find_endp` and "
        f"{n(ops.group(6))} `find_dest` hits, {n(ops.group(8))} finds abandoned after their reply (all put back), "
        f"{n(ops.group(9))} mid-exchange aborts, {n(ops.group(10))} disconnects; sessions evicted by "
        + ", ".join(f"{k} {n(x)}" for k, x in causes)
        + f", and {n(g('expired_sessions'))} expired: `{eq}` (saves and put-backs on the left; endp hits, "
        f"dest hits, expired, evicted and still cached on the right). The daemon's descriptors: {fds.group(1)} at the start, "
        f"{fds.group(2)} at the peak, {fds.group(3)} at the end with the test's monitor connection "
        f"({int(fds.group(3)) - 1} without it); RSS {n(fds.group(4))} KiB at the "
        f"start, {mid}{n(fds.group(6))} KiB at the peak, {n(fds.group(7))} KiB at the end."
    )


def running_times(run):
    t = run["times"]
    f = lambda k: f"{t[k]:.1f} s" if k in t else "not run"
    soak = ""
    if "soak" in t:
        soak = f", `soak` {f('soak')} ({run['soak_secs']} s of load, then up to 3.5 s for the ttl limit)"
    return (
        f"Measured by `{ME}` (commit {run['commit']}, {run['date']}) on {run['cpus']} CPUs, "
        f"{run['profile']} build, compilation excluded: `hostile` {f('hostile')} (tests in parallel, as CI "
        f"runs them), `faults` {f('faults')}{soak}. The measurement mode, one test at a time, ours then "
        f"Postfix (whose daemon is waited for with timeouts): {f('hostile_measure')} for `hostile` and "
        f"{f('faults_measure')} for `faults`."
    )


# ---------------------------------------------------------------------------
# Rewriting the doc.


def wrap(text, width=76):
    """Fills a paragraph without breaking inside a code span, and without
    starting a line with something Markdown would read as a list item,
    heading or quote."""
    nbsp = "\x00"
    text = re.sub(r"`[^`]*`", lambda m: m.group(0).replace(" ", nbsp), text)
    lines = textwrap.wrap(text, width=width, break_long_words=False, break_on_hyphens=False)
    out = []
    for line in lines:
        if out and re.match(r"([-+*>#]|\d+[.)])(\s|$)", line):
            out[-1] += " " + line
        else:
            out.append(line)
    return "\n".join(out).replace(nbsp, " ")


def rewrite(doc, inline, blocks_):
    missing = []

    def sub_inline(m):
        key = m.group(1)
        if key in inline:
            return f"<!--m:{key}-->{inline[key]}<!--/m-->"
        missing.append(key)
        return m.group(0)

    doc = re.sub(r"<!--m:([\w.]+)-->(.*?)<!--/m-->", sub_inline, doc)
    for name, text in blocks_.items():
        pat = re.compile(rf"(<!--begin:{name}-->\n)(.*?)(\n<!--end:{name}-->)", re.S)
        if not pat.search(doc):
            die(f"docs/robustness.md has no <!--begin:{name}--> ... <!--end:{name}--> block", 1)
        text = wrap(text)
        doc = pat.sub(lambda m: m.group(1) + text + m.group(3), doc)
    return doc, missing


def main():
    o = parse_args(sys.argv[1:])
    out = o["from"] or o["out"] or os.path.join(target_dir(), "robustness-report")
    os.makedirs(out, exist_ok=True)
    if not o["from"]:
        run_all(o, out)
    with open(os.path.join(out, "run.json")) as f:
        run = json.load(f)
    with open(os.path.join(out, "measure.txt"), errors="replace") as f:
        measured = blocks(f.read())
    inline = values(measured)
    if run.get("postfix"):
        inline["postfix.version"] = run["postfix"]
    known = ("ours" in {w for w, _ in measured}, "postfix" in {w for w, _ in measured})
    blocks_ = {"times": running_times(run)}
    soak_log = os.path.join(out, "soak.log")
    if run.get("soak_secs") and os.path.exists(soak_log):
        with open(soak_log, errors="replace") as f:
            blocks_["soak"] = soak_paragraph(f.read(), run)
    with open(DOC) as f:
        doc = f.read()
    # Inline keys first, to say in the stamp which ones were not measured.
    _, missing = rewrite(doc, inline, {})
    stamp = (
        f"The measured figures of both columns, the soak run and the running times below were written by "
        f"`{ME}` at commit {run['commit']}{' (dirty tree)' if run['dirty'] else ''} on {run['date']} "
        f"({run['profile']} build, {run['cpus']} CPUs, load average (1/5/15 min) "
        f"{' '.join(run.get('load_before', ['?']))} before the runs, {' '.join(run['load'])} after). "
        f"It runs the commands above and rewrites every figure between `<!--m:...-->` markers in this file's "
        f"source; run it again after a change to the daemon."
    )
    if missing:
        stamp += f" Not measured in that run, kept from an earlier one: {', '.join(sorted(set(missing)))}."
    if "soak" not in blocks_:
        stamp += " The soak paragraph was not rerun (`--no-soak`): it names its own commit."
    blocks_["stamp"] = stamp
    new, _ = rewrite(doc, inline, blocks_)
    for k in sorted(inline):
        print(f"{k} = {inline[k]}")
    for k, text in blocks_.items():
        print(f"[{k}] {text}")
    if not all(known):
        sys.stderr.write(f"robustness-report: note: reports seen from ours/Postfix: {known}\n")
    if o["dry"]:
        return
    if new != doc:
        with open(DOC, "w") as f:
            f.write(new)
        sys.stderr.write("robustness-report: rewrote docs/robustness.md\n")
    else:
        sys.stderr.write("robustness-report: docs/robustness.md unchanged\n")


if __name__ == "__main__":
    main()
