#!/usr/bin/env python3
"""Set ephemera-sim's infection curve beside OpenABM-Covid19's (docs/SIMULATION.md,
"Outside check: OpenABM-Covid19").

Reads OpenABM's daily time series (OPENABM/openabm-seed-*.csv, written by
run_openabm.py) and our runs' daily.csv (OURS/seed-*/daily.csv from `ephemera-sim
--seeds`, or OURS/daily.csv from one run), prints peak day, peak height, final attack rate
and early doubling time for both (mean and range over seeds), and draws both curves, daily
new infections and cumulative share infected, in one SVG. Standard library only.

    python3 tests/sim/openabm/compare.py --openabm out/openabm --ours out/openabm-ours \
        --svg docs/img/openabm-comparison.svg
"""

import argparse
import csv
import math
import pathlib
import statistics
import sys

# Early growth is fitted while the cumulative share infected is within this window.
GROWTH_WINDOW = (0.001, 0.02)
# The generation time both models share: OpenABM's infectious period, a gamma with mean
# 5.5 and sd 2.14 days.
GEN_MEAN, GEN_SD = 5.5, 2.14


def openabm_series(path: pathlib.Path, seeds: int) -> list[float]:
    """Cumulative infected at the end of each day, from day 1 (OpenABM's time 1), with
    the seeded cases (OpenABM's n_seed_infection, all on day 0) as day 0."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [float(seeds)] + [float(r["total_infected"]) for r in rows]


def our_series(path: pathlib.Path) -> list[float]:
    """Cumulative infected at the end of each day, with the cases seeded before the first
    day as day 0 (our day d is OpenABM's time d + 1)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    first = rows[0]
    seeded = float(first["cumulative_infected"]) - float(first["new_infections"])
    return [seeded] + [float(r["cumulative_infected"]) for r in rows]


def metrics(cumulative: list[float], agents: int) -> dict[str, float]:
    """Peak day and height of daily new infections, final attack rate and the early
    doubling time (log-linear fit of the cumulative count inside GROWTH_WINDOW)."""
    daily = [b - a for a, b in zip(cumulative, cumulative[1:])]
    peak = max(range(len(daily)), key=lambda d: daily[d])
    lo, hi = (w * agents for w in GROWTH_WINDOW)
    pts = [(d, math.log(c)) for d, c in enumerate(cumulative) if lo <= c <= hi]
    if len(pts) >= 3:
        xs, ys = zip(*pts)
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        slope = sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x in xs)
    else:
        slope = float("nan")
    shape, scale = (GEN_MEAN / GEN_SD) ** 2, GEN_SD**2 / GEN_MEAN
    return {
        "peak_day": float(peak + 1),
        "peak_per_100k": daily[peak] * 100_000 / agents,
        "attack_rate": cumulative[-1] / agents,
        "doubling_days": math.log(2) / slope if slope > 0 else float("nan"),
        "r0_from_growth": (1 + slope * scale) ** shape if slope > 0 else float("nan"),
    }


def summarise(runs: list[dict[str, float]]) -> dict[str, tuple[float, float, float]]:
    return {
        k: (
            statistics.fmean(r[k] for r in runs),
            min(r[k] for r in runs),
            max(r[k] for r in runs),
        )
        for k in runs[0]
    }


def polyline(points, colour, width, opacity=1.0) -> str:
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return (
        f'<polyline fill="none" stroke="{colour}" stroke-width="{width}" '
        f'stroke-opacity="{opacity}" points="{path}"/>'
    )


def panel(x0, y0, w, h, title, ylabel, series, days, ymax, yticks, fmt) -> list[str]:
    """One chart: `series` is [(colour, [curves])]; the mean curve is drawn thick."""
    out = [
        f'<text x="{x0 + w / 2}" y="{y0 - 10}" text-anchor="middle" font-size="14">{title}</text>',
        f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#888"/>',
        f'<text x="{x0 - 48}" y="{y0 + h / 2}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 {x0 - 48} {y0 + h / 2})">{ylabel}</text>',
        f'<text x="{x0 + w / 2}" y="{y0 + h + 34}" font-size="12" text-anchor="middle">day</text>',
    ]

    def sx(d):
        return x0 + w * d / days

    def sy(v):
        return y0 + h - h * v / ymax

    for t in yticks:
        out.append(f'<line x1="{x0}" x2="{x0 + w}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#eee"/>')
        out.append(
            f'<text x="{x0 - 6}" y="{sy(t) + 4:.1f}" font-size="11" text-anchor="end">{fmt(t)}</text>'
        )
    for d in range(0, days + 1, 10):
        out.append(
            f'<text x="{sx(d):.1f}" y="{y0 + h + 16}" font-size="11" text-anchor="middle">{d}</text>'
        )
    for colour, curves in series:
        for c in curves:
            out.append(polyline([(sx(d), sy(v)) for d, v in enumerate(c)], colour, 1, 0.35))
        n = min(len(c) for c in curves)
        mean = [statistics.fmean(c[d] for c in curves) for d in range(n)]
        out.append(polyline([(sx(d), sy(v)) for d, v in enumerate(mean)], colour, 2.5))
    return out


