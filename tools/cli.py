"""`v2xgw`: the command line of the V2X gateway (HIL runs, the controller on a bus, bus monitor)."""

import argparse
import json
import os
import sys

EXIT_INVALID = 2


def _fail(msg):
    print(f"error: {msg}", file=sys.stderr)
    return EXIT_INVALID


def _event_line(e):
    fields = " ".join(f"{k}={v}" for k, v in e.items() if k not in ("t_s", "kind"))
    return f"  {e['t_s']:9.3f} s  {e['kind']:<20} {fields}"


def _print_timeline(report, out=sys.stdout):
    print(f"scenario {report['scenario']}", file=out)
    for e in report["events"]:
        print(_event_line(e), file=out)
    _print_metrics(report, out)


def _print_metrics(report, out=sys.stdout):
    print("metrics:", file=out)
    for k, v in report["metrics"].items():
        print(f"  {k:<30} {v}", file=out)
    inv = report.get("invariants")
    if inv:
        print(f"site invariants: {inv['violations']} violation(s)", file=out)
        for v in inv["first"]:
            print(f"  {v['t_s']:9.3f} s  {v['rule']:<10} {v['detail']}", file=out)
    run = report.get("run", {})
    if "speedup" in run:
        print(f"lockstep: {run['wall_s']} s wall time, {run['speedup']}x real time", file=out)
    if "plant_late_max_ms" in run:
        print(f"real time: the plant fell at most {run['plant_late_max_ms']} ms behind the wall clock", file=out)


def _write_report(report, rec, args):
    if args.report:
        from hil.campaign import write_report

        write_report(report, args.report)  # the same bytes as a campaign's reports
    if getattr(args, "plot", None):
        from hil.plot import plot_run

        plot_run(report, rec.samples, args.plot)


def cmd_hil_run(args):
    from hil import scenario
    from hil.runner import run_lockstep

    try:
        sc = scenario.load(args.scenario)
    except scenario.ScenarioError as e:
        return _fail(str(e))
    bad = _unwritable(args.trace)
    if bad:
        return _fail(bad)
    report, rec = run_lockstep(sc, log_path=args.log, bus=args.bus, codec=args.codec,
                               clock_start_us=args.clock_start, trace_path=args.trace)
    _write_report(report, rec, args)
    if not args.quiet:
        _print_timeline(report)
    return 0


def _unwritable(path, option="--trace"):
    """An error message if `path` cannot be written (checked before a run starts), else None."""
    if not path:
        return None
    try:
        with open(path, "a"):
            pass
    except OSError as e:
        return "%s: cannot write %s: %s" % (option, path, e.strerror)
    return None


def _hostport(s):
    host, _, port = s.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {s!r}")
    return host.strip("[]"), int(port)


class _OuterBus:
    """hil serve --interface: the bridge to the external bus, stopped like the socketcand hub."""

    def __init__(self, bridge, bus):
        self.bridge = bridge
        self.bus = bus

    def stop(self):
        self.bridge.stop()
        self.bus.shutdown()


