"""`v2xgw energy simulate --prices PRICES.csv --area DK1 [--site SITE.json] [--from DATE --to DATE]
--json OUT.json [--plot DIR] [--week DATE]`: the year simulation (energy/simulate.py).

Prints the strategy table on stdout (and each strategy's run time); progress on stderr only
when it is a terminal. Exit 0 done; 2 bad input (one line "error: FILE: KEY: problem" naming
the price file, the site file and key, the tariff or the option); 1 an output cannot be written.
"""

import calendar
import json
import os
import sys
import time

EXIT_INVALID = 2


def _refuse(msg):
    print("error: %s" % msg, file=sys.stderr)
    return EXIT_INVALID


def _date(opt, text):
    """YYYY-MM-DD -> UTC epoch s of its 00:00 UTC (the price files' years are UTC years)."""
    try:
        y, m, d = (int(x) for x in text.split("-"))
        if len(text) != 10 or not (1 <= m <= 12 and 1 <= d <= calendar.monthrange(y, m)[1]):
            raise ValueError
    except ValueError:
        raise ValueError("%s: %r is not a date YYYY-MM-DD" % (opt, text)) from None
    return calendar.timegm((y, m, d, 0, 0, 0))


def _progress():
    if not sys.stderr.isatty():
        return None
    last = [0.0]

    def show(kind, frac):
        now = time.monotonic()
        if now - last[0] > 0.2:
            last[0] = now
            sys.stderr.write("\r%-18s %3.0f %%" % (kind, 100 * frac))
            sys.stderr.flush()
    return show


COLUMNS = (("cost_dkk", "cost DKK", "%10.0f"), ("grid_import_kwh", "import kWh", "%10.0f"),
           ("grid_export_kwh", "export kWh", "%10.0f"), ("ev_charged_kwh", "EV in kWh", "%9.0f"),
           ("ev_discharged_kwh", "EV out kWh", "%10.0f"), ("equivalent_full_cycles", "cycles", "%6.1f"),
           ("departure_misses", "misses", "%6d"), ("reserve_violation_slots", "resv", "%4d"),
           ("run_s", "run s", "%6.1f"))


def table(out):
    """The printed strategy table (a list of lines)."""
    strat = out["strategies"]
    head = "%-18s " % "strategy" + " ".join("%*s" % (len(f % 0), h) for _, h, f in COLUMNS) + "   saving"
    lines = [head]
    dumb = strat.get("dumb", {}).get("cost_dkk")
    for k, v in strat.items():
        row = "%-18s " % k + " ".join(f % v[key] for key, _, f in COLUMNS)
        if dumb:
            row += " %7.1f %%" % (100 * (dumb - v["cost_dkk"]) / dumb)
        lines.append(row)
    if "v2x" in strat:
        lines.append("v2x plans: %d (%d on drift), solve p50 %.1f ms, p99 %.1f ms" % (
            strat["v2x"]["plans"], strat["v2x"]["replans_on_drift"], strat["v2x"]["plan_ms_p50"],
            strat["v2x"]["plan_ms_p99"]))
    if out.get("capture_ratio") is not None:
        lines.append("capture ratio (v2x saving / perfect-foresight saving over dumb): %.1f %%"
                     % (100 * out["capture_ratio"]))
    return lines


