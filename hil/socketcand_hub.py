"""A socketcand-protocol server that joins TCP clients and an in-process python-can bus.

Stands in for linux-can/socketcand on machines without SocketCAN: the HIL runs the
controller (CPython or the MicroPython unix port) as a socketcand client in another
process, and plant models sit on the bridged python-can ``virtual`` bus.

Behaviour (raw mode only, one channel):
- on connect the hub sends ``< hi >``; ``< open CHANNEL >`` for its own channel name
  answers ``< ok >`` (any other name: ``< error could not open bus >``, connection kept
  so the client may retry); ``< rawmode >`` answers ``< ok >`` and from then on the
  client receives ``< frame ID SECS.USECS HEXDATA >`` lines with the hub's wall time,
  ID as 3 hex digits or 8 for an extended id, data as contiguous hex pairs, exactly
  as socketcand formats them (python-can's client depends on that layout);
- ``< send ID DLC B0 .. >`` (after open) goes to every other raw-mode client and to
  the bridged bus; frames from the bridged bus go to every raw-mode client, its
  error frames as ``< error CLASS SECS.USECS >`` (as socketcand); remote and CAN FD
  frames are counted in ``errors`` and not forwarded;
- ``< echo >`` answers ``< echo >``; ``< bcmmode >``, ``< controlmode >``,
  ``< isotpmode >`` answer ``< error only rawmode is supported >``; other commands
  answer ``< error unknown command >`` as socketcand does;
- a malformed ``send`` is dropped silently (socketcand does the same, and python-can's
  client would raise on an unparsable ``< error .. >`` line); every malformed input is
  counted in ``errors``.  Nothing a client sends can stop the hub or another client.

python-can's client reads the handshake replies with single ``recv`` calls and
compares them exactly, so replies are sent one per ``sendall``; a frame broadcast in
the instant after a client's ``< rawmode >`` can still coalesce with its ``< ok >`` (a
limit that real socketcand shares).
"""
import argparse
import os
import select
import socket
import threading
import time

import can

_MODES = (b"bcmmode", b"controlmode", b"isotpmode")
_MAX_LINE = 1024
_HEXCHARS = frozenset(b"0123456789abcdefABCDEF")