def cmd_hil_serve(args):
    import signal
    import threading

    import can

    from hil import scenario
    from hil.runner import run_realtime
    from hil.socketcand_hub import SocketcandHub

    try:
        if args.scenario:
            sc = scenario.load(args.scenario)
        else:
            sc = scenario.validate({"name": "serve-idle", "duration_s": 86400.0, "mode": {"kind": "v2h"}})
        if args.duration is not None:
            sc["duration_s"] = args.duration
    except scenario.ScenarioError as e:
        return _fail(str(e))
    bad = _unwritable(args.trace)
    if bad:
        return _fail(bad)
    if args.write_config:
        from hil.scenario import controller_config

        with open(args.write_config, "w") as f:
            json.dump(controller_config(sc), f, indent=2)
    channel = "hil-serve"
    bridge = can.Bus(interface="virtual", channel=channel)
    if args.interface:
        from hil.bus_bridge import BusBridge

        try:  # a rig's bus: socketcan on vcan0 or can0, or any python-can interface
            outer = can.Bus(interface=args.interface, channel=args.channel)
        except (can.CanError, OSError, ValueError, ImportError, NotImplementedError) as e:
            bridge.shutdown()
            print(f"error: cannot open the bus {args.interface} {args.channel}: {e}", file=sys.stderr)
            return 1
        hub = _OuterBus(BusBridge(bridge, outer).start(), outer)
        print(f"site on {args.interface} {args.channel}", flush=True)
    else:
        host, port = args.socketcand
        hub = SocketcandHub(host, port, channel=args.channel, bus=bridge)
        hub.start()
        print(f"socketcand hub on {hub.address[0]}:{hub.address[1]} channel {args.channel}", flush=True)
    if not args.quiet:
        print(f"scenario {sc['name']}", flush=True)
    # SIGTERM or Ctrl-C end the run like --duration does: the report is still written
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    live = None
    if not args.quiet:
        def live(e):
            print(_event_line(e), flush=True)
    station = None
    if args.ocpp:
        from hil.scenario import controller_config
        from ocpp_link.offline_queue import QueueError
        from ocpp_link.station import StationError
        from ocpp_link.station_cmd import start_for_hil

        args.csms = args.ocpp
        try:
            station, station_bus = start_for_hil(args, channel, controller_config(sc),
                                                 log=lambda line: print("ocpp " + line, flush=True))
        except (StationError, ValueError, QueueError) as e:
            hub.stop()
            bridge.shutdown()
            return _fail(str(e))
    try:
        wait = args.wait_controller if args.no_controller else None
        setup = None
        if not args.no_diagnostics:
            def setup(gw):
                from controller.clock import RealClock
                from hil.ecu import SimulatedEcu

                SimulatedEcu(gw, RealClock().ticks_us())
        report, rec = run_realtime(sc, lambda: can.Bus(interface="virtual", channel=channel),
                                   with_controller=not args.no_controller, log_path=args.log, wait_controller_s=wait,
                                   setup_controller=setup, stop=stop, on_event=live, trace_path=args.trace,
                                   ems_external=station is not None or args.external_ems)
    except TimeoutError as e:
        if stop.is_set():
            return 0  # stopped while still waiting for the external controller
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        hub.stop()
        bridge.shutdown()
        if station is not None:
            station.stop()  # the queue is closed (and a temporary --ocpp-data removed) after its last count
            station_bus.shutdown()
    if station is not None:
        report["ocpp"] = station.report
        if not args.quiet:
            print("ocpp " + station.summary, flush=True)
    _write_report(report, rec, args)
    if not args.quiet:
        _print_metrics(report)  # the events were printed as they came
    return 0


def _open_engine(args):
    """tools.engine.open_engine for the --workers / --ray of a hil command."""
    from tools.engine import open_engine

    return open_engine(args.workers, args.ray)


def _on(desc):
    """What ran a batch, for a closing line: "2 worker(s)" or "Ray at auto (2 CPUs)"."""
    if desc["engine"] == "ray":
        return f"Ray at {desc['address']} ({desc.get('workers', '?')} CPUs)"
    return f"{desc['workers']} worker(s)"


def _progress_line(show):
    """A progress callback (done, total, row) that rewrites one line on stderr when `show`."""
    def progress(done, total, row):
        if show:
            print(f"\r{done}/{total} {row['name'][:40]:40s}", end="", file=sys.stderr, flush=True)
    return progress


def cmd_hil_campaign(args):
    import time

    from hil import campaign

    files = campaign.collect(args.paths)
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        return _fail(f"{missing[0]}: no such file or folder")
    if not files:
        return _fail("no scenario files in " + ", ".join(args.paths))
    try:  # every file and name checked before an engine starts (Ray takes seconds)
        loaded = campaign.load_all(files)
        campaign.check_names(loaded)
    except campaign.CampaignError as e:
        return _fail(str(e))
    engine, code = _open_engine(args)
    if engine is None:
        return code
    show = sys.stderr.isatty() and not args.quiet
    t0 = time.perf_counter()
    try:
        rows = campaign.run_campaign(loaded, args.out, engine=engine, progress=_progress_line(show))
        desc = engine.describe(len(loaded))
    finally:
        engine.close()
    summ = campaign.summary(rows, desc, time.perf_counter() - t0)
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summ, f, indent=2)
        f.write("\n")
    table = campaign.table_md(rows)
    with open(os.path.join(args.out, "campaign.md"), "w") as f:
        f.write(table)
    if show:
        print(file=sys.stderr)
    if not args.quiet:
        print(table, end="")
        print(f"{summ['passed']}/{summ['scenarios']} passed on {_on(desc)} in {summ['wall_s']:.1f} s")
        for r in rows:
            if not r["passed"]:
                print(f"replay: v2xgw hil run {r['scenario']} --report {r['name']}.json")
    return 0 if summ["passed"] == summ["scenarios"] else 3


