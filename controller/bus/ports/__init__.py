"""CAN ports: the one small contract every CAN transport of the controller meets.

A port moves classic CAN frames (11- or 29-bit id, 0..8 data bytes) and never blocks
unless asked to (``wait``).  Frames cross the boundary as plain tuples
``(can_id, extended, data)`` with ``data`` a ``bytes`` object.

Contract (every adapter in this package keeps it):

- ``send(can_id, data, extended=False) -> bool``: queue one frame without blocking.
  True if queued; False if dropped (full queue, lost connection, controller error),
  which also increments ``tx_dropped``.  Raises ``ValueError`` only for an invalid
  frame (id > 0x7FF standard / > 0x1FFFFFFF extended, negative id, len(data) > 8).
- ``recv() -> (can_id, extended, data) | None``: one received frame, never blocks.
  Malformed input, error frames and remote frames are counted in ``rx_errors`` and
  skipped, never raised.
- ``wait(timeout_ms) -> bool``: block up to ``timeout_ms`` until ``recv()`` would
  return a frame (True) or the time is up (False).  The real-time loop sleeps here.
  ``timeout_ms`` may be fractional; a port whose operating-system wait is coarser
  rounds up, never down to a busy spin.
- ``close()``: release the transport; safe to call twice.
- ``set_filter(ids)``: the acceptance filter. ``ids`` is a list of ``(can_id, extended)``
  (or None: every frame, the default). From then on ``recv()`` returns only frames
  with one of those ids; the others are dropped before their data is parsed and
  counted in ``rx_filtered`` (frames a hardware or kernel filter drops never reach
  the port and are not counted). Returns True when the adapter also installed the
  filter below itself (controller hardware, kernel, python-can), False when the port
  filters alone. Raises ``ValueError`` for an invalid id.
- counters ``rx_count``, ``tx_count``, ``tx_dropped``, ``rx_errors``, ``rx_filtered``.

``open_port(spec)`` builds a port from a plain dict, importing only the adapter it
needs, so a board never imports python-can and a PC never imports ``machine``.
"""

STD_ID_MAX = 0x7FF
EXT_ID_MAX = 0x1FFFFFFF
EXT_KEY = 1 << 29  # marks an extended id in an acceptance key (keys stay small ints)

try:  # MicroPython: wrap-safe tick arithmetic is built in
    from time import sleep_ms, sleep_us, ticks_add, ticks_diff, ticks_ms
except ImportError:  # CPython: emulate MicroPython's 30-bit wrapping ticks
    import time as _time

    _TICKS_MAX = 0x3FFFFFFF
    _TICKS_HALF = 0x20000000

    def ticks_ms():
        return int(_time.monotonic() * 1000) & _TICKS_MAX

    def ticks_add(t, delta):
        return (t + delta) & _TICKS_MAX

    def ticks_diff(a, b):
        return ((a - b + _TICKS_HALF) & _TICKS_MAX) - _TICKS_HALF

    def sleep_ms(ms):
        _time.sleep(ms / 1000)

    def sleep_us(us):
        _time.sleep(us / 1000000)


def check_frame(can_id, data, extended):
    """Raise ValueError unless (can_id, data, extended) is a valid classic CAN frame."""
    if can_id < 0 or can_id > (EXT_ID_MAX if extended else STD_ID_MAX):
        raise ValueError("invalid CAN id")
    if len(data) > 8:
        raise ValueError("CAN data longer than 8 bytes")


def acceptance(ids):
    """The acceptance set of set_filter(ids): a dict keyed by ``can_id`` (standard) or
    ``can_id | EXT_KEY`` (extended); None (every frame) for ids None."""
    if ids is None:
        return None
    acc = {}
    for can_id, extended in ids:
        check_frame(can_id, b"", extended)
        acc[(can_id | EXT_KEY) if extended else can_id] = True
    return acc


