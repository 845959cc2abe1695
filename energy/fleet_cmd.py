"""`v2xgw energy fleet --homes N --seed S --prices FILE --area AREA [--from DATE --to DATE]
[--workers K | --ray ADDRESS|auto] --json OUT [--plot DIR]`: a fleet of homes planned and
simulated as one flexible resource (energy/fleet.py, docs/fleet.md).

Homes run in batches on the engine of tools/engine.py; each batch's per-slot sums are added as
they arrive, so the process holds the per-slot aggregates and one small row per home, never
every home's time series. Progress on stderr only when it is a terminal. Exit 0 done; 2 bad
input (one line "error: ..." naming the option or the file); 1 an engine that cannot be
reached or an output that cannot be written.
"""

import os
import sys
import time

EXIT_INVALID = 2
BATCH_MAX = 8  # homes per task at most: small enough to balance two workers on a few homes


def _refuse(msg):
    print("error: %s" % msg, file=sys.stderr)
    return EXIT_INVALID


def _batches(n_homes, workers):
    """Consecutive id ranges: about four tasks per worker, at most BATCH_MAX homes each."""
    size = max(1, min(BATCH_MAX, n_homes // max(1, 4 * workers)))
    return [list(range(i, min(n_homes, i + size))) for i in range(0, n_homes, size)]


class _Progress:
    """A line on stderr, rewritten: homes done, homes/s, time left (terminal only)."""

    def __init__(self, total):
        self.total = total
        self.t0 = time.monotonic()
        self.on = sys.stderr.isatty()

    def __call__(self, done):
        if not self.on:
            return
        el = time.monotonic() - self.t0
        rate = done / el if el > 0 else 0.0
        left = (self.total - done) / rate if rate > 0 else 0.0
        sys.stderr.write("\rhomes %d/%d  %.2f homes/s  %.0f s left   " % (done, self.total, rate, left))
        sys.stderr.flush()

    def end(self):
        if self.on:
            sys.stderr.write("\r" + " " * 60 + "\r")


def _mw(arr):
    return [int(x) / 1e6 for x in arr]


def table(out):
    """The printed summary (a list of lines)."""
    f = out["fleet"]
    per = out["per_home"]
    lines = ["%d homes, %s %s .. %s, %d slots of %d min, %s" % (
        out["homes"], out["area"], out["period"]["from_utc"], out["period"]["to_utc"], out["period"]["slots"],
        f["slot_minutes"], out["engine"]["engine"])]
    lines.append("%-18s %14s %14s %10s" % ("strategy", "fleet DKK", "mean DKK/home", "misses"))
    for k, v in f["cost_dkk"].items():
        misses = sum(h["departure_misses"][k] for h in per)
        lines.append("%-18s %14.0f %14.1f %10d" % (k, v, v / out["homes"], misses))
    from energy import fleet
    k = len(f["flex_up_mw"]) - fleet.FLEX_SLOTS + 1  # the slots an hour from them fits in the period
    up, down = f["flex_up_mw"][:k], f["flex_down_mw"][:k]
    lines.append("flexibility for an hour (MW): up mean %.3f min %.3f max %.3f; down mean %.3f min %.3f max %.3f"
                 % (sum(up) / len(up), min(up), max(up), sum(down) / len(down), min(down), max(down)))
    b = f["bids"]
    lines.append("FCR-D-style hourly bids (min %.1f MW, step %.1f MW): up %d of %d hours, mean %.2f MW; "
                 "down %d hours, mean %.2f MW" % (b["min_bid_mw"], b["step_mw"], sum(1 for x in b["up_mw"] if x > 0),
                                                  len(b["up_mw"]), sum(b["up_mw"]) / max(1, len(b["up_mw"])),
                                                  sum(1 for x in b["down_mw"] if x > 0),
                                                  sum(b["down_mw"]) / max(1, len(b["down_mw"]))))
    lines.append("%.3f homes/s (%.1f s)" % (out["homes_per_s"], out["wall_s"]))
    return lines


def run(engine, seed, homes, area_t, t0, spot, show=None):
    """Homes 0..homes-1 of `seed` on a started engine -> (Aggregate, rows sorted by id, wall s).
    Holds the per-slot sums and one row per home, nothing per home per slot."""
    from energy import fleet, simulate

    workers = engine.describe().get("workers") or 1
    base = {"seed": seed, "area_tariffs": area_t, "start_s": t0, "spot": spot, "strategies": simulate.STRATEGIES}
    items = [dict(base, ids=ids) for ids in _batches(homes, workers)]
    agg = fleet.Aggregate(len(spot))
    rows = []
    t = time.perf_counter()
    for _, res in engine.run(fleet.run_batch, items):
        agg.add(res)
        rows.extend(res["per_home"])
        del res
        if show:
            show(agg.homes)
    wall = time.perf_counter() - t
    if show:
        show.end()
    rows.sort(key=lambda r: r["id"])
    return agg, rows, wall


def bid_table(out):
    """The hourly bids by local hour of day: mean, least (what the fleet could offer every day
    of the period) and the share of hours with a bid, up and down (markdown lines)."""
    import calendar as cal

    from energy import fleet

    b = out["fleet"]["bids"]
    h0 = cal.timegm(time.strptime(b["hour_start_utc"], "%Y-%m-%dT%H:%M:%SZ"))
    up = fleet.hour_of_day_table(b["up_mw"], h0, 3600)
    down = fleet.hour_of_day_table(b["down_mw"], h0, 3600)
    share = lambda vals: 100.0 * sum(1 for v in vals if v > 0) / len(vals)  # noqa: E731
    by_up = fleet.hour_of_day_table([1.0 if v > 0 else 0.0 for v in b["up_mw"]], h0, 3600)
    by_down = fleet.hour_of_day_table([1.0 if v > 0 else 0.0 for v in b["down_mw"]], h0, 3600)
    lines = ["| local hour | up mean MW | up least MW | hours with an up bid | down mean MW | down least MW | "
             "hours with a down bid |", "|---|---|---|---|---|---|---|"]
    for hr in sorted(up):
        lines.append("| %02d-%02d | %.2f | %.1f | %.0f %% | %.2f | %.1f | %.0f %% |" % (
            hr, (hr + 1) % 24, up[hr][0], up[hr][1], 100 * by_up[hr][0], down[hr][0], down[hr][1],
            100 * by_down[hr][0]))
    lines.append("| all | %.2f | %.1f | %.0f %% | %.2f | %.1f | %.0f %% |" % (
        sum(b["up_mw"]) / len(b["up_mw"]), min(b["up_mw"]), share(b["up_mw"]),
        sum(b["down_mw"]) / len(b["down_mw"]), min(b["down_mw"]), share(b["down_mw"])))
    return lines


def cmd_fleet(args):
    from energy import fleet, prices, simulate
    from energy.simulate_cmd import _date
    from tools.engine import open_engine

    if args.homes < 1:
        return _refuse("--homes must be at least 1, got %d" % args.homes)
    try:
        start_s = _date("--from", args.from_) if args.from_ else None
        end_s = _date("--to", args.to) if args.to else None
    except ValueError as e:
        return _refuse(str(e))
    try:
        area_t = fleet.area_tariffs(args.area)
        series = prices.load(args.prices, args.area)
        t0 = series.start_s if start_s is None else start_s
        t1 = series.end_s if end_s is None else end_s
        if t1 - t0 < 86400:
            return _refuse("--from/--to: the period must hold at least one day, found %.2f days" % ((t1 - t0) / 86400))
        spot = prices.slots(series, simulate.SLOT_S, t0, t1)
    except (prices.PriceError, fleet.FleetError) as e:
        return _refuse(str(e))
    if len(spot) < 96:
        return _refuse("--from/--to: the period must hold at least one day, found %d slots" % len(spot))
    engine, code = open_engine(args.workers, args.ray)
    if engine is None:
        return code
    try:
        agg, rows, wall = run(engine, args.seed, args.homes, area_t, t0, spot, _Progress(args.homes))
        tasks = len(_batches(args.homes, engine.describe().get("workers") or 1))
        described = engine.describe(tasks)  # the processes the run used
    finally:
        engine.close()
    up, down = agg.up_w.tolist(), agg.down_w.tolist()
    sph = 3600 // simulate.SLOT_S
    out = {
        "homes": args.homes,
        "seed": args.seed,
        "area": args.area,
        "prices": {"file": os.path.basename(args.prices), "area": args.area},
        "period": {"from_utc": simulate._iso(t0), "to_utc": simulate._iso(t0 + len(spot) * simulate.SLOT_S),
                   "slots": len(spot)},
        "engine": described,
        "distributions": fleet.DISTRIBUTIONS,
        "per_home": rows,
        "fleet": {
            "slot_minutes": simulate.SLOT_S // 60,
            "start_utc": simulate._iso(t0),
            "sustain_minutes": fleet.FLEX_SLOTS * simulate.SLOT_S // 60,
            "flex_up_mw": _mw(up),
            "flex_down_mw": _mw(down),
            "baseline_mw": _mw(agg.baseline_w),
            "plugged_evs": agg.plugged.tolist(),
            "cost_dkk": {k: round(sum(r["cost_dkk"][k] for r in rows), 2) for k in simulate.STRATEGIES},
            "bids": {"product": "FCR-D-style hourly capacity, up and down",
                     "min_bid_mw": fleet.MIN_BID_MW, "step_mw": fleet.BID_STEP_MW,
                     "hour_start_utc": simulate._iso(t0),
                     "up_mw": fleet.bids(up, sph), "down_mw": fleet.bids(down, sph)},
        },
        "homes_per_s": round(args.homes / wall, 4) if wall > 0 else None,
        "wall_s": round(wall, 2),
    }
    from energy.cli import write_json
    try:
        write_json(args.json, out)
    except OSError as e:
        print("error: %s: cannot write: %s" % (args.json, e.strerror or e), file=sys.stderr)
        return 1
    for line in table(out):
        print(line)
    if out["fleet"]["bids"]["up_mw"]:
        print()
        for line in bid_table(out):
            print(line)
    print("-> %s" % args.json)
    if args.plot:
        from energy import fleet_plot
        try:
            os.makedirs(args.plot, exist_ok=True)
            stem = "fleet-" + os.path.splitext(os.path.basename(args.prices))[0]
            paths = fleet_plot.plots(out, args.plot, stem)
        except OSError as e:
            print("error: %s: cannot write: %s" % (args.plot, e.strerror or e), file=sys.stderr)
            return 1
        for p in paths:
            print("plot -> %s" % p)
    return 0


def _count(text):
    import argparse
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number, not %r" % text) from None


def add_parser(esub):
    from tools import engine

    s = esub.add_parser("fleet", help="a fleet of homes as one flexible resource: costs per home, flexibility and "
                                      "FCR-D-style bids per hour",
                        description="Draw N homes (docs/fleet.md), simulate each with every strategy over the price "
                                    "period, and sum per slot the flexibility the fleet can hold for an hour around "
                                    "its planned operation, with the resulting hourly bid capacity.")
    s.add_argument("--homes", required=True, type=_count, metavar="N", help="number of homes (at least 1)")
    s.add_argument("--seed", type=_count, default=1, help="fleet seed: home i of seed S is always the same home")
    s.add_argument("--prices", required=True, help="price file: CSV time_utc,price_area,price_eur_mwh or EDS JSON")
    s.add_argument("--area", required=True, help="price area (DK1, DK2)")
    s.add_argument("--from", dest="from_", metavar="DATE", help="first day YYYY-MM-DD (UTC; default the file's start)")
    s.add_argument("--to", metavar="DATE", help="end day YYYY-MM-DD, exclusive (UTC; default the file's end)")
    engine.add_arguments(s)
    s.add_argument("--json", required=True, help="output JSON")
    s.add_argument("--plot", metavar="DIR", help="write the flexibility and bid plots (PNG) here")
    s.set_defaults(func=cmd_fleet)