def svg(openabm, ours, agents, days, labels) -> str:
    colours = ("#1f77b4", "#d62728")
    per100k = [
        [[(b - a) * 100_000 / agents for a, b in zip(c, c[1:])] for c in runs]
        for runs in (openabm, ours)
    ]
    # Daily curves start at day 1 (the new infections of day d end at index d - 1).
    per100k = [[[0.0] + c for c in runs] for runs in per100k]
    shares = [[[v / agents for v in c] for c in runs] for runs in (openabm, ours)]
    peak = max(max(c) for runs in per100k for c in runs)
    step = 1000 if peak > 4000 else 500
    ymax = step * math.ceil(peak * 1.05 / step)
    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="980" height="420" '
        'font-family="sans-serif">',
        '<rect width="100%" height="100%" fill="white"/>',
    ]
    parts += panel(
        80, 40, 380, 300, "New infections a day (per 100,000)", "infections / day / 100k",
        list(zip(colours, per100k)), days, ymax, range(0, ymax + 1, step), lambda t: f"{t:,}",
    )
    parts += panel(
        570, 40, 380, 300, "Cumulative share infected", "share infected",
        list(zip(colours, shares)), days, 1.0, [i / 5 for i in range(6)], lambda t: f"{t:.0%}",
    )
    for i, (colour, label) in enumerate(zip(colours, labels)):
        y = 395 + 0 * i
        x = 120 + 420 * i
        parts.append(f'<line x1="{x}" x2="{x + 30}" y1="{y}" y2="{y}" stroke="{colour}" stroke-width="2.5"/>')
        parts.append(f'<text x="{x + 38}" y="{y + 4}" font-size="12">{label}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--openabm", required=True, type=pathlib.Path)
    ap.add_argument("--ours", required=True, type=pathlib.Path)
    ap.add_argument("--agents", type=int, default=100_000)
    ap.add_argument("--openabm-seeded", type=int, default=10, help="OpenABM's n_seed_infection")
    ap.add_argument("--days", type=int, default=100, help="days drawn")
    ap.add_argument("--svg", type=pathlib.Path)
    args = ap.parse_args()

    openabm_files = sorted(args.openabm.glob("openabm-seed-*.csv"))
    our_files = sorted(args.ours.glob("seed-*/daily.csv")) or sorted(args.ours.glob("daily.csv"))
    if not openabm_files or not our_files:
        sys.stderr.write("compare.py: no OpenABM series or no daily.csv found\n")
        return 2
    openabm = [openabm_series(p, args.openabm_seeded)[: args.days + 1] for p in openabm_files]
    ours = [our_series(p)[: args.days + 1] for p in our_files]

    rows = [
        ("peak day (new infections)", "peak_day", "{:.0f}"),
        ("peak new infections / day / 100k", "peak_per_100k", "{:,.0f}"),
        ("final attack rate", "attack_rate", "{:.1%}"),
        ("early doubling time (days)", "doubling_days", "{:.2f}"),
        ("R0 from the growth rate", "r0_from_growth", "{:.2f}"),
    ]
    sides = [
        (f"OpenABM ({len(openabm)} seeds)", summarise([metrics(c, args.agents) for c in openabm])),
        (f"ephemera-sim ({len(ours)} seeds)", summarise([metrics(c, args.agents) for c in ours])),
    ]
    print(f"| figure | {sides[0][0]} | {sides[1][0]} |")
    print("| --- | --- | --- |")
    for label, key, fmt in rows:
        cells = [
            f"{fmt.format(m)} ({fmt.format(lo)} – {fmt.format(hi)})"
            for m, lo, hi in (s[key] for _, s in sides)
        ]
        print(f"| {label} | {cells[0]} | {cells[1]} |")
    if args.svg:
        args.svg.parent.mkdir(parents=True, exist_ok=True)
        args.svg.write_text(svg(openabm, ours, args.agents, args.days, [s[0] for s in sides]))
        print(f"wrote {args.svg}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