class Port:
    """Base class: the counters, the acceptance filter and the defaults shared by all adapters."""

    __slots__ = ("rx_count", "tx_count", "tx_dropped", "rx_errors", "rx_filtered", "_accept")

    def __init__(self):
        self.rx_count = 0
        self.tx_count = 0
        self.tx_dropped = 0
        self.rx_errors = 0
        self.rx_filtered = 0
        self._accept = None  # None: every frame; else the dict of acceptance()

    def set_filter(self, ids):
        """The acceptance filter of the contract above: from now on recv() returns only
        frames whose (can_id, extended) is in ids (None: every frame)."""
        acc = acceptance(ids)  # validates every id before anything changes
        self._accept = acc
        f = getattr(self, "_pending", None)  # a frame wait() looked ahead at is judged too
        if f is not None and not self._passes(f[0], f[1]):
            self._pending = None
        return self._install_filter(ids)

    def _install_filter(self, ids):
        """Adapters with a filter below the port (hardware, kernel) install it here."""
        return False

    def _passes(self, can_id, extended):
        """True if the acceptance filter lets the frame through; counts the others."""
        acc = self._accept
        if acc is None or ((can_id | EXT_KEY) if extended else can_id) in acc:
            return True
        self.rx_filtered += 1
        return False

    def send(self, can_id, data, extended=False):
        raise NotImplementedError

    def recv(self):
        raise NotImplementedError

    def wait(self, timeout_ms):
        raise NotImplementedError

    def close(self):
        pass

    def _dropped(self):
        self.tx_dropped += 1
        return False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def counters(self):
        """(rx_count, tx_count, tx_dropped, rx_errors) as one tuple, for reports."""
        return (self.rx_count, self.tx_count, self.tx_dropped, self.rx_errors)


class PolledPort(Port):
    """Base of the board adapters: a controller polled through `_take()` (one frame or None).

    Subclasses own `self.can` (with `deinit()`) and implement `_take()`; recv, wait and
    close come from here. wait() polls every `poll_us` and keeps the frame it found for
    the next recv().
    """

    __slots__ = ("poll_us", "_pending")

    def __init__(self, poll_us=200):
        Port.__init__(self)
        self.poll_us = poll_us
        self._pending = None

    def recv(self):
        f = self._pending
        if f is not None:
            self._pending = None
            return f
        return self._take()

    def wait(self, timeout_ms):
        if self._pending is not None:
            return True
        t0 = ticks_ms()
        while True:
            self._pending = self._take()
            if self._pending is not None:
                return True
            if ticks_diff(ticks_ms(), t0) >= timeout_ms:
                return False
            sleep_us(self.poll_us)

    def close(self):
        self._pending = None
        self.can.deinit()


def open_port(spec):
    """Build a port from a dict such as ``{"interface": "socketcand", "host": ...}``.

    interface ``socketcand`` -> SocketcandPort(host, port, channel, timeout_ms),
    ``machine`` -> MachineCanPort, ``pyb`` -> PybCanPort; any other value (or none)
    goes to python-can's ``can.Bus`` through PythonCanPort with the remaining keys.
    For ``machine`` and ``pyb`` a ``channel`` key names the controller (machine.CAN
    ``id``, pyb.CAN ``bus``); a string of digits becomes an int.
    """
    kw = dict(spec)
    iface = kw.pop("interface", None)
    if iface == "socketcand":
        from .socketcand import SocketcandPort

        return SocketcandPort(**kw)
    if iface in ("machine", "pyb"):
        ch = kw.pop("channel", None)
        if ch is not None:
            kw["id" if iface == "machine" else "bus"] = int(ch) if str(ch).isdigit() else ch
        if iface == "machine":
            from .machine_can import MachineCanPort

            return MachineCanPort(**kw)
        from .pyb_can import PybCanPort

        return PybCanPort(**kw)
    from .pythoncan import PythonCanPort

    if iface is not None:
        kw["interface"] = iface
    return PythonCanPort(**kw)
