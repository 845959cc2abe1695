"""The EV link of the product: the SDP responder, V2GTP over TCP (optionally TLS 1.3) and
the SECC state machine, served from the control loop without threads.

    secc = Secc(GatewayEvse(gw, clock.ticks_us), {"energy": "DC", "control_mode": "Dynamic"})
    svc = SeccService(secc, exi, "eth1", ticks_us=clock.ticks_us)
    svc.open()                                  # binds and joins; OSError names the problem
    run(gw, port, clock, services=[svc])        # controller/runtime.py polls it every iteration
    svc.close()

or, from options, start(gw, iface, ticks_us, ...) (v2xgw run --secc-iface, controller.main).

poll(now) never blocks and does a small, bounded piece of work per call:
  - at most two SDP datagrams answered;
  - at most one connection accepted;
  - for the session: one TLS handshake step, or one recv of at most RECV_SIZE bytes (the
    requests it completes are answered), a non-blocking send of what is pending, and
    the SECC's timers (communication setup, sequence).
It returns how long (ms) the caller may wait before polling again: 0 while work is left
(more bytes may be waiting, a send could not finish), IDLE_MS otherwise. Readiness comes
from select.poll where the platform has it (CPython on Linux, MicroPython's unix and
network ports), otherwise every socket is simply tried.

One EV at a time, as a home charge point has one connector: a second connection is
accepted and closed at once (counted as refused), unless the session in progress has
received nothing for takeover_us (the EV reconnected while its old connection still
looks open); then the old session ends (session_lost) and the new one is served.

A lost TCP connection (the EV closes, a reset) or a setup or sequence timeout ends the
session through Secc.connection_lost / Secc.poll, which call evse.session_lost: the
gateway's EVSE (gateway_evse.py) brings the EV's limits to zero at once. Nothing raised
while serving the EV leaves poll(): the session is dropped the same way and the control
loop goes on.

Measured per answer: from reading the request's bytes to handing the whole answer to the
kernel (answer_max_us, and loop_answer_max_us for DC_/AC_ChargeLoopReq, whose budget is
250 ms), plus the longest interval between two polls while a session was open (a request
waits at most that long before it is read).
"""

from controller.clock import ticks_add, ticks_diff
from controller.iso15118 import sdp
from controller.iso15118.secc import Connection

try:
    import errno

    _AGAIN = (errno.EAGAIN, getattr(errno, "EWOULDBLOCK", errno.EAGAIN))
except ImportError:  # pragma: no cover - every port here has errno
    _AGAIN = (11,)

RECV_SIZE = 512  # bytes read per poll: bounds the requests handled in one call
IDLE_MS = 5.0  # the wait poll() allows when it has nothing left to do
HANDSHAKE_US = 5000000  # a TLS handshake must finish within 5 s
TAKEOVER_US = 2000000  # a session silent this long gives way to a new connection
ANSWER_EDGES_US = (1000, 2000, 5000, 10000, 20000, 50000, 100000, 250000)
LOOP_REQUESTS = ("DC_ChargeLoopReq", "AC_ChargeLoopReq")

_R_SDP = 1
_R_LISTEN = 2
_R_SESSION = 4
_CONTROL = {1: "Scheduled", 2: "Dynamic"}


def _would_block(e):
    if type(e).__name__ in ("BlockingIOError", "SSLWantReadError", "SSLWantWriteError"):
        return True
    a = e.args
    return len(a) > 0 and a[0] in _AGAIN


def _close(sock):
    try:
        sock.close()
    except OSError:
        pass


def link_local(iface):
    """The IPv6 link-local address of iface as 16 bytes (Linux: /proc/net/if_inet6)."""
    try:
        f = open("/proc/net/if_inet6")
    except OSError:
        raise OSError("cannot read /proc/net/if_inet6: no IPv6 here?")
    try:
        for line in f:
            p = line.split()
            if len(p) >= 6 and p[5] == iface and p[0].startswith("fe80"):
                return bytes.fromhex(p[0])
    finally:
        f.close()
    raise OSError("no IPv6 link-local address on %s" % iface)


