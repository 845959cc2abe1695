"""Throughput and memory of `v2xgw energy fleet` (energy/fleet.py) on this machine.

    python -m tools.bench_fleet [--homes 4] [--days 365] [--mem-homes 8,48] [--mem-days 7] [--ray] [--json OUT]

- homes/s over `--days` of 15-minute slots (default a whole year: 2025 of the shipped DK2 file),
  every strategy per home, on one worker and on two (and on a local Ray with --ray); the speedup
  of two workers over one; a check that the numbers are identical.
- the driver's peak Python heap (tracemalloc) while the homes run on two worker processes, for
  two fleet sizes over `--mem-days`: the per-slot aggregates and one row per home, so it should
  not grow with N beyond those rows.

Progress on stderr when it is a terminal; a table at the end. Figures in docs/fleet.md.
"""

import argparse
import calendar
import json
import os
import sys
import time
import tracemalloc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRICES = os.path.join(ROOT, "energy", "data", "prices", "dk2-2025.csv")
AREA = "DK2"
START = (2025, 1, 1)


def _inputs(days):
    from energy import fleet, prices, simulate
    t0 = calendar.timegm(START + (0, 0, 0))
    spot = prices.slots(prices.load(PRICES, AREA), simulate.SLOT_S, t0, t0 + days * 86400)
    return fleet.area_tariffs(AREA), t0, spot


def _numbers(agg, rows):
    return (agg.up_w.tolist(), agg.down_w.tolist(), agg.baseline_w.tolist(), agg.plugged.tolist(), rows)


def throughput(homes, days, engines, say=lambda s: None):
    """{engine label: {"wall_s", "homes_per_s"}} and whether all engines agreed."""
    from energy import fleet_cmd
    from tools.engine import Engine

    area_t, t0, spot = _inputs(days)
    out, ref, same = {}, None, True
    for label, kw in engines:
        say("%s: %d homes x %d days ..." % (label, homes, days))
        with Engine(**kw) as eng:
            agg, rows, wall = fleet_cmd.run(eng, 1, homes, area_t, t0, spot)
        nums = _numbers(agg, rows)
        if ref is None:
            ref = nums
        same = same and nums == ref
        out[label] = {"wall_s": round(wall, 2), "homes_per_s": round(homes / wall, 4)}
    return out, same


def driver_memory(sizes, days, say=lambda s: None):
    """{N: peak traced bytes in this (the driver) process} with the homes on two workers."""
    from energy import fleet_cmd
    from tools.engine import Engine

    area_t, t0, spot = _inputs(days)
    with Engine(workers=2) as eng:  # warm: the first run's imports are not the fleet's memory
        fleet_cmd.run(eng, 1, 2, area_t, t0, spot)
    out = {}
    for n in sizes:
        say("memory: %d homes x %d days ..." % (n, days))
        with Engine(workers=2) as eng:
            tracemalloc.start()
            fleet_cmd.run(eng, 1, n, area_t, t0, spot)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        out[n] = peak
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.bench_fleet", description=__doc__.split("\n\n")[0])
    ap.add_argument("--homes", type=int, default=4)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--mem-homes", default="8,48")
    ap.add_argument("--mem-days", type=int, default=7)
    ap.add_argument("--ray", action="store_true", help="also on a local Ray")
    ap.add_argument("--json", metavar="OUT")
    a = ap.parse_args(argv)
    tty = sys.stderr.isatty()

    def say(s):
        if tty:
            sys.stderr.write("\r%-60s" % s)
            sys.stderr.flush()

    engines = [("1 worker", {"workers": 1}), ("2 workers", {"workers": 2})]
    if a.ray:
        engines.append(("ray auto", {"ray": "auto"}))
    thr, same = throughput(a.homes, a.days, engines, say)
    mem = driver_memory([int(x) for x in a.mem_homes.split(",")], a.mem_days, say)
    if tty:
        sys.stderr.write("\r" + " " * 60 + "\r")
    one = thr["1 worker"]["wall_s"]
    print("fleet of %d homes, %d days of 15-min slots (%s %s), every strategy per home" % (a.homes, a.days, AREA,
                                                                                          START[0]))
    print("%-10s %9s %10s %8s" % ("engine", "wall s", "homes/s", "speedup"))
    for k, v in thr.items():
        print("%-10s %9.1f %10.4f %7.2fx" % (k, v["wall_s"], v["homes_per_s"], one / v["wall_s"]))
    print("identical numbers on every engine: %s" % same)
    print("driver peak heap with the homes on 2 workers (%d days): %s" % (
        a.mem_days, ", ".join("%d homes %.1f MB" % (n, b / 1e6) for n, b in mem.items())))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"homes": a.homes, "days": a.days, "throughput": thr, "identical": same,
                       "speedup_2_workers": round(one / thr["2 workers"]["wall_s"], 3),
                       "driver_peak_bytes": {str(k): v for k, v in mem.items()}, "mem_days": a.mem_days,
                       "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, f, indent=1)
            f.write("\n")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
