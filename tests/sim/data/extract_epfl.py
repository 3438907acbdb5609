#!/usr/bin/env python3
"""Per-distance attenuation statistics of the EPFL/DP-3T social experiments.

Reads DP-3T's bt-measurements repository (github.com/DP-3T/bt-measurements, CC BY-ND 4.0,
EPFL and ETH Zurich) at a commit, converts each received advertisement to a GAEN
attenuation exactly as the repository's own measurements.py does (Google's per-model
calibration of 2020-12-14: attenuation = tx_power(model) - (rssi + rx_adjust(model)), +6 dB
for advertisements sent at TX_POWER_ULTRA_LOW), and writes, per experiment, scenario and
distance bin, the count, mean and standard deviation of the attenuation. Only these
derived figures are shipped here; the raw data stay in the source repository.

It also prints the `epfl` radio profile fitted to experiment 34 (see
docs/SIMULATION.md, "Radio profiles"): per scenario, the reference and exponent that put
the simulator's bin means (distance uniform in the bin, under 0.5 m counted as 0.5 m) on
the measured ones (count-weighted least squares), and the per-episode spread that brings
the simulator's bin spread to the measured one.

    python3 tests/sim/data/extract_epfl.py /path/to/bt-measurements [COMMIT] \
        > tests/sim/data/epfl_attenuation.csv
"""

import math
import random
import sqlite3
import subprocess
import sys
import tempfile

# Google's calibration of 2020-12-14 as measurements.py holds it: model -> [rx_adjust, tx_power].
CALIBRATION = {
    'iPhone7': [0.0, 3.0], 'iPhoneXR': [0.0, 0.0], 'iPhoneXS': [0.0, 3.0],
    'iPhone11': [0.0, 1.0], 'iPhone11Pro': [0.0, 3.0], 'SM-G973F': [2.0, -29.0],
    'SM-G970F': [5.0, -25.0], 'SM-A405FN': [2.0, -23.0], 'SM-A515F': [2.0, -28.0],
    'SM-A908B': [5.0, -25.0], 'SM-G981B/DS': [5.0, -25.0],
}
BINS = [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 5.0), (5.0, 10.0)]
SCENARIOS = {
    'exp05-epfl-soldiers': ['lunch', 'train', 'office', 'queue', 'party'],
    'exp34-epfl-soldiers': ['lunch', 'train', 'office', 'queue', 'party', 'movement'],
}
# The simulator's radio_stats: distance uniform in the bin from 0.1 m, under 0.5 m as 0.5 m.
MIN_DISTANCE_M = 0.5
# Device residuals and per-scan fading of the profile (dB); see docs/SIMULATION.md.
DEVICE_TX_SD, DEVICE_RX_SD, SCAN_SD = 2.8, 3.2, 3.0


def attenuations(db):
    out = []
    query = 'SELECT rssi, tx_power, receiver_model, transmitter_model, ground_truth_distance FROM results'
    for rssi, tx, rx_model, tx_model, distance in sqlite3.connect(db).execute(query):
        if distance is None:
            continue
        adjust = 6 if tx in (-21, -20) else 0
        # measurements.py takes tx_power from the receiver's row and rx_adjust from the
        # transmitter's; the processed databases give both phones the receiver's model.
        out.append((CALIBRATION[rx_model][1] - (rssi + adjust + CALIBRATION[tx_model][0]), distance))
    return out


def bin_stats(values):
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return n, mean, sd


def log_distance_moments(lo, hi, draws=200_000, rng=random.Random(1)):
    xs = [10 * math.log10(max(rng.uniform(max(lo, 0.1), hi), MIN_DISTANCE_M)) for _ in range(draws)]
    m = sum(xs) / draws
    return m, sum((x - m) ** 2 for x in xs) / draws


def main():
    repo = sys.argv[1]
    commit = sys.argv[2] if len(sys.argv) > 2 else 'HEAD'
    sha = subprocess.check_output(['git', '-C', repo, 'rev-parse', commit], text=True).strip()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for exp, names in SCENARIOS.items():
            for i, name in enumerate(names, 1):
                path = f'{exp}/scenario{i:02d}-{name}.sqlite'
                db = f'{tmp}/{i}.sqlite'
                with open(db, 'wb') as f:
                    f.write(subprocess.check_output(['git', '-C', repo, 'show', f'{sha}:{path}']))
                data = attenuations(db)
                for lo, hi in BINS:
                    values = [a for a, d in data if lo <= d < hi]
                    if len(values) >= 20:
                        rows.append((exp.split('-')[0], name, lo, hi, *bin_stats(values)))
    print('# Derived from github.com/DP-3T/bt-measurements (CC BY-ND 4.0, EPFL and ETH Zurich)')
    print(f'# commit {sha}; by tests/sim/data/extract_epfl.py. GAEN attenuation (dB) with')
    print('# Google\'s per-model calibration of 2020-12-14, per ground-truth distance bin (m).')
    print('experiment,scenario,bin_lo_m,bin_hi_m,n,mean_db,sd_db')
    for exp, name, lo, hi, n, mean, sd in rows:
        print(f'{exp},{name},{lo:g},{hi:g},{n},{mean:.2f},{sd:.2f}')

    moments = {b: log_distance_moments(*b) for b in BINS}
    base = DEVICE_TX_SD ** 2 + DEVICE_RX_SD ** 2 + SCAN_SD ** 2
    print('# epfl profile fitted to exp34 (reference at 1 m, exponent, spread):', file=sys.stderr)
    for name in SCENARIOS['exp34-epfl-soldiers']:
        pts = [(moments[(lo, hi)], n, mean, sd) for e, s, lo, hi, n, mean, sd in rows
               if e == 'exp34' and s == name]
        w = sum(p[1] for p in pts)
        mx = sum(p[0][0] * p[1] for p in pts) / w
        my = sum(p[2] * p[1] for p in pts) / w
        slope = sum(p[1] * (p[0][0] - mx) * (p[2] - my) for p in pts) / sum(
            p[1] * (p[0][0] - mx) ** 2 for p in pts)
        # The measured within-bin variance, less the model's own spread of distance in the bin.
        var = sum(p[1] * (p[3] ** 2 - slope ** 2 * p[0][1]) for p in pts) / w
        episode = math.sqrt(max(var - base, 0.0))
        print(f'{name}: reference {my - slope * mx:.1f} dB, exponent {slope:.2f}, '
              f'episode sd {episode:.1f} dB', file=sys.stderr)


if __name__ == '__main__':
    main()
