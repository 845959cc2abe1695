"""`v2xgw ocpp --csms URL --id ID [bus options] ...`: the charging station (ocpp_link.station)
next to a controller on a CAN bus; and the same station in a thread for `v2xgw hil serve
--ocpp URL`.

Exit 0 after --duration (or Ctrl-C); exit 2 with one line `error: OPTION: problem` for a bad
option (URL, id, security profile without its credentials, a --set that the device model
refuses, an unreadable --config); exit 1 when the bus cannot be opened.
"""

import asyncio
import sys
import tempfile
import threading

EXIT_INVALID = 2


def _refuse(msg):
    print("error: %s" % msg, file=sys.stderr)
    return EXIT_INVALID


def ratings(cfg):
    """(rated charge W, rated discharge W) of the station: the inverter's AC rating from the
    controller configuration (the firmware clamps to the same rating in its limits)."""
    w = float(cfg["inverter"]["rating_kva"]) * 1000.0
    return w, w


def parse_sets(items):
    """--set COMPONENT.VARIABLE[.INSTANCE]=VALUE -> {"COMPONENT.VARIABLE[.INSTANCE]": VALUE}."""
    out = {}
    for it in items or ():
        key, sep, value = it.partition("=")
        if not sep or key.count(".") not in (1, 2):
            raise ValueError("--set: expected COMPONENT.VARIABLE=VALUE, not %r" % it)
        out[key] = value
    return out


def make_station(args, bus, cfg, clock=None, log=print, data_dir=None):
    """A Station from the command's options (StationError/ValueError for bad ones)."""
    import time

    from ocpp_link.station import Station

    charge_w, discharge_w = ratings(cfg)
    return Station(args.id, args.csms, bus, data_dir or args.data, charge_w, discharge_w,
                   password=args.password, security_profile=args.security_profile, ca_file=args.ca,
                   cert_file=args.cert, key_file=args.key, server_hostname=args.tls_server_name,
                   clock=clock or time.time, log=log,
                   quiet=args.quiet, dm_overrides=parse_sets(args.set),
                   nominal_voltage_v=cfg["site"]["nominal_voltage_v"], phases=cfg["site"]["phases"])


def add_station_options(p, prefix=""):
    """The station's options; prefix "ocpp-" for hil serve (--ocpp-id, ...)."""
    p.add_argument("--%sid" % prefix, dest="id", default="gw1" if prefix else None, required=not prefix,
                   help="charging station identity (the URL path and Basic-auth user)")
    p.add_argument("--%spassword" % prefix, dest="password", help="HTTP Basic auth password (security profile 1, 2)")
    p.add_argument("--%ssecurity-profile" % prefix, dest="security_profile", type=int, choices=(0, 1, 2, 3),
                   help="0 none (test rigs), 1 Basic auth, 2 TLS + Basic auth, 3 TLS client certificate "
                        "(default: from the URL and credentials given)")
    p.add_argument("--%sca" % prefix, dest="ca", help="CA certificates (PEM) the platform's TLS certificate is checked against")
    p.add_argument("--%scert" % prefix, dest="cert", help="station certificate chain (PEM, profile 3)")
    p.add_argument("--%skey" % prefix, dest="key", help="station private key (PEM, profile 3)")
    p.add_argument("--%stls-server-name" % prefix, dest="tls_server_name", metavar="NAME",
                   help="the name the platform's certificate must carry when the URL names it otherwise (an IP)")
    p.add_argument("--%sdata" % prefix, dest="data", default=None if prefix else "ocpp-data",
                   help="folder of the offline queue, the station state and the device model "
                        "(default %s)" % ("a temporary folder" if prefix else "ocpp-data"))
    p.add_argument("--%sset" % prefix, dest="set", action="append", metavar="COMPONENT.VARIABLE=VALUE",
                   help="device-model value at start, e.g. SampledDataCtrlr.TxUpdatedInterval=10 (repeatable)")


