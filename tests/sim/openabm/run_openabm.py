#!/usr/bin/env python3
"""Run OpenABM-Covid19's baseline for the outside check in docs/SIMULATION.md.

Builds nothing: point --exe at OpenABM's `src/covid19ibm.exe` (built with `make all` in a
clone of BDI-pathogens/OpenABM-Covid19) and --data at its `tests/data`. The baseline
parameter file is copied with the overrides below (population, horizon, seed) and
nothing else changed; each seed's daily time series (OpenABM's stdout) lands in
OUT/openabm-seed-N.csv.

    python3 tests/sim/openabm/run_openabm.py --exe ~/OpenABM-Covid19/src/covid19ibm.exe \
        --data ~/OpenABM-Covid19/tests/data --seeds 10 --out out/openabm
"""

import argparse
import csv
import pathlib
import subprocess
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exe", required=True, type=pathlib.Path)
    ap.add_argument("--data", required=True, type=pathlib.Path)
    ap.add_argument("--agents", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=150)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", required=True, type=pathlib.Path)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.data / "baseline_parameters.csv", newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    header, values = rows[0], rows[1]
    for seed in range(1, args.seeds + 1):
        overrides = {"n_total": args.agents, "end_time": args.days, "rng_seed": seed}
        vals = list(values)
        for key, value in overrides.items():
            vals[header.index(key)] = str(value)
        params = args.out / f"parameters-seed-{seed}.csv"
        with open(params, "w", newline="") as f:
            csv.writer(f).writerows([header, vals])
        run = subprocess.run(
            [
                str(args.exe.resolve()),
                str(params.resolve()),
                "1",
                str(args.out.resolve()),
                str((args.data / "baseline_household_demographics.csv").resolve()),
                str((args.data / "hospital_baseline_parameters.csv").resolve()),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if run.returncode != 0:
            sys.stderr.write(run.stdout[-2000:] + run.stderr[-2000:])
            return run.returncode
        series = [line for line in run.stdout.splitlines() if line and not line.startswith("#")]
        (args.out / f"openabm-seed-{seed}.csv").write_text("\n".join(series) + "\n")
        print(f"seed {seed}: {len(series) - 1} days", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
