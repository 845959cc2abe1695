"""`v2xgw energy autonomy --capacity-kwh 100 --soc 0.8 [--floor-soc 0.1]
[--load-profile CSV | --annual-kwh 4000 [--heat-pump]] [--discharge-efficiency 0.92]
[--inverter-standby-w 30] [--start DATE] [--target-days 3] [--json OUT]`:
how long the EV carries the home in an outage (energy/autonomy.py).

Without --load-profile the load is the shared average-Danish-household model
(energy/household.py, expected values, no noise) from --start, a Danish local date (default
2025-01-15, a winter Wednesday: the hardest season); a profile CSV (`time_utc,load_kw`) is used as
given and repeated if shorter than the autonomy. Exit 2 with one line ``error: ...`` for bad
input; 1 when --json cannot be written.
"""

from energy.cli import number, write_json
from energy.prices_cmd import fail

DEFAULT_START = "2025-01-15"


def _local_midnight_utc(date_text):
    """A Danish local date "YYYY-MM-DD" -> the UTC epoch s of its 00:00 local."""
    from energy import prices, tariffs

    t = prices.parse_utc(date_text.strip() + "T00:00:00Z")  # ValueError if not a date
    guess = t - 3600
    return t - tariffs.utc_offset_s(guess)


def cmd_autonomy(args):
    from energy import autonomy

    try:
        if args.load_profile:
            start_s, slot_s, load = autonomy.read_load_profile(args.load_profile)
            what = f"profile {args.load_profile} ({len(load)} slots of {slot_s // 60} min"
            what += ", repeated)" if len(load) * slot_s < 86400 * 2 else ")"
        else:
            try:
                start_s = _local_midnight_utc(args.start)
            except ValueError as e:
                return fail(f"--start: {e}")
            slot_s = 3600
            load = autonomy.household_profile(start_s, autonomy.MAX_DAYS, args.annual_kwh, args.heat_pump)
            what = (f"average Danish household {args.annual_kwh:g} kWh/year"
                    f"{' + heat pump' if args.heat_pump else ''}, from {args.start} 00:00 local")
        rep = autonomy.autonomy(args.capacity_kwh, args.soc, args.floor_soc, load, slot_s,
                                args.discharge_efficiency, args.inverter_standby_w, args.target_days)
    except autonomy.AutonomyError as e:
        return fail(str(e))
    rep["load"] = what
    print(f"battery  {args.capacity_kwh:g} kWh from SoC {args.soc:.0%} to {args.floor_soc:.0%}: "
          f"{(args.soc - args.floor_soc) * args.capacity_kwh:.1f} kWh, discharge efficiency "
          f"{args.discharge_efficiency:g}, inverter standby {args.inverter_standby_w:g} W")
    print(f"load     {what}, mean {rep['mean_load_kw']:.2f} kW")
    more = "" if rep["complete"] else f" (more than {autonomy.MAX_DAYS} days: not exhausted)"
    print(f"carries  {rep['hours']:.1f} h = {rep['days']:.2f} days{more}; the home used {rep['home_kwh']:.1f} kWh")
    if rep["days_per_10_kwh"]:
        print(f"per 10 kWh of battery: {rep['days_per_10_kwh']:.2f} days")
    print(f"{args.target_days:g} days need {rep['battery_kwh_for_target']:.1f} kWh from the battery: start at SoC "
          f"{rep['soc_for_target_days']:.0%}" + (" (more than the battery holds)" if rep["soc_for_target_days"] > 1 else ""))
    if args.json:
        try:
            write_json(args.json, rep)
        except OSError as e:
            return fail(f"{args.json}: cannot write: {e.strerror or e}", 1)
    return 0







_FRACTION = number("a fraction 0..1", 0.0, 1.0)
_POSITIVE = number("a positive number", above=0.0)
_NON_NEGATIVE = number("a number >= 0", lo=0.0)


def add_parser(esub):
    p = esub.add_parser("autonomy", help="how long the EV carries the home in an outage", description=__doc__)
    p.add_argument("--capacity-kwh", type=_POSITIVE, required=True, help="usable battery capacity (kWh)")
    p.add_argument("--soc", type=_FRACTION, required=True, help="state of charge at the outage (0..1)")
    p.add_argument("--floor-soc", type=_FRACTION, default=0.10, help="stop at this SoC (default 0.10)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--load-profile", metavar="CSV", help="home load, header time_utc,load_kw")
    src.add_argument("--annual-kwh", type=_POSITIVE, default=4000.0, help="household model's yearly use (default 4000)")
    p.add_argument("--heat-pump", action="store_true", help="add the model's heat pump (~5000 kWh/year, winter-heavy)")
    p.add_argument("--discharge-efficiency", type=_FRACTION, default=0.92, help="battery to AC (default 0.92)")
    p.add_argument("--inverter-standby-w", type=_NON_NEGATIVE, default=30.0, help="inverter's own draw (default 30 W)")
    p.add_argument("--start", default=DEFAULT_START, metavar="DATE", help=f"local date the outage starts (default {DEFAULT_START})")
    p.add_argument("--target-days", type=_POSITIVE, default=3.0, help="what 'several days' means (default 3)")
    p.add_argument("--json", metavar="OUT", help="write the report here")
    p.set_defaults(func=cmd_autonomy)
