"""`v2xgw energy prices (--prices FILE | --eds) --area DK1 [--tariff NAME|FILE] [--from DATE --to DATE]
[--slot-minutes 15] [--csv OUT] [--save FILE]`: what a price file holds and what it costs a household.

Prints the number of intervals, their resolution, spot min/mean/max (EUR/MWh, time-weighted
mean) and the all-in import and export prices (DKK/kWh) under the tariff (default: the area's,
energy/tariffs.py). DATE is a UTC date (YYYY-MM-DD, from its 00:00Z) or an ISO UTC time; --to is
exclusive. --csv writes one row per slot with the price's parts. --eds fetches the range from
Energi Data Service instead of reading a file (energy/eds.py; needs --area, --from and --to);
--save writes the prices read or fetched as a project CSV. Exit 2 with one line ``error: ...``
for a bad price file, tariff or range; 1 when Energi Data Service fails or a file cannot be
written.
"""

import csv
import sys

from energy.cli import number

EXIT_INVALID = 2


def fail(msg, code=EXIT_INVALID):
    print(f"error: {msg}", file=sys.stderr)
    return code


def utc_arg(text, option):
    """DATE or ISO UTC time -> epoch s; PriceError naming the option."""
    from energy import prices

    s = text.strip()
    try:
        return prices.parse_utc(s + "T00:00:00Z" if len(s) == 10 else s)
    except ValueError as e:
        raise prices.PriceError(option, str(e)) from None


def resolution_text(series):
    """"60 min" or "60 min to 2025-09-30T22:00:00Z, then 15 min"."""
    from energy.prices import format_utc

    runs = []
    for i in range(len(series)):
        d = series.interval_s(i)
        if not runs or runs[-1][0] != d:
            runs.append((d, series.times_s[i]))
    out = f"{runs[0][0] // 60} min"
    for d, t in runs[1:]:
        out += f" to {format_utc(t)}, then {d // 60} min"
    return out


def load_inputs(args):
    """(series, tariff, start_s, end_s) from --prices|--eds, --area, --tariff, --from, --to."""
    from energy import prices, tariffs

    if getattr(args, "eds", False):
        from energy import eds

        for opt, v in (("--area", args.area), ("--from", args.date_from), ("--to", args.date_to)):
            if not v:
                raise prices.PriceError(opt, "needed with --eds")
        series = eds.fetch(args.area, utc_arg(args.date_from, "--from"), utc_arg(args.date_to, "--to"),
                           timeout=args.timeout)
    else:
        series = prices.load(args.prices, area=args.area)
    tariff = tariffs.load_tariff(args.tariff or tariffs.default_tariff(series.area))
    if tariff.area != series.area:
        raise tariffs.TariffError(f"{args.tariff}: area", f"tariff is for {tariff.area}, prices for {series.area}")
    start = utc_arg(args.date_from, "--from") if args.date_from else series.start_s
    end = utc_arg(args.date_to, "--to") if args.date_to else series.end_s
    return series, tariff, start, end


def _stats(v):
    return min(v), sum(v) / len(v), max(v)


def cmd_prices(args):
    from energy import eds, prices, tariffs

    slot_s = args.slot_minutes * 60
    try:
        series, tariff, start, end = load_inputs(args)
        spot = prices.slots(series, slot_s, start, end)
        imp, exp = tariffs.price_arrays(tariff, start, slot_s, spot)
    except (prices.PriceError, tariffs.TariffError) as e:
        return fail(str(e))
    except eds.EdsError as e:
        return fail(str(e), 1)
    source = args.prices or series.source
    n_int = sum(1 for t in series.times_s if start <= t < end)
    print(f"prices   {source} ({series.area}), tariff {tariff.name}")
    print(f"range    {prices.format_utc(start)} .. {prices.format_utc(end)}: {n_int} intervals, "
          f"{len(spot)} slots of {args.slot_minutes} min")
    print(f"resolution {resolution_text(series)}")
    rows = (("spot", "EUR/MWh", spot), ("import", "DKK/kWh", imp), ("export", "DKK/kWh", exp))
    print(f"{'':10}{'unit':>9}{'min':>10}{'mean':>10}{'max':>10}")
    for name, unit, v in rows:
        lo, mean, hi = _stats(v)
        print(f"{name:10}{unit:>9}{lo:10.3f}{mean:10.3f}{hi:10.3f}")
    neg = sum(1 for p in spot if p < 0)
    print(f"negative spot in {neg} of {len(spot)} slots; all-in import includes grid, Energinet, "
          f"elafgift and {tariff.vat:.0%} VAT")
    if args.csv:
        try:
            _write_csv(args.csv, tariff, start, slot_s, spot, imp, exp)
        except OSError as e:
            return fail(f"{args.csv}: cannot write: {e.strerror or e}", 1)
        print(f"per-slot prices -> {args.csv}")
    if args.save:
        try:
            prices.write_csv(series, args.save)
        except OSError as e:
            return fail(f"{args.save}: cannot write: {e.strerror or e}", 1)
        print(f"{len(series)} prices -> {args.save}")
    return 0


def _write_csv(path, tariff, start, slot_s, spot, imp, exp):
    from energy.prices import format_utc

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["slot_start_utc", "spot_eur_mwh", "spot_dkk_kwh", "grid_dkk_kwh", "transmission_dkk_kwh",
                    "system_dkk_kwh", "tax_dkk_kwh", "vat_dkk_kwh", "import_dkk_kwh", "export_dkk_kwh"])
        for k, p in enumerate(spot):
            t = start + k * slot_s
            c = tariff.components(t, p)
            w.writerow([format_utc(t), f"{p:.6g}"] + [f"{c[x]:.6f}" for x in
                                                      ("spot", "grid", "transmission", "system", "tax", "vat")]
                       + [f"{imp[k]:.6f}", f"{exp[k]:.6f}"])


def add_common(p, prices_arg=True):
    if prices_arg:
        p.add_argument("--prices", required=True, metavar="FILE",
                       help="price file (project CSV or Energi Data Service JSON)")
    p.add_argument("--area", metavar="AREA", help="price area (DK1, DK2); needed if the file holds several")
    p.add_argument("--tariff", metavar="NAME|FILE", help="tariff name (energy/data/tariffs) or file; default: the area's")




def add_parser(esub):
    p = esub.add_parser("prices", help="summary and all-in import/export prices of a price file", description=__doc__)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prices", metavar="FILE", help="price file (project CSV or Energi Data Service JSON)")
    src.add_argument("--eds", action="store_true", help="fetch --from .. --to from Energi Data Service")
    add_common(p, prices_arg=False)
    p.add_argument("--timeout", type=number("0 < S < 3600 seconds", above=0.0, below=3600.0), default=30.0, metavar="S", help="with --eds: give up after S seconds")
    p.add_argument("--save", metavar="FILE", help="write the prices as a project CSV")
    p.add_argument("--from", dest="date_from", metavar="DATE", help="first UTC date/time (default: file start)")
    p.add_argument("--to", dest="date_to", metavar="DATE", help="end UTC date/time, exclusive (default: file end)")
    p.add_argument("--slot-minutes", type=int, choices=(15, 60), default=15, help="slot length (default 15)")
    p.add_argument("--csv", metavar="OUT", help="write the per-slot all-in prices here")
    p.set_defaults(func=cmd_prices)