def format_frame(can_id, extended, data, now_ns=None):
    """One '< frame .. >' line in socketcand's exact layout (bytes)."""
    us = (time.time_ns() if now_ns is None else now_ns) // 1000
    ident = ("%08X" if extended else "%03X") % can_id
    return ("< frame %s %d.%06d %s >" % (ident, us // 1000000, us % 1000000, bytes(data).hex().upper())).encode()


def format_error(error_class, now_ns=None):
    """One '< error CLASS SECS.USECS >' line, as socketcand reports an error frame."""
    us = (time.time_ns() if now_ns is None else now_ns) // 1000
    return ("< error %03X %d.%06d >" % (error_class & 0x1FFFFFFF, us // 1000000, us % 1000000)).encode()


def parse_send(words):
    """(can_id, extended, data) from the words of a '< send ID DLC B0 .. >' line, or None."""
    if len(words) < 2 or len(words[0]) > 8 or any(len(w) > 2 for w in words[1:]):
        return None
    if not all(w and set(w) <= _HEXCHARS for w in words):
        return None  # int(w, 16) alone would also take '0x1f', '+1' and '1_0'
    can_id = int(words[0], 16)
    dlc = int(words[1], 16)
    data = bytes(int(w, 16) for w in words[2:])
    extended = len(words[0]) == 8  # socketcand: an 8-digit id is a 29-bit id
    if dlc > 8 or len(data) != dlc or can_id > (0x1FFFFFFF if extended else 0x7FF):
        return None
    return can_id, extended, data


_MAX_BACKLOG = 1 << 20  # bytes queued for one slow client (~20 s of a full 500 kbit/s bus)


class _Client:
    __slots__ = ("sock", "addr", "lock", "state", "buf", "out", "stuck_since", "wake_r", "wake_w")

    def __init__(self, sock, addr):
        self.sock = sock
        self.addr = addr
        self.lock = threading.Lock()
        self.state = "nobus"  # -> "bcm" after open -> "raw" after rawmode
        self.buf = b""
        self.out = bytearray()  # what the socket did not take yet, in order
        self.stuck_since = None  # monotonic time the backlog last stopped shrinking
        # wakes the client's thread when a backlog starts, so that it begins flushing at once
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)


class SocketcandHub:
    """Threaded socketcand server on (host, port); ``port=0`` picks a free port.

    ``start()`` binds and returns self; ``address`` is the bound (host, port);
    ``stop()`` closes every socket and joins every thread (idempotent).  Counters:
    ``frames_from_clients``, ``frames_from_bus``, ``error_frames_from_bus``,
    ``errors`` (malformed or unforwardable input), ``clients_dropped`` (clients cut
    because they would not take data within ``send_timeout`` seconds, or let more
    than ``max_backlog`` bytes (1 MB) pile up).

    A client that reads slowly or not at all only delays itself: lines go out with a
    non-blocking send, and what its socket does not take waits in that client's own
    backlog, flushed by its thread, so the bus and every other client go on at once
    (as with socketcand, where each client has its own process).
    """

    def __init__(self, host="127.0.0.1", port=29536, channel="vcan0", bus=None, send_timeout=2.0,
                 max_backlog=_MAX_BACKLOG, sndbuf=None):
        self.host = host
        self.max_backlog = max_backlog
        self.sndbuf = sndbuf  # the kernel's send buffer per client (None: the system's, up to 4 MB on Linux)
        self.port = port
        self.channel = channel
        self.bus = bus
        self.send_timeout = send_timeout
        self.address = None
        self.frames_from_clients = 0
        self.frames_from_bus = 0
        self.error_frames_from_bus = 0
        self.errors = 0
        self.clients_dropped = 0
        self._lock = threading.Lock()
        self._bus_lock = threading.Lock()
        self._clients = []
        self._threads = []
        self._stop = threading.Event()
        self._listener = None

    # -- lifecycle ----------------------------------------------------------------

    def start(self):
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((self.host, self.port))
        ls.listen(16)
        ls.settimeout(0.1)  # accept loop wakes up to notice stop()
        self._listener = ls
        self.address = ls.getsockname()[:2]
        self._spawn(self._accept_loop, "socketcand-hub-accept")
        if self.bus is not None:
            self._spawn(self._bus_loop, "socketcand-hub-bus")
        return self

    def stop(self):
        self._stop.set()
        for _ in range(3):  # the accept thread may spawn a client thread while we join
            with self._lock:
                alive = [t for t in self._threads if t.is_alive() and t is not threading.current_thread()]
            if not alive:
                break
            for t in alive:
                t.join(5)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            clients = list(self._clients)
            self._clients.clear()
        for c in clients:
            self._close(c)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _count(self, name):
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    def client_count(self):
        with self._lock:
            return len(self._clients)

    def _spawn(self, fn, name, *args):
        t = threading.Thread(target=fn, name=name, args=args, daemon=True)
        with self._lock:
            self._threads = [x for x in self._threads if x.is_alive()]
            self._threads.append(t)
        t.start()

    # -- threads ------------------------------------------------------------------

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                sock, addr = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            sock.setblocking(False)  # sends never wait; see _reply and _client_loop
            if self.sndbuf:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.sndbuf)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c = _Client(sock, addr)
            with self._lock:
                self._clients.append(c)
            if self._reply(c, b"< hi >"):
                self._spawn(self._client_loop, "socketcand-hub-client", c)

    def _client_loop(self, c):
        poller = select.poll()
        poller.register(c.sock, select.POLLIN)
        poller.register(c.wake_r, select.POLLIN)
        writing = False
        try:
            while not self._stop.is_set() and c.state != "closed":
                backlog = len(c.out) > 0
                if backlog != writing:
                    writing = backlog
                    try:
                        poller.modify(c.sock, select.POLLIN | (select.POLLOUT if writing else 0))
                    except (OSError, ValueError):
                        break
                try:  # the socket may be closed under us by a failed broadcast
                    events = poller.poll(10 if writing else 100)
                except (OSError, ValueError):
                    break
                ev = 0
                for fd, e in events:
                    if fd != c.wake_r:
                        ev |= e
                    elif e & select.POLLIN:
                        try:
                            os.read(c.wake_r, 64)
                        except OSError:  # closed under us by a failed broadcast
                            break
                if ev & select.POLLNVAL:
                    break
                if c.out and not self._flush(c):
                    break
                if not ev & (select.POLLIN | select.POLLHUP | select.POLLERR):
                    continue
                try:
                    chunk = c.sock.recv(4096)
                except BlockingIOError:
                    continue
                except (OSError, ValueError):
                    break
                if not chunk:
                    break
                self._feed(c, chunk)
        finally:
            self._drop(c)

    def _flush(self, c):
        """Send what the client's socket takes now; False when the client must go
        (gone, or nothing taken for send_timeout seconds)."""
        with c.lock:
            if c.out:
                try:
                    n = c.sock.send(c.out)
                except BlockingIOError:
                    n = 0
                except OSError:
                    return False
                if n:
                    del c.out[:n]
                    c.stuck_since = None if not c.out else time.monotonic()
                elif c.stuck_since is None:
                    c.stuck_since = time.monotonic()
                elif time.monotonic() - c.stuck_since > self.send_timeout:
                    self._count("clients_dropped")
                    return False
        return True

    def _bus_loop(self):
        while not self._stop.is_set():
            try:
                msg = self.bus.recv(timeout=0.1)
            except (can.CanError, OSError, ValueError):
                self._count("errors")
                time.sleep(0.1)
                continue
            if msg is None:
                continue
            if msg.is_error_frame:  # socketcand reports these as '< error CLASS SECS.USECS >'
                self._count("error_frames_from_bus")
                self._broadcast(format_error(msg.arbitration_id), None)
            elif msg.is_remote_frame or msg.is_fd or len(msg.data) > 8:
                self._count("errors")  # no raw-mode line for these (socketcand drops RTR too)
            else:
                self._count("frames_from_bus")
                self._broadcast(format_frame(msg.arbitration_id, msg.is_extended_id, msg.data), None)

    # -- protocol -----------------------------------------------------------------

    def _feed(self, c, chunk):
        buf = c.buf + chunk
        while True:
            start = buf.find(b"<")
            if start < 0:
                if buf.strip():
                    self._count("errors")
                buf = b""
                break
            if buf[:start].strip():
                self._count("errors")
            end = buf.find(b">", start)
            nxt = buf.find(b"<", start + 1, end if end >= 0 else len(buf))
            if nxt >= 0:  # a line cut short by a new '<'
                self._count("errors")
                buf = buf[nxt:]
                continue
            if end < 0:
                if len(buf) - start > _MAX_LINE:
                    self._count("errors")
                    buf = b""
                else:
                    buf = buf[start:]
                break
            if end - start > _MAX_LINE:
                self._count("errors")
            else:
                self._command(c, buf[start + 1:end].split())
            buf = buf[end + 1:]
        c.buf = buf

    def _command(self, c, words):
        cmd = words[0] if words else b""
        if cmd == b"echo" and len(words) == 1:
            self._reply(c, b"< echo >")
        elif c.state == "nobus":
            if cmd == b"open" and len(words) == 2:
                if words[1].decode("ascii", "replace") == self.channel:
                    c.state = "bcm"
                    self._reply(c, b"< ok >")
                else:
                    self._count("errors")
                    self._reply(c, b"< error could not open bus >")
            else:
                self._count("errors")
                self._reply(c, b"< error unknown command >")
        elif cmd == b"rawmode" and len(words) == 1:
            self._reply(c, b"< ok >", become_raw=True)
        elif cmd == b"send":
            frame = parse_send(words[1:])
            if frame is None:
                self._count("errors")
                return
            self._count("frames_from_clients")
            self._broadcast(format_frame(*frame), c)
            if self.bus is not None:
                self._to_bus(*frame)
        elif cmd in _MODES:
            self._count("errors")
            self._reply(c, b"< error only rawmode is supported >")
        else:
            self._count("errors")
            self._reply(c, b"< error unknown command >")

    def _to_bus(self, can_id, extended, data):
        msg = can.Message(arbitration_id=can_id, is_extended_id=extended, data=data)
        try:
            with self._bus_lock:
                self.bus.send(msg)
        except (can.CanError, OSError):
            self._count("errors")

    def _reply(self, c, line, only_raw=False, become_raw=False):
        """Send one line to one client; a client that cannot take it is dropped.

        State checks and changes happen under the client's lock, so a broadcast
        frame can neither precede the ``< ok >`` of ``rawmode`` nor miss a client
        that has already received that ``< ok >``.
        """
        try:
            with c.lock:
                if c.state == "closed":
                    return False
                if only_raw and c.state != "raw":
                    return True
                if c.out:  # behind already: keep the order
                    n = 0
                else:
                    try:
                        n = c.sock.send(line)
                    except BlockingIOError:
                        n = 0
                if n < len(line):
                    if len(c.out) + len(line) - n > self.max_backlog:
                        raise OSError("client backlog over %d bytes" % self.max_backlog)
                    if not c.out:
                        c.stuck_since = time.monotonic()
                        try:
                            os.write(c.wake_w, b"w")
                        except OSError:  # the pipe is full: the thread is awake already
                            pass
                    c.out += line[n:]
                if become_raw:
                    c.state = "raw"
            return True
        except OSError:
            self._count("clients_dropped")
            self._drop(c)
            return False

    def _broadcast(self, line, sender):
        with self._lock:
            targets = [c for c in self._clients if c is not sender]
        for c in targets:
            self._reply(c, line, only_raw=True)

    def _drop(self, c):
        with self._lock:
            if c not in self._clients:
                return
            self._clients.remove(c)
        self._close(c)

    @staticmethod
    def _close(c):
        """Close the client's socket and wake pipe once; under its lock, so that no
        _reply writes to a descriptor number the system may already have reused."""
        with c.lock:
            if c.state == "closed":
                return
            c.state = "closed"
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.sock.close()
            os.close(c.wake_r)
            os.close(c.wake_w)


def main(argv=None):
    """Run a standalone hub until Ctrl-C (optionally bridged to a python-can bus)."""
    ap = argparse.ArgumentParser(prog="python -m hil.socketcand_hub", description=main.__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=29536)
    ap.add_argument("--channel", default="vcan0", help="bus name clients must open")
    ap.add_argument("--bridge", metavar="INTERFACE:CHANNEL",
                    help="also bridge a python-can bus, e.g. virtual:plant")
    args = ap.parse_args(argv)
    bus = None
    if args.bridge:
        iface, _, chan = args.bridge.partition(":")
        bus = can.Bus(interface=iface, channel=chan or None)
    hub = SocketcandHub(args.host, args.port, args.channel, bus).start()
    print("socketcand hub on %s:%d channel %s%s" % (hub.address[0], hub.address[1], args.channel,
                                                   " bridged to " + args.bridge if bus else ""), flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        hub.stop()
        if bus is not None:
            bus.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
