"""Solve times of the planner (energy/plan.py) on realistic 48-hour plans at 15-minute slots.

    python -m tools.bench_plan [--n 200] [--seed 1] [--json OUT]

Each instance: 192 slots starting at a random quarter-hour of the 15-minute part of
energy/data/prices/dk1-2025.csv (from 2025-10-01), all-in Danish prices built from the spot
price (below), a household load with an evening peak, a commuting EV (away 07:00-16:00 local
on weekdays with a 10-16 kWh round trip, a departure target of 80 %), a 30 % reserve, a random
start SoC and, for one instance in four, export not allowed. solve_ms is the planner's own
figure (validation + model + HiGHS + output); p50/p99 over all instances. Also used by
tests/test_bench_energy_plan.py and `v2xgw bench` (plan_192); docs/planner.md has the figures.
"""

import argparse
import csv
import datetime
import json
import os
import random
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PRICES = os.path.join(ROOT, "energy", "data", "prices", "dk1-2025.csv")
EUR_DKK = 7.46  # the DKK's ERM II central rate; good enough to shape a benchmark's prices
FIRST_15MIN = "2025-10-01T00:00:00Z"
SLOTS = 192


def quarter_hour_prices():
    """[(start as datetime UTC, spot DKK/kWh)] of the 15-minute part of the shipped DK1 file."""
    out = []
    with open(PRICES, newline="") as f:
        for row in csv.DictReader(f):
            if row["time_utc"] >= FIRST_15MIN:
                t = datetime.datetime.fromisoformat(row["time_utc"].replace("Z", "+00:00"))
                out.append((t, float(row["price_eur_mwh"]) * EUR_DKK / 1000.0))
    return out


def instance(rng, series):
    """One realistic 192-slot plan input drawn from `series` (quarter_hour_prices())."""
    k = rng.randrange(0, len(series) - SLOTS)
    window = series[k:k + SLOTS]
    imp, exp, load, plugged, drive, deps = [], [], [], [], [], []
    trip = rng.uniform(10.0, 16.0)
    for i, (t, spot) in enumerate(window):
        local = (t.hour + 1 + t.minute / 60.0) % 24  # CET, near enough for a load shape
        peak = 17 <= local < 21
        # all-in: spot + grid tariff (time of use) + system tariffs + tax, VAT on top; export
        # earns spot minus a feed-in fee
        imp.append(round((spot + (0.60 if peak else 0.20) + 0.14 + 0.72) * 1.25, 5))
        exp.append(round(spot - 0.02, 5))
        load.append(round(0.35 + (1.1 if peak else 0.25 if 7 <= local < 23 else 0.0) + rng.uniform(0, 0.3), 3))
        weekday = t.weekday() < 5
        away = weekday and 7 <= local < 16
        plugged.append(not away)
        leaving = away and (i == 0 or plugged[i - 1])
        coming = (not away) and i > 0 and not plugged[i - 1]
        drive.append(round(trip / 2, 3) if leaving else 0.0)  # the way out, on the first slot away
        if leaving:
            deps.append({"slot": i, "min_soc": 0.8})
        if coming:  # the way home, booked on the last slot away
            drive[i - 1] = round(drive[i - 1] + trip / 2, 3)
    return {
        "slot_minutes": 15, "start_utc": window[0][0].strftime("%Y-%m-%dT%H:%M:%SZ"),
        "import_price_dkk_per_kwh": imp, "export_price_dkk_per_kwh": exp, "home_load_kw": load,
        "ev": {"capacity_kwh": 94.0, "soc": round(rng.uniform(0.35, 0.9), 3), "max_charge_kw": 11.0,
               "max_discharge_kw": 11.0, "charge_efficiency": 0.92, "discharge_efficiency": 0.92, "min_soc": 0.1,
               "plugged": plugged, "drive_kwh": drive, "departures": deps},
        "reserve_soc": 0.3, "wear_cost_dkk_per_kwh": 0.1, "grid_import_limit_kw": 17.0,
        "grid_export_limit_kw": 10.0, "allow_export": rng.random() >= 0.25,
    }


def instances(n, seed=1):
    rng = random.Random(seed)
    series = quarter_hour_prices()
    return [instance(rng, series) for _ in range(n)]


def percentile(sorted_values, q):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    i = max(0, min(len(sorted_values) - 1, int(-(-q * len(sorted_values) // 100)) - 1))
    return sorted_values[i]


def measure(n=200, seed=1, progress=None):
    """Solve n instances (after one warm-up solve: imports, the HiGHS instance); returns
    ({"n", "p50_ms", "p99_ms", "max_ms", "mean_ms", "cpu_p50_ms", "cpu_p99_ms" (this process's
    CPU time per plan: what the plan costs without the other jobs of a shared machine),
    "milp", "with_shortfall", "loadavg"}, the solve_ms samples)."""
    from energy import plan

    cases = instances(n, seed)
    plan.solve(cases[0])
    ms, cpu, milp, short = [], [], 0, 0
    for i, inp in enumerate(cases):
        t0, c0 = time.perf_counter(), time.process_time()
        r = plan.solve(inp)
        wall = (time.perf_counter() - t0) * 1000.0
        cpu.append((time.process_time() - c0) * 1000.0)
        ms.append(r["solve_ms"])
        milp += r["milp"]
        short += bool(r["shortfall"])
        if progress:
            progress(i + 1, n)
        assert r["solve_ms"] <= wall + 1e-6
    v, c = sorted(ms), sorted(cpu)
    return {"n": n, "slots": SLOTS, "p50_ms": round(percentile(v, 50), 2), "p99_ms": round(percentile(v, 99), 2),
            "max_ms": round(v[-1], 2), "mean_ms": round(sum(v) / n, 2),
            "cpu_p50_ms": round(percentile(c, 50), 2), "cpu_p99_ms": round(percentile(c, 99), 2),
            "milp": milp, "with_shortfall": short, "loadavg": [round(x, 2) for x in os.getloadavg()]}, ms


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", metavar="OUT")
    a = ap.parse_args(argv)
    tty = sys.stderr.isatty()

    def progress(i, n):
        if tty and (i % 10 == 0 or i == n):
            sys.stderr.write("\rplan %d/%d" % (i, n) + ("\n" if i == n else ""))

    res, samples = measure(a.n, a.seed, progress)
    print("%-10s %5s %7s %7s %7s %7s %8s %8s %5s %9s" % ("case", "n", "p50_ms", "p99_ms", "max_ms", "mean_ms",
                                                          "cpu_p50", "cpu_p99", "milp", "shortfall"))
    print("%-10s %5d %7.2f %7.2f %7.2f %7.2f %8.2f %8.2f %5d %9d" % (
        "plan_192", res["n"], res["p50_ms"], res["p99_ms"], res["max_ms"], res["mean_ms"], res["cpu_p50_ms"],
        res["cpu_p99_ms"], res["milp"], res["with_shortfall"]))
    print("load average at the end: %s (2 cores shared with other jobs: wall times include their share)"
          % " ".join(str(x) for x in res["loadavg"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"plan_192": res, "samples_ms": samples}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
