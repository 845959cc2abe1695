"""`v2xgw hil secc --iface IFACE [--no-tls]`: the gateway's SECC on a network interface.

Answers SDP on UDP 15118 (link-local multicast) with the interface's IPv6 link-local
address and a TCP port, and serves ISO 15118-20 sessions with the project's EXI codec
until stopped. The EVSE side is the SECC's reference EVSE (controller.iso15118.secc
BasicEvse: fixed limits, an ideal converter); wiring it to the simulated site's
inverter and the gateway's limit arbitration is the next step (docs/secc.md).
TLS 1.3 with --tls-cert/--tls-key (a test PKI: python -m tools.pki DIR), optionally
mutual TLS with --tls-ca; --no-tls for plain TCP (the SDP answer says which).
"""

import socket
import sys
import threading
import time


def link_local(iface):
    """The IPv6 link-local address of iface as 16 bytes, from /proc/net/if_inet6."""
    with open("/proc/net/if_inet6") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and parts[5] == iface and parts[0].startswith("fe80"):
                return bytes.fromhex(parts[0])
    raise OSError(f"no IPv6 link-local address on {iface}")


def _recording_evse(**kw):
    from controller.iso15118.secc import BasicEvse

    class RecordingEvse(BasicEvse):
        """BasicEvse that remembers the channels used and the extreme currents delivered."""

        def ev_target(self, d):
            BasicEvse.ev_target(self, d)
            self.i_min = min(getattr(self, "i_min", 0), self.current)
            self.i_max = max(getattr(self, "i_max", 0), self.current)

        def output(self, channel):
            BasicEvse.output(self, channel)
            if channel is not None:
                self.channels = getattr(self, "channels", set()) | {channel}

    return RecordingEvse(**kw)


def serve(iface, energy="DC", duration=None, log=print, stop=None, control_mode="Scheduled", discharge=False,
          evse_factory=None, tls_ctx=None):
    from controller.clock import RealClock
    from controller.iso15118 import exi, sdp
    from controller.iso15118.secc import Connection, Secc, serve_connection

    addr16 = link_local(iface)
    scope = socket.if_nametoindex(iface)
    addr = socket.inet_ntop(socket.AF_INET6, addr16)
    srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # the SECC's TCP port must lie in the dynamic range 49152-65535 (ISO 15118-2 [V2G2-064];
    # EVCCs such as Josev's refuse an SDP answer with another port)
    import random

    for _ in range(50):
        try:
            srv.bind((addr, random.randint(49152, 65535), 0, scope))
            break
        except OSError:
            continue
    else:
        raise OSError("no free TCP port in 49152-65535")
    srv.listen(2)
    srv.settimeout(0.05)
    tcp_port = srv.getsockname()[1]
    resp = sdp.Responder(addr16, tcp_port, iface, tls_offered=tls_ctx is not None)
    resp.open()
    log(f"SECC on [{addr}%{iface}]:{tcp_port}, SDP on UDP 15118, {'TLS 1.3' if tls_ctx else 'no TLS'}", flush=True)
    clock = RealClock()
    stop = stop or threading.Event()
    end = None if duration is None else time.monotonic() + duration
    sessions = []
    try:
        while not stop.is_set() and (end is None or time.monotonic() < end):
            resp.poll()
            try:
                sock, peer = srv.accept()
            except (socket.timeout, BlockingIOError):
                continue
            log(f"session from {peer[0]}", flush=True)
            # discharge: the scheduled offer is negative, and in Dynamic mode the EVSE grants
            # a discharge power, so an EV that follows the charger discharges (V2G)
            evse = evse_factory() if evse_factory else _recording_evse(grant_power=-5000 if discharge else None)
            cfg = {"energy": energy, "control_mode": control_mode, "offer": "discharge" if discharge else "charge"}
            conn = Connection(Secc(evse, cfg), exi)  # the module is the codec: encode/decode(ns, ...)
            def session(sock=sock, conn=conn, evse=evse):
                if tls_ctx is not None:  # the handshake runs here, so a slow one never blocks accept()
                    from hil import tls

                    try:
                        sock = tls.wrap_server_socket(sock, tls_ctx, timeout=5.0)
                    except tls.TlsHandshakeError as e:
                        log(str(e), flush=True)
                        return
                    log("TLS: %(version)s %(cipher)s" % tls.describe(sock), flush=True)
                serve_connection(sock, conn, clock.ticks_us, stop.is_set)
                log(summary(conn, evse), flush=True)

            t = threading.Thread(target=session, daemon=True)
            t.start()
            sessions.append((t, conn, evse))
    finally:
        stop.set()
        for t, _, _ in sessions:
            t.join(2.0)
        resp.close()
        srv.close()
    return sessions


def summary(conn, evse):
    st = conn.secc.st
    control = {1: "Scheduled", 2: "Dynamic"}.get(st.get("control"), st.get("control"))
    return (f"session ended: {conn.handled} messages, state {st.get('state')}, control {control}, "
            f"channels {','.join(sorted(getattr(evse, 'channels', ()))) or '-'}, "
            f"current {getattr(evse, 'i_min', 0):g} to {getattr(evse, 'i_max', 0):g} A")


def _serve_with_site(args, tls_ctx=None):
    """The SECC in front of the simulated site: the EV's ISO 15118-20 limits feed the
    in-process controller (GatewayEvse), which runs the site in real time."""
    import can

    from controller.clock import RealClock
    from controller.iso15118.gateway_evse import GatewayEvse
    from hil import scenario
    from hil.runner import run_realtime

    sc = scenario.load(args.site)
    if args.duration is not None:
        sc["duration_s"] = args.duration
    holder = {}
    stop = threading.Event()
    channel = "hil-secc-site"
    site = threading.Thread(target=lambda: holder.update(report=run_realtime(
        sc, lambda: can.Bus(interface="virtual", channel=channel), with_controller=True, stop=stop,
        setup_controller=lambda gw: holder.update(gw=gw), ev_on_can=False)[0]), daemon=True)
    site.start()
    while "gw" not in holder and site.is_alive():
        time.sleep(0.01)
    clock = RealClock()
    try:
        serve(args.iface, args.energy, sc["duration_s"], control_mode=args.control_mode, stop=stop,
              evse_factory=lambda: GatewayEvse(holder["gw"], clock.ticks_us), tls_ctx=tls_ctx)
    finally:
        stop.set()
        site.join(5.0)
    rep = holder.get("report")
    if rep:
        print("site metrics: " + ", ".join(f"{k} {v}" for k, v in rep["metrics"].items()), flush=True)
    return 0


def _tls_context(args):
    if args.no_tls:
        return None
    if not (args.tls_cert and args.tls_key):
        raise ValueError("TLS needs --tls-cert and --tls-key (or --no-tls); a test PKI: python -m tools.pki DIR")
    from hil import tls

    return tls.server_context(args.tls_cert, args.tls_key, args.tls_ca, args.tls_require_client_cert)


def cmd_hil_secc(args):
    try:
        tls_ctx = _tls_context(args)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.site:
        try:
            return _serve_with_site(args, tls_ctx)
        except OSError as e:
            print(f"error: --iface {args.iface}: {e}", file=sys.stderr)
            return 2
    try:
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
                   help="run the simulated site and the controller too: the EV's ISO 15118-20 limits feed the "
                        "controller's arbitration and the EVSE grants the controller's power")
    p.set_defaults(func=cmd_hil_secc)
