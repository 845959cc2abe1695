"""PybCanPort: the CAN port on ``pyb.CAN`` (STM32 boards).

Follows docs/library/pyb.CAN.rst: ``CAN(bus, CAN.NORMAL, baudrate=...)``,
``setfilter(bank, mode, fifo, params, *, rtr, extframe=False)``, ``any(fifo)``,
``recv(fifo, list, *, timeout) -> [id, extended, rtr, fmi, memoryview]`` (OSError
when nothing arrives in time), ``send(data, id, *, timeout=0, rtr=False,
extframe=False)`` (OSError when all three transmit mailboxes are busy).

Guarantees: ``recv`` and ``send`` never block (``timeout=0``, ``any()`` checked
first) and reuse one preallocated list and buffer, so only the returned frame tuple
is allocated.  With ``accept_all`` (default) the constructor installs filters that
pass every standard and extended frame into FIFO 0 (classic bxCAN: one MASK16 bank
with zero masks; FDCAN: a zero MASK filter per id type).  Remote frames count in
``rx_errors``.  ``wait`` polls every ``poll_us`` microseconds.  ``set_filter`` filters
in the port only: the filter banks are shared between the CAN controllers of a chip
and laid out per board, so hardware list filters are left to the integrator
(``setfilter`` on ``port.can``, with ``accept_all=False``).
"""
from . import PolledPort, check_frame


class PybCanPort(PolledPort):
    """CAN port on a ``pyb.CAN`` object (given, or built from bus/baudrate/init args)."""

    __slots__ = ("can", "fifos", "_rx")

    def __init__(self, can=None, bus=1, baudrate=500000, mode=None, accept_all=True,
                 fifos=(0,), poll_us=200, **init_kwargs):
        PolledPort.__init__(self, poll_us)
        if can is None:
            from pyb import CAN

            can = CAN(bus, CAN.NORMAL if mode is None else mode, baudrate=baudrate, **init_kwargs)
        self.can = can
        if accept_all:
            if hasattr(can, "MASK16"):  # classic controller: zero masks pass everything
                can.setfilter(0, can.MASK16, 0, (0, 0, 0, 0))
            else:  # FDCAN keeps standard and extended filters apart
                can.setfilter(0, can.MASK, 0, (0, 0))
                can.setfilter(0, can.MASK, 0, (0, 0), extframe=True)
        self.fifos = fifos
        # recv(fifo, list): a list of 5 whose item 4 is a memoryview on >= 8 bytes
        self._rx = [0, False, False, 0, memoryview(bytearray(64))]

    def send(self, can_id, data, extended=False):
        check_frame(can_id, data, extended)
        try:
            self.can.send(data, can_id, timeout=0, extframe=bool(extended))
        except OSError:  # mailboxes full, bus-off
            return self._dropped()
        self.tx_count += 1
        return True

    def _take(self):
        can = self.can
        rx = self._rx
        for fifo in self.fifos:
            while can.any(fifo):
                try:
                    res = can.recv(fifo, rx, timeout=0)
                except OSError:  # emptied between any() and recv()
                    break
                data = res[4]
                if res[2] or len(data) > 8:  # remote frame, or FD payload
                    self.rx_errors += 1
                    continue
                if not self._passes(res[0], res[1]):
                    continue
                self.rx_count += 1
                return (res[0], bool(res[1]), bytes(data))
        return None