def cmd_simulate(args):
    from energy import prices, simulate, site as site_mod, tariffs

    try:
        start_s = _date("--from", args.from_) if args.from_ else None
        end_s = _date("--to", args.to) if args.to else None
        week_s = _date("--week", args.week) if args.week else None
    except ValueError as e:
        return _refuse(str(e))
    try:
        series = prices.load(args.prices, args.area)
        site = site_mod.load_site(args.site)
        tname = site["tariff"] or tariffs.default_tariff(args.area)
        if tname is None:
            return _refuse("%s: no default tariff for area %s (set \"tariff\" in the site file)"
                           % (args.site or "site", args.area))
        try:
            tariff = tariffs.load_tariff(tname)
        except tariffs.TariffError as e:
            if not site["tariff"]:
                raise
            return _refuse("%s: tariff: %s" % (os.path.basename(args.site), e))
        t0 = series.start_s if start_s is None else start_s
        t1 = series.end_s if end_s is None else end_s
        w = simulate.build_world(series, site, tariff, t0, t1)
    except (prices.PriceError, site_mod.SiteError, tariffs.TariffError) as e:
        return _refuse(str(e))
    if w.n < 96:
        return _refuse("--from/--to: the period must hold at least one day, found %d slots" % w.n)
    from energy import plan
    show = _progress()
    t = time.perf_counter()
    try:
        res, runs = simulate.simulate(w, progress=show)
    except plan.PlanInputError as e:  # a site whose hard limits no plan meets (e.g. load above the fuse)
        if show:
            sys.stderr.write("\n")
        return _refuse("%s: %s" % (args.site or "site", e))
    total = time.perf_counter() - t
    if show:
        sys.stderr.write("\r" + " " * 30 + "\r")
    out = {
        "prices": {"file": os.path.basename(args.prices), "area": args.area},
        "tariff": tname,
        "period": {"from_utc": simulate._iso(w.start_s), "to_utc": simulate._iso(w.start_s + w.n * w.slot_s),
                   "slots": w.n, "slot_minutes": w.slot_s // 60},
        "site": site,
        "strategies": res,
        "capture_ratio": simulate.capture_ratio(res),
        "method": simulate.method(),
        "run_s": round(total, 2),
    }
    try:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)
            f.write("\n")
    except OSError as e:
        print("error: %s: cannot write: %s" % (args.json, e.strerror or e), file=sys.stderr)
        return 1
    print("%s %s, %s .. %s, %d slots of 15 min, tariff %s" % (
        os.path.basename(args.prices), args.area, out["period"]["from_utc"], out["period"]["to_utc"], w.n, tname))
    for line in table(out):
        print(line)
    print("total %.1f s -> %s" % (total, args.json))
    if args.plot:
        from energy import simulate_plot
        stem = "energy-" + os.path.splitext(os.path.basename(args.prices))[0]
        try:
            os.makedirs(args.plot, exist_ok=True)
            paths = simulate_plot.plots(w, res, runs, args.plot, stem, week_s)
        except OSError as e:
            print("error: %s: cannot write: %s" % (args.plot, e.strerror or e), file=sys.stderr)
            return 1
        except ValueError as e:
            return _refuse(str(e))
        for p in paths:
            print("plot -> %s" % p)
    return 0


def add_parser(esub):
    s = esub.add_parser("simulate", help="replay a price year with a home and an EV, per strategy",
                        description="Replay a price period (the whole file by default) at 15-min slots with the "
                                    "site's household, EV use and tariff, for the strategies dumb, smart_charge, "
                                    "v2h, v2x and perfect_foresight (docs/energy.md).")
    s.add_argument("--prices", required=True, help="price file: CSV time_utc,price_area,price_eur_mwh or EDS JSON")
    s.add_argument("--area", required=True, help="price area (DK1, DK2)")
    s.add_argument("--site", help="site JSON over the defaults of energy/data/site-default.json")
    s.add_argument("--from", dest="from_", metavar="DATE", help="first day YYYY-MM-DD (UTC; default the file's start)")
    s.add_argument("--to", metavar="DATE", help="end day YYYY-MM-DD, exclusive (UTC; default the file's end)")
    s.add_argument("--json", required=True, help="output JSON")
    s.add_argument("--plot", metavar="DIR", help="write the monthly-cost and week plots (PNG) here")
    s.add_argument("--week", metavar="DATE", help="first day of the week plot (default: the first Monday in "
                                                    "February in the period, else the period's first Monday)")
    s.set_defaults(func=cmd_simulate)
