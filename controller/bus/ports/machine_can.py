"""MachineCanPort: the CAN port on MicroPython's ``machine.CAN`` (v1.28+).

Follows docs/library/machine.CAN.rst: ``CAN(id, bitrate, ...)``, ``set_filters``,
``send(id, data, flags) -> index | None`` (OSError when bus-off or disabled),
``recv(arg) -> [id, memoryview, flags, errors] | None`` (non-blocking).

Guarantees: ``recv`` and ``send`` never block and never allocate beyond the returned
frame tuple (one preallocated receive list and buffer are reused).  A full transmit
queue or a bus-off controller drops the frame (``tx_dropped``); the caller decides
about ``restart()`` through ``port.can``.  Remote frames, frames longer than 8 bytes
and receive overruns (``RECV_ERR_OVERRUN``: frames lost in the controller) count in
``rx_errors``.  ``wait`` polls every ``poll_us`` microseconds, which bounds the extra
reaction latency it adds.
"""
from . import PolledPort, check_frame


class MachineCanPort(PolledPort):
    """CAN port on a ``machine.CAN`` object (given, or built from id/bitrate/init args)."""

    __slots__ = ("can", "unordered", "_ext", "_rtr", "_overrun", "_rx")

    def __init__(self, can=None, id=1, bitrate=500000, filters=None, unordered=False,
                 poll_us=200, **init_kwargs):
        PolledPort.__init__(self, poll_us)
        if can is None:
            from machine import CAN

            can = CAN(id, bitrate, **init_kwargs)
        self.can = can
        # receiving starts only after set_filters; None accepts every frame
        can.set_filters(filters)
        self._ext = can.FLAG_EXT_ID
        self._rtr = can.FLAG_RTR
        self._overrun = can.RECV_ERR_OVERRUN
        # same-id frames may leave in any order only if the caller says so
        self.unordered = can.FLAG_UNORDERED if unordered else 0
        # recv(arg): a list of 4 whose item 1 is a memoryview on a buffer that can
        # hold any frame (64 bytes covers CAN FD controllers too)
        self._rx = [0, memoryview(bytearray(64)), 0, 0]

    def send(self, can_id, data, extended=False):
        check_frame(can_id, data, extended)
        flags = self.unordered | (self._ext if extended else 0)
        try:
            idx = self.can.send(can_id, data, flags)
        except OSError:  # bus-off or controller disabled
            return self._dropped()
        if idx is None:  # transmit queue full (or same-id ordering not possible)
            return self._dropped()
        self.tx_count += 1
        return True

    def _take(self):
        while True:
            res = self.can.recv(self._rx)
            if res is None:
                return None
            flags = res[2]
            if res[3] & self._overrun:
                self.rx_errors += 1  # frames were lost before this one
            data = res[1]
            if flags & self._rtr or len(data) > 8:
                self.rx_errors += 1
                continue
            ext = bool(flags & self._ext)
            if not self._passes(res[0], ext):
                continue
            self.rx_count += 1
            return (res[0], ext, bytes(data))

    def _install_filter(self, ids):
        """The controller's own filters when they hold the list (``CAN.filters_max``);
        otherwise the hardware keeps passing every frame and the port filters alone."""
        can = self.can
        if ids is not None and len(ids) <= getattr(can, "filters_max", 0):
            try:
                can.set_filters([(i, 0x1FFFFFFF if ext else 0x7FF, self._ext if ext else 0) for i, ext in ids])
                return True
            except ValueError:  # a flag or an id this controller cannot filter on
                pass
        can.set_filters(None)
        return False
