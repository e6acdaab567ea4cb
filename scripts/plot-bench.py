#!/usr/bin/env python3
"""Plot the fill rows of scripts/bench-report.sh's fill.csv as an SVG.

Usage: scripts/plot-bench.py FILL.csv OUT.svg

FILL.csv has the columns of `scache-load --csv` (scripts/bench-tables.py
--fill-csv writes it: medians and min/max over all runs of all repetitions).

Two panels against the number of cached sessions: cycles per second
(median, with the min-max range of the runs as a bar; higher is better) and
the daemon's CPU time per cycle (lower is better), for ours, Postfix's
daemon and the floor server. Pinned rows are used when there are any.

The SVG is written by hand (standard library only), so that the report needs
no plotting package.
"""

import csv
import sys
from xml.sax.saxutils import escape

STYLE = {
    "ours": ("#1f5fbf", ""),
    "postfix": ("#c0392b", ""),
    "floor": ("#7f7f7f", "6,4"),
}
LABEL = {"ours": "ours", "postfix": "Postfix scache", "floor": "floor (no cache logic)"}

W, H = 960, 450
PANEL_W, PANEL_H = 380, 300
MARGIN_L, MARGIN_T = 80, 60
GAP = 100


def nice_max(v):
    """A round number >= v for the top of an axis."""
    if v <= 0:
        return 1.0
    mag = 10 ** (len(str(int(v))) - 1)
    for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if step * mag >= v:
            return step * mag
    return 10 * mag


def fmt(v):
    if v >= 1000:
        return f"{v / 1000:g}k"
    return f"{v:g}"


def load(path):
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("workload") == "fill"]
    if any(r.get("pinned") == "1" for r in rows):
        rows = [r for r in rows if r.get("pinned") == "1"]
    series = {}
    for r in rows:
        try:
            x = int(r["fill"])
            y = float(r["cycles_per_s"])
        except (KeyError, ValueError):
            continue
        lo = float(r.get("cycles_per_s_min") or y)
        hi = float(r.get("cycles_per_s_max") or y)
        cpu = r.get("daemon_cpu_us")
        cpu = float(cpu) if cpu else None
        series.setdefault(r["daemon"], []).append((x, y, lo, hi, cpu))
    for pts in series.values():
        pts.sort()
    return series


def panel(out, x0, title, ylabel, series, pick, xmax, with_range):
    ymax = 0.0
    for pts in series.values():
        for p in pts:
            v = pick(p)
            if v is not None:
                ymax = max(ymax, p[3] if with_range else v)
    ymax = nice_max(ymax * 1.05)
    y0 = MARGIN_T
    sx = lambda x: x0 + x / xmax * PANEL_W
    sy = lambda y: y0 + PANEL_H - y / ymax * PANEL_H
    out.append(f'<text x="{x0 + PANEL_W / 2}" y="{y0 - 14}" text-anchor="middle" '
               f'font-size="15" font-weight="bold">{escape(title)}</text>')
    # grid and axes
    for i in range(6):
        yv = ymax * i / 5
        y = sy(yv)
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + PANEL_W}" y2="{y:.1f}" stroke="#e6e6e6"/>')
        out.append(f'<text x="{x0 - 8}" y="{y + 4:.1f}" text-anchor="end" font-size="12">{fmt(yv)}</text>')
    for i in range(5):
        xv = xmax * i / 4
        x = sx(xv)
        out.append(f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y0 + PANEL_H}" stroke="#f0f0f0"/>')
        out.append(f'<text x="{x:.1f}" y="{y0 + PANEL_H + 18}" text-anchor="middle" font-size="12">{fmt(round(xv))}</text>')
    out.append(f'<rect x="{x0}" y="{y0}" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#333"/>')
    out.append(f'<text x="{x0 + PANEL_W / 2}" y="{y0 + PANEL_H + 40}" text-anchor="middle" font-size="13">cached sessions</text>')
    out.append(f'<text transform="translate({x0 - 58},{y0 + PANEL_H / 2}) rotate(-90)" '
               f'text-anchor="middle" font-size="13">{escape(ylabel)}</text>')
    for name in ("floor", "postfix", "ours"):
        pts = [p for p in series.get(name, []) if pick(p) is not None]
        if not pts:
            continue
        color, dash = STYLE[name]
        d = " ".join(f"{sx(p[0]):.1f},{sy(pick(p)):.1f}" for p in pts)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="2.5"{dash_attr}/>')
        # min-max bars side by side, so that they do not hide each other
        offset = {"floor": -5, "postfix": 0, "ours": 5}[name]
        for p in pts:
            cx, cy = sx(p[0]), sy(pick(p))
            if with_range and p[3] > p[2]:
                bx = cx + offset
                out.append(f'<line x1="{bx:.1f}" y1="{sy(p[2]):.1f}" x2="{bx:.1f}" y2="{sy(p[3]):.1f}" '
                           f'stroke="{color}" stroke-width="1.5" opacity="0.7"/>')
            out.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="{color}">'
                       f'<title>{escape(name)}: {pick(p):.1f} at {p[0]} sessions</title></circle>')


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    series = load(sys.argv[1])
    if not series:
        sys.exit(f"{sys.argv[1]}: no fill rows to plot")
    xmax = nice_max(max(p[0] for pts in series.values() for p in pts))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'viewBox="0 0 {W} {H}" font-family="sans-serif">',
           f'<rect width="{W}" height="{H}" fill="white"/>']
    panel(out, MARGIN_L, "save_endp + find_endp cycles per second", "cycles/s (median, min-max bar)",
          series, lambda p: p[1], xmax, True)
    panel(out, MARGIN_L + PANEL_W + GAP, "daemon CPU time per cycle", "microseconds (lower is better)",
          series, lambda p: p[4], xmax, False)
    # legend
    lx, ly = MARGIN_L, H - 18
    for name in ("ours", "postfix", "floor"):
        if name not in series:
            continue
        color, dash = STYLE[name]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 30}" y2="{ly - 4}" stroke="{color}" stroke-width="2.5"{dash_attr}/>')
        out.append(f'<text x="{lx + 36}" y="{ly}" font-size="13">{escape(LABEL[name])}</text>')
        lx += 60 + 8 * len(LABEL[name])
    out.append("</svg>")
    with open(sys.argv[2], "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