def cmd_ocpp(args):
    from controller import config
    from ocpp_link.station import StationError

    try:
        cfg = config.load(args.config) if args.config else config.defaults()
    except config.ConfigError as e:
        return _refuse(str(e))
    import can

    kw = {"interface": args.interface, "channel": args.channel}
    if args.interface == "socketcand":
        kw.update(host=args.host, port=args.port)
        import logging

        # python-can warns of every frame split across two TCP reads: normal on a socket, noise here
        logging.getLogger("can.interfaces.socketcand.socketcand").setLevel(logging.ERROR)
    from ocpp_link.offline_queue import QueueError

    try:
        st = make_station(args, None, cfg, log=lambda line: print(line, flush=True))
    except (StationError, ValueError) as e:
        return _refuse(str(e))
    except QueueError as e:  # another station on the same folder, or a journal that will not open
        return _refuse("--data: %s" % e)
    try:
        bus = can.Bus(**kw)
    except (can.CanError, OSError, ValueError, ImportError) as e:
        st.queue.close()
        print("error: cannot open the bus %s %s: %s" % (args.interface, args.channel, e), file=sys.stderr)
        return 1
    st.bus = bus
    if not args.quiet:
        print("station %s -> %s (security profile %d), bus %s %s" % (st.id, st.url, st.security_profile,
                                                                      args.interface, args.channel), flush=True)
    stop = None

    async def main():
        nonlocal stop
        stop = asyncio.Event()
        await st.run(stop, duration_s=args.duration)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    finally:
        bus.shutdown()
    if not args.quiet:
        print(summary(st))
    return 0


def summary(st):
    c = st.counters
    return ("%d transaction events, %d delivered, %d in the queue; %d calls received (%d refused as a flood, "
            "%d not served); %d malformed frames; %d connection failures; %d bus frames refused, %d gateway "
            "events lost" % (
                c["tx_events"], c["delivered"], len(st.queue), c["calls_received"], c["calls_refused_flood"],
                c["calls_not_served"], c["malformed_frames"], c["connection_failures"], st.site.rx_refused,
                st.site.events_lost))


class StationThread:
    """The station on its own asyncio loop in a thread (hil serve --ocpp)."""

    def __init__(self, station):
        self.station = station
        self.loop = None
        self._stop = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="ocpp-station")
        self.error = None

    def _run(self):
        async def main():
            self.loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await self.station.run(self._stop)

        try:
            asyncio.run(main())
        except Exception as e:  # reported by stop(); the site goes on without its platform link
            self.error = e

    def start(self):
        self.thread.start()

    def stop(self, timeout_s=5.0):
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(timeout_s)
        st = self.station
        self.report = {"url": st.url, "counters": dict(st.counters), "queued": len(st.queue),
                       "bus_frames_refused": st.site.rx_refused, "gateway_events_lost": st.site.events_lost,
                       "error": None if self.error is None else str(self.error)}
        self.summary = summary(st)
        st.queue.close()
        if getattr(self, "tmp_dir", None):
            import shutil

            shutil.rmtree(self.tmp_dir, ignore_errors=True)


def start_for_hil(args, channel, cfg, log):
    """hil serve --ocpp: a station on the HIL's virtual bus channel, started; its data in
    --ocpp-data or a temporary folder."""
    import can

    data = args.data or tempfile.mkdtemp(prefix="ocpp-")
    bus = can.Bus(interface="virtual", channel=channel, receive_own_messages=False)
    try:
        st = make_station(args, bus, cfg, log=log, data_dir=data)
    except Exception:
        bus.shutdown()
        raise
    t = StationThread(st)
    t.tmp_dir = None if args.data else data  # removed after the run: nothing of it outlives a HIL run
    t.start()
    return t, bus


def add_parser(sub):
    c = sub.add_parser("ocpp", help="the charging station (OCPP 2.1) next to a controller on a CAN bus")
    c.add_argument("--csms", required=True, metavar="URL", help="the platform: ws://HOST:PORT[/PATH] or wss://...")
    add_station_options(c)
    c.add_argument("--config", help="controller configuration (JSON): the ratings and site the station serves")
    c.add_argument("--interface", default="virtual", help="python-can interface or socketcand (default virtual)")
    c.add_argument("--channel", default="vcan0")
    c.add_argument("--host", default="127.0.0.1", help="socketcand host")
    c.add_argument("--port", type=int, default=29536, help="socketcand port")
    c.add_argument("--duration", type=float, help="stop after this many seconds")
    c.add_argument("--quiet", action="store_true")
    c.set_defaults(func=cmd_ocpp)