def cmd_hil_matrix(args):
    from controller import config
    from hil import matrix

    if args.grid_code not in config.GRID_CODES:
        return _fail(f"--grid-code: unknown grid code {args.grid_code!r}; known: {', '.join(config.GRID_CODES)}")
    engine, code = _open_engine(args)
    if engine is None:
        return code
    show = sys.stderr.isatty()

    def progress(done, total, row):
        if show:
            print(f"\r{done}/{total} cases", end="" if done < total else "\n", file=sys.stderr, flush=True)

    try:
        rows = matrix.run_matrix(args.grid_code, args.frequency, grid_support=args.grid_support, engine=engine,
                                 progress=progress)
    finally:
        engine.close()
    matrix.write(rows, args.out, args.grid_code, args.frequency, args.grid_support)
    print(matrix.table_md(rows, args.grid_code, args.frequency, args.grid_support), end="")
    print(f"written: {args.out}/matrix.md, matrix.json, matrix.png")
    return 0


def cmd_hil_soak(args):
    from hil import soak

    if args.hours <= 0 or args.shard_hours <= 0 or args.mean_gap <= 0:
        return _fail("--hours, --shard-hours and --mean-gap must be > 0")
    engine, code = _open_engine(args)
    if engine is None:
        return code
    tty = sys.stdout.isatty() and not args.quiet
    try:
        report = soak.run_soak(args.hours, args.seed, workers=args.workers, shard_s=args.shard_hours * 3600.0,
                               mean_gap_s=args.mean_gap, out_dir=args.out, progress=soak.Progress() if tty else None,
                               engine=engine)
    finally:
        engine.close()
    if args.report:
        with open(args.report, "w") as f:
            json.dump(report, f, indent=1)
            f.write("\n")
    if args.plot:
        soak.plot(report, args.plot)
    if not args.quiet:
        print(soak.table(report), end="")
    return 0


def cmd_run(args):
    from controller import config
    from controller.clock import RealClock
    from controller.control.gateway import Gateway
    from controller.bus.ports import open_port
    from controller.runtime import run

    try:
        cfg = config.load(args.config) if args.config else config.defaults()
    except config.ConfigError as e:
        return _fail(str(e))
    if args.secc_iface:
        from controller.iso15118 import service

        why = service.option_problem(args.tls_cert, args.tls_key, args.tls_ca, args.no_tls)
        if why:
            return _fail(f"--secc-iface: {why}")
    spec = {"interface": args.interface, "channel": args.channel}
    if args.interface == "socketcand":
        spec.update(host=args.host, port=args.port)
    port = open_port(spec)
    gw = Gateway(cfg, port)
    gw.apply_acceptance_filter()
    clock = RealClock()
    services = []
    if args.secc_iface:
        # the EV link in this process, polled by the control loop (controller/iso15118/service.py)
        from controller.iso15118 import service

        try:
            services.append(service.start(gw, args.secc_iface, clock.ticks_us, args.tls_cert, args.tls_key,
                                          args.tls_ca, args.no_tls, log=lambda line: print(line, flush=True)))
        except (ValueError, OSError) as e:
            port.close()
            return _fail(f"--secc-iface {args.secc_iface}: {e}")
    # SIGTERM (a supervisor) or Ctrl-C end the run like --duration: the EV's session is
    # closed (its power to zero) and the closing lines are printed
    import signal

    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(sig))
    # as controller.main: a lost socketcand connection ends the run (exit 1) instead of spinning
    lost = lambda: getattr(port, "connected", True) is False  # noqa: E731
    was_lost = False
    try:
        stats = run(gw, port, clock, duration_us=int(args.duration * 1e6) if args.duration else None,
                    should_stop=lambda: bool(stop) or lost(), services=services)
        was_lost = lost()  # before close(), which disconnects too
        print(f"ticks {stats.ticks} late_max_us {stats.late_max} overruns {stats.overruns} refused {gw.refused_total}"
              f" filtered {port.rx_filtered}", flush=True)
    finally:
        for s in services:
            s.close()
            print(s.stats(), flush=True)
        port.close()
    if was_lost:
        print("error: bus connection lost", file=sys.stderr)
        return 1
    return 0


