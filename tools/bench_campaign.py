"""Benchmark: the 45-case unintentional-islanding matrix (hil/matrix.py, EN50549-1 50 Hz, grid
support off) run through the campaign runner serially, on two worker processes and, with
--ray, on Ray; the wall time of each, the speed-up over serial and whether every engine gave
the same rows (it must: lockstep runs do not depend on where they run).

    python -m tools.bench_campaign [--workers 2] [--ray auto] [--repeat 3] [--json OUT]

The issue's target: two workers at least 1.7x faster than serial, with identical metrics.
Before timing, one case runs in this process so the serial figure is not charged with the
imports (the forked workers inherit them; Ray's workers are fresh processes and import on
their first task: the first Ray run is reported apart, next to the median). Ray's start-up
(a local Ray for the run) is timed apart from the runs. docs/benchmarks.md, "HIL campaign scaling", has the figures.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

TARGET = 1.7


def cases():
    from hil import matrix

    return matrix.cases("EN50549-1", 50.0, grid_support="off")


def run(engine, items=None):
    """The matrix's rows on `engine` and the wall time they took."""
    from hil import campaign, matrix

    items = cases() if items is None else items
    t0 = time.perf_counter()
    rows = campaign.run_scenarios(items, matrix._run_case, engine)
    return rows, time.perf_counter() - t0


def measure(workers=2, ray=None, repeat=1, items=None, log=None):
    """{"cases", "serial_s", "workers", "parallel_s", "speedup", "identical", ["ray_start_s",
    "ray_s", "ray_first_s", "ray_cpus", "ray_speedup"]}; times are medians over `repeat` runs
    (ray_first_s: the first run on a fresh Ray, whose workers import on their first task)."""
    from hil import matrix
    from tools.engine import Engine

    items = cases() if items is None else items
    matrix._run_case(items[0])  # imports and first-use caches, outside every timing
    say = log or (lambda *_: None)
    serial, parallel = [], []
    ref = None
    identical = True
    for k in range(repeat):
        rows, t = run(Engine(workers=1), items)
        serial.append(t)
        ref = ref or rows
        identical &= rows == ref
        say(f"run {k + 1}/{repeat}: serial {t:.2f} s")
        rows, t = run(Engine(workers=workers), items)
        parallel.append(t)
        identical &= rows == ref
        say(f"run {k + 1}/{repeat}: {workers} workers {t:.2f} s")
    out = {"cases": len(items), "serial_s": round(statistics.median(serial), 3), "workers": workers,
           "parallel_s": round(statistics.median(parallel), 3)}
    out["speedup"] = round(out["serial_s"] / out["parallel_s"], 2)
    if ray:
        t0 = time.perf_counter()
        with Engine(ray=ray) as eng:
            out["ray_start_s"] = round(time.perf_counter() - t0, 3)
            out["ray_cpus"] = eng.describe().get("workers")
            times = []
            for k in range(repeat):
                rows, t = run(eng, items)
                times.append(t)
                identical &= rows == ref
                say(f"run {k + 1}/{repeat}: Ray {t:.2f} s")
        out["ray_s"] = round(statistics.median(times), 3)
        out["ray_first_s"] = round(times[0], 3)  # Ray's workers import the simulation on their first task
        out["ray_speedup"] = round(out["serial_s"] / out["ray_s"], 2)
    out["identical"] = identical
    return out


def table(res):
    lines = [f"islanding matrix, {res['cases']} cases (EN50549-1, 50 Hz, grid support off)",
             f"{'engine':<22} {'wall s':>8} {'speed-up':>9}", "-" * 41,
             f"{'serial (in process)':<22} {res['serial_s']:>8.2f} {'1.00x':>9}",
             f"{str(res['workers']) + ' worker processes':<22} {res['parallel_s']:>8.2f} {res['speedup']:>8.2f}x"]
    if "ray_s" in res:
        lines.append(f"{'Ray (' + str(res['ray_cpus']) + ' CPUs)':<22} {res['ray_s']:>8.2f} {res['ray_speedup']:>8.2f}x"
                     f"   (+{res['ray_start_s']:.2f} s to start Ray; first run {res['ray_first_s']:.2f} s)")
    lines.append("-" * 41)
    lines.append("rows identical on every engine: " + ("yes" if res["identical"] else "NO"))
    lines.append(f"target: {res['workers']} workers >= {TARGET}x serial: "
                 + ("met" if res["speedup"] >= TARGET else "MISSED"))
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m tools.bench_campaign", description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=2, help="worker processes for the parallel run (default 2)")
    p.add_argument("--ray", metavar="ADDRESS", help="also run on Ray: auto or a cluster's HOST:PORT")
    p.add_argument("--repeat", type=int, default=1, help="runs per engine; the median is reported (default 1)")
    p.add_argument("--json", metavar="OUT", help="write the figures (and the machine) here")
    args = p.parse_args(argv)
    if args.workers < 2 or args.repeat < 1:
        print("error: --workers must be >= 2 and --repeat >= 1", file=sys.stderr)
        return 2
    from tools.engine import EngineError

    show = sys.stderr.isatty()
    try:
        res = measure(args.workers, args.ray, args.repeat,
                      log=(lambda s: print(s, file=sys.stderr, flush=True)) if show else None)
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(table(res), end="")
    if args.json:
        res["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(), "processor": _cpu()}
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
            f.write("\n")
    return 0 if res["identical"] else 1


def _cpu():
    try:
        with open("/proc/cpuinfo") as f:
            return next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), platform.machine())
    except OSError:
        return platform.machine()


if __name__ == "__main__":
    sys.exit(main())