def _random_port():
    """A TCP port in the dynamic range 49152-65535: ISO 15118-2 [V2G2-064], and EVCCs
    such as Josev's refuse an SDP answer with another port."""
    try:
        from os import urandom

        b = urandom(2)
        r = (b[0] << 8) | b[1]
    except (ImportError, AttributeError):
        import random

        r = random.getrandbits(16)
    return 49152 + r % 16384


class _Session:
    __slots__ = ("sock", "peer", "conn", "out", "handshake", "deadline", "last_rx", "t_rx", "req", "more",
                 "channels", "answer_max_us", "loop_answer_max_us", "gap_max_us", "tls")

    def __init__(self, sock, peer, now):
        self.sock = sock
        self.peer = peer
        self.conn = None  # the SECC session starts once the transport is up (after TLS)
        self.out = b""
        self.handshake = False
        self.deadline = now
        self.last_rx = now
        self.t_rx = 0
        self.req = None
        self.more = False
        self.channels = []
        self.answer_max_us = 0
        self.loop_answer_max_us = 0
        self.gap_max_us = 0
        self.tls = None


class SeccService:
    """The SECC on one network interface, polled (see the module doc).

    secc: the Secc (one per charge point; it survives reconnects, for Pause/resume);
    codec: encode(ns, obj) / decode(ns, data) (controller.iso15118.exi);
    iface: the interface facing the EV (its IPv6 link-local address is announced and the
    listener bound to it, so the SECC is not reachable from other links);
    tls_ctx: a server context (tls.server_context) or None for plain TCP;
    log: callable(line); ticks_us: the clock for answer times;
    addr16 / tcp_port / sdp_port: fixed address and ports (tests; default: the link-local
    address of iface, a random dynamic port, 15118);
    on_end: callable(summary dict) -> extra text for the session's closing line, or None.
    """

    def __init__(self, secc, codec, iface, tls_ctx=None, log=None, ticks_us=None, addr16=None, tcp_port=None,
                 sdp_port=sdp.PORT, takeover_us=TAKEOVER_US, on_end=None):
        self.secc = secc
        self.codec = codec
        self.iface = iface
        self.tls_ctx = tls_ctx
        self.log = log or print
        if ticks_us is None:
            from controller.clock import RealClock

            ticks_us = RealClock().ticks_us
        self.ticks_us = ticks_us
        self.addr16 = addr16
        self.tcp_port = tcp_port
        self.sdp_port = sdp_port
        self.takeover_us = takeover_us
        self.on_end = on_end
        self.lsock = None
        self.sdp = None
        self.sess = None
        self._socket = None
        self._poller = None
        self._ipoll = None
        self._pollin = 1
        self._roles = {}
        self._last_poll = None
        self.counters = {"sessions": 0, "refused": 0, "taken_over": 0, "tls_failed": 0, "errors": 0}
        self.answers = 0
        self.answer_max_us = 0
        self.loop_answer_max_us = 0
        self.gap_max_us = 0
        self.answer_hist = [0] * (len(ANSWER_EDGES_US) + 1)
        self.last = None  # the summary dict of the last session that ended

    # ------------------------------------------------------------ set-up
    def open(self):
        """Bind the TCP listener to the interface's link-local address and the SDP
        responder to UDP 15118; OSError (naming the problem) when that is not possible."""
        import socket

        self._socket = socket
        preload = getattr(self.codec, "preload", None)
        if preload is not None:  # the codec's tables now, not in the control loop at the EV's first message
            from controller.iso15118.v2gtp import NS_COMMON, NS_SAP

            preload((NS_SAP, NS_COMMON, self.secc.energy_ns))
        if self.addr16 is None:
            self.addr16 = link_local(self.iface)
        host = socket.inet_ntop(socket.AF_INET6, self.addr16)
        if self.addr16[0] == 0xFE and (self.addr16[1] & 0xC0) == 0x80 and self.iface:
            host = host + "%" + self.iface  # link-local: the scope is the interface
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            fixed = self.tcp_port
            for _ in range(1 if fixed else 50):
                port = fixed or _random_port()
                try:
                    s.bind(socket.getaddrinfo(host, port, socket.AF_INET6, socket.SOCK_STREAM)[0][-1])
                    break
                except OSError:
                    if fixed:
                        raise
            else:
                raise OSError("no free TCP port in 49152-65535")
            s.listen(2)
            s.setblocking(False)
        except BaseException:
            _close(s)
            raise
        self.tcp_port = port
        self.lsock = s
        tls = self.tls_ctx is not None
        self.sdp = sdp.Responder(self.addr16, port, self.iface, port=self.sdp_port, tls_offered=tls, tls_only=tls)
        try:
            self.sdp.open()
        except BaseException:
            self.sdp = None
            _close(s)
            self.lsock = None
            raise
        try:
            import select

            self._poller = select.poll()
            self._ipoll = getattr(self._poller, "ipoll", None)  # MicroPython: no allocation per call
            self._pollin = select.POLLIN
        except (ImportError, AttributeError):
            self._poller = None
        self._register(self.sdp.sock, _R_SDP)
        self._register(s, _R_LISTEN)
        self.log("SECC on [%s]:%d, SDP on UDP %d, %s" % (host, port, self.sdp_port, "TLS 1.3" if tls else "no TLS"))
        return self

    def close(self):
        """End the session in progress (session_lost) and close every socket."""
        now = self.ticks_us()
        if self.sess is not None:
            self._end(now, "shutdown")
        if self.sdp is not None:
            self.sdp.close()
            self.sdp = None
        if self.lsock is not None:
            _close(self.lsock)
            self.lsock = None
        self._poller = None

    def _register(self, sock, role):
        if self._poller is None:
            return
        self._poller.register(sock, self._pollin)
        self._roles[sock] = role
        try:
            self._roles[sock.fileno()] = role  # CPython's poll() returns descriptors
        except (AttributeError, OSError):
            pass

    def _unregister(self, sock):
        if self._poller is None:
            return
        try:
            self._poller.unregister(sock)
        except (KeyError, ValueError, OSError):
            pass
        for k in [k for k in self._roles if self._roles[k] == _R_SESSION]:
            del self._roles[k]

    def _ready(self):
        """Bit set of the roles with something to read, or None: try them all."""
        p = self._poller
        if p is None:
            return None
        bits = 0
        roles = self._roles
        for ev in (self._ipoll(0) if self._ipoll is not None else p.poll(0)):
            bits |= roles.get(ev[0], 0)
        return bits

    def wait(self, timeout_ms):
        """Sleep until a socket of the service is readable or timeout_ms passed (a loop
        that runs only the service; the control loop sleeps in its CAN port instead)."""
        if self._poller is not None:
            self._poller.poll(int(timeout_ms))
        else:
            import time

            time.sleep(timeout_ms / 1000.0)

    # ------------------------------------------------------------ the poll
    def poll(self, now):
        """A bounded piece of work (see the module doc); returns the ms the caller may wait."""
        wait = IDLE_MS
        try:
            if self.sess is not None and self._last_poll is not None:
                gap = ticks_diff(now, self._last_poll)
                if gap > self.sess.gap_max_us:
                    self.sess.gap_max_us = gap
                    if gap > self.gap_max_us:
                        self.gap_max_us = gap
            self._last_poll = now
            ready = self._ready()
            if ready is None or ready & _R_SDP:
                for _ in range(2):
                    if not self.sdp.poll():
                        break
            if ready is None or ready & _R_LISTEN:
                self._accept(now)
            if self.sess is not None:
                wait = self._serve(now, ready is None or (ready & _R_SESSION) != 0)
        except Exception as e:  # the control loop must go on whatever the EV link does
            self._error(e, now)
        return wait

    def _error(self, e, now):
        self.counters["errors"] += 1
        if self.counters["errors"] <= 20:
            self.log("SECC: error: %r" % (e,))
        if self.sess is not None:
            try:
                self._end(now, "error")
            except Exception:
                self.sess = None

    def _accept(self, now):
        try:
            sock, addr = self.lsock.accept()
        except OSError as e:
            if _would_block(e):
                return
            raise
        peer = self._peer_text(addr)
        s = self.sess
        if s is not None:
            silent = ticks_diff(now, s.last_rx)
            if silent < self.takeover_us:
                self.counters["refused"] += 1
                _close(sock)
                self.log("SECC: refused a connection from %s: a session is in progress (one EV at a time)" % peer)
                return
            self.counters["taken_over"] += 1
            self.log("SECC: %s replaces the session from %s, silent for %d ms" % (peer, s.peer, silent // 1000))
            self._end(now, "replaced")
        s = _Session(sock, peer, now)
        if self.tls_ctx is not None:
            from controller.iso15118 import tls

            try:
                s.sock = tls.wrap_server_nonblocking(sock, self.tls_ctx)
            except OSError as e:
                _close(sock)
                self.counters["tls_failed"] += 1
                self.log("SECC: TLS with %s failed: %s" % (peer, e))
                return
            s.handshake = True
            s.deadline = ticks_add(now, HANDSHAKE_US)
        else:
            sock.setblocking(False)
        self.sess = s
        self._register(s.sock, _R_SESSION)
        self.log("SECC: session from %s" % peer)
        if not s.handshake:
            self._begin(s, now)

    def _peer_text(self, addr):
        if isinstance(addr, tuple):
            return str(addr[0])
        try:  # MicroPython: a raw sockaddr
            a = self._socket.sockaddr(addr)
            return self._socket.inet_ntop(a[0], a[1])
        except Exception:
            return "?"

    def _begin(self, s, now):
        s.conn = Connection(self.secc, self.codec)
        s.conn.connection_made(now)
        s.last_rx = now
        self.counters["sessions"] += 1

    def _serve(self, now, readable):
        s = self.sess
        if s.handshake:
            return self._handshake(s, now)
        conn = s.conn
        wait = IDLE_MS
        if s.out:
            self._send(s)
        if not s.out and (readable or s.more or (s.tls is not None and s.sock.pending() > 0)):
            try:
                data = s.sock.recv(RECV_SIZE)
            except OSError as e:
                if not _would_block(e):
                    self._end(now, "connection error %r" % (e,))
                    return wait
                data = None
            if data is not None:
                if not data:
                    self._end(now, "closed by the EV")
                    return wait
                t0 = self.ticks_us()
                s.last_rx = now
                s.more = len(data) == RECV_SIZE
                out = conn.data_received(data, now)
                ch = self.secc.st.get("channel")
                if ch is not None and ch not in s.channels:
                    s.channels.append(ch)
                if out:
                    s.out = out
                    s.t_rx = t0
                    s.req = self.secc.st.get("last_req")
                    self._send(s)
                if s.more:
                    wait = 0
        if s.out:
            return wait  # the kernel's buffer is full: try again on the next poll
        if conn.closing:
            self._end(now, None)
        else:
            timeouts = self.secc.counters["timeout"]
            if conn.poll(now):
                self._end(now, "timeout" if self.secc.counters["timeout"] != timeouts else None)
        return wait

    def _handshake(self, s, now):
        from controller.iso15118 import tls

        if ticks_diff(now, s.deadline) > 0:
            self.counters["tls_failed"] += 1
            self.log("SECC: TLS handshake with %s timed out" % s.peer)
            self._end(now, "TLS timeout")
            return IDLE_MS
        try:
            done = tls.handshake_step(s.sock, s.peer)
        except tls.TlsHandshakeError as e:
            self.counters["tls_failed"] += 1
            self.log("SECC: " + str(e))
            self._end(now, "TLS failed")
            return IDLE_MS
        if not done:
            return IDLE_MS
        s.handshake = False
        s.tls = tls.describe(s.sock)
        cn = (s.tls.get("peer_cert_subject") or {}).get("commonName")
        self.log("SECC: TLS: %s %s%s" % (s.tls["version"], s.tls["cipher"], ", EV certificate " + cn if cn else ""))
        self._begin(s, now)
        return 0  # the first request may already be buffered in the TLS layer

    def _send(self, s):
        try:
            n = s.sock.send(s.out)
        except OSError as e:
            if _would_block(e):
                return
            raise
        s.out = s.out[n:]
        if s.out:
            return
        dt = ticks_diff(self.ticks_us(), s.t_rx)
        self.answers += 1
        i = 0
        for e in ANSWER_EDGES_US:
            if dt < e:
                break
            i += 1
        self.answer_hist[i] += 1
        if dt > s.answer_max_us:
            s.answer_max_us = dt
            if dt > self.answer_max_us:
                self.answer_max_us = dt
        if s.req in LOOP_REQUESTS and dt > s.loop_answer_max_us:
            s.loop_answer_max_us = dt
            if dt > self.loop_answer_max_us:
                self.loop_answer_max_us = dt

    def _end(self, now, why):
        """Close the session's socket; a session that did not end with SessionStop is lost
        (Secc.connection_lost -> evse.session_lost)."""
        s = self.sess
        self.sess = None
        self._unregister(s.sock)
        _close(s.sock)
        if s.conn is None:
            return
        st = self.secc.st
        state = st.get("state")
        if why is None:
            why = "SessionStop" if state == "End" and st.get("last_req") == "SessionStopReq" else "ended by the SECC"
        s.conn.connection_lost(now)
        summary = {"peer": s.peer, "messages": s.conn.handled, "state": state,
                   "control": _CONTROL.get(st.get("control"), "-"), "channels": s.channels, "end": why,
                   "answer_max_us": s.answer_max_us, "loop_answer_max_us": s.loop_answer_max_us,
                   "poll_gap_max_us": s.gap_max_us, "tls": s.tls}
        self.last = summary
        line = ("session ended: %d messages, state %s, control %s, channels %s, end %s, answers max %.1f ms "
                "(charge loop %.1f ms), polls at most %.1f ms apart"
                % (summary["messages"], state, summary["control"], ",".join(s.channels) or "-", why,
                   s.answer_max_us / 1000.0, s.loop_answer_max_us / 1000.0, s.gap_max_us / 1000.0))
        if self.on_end is not None:
            extra = self.on_end(summary)
            if extra:
                line = line + ", " + extra
        self.log(line)

    def stats(self):
        """Counters and answer times over every session, for the closing line."""
        return ("SECC: %d sessions, %d refused, %d TLS failures, %d errors; %d answers, max %.1f ms "
                "(charge loop %.1f ms), polls at most %.1f ms apart during sessions"
                % (self.counters["sessions"], self.counters["refused"], self.counters["tls_failed"],
                   self.counters["errors"], self.answers, self.answer_max_us / 1000.0,
                   self.loop_answer_max_us / 1000.0, self.gap_max_us / 1000.0))


def option_problem(tls_cert=None, tls_key=None, tls_ca=None, no_tls=False):
    """What is wrong with these TLS options, in one line, or None: checked before anything
    is opened. TLS needs a certificate and key, and a platform that can pin TLS 1.3."""
    if no_tls:
        if tls_cert or tls_key or tls_ca:
            return "--no-tls and --tls-cert/--tls-key/--tls-ca exclude each other"
        return None
    if not (tls_cert and tls_key):
        return "ISO 15118-20 needs TLS: give --tls-cert and --tls-key (or --no-tls on a test rig)"
    from controller.iso15118 import tls

    return tls.tls13_missing()


def start(gw, iface, ticks_us, tls_cert=None, tls_key=None, tls_ca=None, no_tls=False, require_client_cert=False,
          log=None, config=None, codec=None, **service_kw):
    """The product's EV link on iface, fed into gw (v2xgw run --secc-iface, controller.main):
    a SeccService around Secc(GatewayEvse(gw)), opened. TLS 1.3 with tls_cert/tls_key
    (tls_ca: optional client certificates), plain TCP only with no_tls. ValueError for
    options that do not fit (one line, also when this platform cannot do TLS 1.3: never
    a fallback to TLS 1.2), OSError for the network or the files. service_kw: more
    SeccService arguments (addr16, sdp_port, on_end...)."""
    why = option_problem(tls_cert, tls_key, tls_ca, no_tls)
    if why is not None:
        raise ValueError(why)
    ctx = None
    if not no_tls:
        from controller.iso15118 import tls

        ctx = tls.server_context(tls_cert, tls_key, tls_ca, require_client_cert)
    if codec is None:
        from controller.iso15118 import exi as codec
    from controller.iso15118.gateway_evse import GatewayEvse
    from controller.iso15118.secc import Secc

    cfg = {"energy": "DC", "control_mode": "Dynamic"}  # the gateway decides the power: offer Dynamic first
    if config:
        cfg.update(config)
    evse = GatewayEvse(gw, ticks_us)
    svc = SeccService(Secc(evse, cfg), codec, iface, tls_ctx=ctx, log=log, ticks_us=ticks_us, **service_kw)
    try:
        return svc.open()
    except BaseException:
        gw.taps.remove(evse)  # no EV link after all: the bus's EVCC frames are the EV input again
        raise
