"""PythonCanPort: the CAN port on any python-can bus (CPython only).

``PythonCanPort(**kwargs)`` passes its arguments to ``can.Bus`` (python-can is
imported inside the constructor, so this module still loads, and compiles with
mpy-cross, on MicroPython); ``PythonCanPort(bus=existing_bus)`` wraps a bus that
is already open instead.  Either way the port owns the bus: ``close()`` shuts it
down.  Configuration follows python-can: arguments first,
then ``CAN_INTERFACE``/``CAN_CHANNEL`` and ``~/.canrc``; if none of them names an
interface the port uses ``interface="virtual", channel="vcan0"``.  A port does not
receive its own frames (``receive_own_messages=False`` unless given).

Error frames, remote frames and CAN FD frames are counted in ``rx_errors`` and
skipped.  A python-can error on send counts in ``tx_dropped``; on receive in
``rx_errors``; neither is raised.
"""
from . import Port, check_frame, ticks_diff, ticks_ms


def _configured(cfg):
    return bool(cfg.get("interface") or cfg.get("bustype"))


class PythonCanPort(Port):
    """A CAN port wrapping ``can.Bus(**kwargs)``; ``bus`` is the python-can bus."""

    __slots__ = ("bus", "_can", "_pending")

    def __init__(self, bus=None, **kwargs):
        import can

        Port.__init__(self)
        self._can = can
        self._pending = None  # one-frame look-ahead filled by wait()
        if bus is not None:
            if kwargs:
                raise TypeError("PythonCanPort: give either bus= or can.Bus arguments")
            self.bus = bus
            return
        if not _configured(kwargs) and not any(
            _configured(c) for c in (can.rc, can.util.load_environment_config(), can.util.load_file_config())
        ):  # python-can's own sources (can.rc, CAN_INTERFACE, ~/.canrc) name no interface
            kwargs["interface"] = "virtual"
            kwargs.setdefault("channel", "vcan0")
        kwargs.setdefault("receive_own_messages", False)
        self.bus = can.Bus(**kwargs)

    def send(self, can_id, data, extended=False):
        check_frame(can_id, data, extended)
        can = self._can
        msg = can.Message(arbitration_id=can_id, is_extended_id=bool(extended), data=data, check=False)
        try:
            self.bus.send(msg, timeout=0)
        except (can.CanError, OSError):
            return self._dropped()
        self.tx_count += 1
        return True

    def _take(self, timeout_s):
        """Next valid frame tuple from the bus within timeout_s seconds, or None."""
        can = self._can
        t0 = ticks_ms()
        timeout_ms = int(timeout_s * 1000)
        while True:
            try:
                msg = self.bus.recv(timeout=timeout_s)
            except (can.CanError, OSError, ValueError):
                self.rx_errors += 1
                return None
            if msg is None:
                return None
            if msg.is_error_frame or msg.is_remote_frame or msg.is_fd or len(msg.data) > 8:
                self.rx_errors += 1
            elif self._passes(msg.arbitration_id, msg.is_extended_id):
                self.rx_count += 1
                return (msg.arbitration_id, msg.is_extended_id, bytes(msg.data))
            if timeout_s > 0:  # keep waiting for a wanted frame in the rest of the time only
                left = timeout_ms - ticks_diff(ticks_ms(), t0)
                timeout_s = left / 1000 if left > 0 else 0

    def _install_filter(self, ids):
        """python-can's filters, kept only where the interface applies them below python-can
        (the kernel on socketcan: the bus then says ``_is_filtered``).  A filter that
        python-can applies itself is undone: its ``recv(timeout=0)`` returns None at the
        first frame it filters even with matching frames behind it, which would cut a
        poll short; the port's own filter skips such frames and goes on."""
        bus = self.bus
        if ids is None:
            bus.set_filters(None)
            return False
        f = [{"can_id": i, "can_mask": 0x1FFFFFFF if ext else 0x7FF, "extended": bool(ext)} for i, ext in ids]
        try:
            bus.set_filters(f)
        except (self._can.CanError, NotImplementedError, OSError, ValueError):
            bus.set_filters(None)
            return False
        if getattr(bus, "_is_filtered", False) is True:
            return True
        bus.set_filters(None)
        return False

    def recv(self):
        f = self._pending
        if f is not None:
            self._pending = None
            return f
        return self._take(0)

    def wait(self, timeout_ms):
        if self._pending is None:
            self._pending = self._take(timeout_ms / 1000 if timeout_ms > 0 else 0)
        return self._pending is not None

    def close(self):
        self._pending = None
        self.bus.shutdown()