def cmd_monitor(args):
    import time

    import can

    from hil.dbcdb import database

    db = database()
    kw = {"interface": args.interface, "channel": args.channel}
    if args.interface == "socketcand":
        kw.update(host=args.host, port=args.port)
    bus = can.Bus(**kw)
    end = time.monotonic() + args.duration if args.duration else None
    n = 0
    try:
        while (end is None or time.monotonic() < end) and (args.count is None or n < args.count):
            msg = bus.recv(timeout=0.1)
            if msg is None:
                continue
            n += 1
            try:
                m = db.get_message_by_frame_id(msg.arbitration_id)
                vals = m.decode(bytes(msg.data), decode_choices=True)
                text = " ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in vals.items())
                print(f"{msg.timestamp:.6f} {msg.arbitration_id:03X} {m.name:<18} {text}", flush=True)
            except KeyError:
                print(f"{msg.timestamp:.6f} {msg.arbitration_id:03X} {'(unknown)':<18} {msg.data.hex()}", flush=True)
            except Exception as e:  # a malformed frame is shown, never fatal
                print(f"{msg.timestamp:.6f} {msg.arbitration_id:03X} {'(malformed)':<18} {msg.data.hex()} {e}", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        bus.shutdown()
    return 0


def build_parser():
    p = argparse.ArgumentParser(prog="v2xgw", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    hil = sub.add_parser("hil", help="simulated site (hardware in the loop)")
    hsub = hil.add_subparsers(dest="hilcmd", required=True)
    r = hsub.add_parser("run", help="run a scenario in lockstep virtual time and write the report")
    r.add_argument("scenario")
    r.add_argument("--report", help="write the JSON report here")
    r.add_argument("--plot", help="write a timeline plot (PNG) here")
    r.add_argument("--log", help="write all CAN frames here (.asc, .blf, .log, .csv: python-can formats)")
    r.add_argument("--trace", metavar="CSV", help="write the run's time series here, one row per meter period "
                                                  "(t_s, grid_v_pu, grid_f_hz, inv_p_kw, inv_q_kvar, ev_soc, ...)")
    r.add_argument("--quiet", action="store_true", help="no timeline on stdout")
    r.add_argument("--bus", choices=("memory", "virtual"), default="memory",
                   help="lockstep bus: in-process memory bus (default, fastest) or python-can's virtual interface")
    r.add_argument("--codec", choices=("candb", "cantools"), default="candb",
                   help="codec of the simulated devices' frames: the generated one (default) or cantools")
    r.add_argument("--clock-start", type=int, default=0, metavar="US",
                   help="the controller's ticks_us at plant time 0 (its ticks wrap at 2**30 us)")
    r.set_defaults(func=cmd_hil_run)
    s = hsub.add_parser("serve", help="run the site (and the controller) in real time behind a socketcand server")
    s.add_argument("scenario", nargs="?")
    where = s.add_mutually_exclusive_group(required=True)
    where.add_argument("--socketcand", type=_hostport, metavar="HOST:PORT",
                       help="serve the site's bus over the socketcand protocol here")
    where.add_argument("--interface", metavar="NAME",
                       help="put the site on this python-can interface (socketcan for vcan0/can0 on a rig, pcan, "
                            "kvaser, virtual, ...), on --channel")
    s.add_argument("--channel", default="vcan0",
                   help="socketcand channel name, or the --interface channel (default vcan0)")
    s.add_argument("--no-controller", action="store_true", help="leave control to an external controller on the bus")
    s.add_argument("--no-diagnostics", action="store_true",
                   help="no UDS server (by default the in-process controller answers UDS on 0x7E0/0x7E8/0x7DF)")
    s.add_argument("--write-config", metavar="FILE", help="write the controller configuration this scenario implies (for an external controller)")
    s.add_argument("--duration", type=float, help="stop after this many seconds (default: the scenario's)")
    s.add_argument("--wait-controller", type=float, default=60.0, metavar="S",
                   help="with --no-controller: start plant time when the controller's first frame appears (default: wait up to 60 s)")
    s.add_argument("--report")
    s.add_argument("--plot")
    s.add_argument("--log")
    s.add_argument("--trace", metavar="CSV", help="the run's time series, as for hil run")
    s.add_argument("--quiet", action="store_true")
    s.add_argument("--external-ems", action="store_true",
                   help="leave the mode requests to an energy manager on the bus (v2xgw ocpp, v2xgw energy manager): "
                        "the scenario's mode is not sent")
    s.add_argument("--ocpp", metavar="URL", help="connect the site's charging station (OCPP 2.1) to the platform at URL; "
                                                "it then sends the mode requests instead of the scenario's mode")
    from ocpp_link.station_cmd import add_station_options

    add_station_options(s, prefix="ocpp-")
    s.set_defaults(func=cmd_hil_serve)

    from tools import engine as engine_options

    cg = hsub.add_parser("campaign", help="run many scenario files in lockstep over worker processes or Ray: "
                                         "reports, summary.json and a pass/fail table")
    cg.add_argument("paths", nargs="+", metavar="SCENARIO_OR_DIR")
    cg.add_argument("--out", default="campaign-out", help="folder for the reports, summary.json, campaign.md")
    engine_options.add_arguments(cg)
    cg.add_argument("--quiet", action="store_true", help="no progress, no table")
    cg.set_defaults(func=cmd_hil_campaign)
    k = hsub.add_parser("soak", help="hours of plant time with random faults, checked against the site invariants")
    k.add_argument("--hours", type=float, required=True, help="plant hours in all")
    k.add_argument("--seed", type=int, default=0, help="same seed, same shards (default 0)")
    engine_options.add_arguments(k)
    k.add_argument("--shard-hours", type=float, default=1.0, help="plant hours per shard (default 1)")
    k.add_argument("--mean-gap", type=float, default=30.0, metavar="S", help="mean time between faults (default 30 s)")
    k.add_argument("--out", default="soak-out", help="folder for the shards' scenario files (default soak-out)")
    k.add_argument("--report", help="write the soak report (JSON) here")
    k.add_argument("--plot", help="write faults and violations over plant time (PNG) here")
    k.add_argument("--quiet", action="store_true", help="no progress, no table")
    k.set_defaults(func=cmd_hil_soak)
    from tools import secc_cli

    secc_cli.add_parser(hsub)
    mx = hsub.add_parser("matrix", help="run the unintentional-islanding test matrix (IEC 62116 / IEEE 1547.1 style)")
    mx.add_argument("--grid-code", default="EN50549-1")
    mx.add_argument("--frequency", type=float, default=50.0, choices=(50.0, 60.0), help="nominal frequency (Hz)")
    mx.add_argument("--out", default="matrix-out", help="folder for matrix.md, matrix.json, matrix.png")
    engine_options.add_arguments(mx)
    mx.add_argument("--grid-support", choices=("off", "on"), default="off",
                    help="on: P(f), volt-var and volt-watt active, as IEEE 1547.1-2020 tests islanding; "
                         "off: none of them (default)")
    mx.set_defaults(func=cmd_hil_matrix)

    for name, helptext, fn in (("run", "run the controller on a CAN bus", cmd_run),
                               ("monitor", "decode live bus traffic with the DBC files", cmd_monitor)):
        c = sub.add_parser(name, help=helptext)
        c.add_argument("--interface", default="virtual", help="python-can interface or socketcand (default virtual)")
        c.add_argument("--channel", default="vcan0")
        c.add_argument("--host", default="127.0.0.1", help="socketcand host")
        c.add_argument("--port", type=int, default=29536, help="socketcand port")
        c.add_argument("--duration", type=float, help="stop after this many seconds")
        if name == "run":
            c.add_argument("--config", help="controller configuration (JSON, docs/configuration.md)")
            c.add_argument("--secc-iface", metavar="IFACE",
                           help="serve ISO 15118-20 EVs on this interface in the same process (SDP, V2GTP, SECC)")
            c.add_argument("--tls-cert", help="with --secc-iface: SECC certificate chain PEM (leaf + sub-CAs)")
            c.add_argument("--tls-key", help="with --secc-iface: SECC private key PEM")
            c.add_argument("--tls-ca", help="with --secc-iface: roots for EV certificates (optional mutual TLS)")
            c.add_argument("--no-tls", action="store_true", help="with --secc-iface: plain TCP (test rigs only)")
        else:
            c.add_argument("--count", type=int, help="stop after this many frames")
        c.set_defaults(func=fn)
    from tools import bench, diag, exi_cli
    from energy import cli as energy_cli
    from ocpp_link import station_cmd

    diag.add_parsers(sub)
    exi_cli.add_parser(sub)
    bench.add_parser(sub)
    energy_cli.add_parser(sub)
    station_cmd.add_parser(sub)
    from tools import csms_cli  # ocpp_link itself is imported only when the command runs

    csms_cli.add_parser(sub)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # `v2xgw ... | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
