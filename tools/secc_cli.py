"""`v2xgw hil secc --iface IFACE [--no-tls]`: the product's SECC service on a network
interface, for HIL rigs.

The same SeccService as `v2xgw run --secc-iface` (controller/iso15118/service.py: SDP on
UDP 15118 with the interface's IPv6 link-local address, V2GTP over TCP, the SECC state
machine, one EV at a time), polled in this process without threads. Behind it:
  - by default the SECC's reference EVSE (controller.iso15118.secc BasicEvse: fixed
    limits, an ideal converter), which follows the EV or grants a discharge (--discharge);
  - with --site SCENARIO, the gateway itself: the product's control loop
    (controller.runtime.run with the service polled in it, GatewayEvse feeding the EV's
    limits to the arbitration) on a virtual CAN bus with the simulated site, which runs
    in real time beside it.
TLS 1.3 with --tls-cert/--tls-key (a test PKI: python -m tools.pki DIR), optionally
mutual TLS with --tls-ca; --no-tls for plain TCP (the SDP answer says which).
"""

import sys
import threading
import time

from controller.iso15118.service import link_local  # noqa: F401  (kept for HIL scripts)


def _recording_evse(**kw):
    from controller.iso15118.secc import BasicEvse

    class RecordingEvse(BasicEvse):
        """BasicEvse that remembers, per session, the channels used and the extreme currents delivered."""

        def new_session(self):
            self.i_min = 0
            self.i_max = 0
            self.channels = set()

        def ev_target(self, d):
            BasicEvse.ev_target(self, d)
            self.i_min = min(self.i_min, self.current)
            self.i_max = max(self.i_max, self.current)

        def output(self, channel):
            BasicEvse.output(self, channel)
            if channel is not None:
                self.channels = self.channels | {channel}

    evse = RecordingEvse(**kw)
    evse.new_session()
    return evse


def _log(line):
    print(line, flush=True)


def _secc_config(energy, control_mode, discharge):
    # discharge: the scheduled offer is negative, and in Dynamic mode the EVSE grants a
    # discharge power, so an EV that follows the charger discharges (V2G)
    return {"energy": energy, "control_mode": control_mode, "offer": "discharge" if discharge else "charge"}


def serve(iface, energy="DC", duration=None, log=_log, stop=None, control_mode="Scheduled", discharge=False,
          tls_ctx=None):
    """The SECC service on iface with the recording reference EVSE, polled in this thread
    until duration (s) passed or stop is set. Returns the service (closed)."""
    from controller.clock import RealClock
    from controller.iso15118 import exi
    from controller.iso15118.secc import Secc
    from controller.iso15118.service import SeccService

    evse = _recording_evse(grant_power=-5000 if discharge else None)

    def current(summary):
        return "current %g to %g A" % (evse.i_min, evse.i_max)

    svc = SeccService(Secc(evse, _secc_config(energy, control_mode, discharge)), exi, iface, tls_ctx=tls_ctx,
                      log=log, on_end=current)
    svc.evse = evse
    svc.open()
    clock = RealClock()
    end = None if duration is None else time.monotonic() + duration
    try:
        while not (stop is not None and stop.is_set()) and (end is None or time.monotonic() < end):
            w = svc.poll(clock.ticks_us())
            if w > 0:
                svc.wait(w)
    finally:
        svc.close()
        log(svc.stats())
    return svc


def _serve_with_site(args):
    """The product's control loop with the SECC service polled in it, on a virtual CAN bus
    with the simulated site (real time) beside it."""
    import can

    from controller.bus.ports.pythoncan import PythonCanPort
    from controller.clock import RealClock
    from controller.control.gateway import Gateway
    from controller.iso15118 import service
    from controller.runtime import run
    from hil import scenario
    from hil.runner import run_realtime

    sc = scenario.load(args.site)
    if args.duration is not None:
        sc["duration_s"] = args.duration
    channel = "hil-secc-site"
    port = PythonCanPort(bus=can.Bus(interface="virtual", channel=channel))
    gw = Gateway(scenario.controller_config(sc), port)
    gw.apply_acceptance_filter()
    clock = RealClock()
    try:
        svc = service.start(gw, args.iface, clock.ticks_us, args.tls_cert, args.tls_key, args.tls_ca, args.no_tls,
                            args.tls_require_client_cert, log=_log,
                            config=_secc_config(args.energy, args.control_mode, False))
    except BaseException:
        port.close()
        raise
    stop = threading.Event()
    ctl = threading.Thread(target=run, args=(gw, port, clock), kwargs={"should_stop": stop.is_set, "services": [svc]},
                           daemon=True)
    ctl.start()
    try:
        report, _ = run_realtime(sc, lambda: can.Bus(interface="virtual", channel=channel), with_controller=False,
                                 stop=stop, ev_on_can=False)
    finally:
        stop.set()
        ctl.join(5.0)
        svc.close()
        port.close()
    _log(svc.stats())
    _log("site metrics: " + ", ".join(f"{k} {v}" for k, v in report["metrics"].items()))
    return 0


def _tls_context(args):
    from controller.iso15118 import service, tls

    why = service.option_problem(args.tls_cert, args.tls_key, args.tls_ca, args.no_tls)
    if why is not None:
        raise ValueError(why + "; a test PKI: python -m tools.pki DIR")
    if args.no_tls:
        return None
    return tls.server_context(args.tls_cert, args.tls_key, args.tls_ca, args.tls_require_client_cert)


def cmd_hil_secc(args):
    try:
        tls_ctx = _tls_context(args)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        if args.site:
            return _serve_with_site(args)
        serve(args.iface, args.energy, args.duration, control_mode=args.control_mode, discharge=args.discharge,
              tls_ctx=tls_ctx)
    except OSError as e:
        print(f"error: --iface {args.iface}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


def add_parser(hsub):
    p = hsub.add_parser("secc", help="the ISO 15118-20 SECC on a network interface (SDP + V2GTP over TCP)")
    p.add_argument("--iface", required=True, help="network interface (its IPv6 link-local address is announced)")
    p.add_argument("--no-tls", action="store_true", help="plain TCP, no TLS (HIL rigs)")
    p.add_argument("--tls-cert", help="SECC certificate chain PEM (leaf + sub-CAs)")
    p.add_argument("--tls-key", help="SECC private key PEM")
    p.add_argument("--tls-ca", help="roots for EV client certificates (enables optional mutual TLS)")
    p.add_argument("--tls-require-client-cert", action="store_true", help="mutual TLS: refuse EVs without a certificate")
    p.add_argument("--energy", choices=("DC", "AC"), default="DC", help="energy transfer offered (BPT included)")
    p.add_argument("--duration", type=float, help="stop after this many seconds (default: until interrupted)")
    p.add_argument("--control-mode", choices=("Scheduled", "Dynamic"), default="Scheduled",
                   help="the control mode offered first")
    p.add_argument("--discharge", action="store_true", help="offer discharge (V2G): negative schedule / granted power")
    p.add_argument("--site", metavar="SCENARIO",
                   help="run the simulated site and the controller too: the product's control loop serves the EV, "
                        "whose ISO 15118-20 limits feed the controller's arbitration, and the EVSE grants the "
                        "controller's power")
    p.set_defaults(func=cmd_hil_secc)
