"""`v2xgw energy manager --interface IF --channel CH --area DK1 (--prices FILE | --eds) ...`:
the live energy manager (energy/manager.py) on a CAN bus.

Exit 0 after --duration (or Ctrl-C); exit 2 with one line ``error: WHERE: problem`` for a bad
option or input (unknown area, a broken price, site or tariff file, a --start-utc outside the
price file, a --speedup that does not give whole slots); exit 1 when the bus cannot be opened.
"""

import os
import sys

from energy.cli import number

EXIT_INVALID = 2


def _refuse(msg):
    print("error: %s" % msg, file=sys.stderr)
    return EXIT_INVALID


def cmd_manager(args):
    from energy import manager, prices, site as site_mod, tariffs

    if args.area not in prices.AREAS:
        return _refuse("--area: unknown price area %r (known: %s)" % (args.area, ", ".join(prices.AREAS)))
    try:
        start_s = None
        if args.start_utc is not None:
            try:
                start_s = prices.parse_utc(args.start_utc)
            except ValueError as e:
                return _refuse("--start-utc: %s" % e)
        if args.prices:
            series = prices.load(args.prices, args.area)
            if start_s is not None and not series.start_s <= start_s < series.end_s:
                return _refuse("--start-utc: %s is outside the price file %s (%s .. %s)" % (
                    args.start_utc, os.path.basename(args.prices), prices.format_utc(series.start_s),
                    prices.format_utc(series.end_s)))
            source = manager.FilePrices(series)
        else:
            source = manager.EdsPrices(args.area)
        site = site_mod.load_site(args.site)
        if args.reserve is not None:  # raised ahead of a storm or an announced outage
            site["reserve_soc"] = args.reserve
        tname = args.tariff or site["tariff"] or tariffs.default_tariff(args.area)
        tariff = tariffs.load_tariff(tname)
        manager.slot_seconds_on_bus(args.speedup)  # refused here (exit 2), not once the bus is open
    except (prices.PriceError, site_mod.SiteError, tariffs.TariffError, manager.ManagerError) as e:
        return _refuse(str(e))
    import can

    kw = {"interface": args.interface, "channel": args.channel}
    if args.interface == "socketcand":
        kw.update(host=args.host, port=args.port)
    try:
        bus = can.Bus(**kw)
    except (can.CanError, OSError, ValueError, ImportError) as e:
        print("error: cannot open the bus %s %s: %s" % (args.interface, args.channel, e), file=sys.stderr)
        return 1
    clock = manager.Clock(start_s=start_s, speedup=args.speedup, offset_s=args.clock_offset)
    try:
        m = manager.Manager(bus, clock, source, site, tariff, plan_slots=args.plan_slots,
                            allow_export=not args.no_export, speedup=args.speedup,
                            inverter_efficiency=args.inverter_efficiency,
                            log=lambda line: print(line, flush=True), quiet=args.quiet)
        m.run(duration_s=args.duration)
    except manager.ManagerError as e:
        return _refuse(str(e))
    except KeyboardInterrupt:
        pass
    finally:
        bus.shutdown()
    if not args.quiet:
        print("%d plan sets sent (%d frames), %d received frames refused" % (m.sets_sent, m.frames_sent,
                                                                               m.rx_refused))
    return 0




def add_parser(esub):
    p = esub.add_parser("manager", help="the live energy manager: plans from day-ahead prices, sends them over CAN",
                        description=__doc__)
    p.add_argument("--interface", default="virtual", help="python-can interface or socketcand (default virtual)")
    p.add_argument("--channel", default="vcan0", help="bus channel (default vcan0)")
    p.add_argument("--host", default="127.0.0.1", help="socketcand host")
    p.add_argument("--port", type=int, default=29536, help="socketcand port")
    p.add_argument("--area", required=True, help="price area (DK1, DK2)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prices", metavar="FILE", help="price file: CSV time_utc,price_area,price_eur_mwh or EDS JSON")
    src.add_argument("--eds", action="store_true", help="prices live from Energi Data Service")
    p.add_argument("--site", help="site JSON over the defaults of energy/data/site-default.json")
    p.add_argument("--tariff", help="tariff name or file (default: the site's, else the area's default)")
    p.add_argument("--reserve", type=number("a fraction 0..1", 0.0, 1.0), metavar="SOC",
                   help="backup reserve to plan with and send as the plan's ReserveSoc, e.g. 0.6 ahead of a "
                        "storm (default: the site's reserve_soc); the firmware keeps the larger of it and its "
                        "own backup.reserve_soc_pct")
    p.add_argument("--plan-slots", type=int, default=32, metavar="K",
                   help="slots sent per plan, 1..48 (default 32: 8 h of 15 min)")
    p.add_argument("--inverter-efficiency", type=float, default=0.97, metavar="EFF",
                   help="the gateway's inverter.efficiency (default 0.97): AC plan powers to battery-side setpoints")
    p.add_argument("--no-export", action="store_true", help="plan without export (V2H only)")
    p.add_argument("--duration", type=number("a positive number", above=0.0), metavar="S", help="stop after S seconds (default: run on)")
    p.add_argument("--start-utc", metavar="TIME", help="the manager's clock starts here (ISO UTC; rigs and tests: "
                                                       "a time inside the price file) instead of the wall clock")
    p.add_argument("--speedup", type=number("a positive number", above=0.0), default=1.0,
                   help="the manager's clock runs this much faster (demos; slots shrink to 900/speedup s on the bus)")
    p.add_argument("--clock-offset", type=float, default=0.0, metavar="S", help="seconds added to the clock")
    p.add_argument("--quiet", action="store_true", help="no line per plan sent")
    p.set_defaults(func=cmd_manager)
