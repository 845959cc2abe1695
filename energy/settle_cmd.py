"""`v2xgw energy settle --intervals CSV --prices FILE --area DK1 [--tariff NAME|FILE] [--json OUT]`:
what the metered 15-minute intervals cost (energy/settle.py).

Prints a per-month table (Danish local months) and the totals: kWh per register, import cost,
export earnings and the net bill in DKK (energy only: subscriptions are not per kWh and are
left out), and how many intervals were flagged estimated/partial or are missing. Exit 2 with one
line ``error: FILE:LINE: problem`` for a malformed interval file, unaligned, duplicate or
out-of-order intervals, or prices/tariffs that do not cover an interval; 1 when --json cannot
be written.
"""


from energy.cli import write_json
from energy.prices_cmd import add_common, fail


def cmd_settle(args):
    from energy import prices, settle, tariffs

    try:
        series = prices.load(args.prices, area=args.area)
        tariff = tariffs.load_tariff(args.tariff or tariffs.default_tariff(series.area))
        if tariff.area != series.area:
            raise tariffs.TariffError(f"{args.tariff}: area", f"tariff is for {tariff.area}, prices for {series.area}")
        records = settle.read_intervals(args.intervals)
        rep = settle.settle(records, series, tariff, source=args.intervals.rsplit("/", 1)[-1])
    except (prices.PriceError, tariffs.TariffError, settle.SettleError) as e:
        return fail(str(e))
    print(f"settlement of {args.intervals}: {rep['first_utc']} .. {rep['end_utc']}, {series.area}, "
          f"tariff {tariff.name}")
    print(f"{'month':8}{'intervals':>10}{'flagged':>8}{'import kWh':>12}{'export kWh':>12}"
          f"{'import DKK':>12}{'export DKK':>12}{'net DKK':>11}")
    for m in rep["months"]:
        print(f"{m['month']:8}{m['intervals']:10d}{m['flagged']:8d}{m['import_kwh']:12.3f}{m['export_kwh']:12.3f}"
              f"{m['import_cost_dkk']:12.2f}{m['export_earnings_dkk']:12.2f}{m['net_dkk']:11.2f}")
    k = rep["kwh"]
    print(f"{'total':8}{rep['intervals']:10d}{rep['flagged_intervals']:8d}{k['grid_import_wh']:12.3f}"
          f"{k['grid_export_wh']:12.3f}{rep['import_cost_dkk']:12.2f}{rep['export_earnings_dkk']:12.2f}"
          f"{rep['net_dkk']:11.2f}")
    print("registers (kWh): " + ", ".join(f"{name[:-3]} {v:.3f}" for name, v in k.items()))
    if rep["flagged_intervals"] or rep["missing_intervals"]:
        print(f"note: {rep['flagged_intervals']} interval(s) flagged estimated/partial, "
              f"{rep['missing_intervals']} missing (not billed)")
    if args.json:
        try:
            write_json(args.json, rep)
        except OSError as e:
            return fail(f"{args.json}: cannot write: {e.strerror or e}", 1)
    return 0


def add_parser(esub):
    p = esub.add_parser("settle", help="settle 15-minute meter intervals at the tariff", description=__doc__)
    p.add_argument("--intervals", required=True, metavar="CSV", help="the metering's interval export")
    add_common(p)
    p.add_argument("--json", metavar="OUT", help="write the settlement report here")
    p.set_defaults(func=cmd_settle)
