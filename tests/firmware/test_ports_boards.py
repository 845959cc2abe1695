"""Firmware tests for the board CAN ports and MemoryPort; run under CPython and MicroPython.

MachineCanPort and PybCanPort are driven against fakes written from the MicroPython
docs (docs/library/machine.CAN.rst, docs/library/pyb.CAN.rst): same argument names,
return shapes and exceptions (None on a full machine.CAN queue, OSError on a busy
pyb.CAN mailbox or an empty FIFO with timeout=0, recv filling a caller's list whose
memoryview the driver resizes in place).
"""
import sys

from controller.bus.ports import EXT_KEY, Port, acceptance, check_frame, open_port
from controller.bus.ports.memory import MemoryBus, memory_pair
from controller.bus.ports.machine_can import MachineCanPort
from controller.bus.ports.pyb_can import PybCanPort

ETIMEDOUT = 110
EIO = 5


def raises(exc, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except exc:
        return True
    return False


def frames_all_dlc():
    """Standard and extended frames with dlc 0..8."""
    out = []
    for n in range(9):
        out.append((0x100 + n, False, bytes(range(n))))
        out.append((0x18FF0000 + n, True, bytes(range(0xF0, 0xF0 + n))))
    out.append((0x7FF, False, b"\xff" * 8))
    out.append((0x1FFFFFFF, True, b""))
    out.append((0, False, b"\x00"))
    return out


class _CapacityView:
    """Emulates the driver resizing the caller's memoryview in place.

    CPython cannot resize a memoryview, so the fake keeps the full-capacity view the
    caller handed in first and puts a view of the received length back into the list:
    the data lands in the caller's buffer and item 1 has the frame's length, as the
    docs promise.
    """

    def __init__(self):
        self.lst = None
        self.full = None

    def fill(self, lst, index, data, min_capacity):
        if lst is not self.lst:
            self.lst = lst
            self.full = lst[index]
        if not isinstance(self.full, memoryview):
            raise TypeError("list item must be a memoryview")
        if len(self.full) < min_capacity:
            raise ValueError("memoryview too small")
        n = len(data)
        self.full[0:n] = data
        lst[index] = self.full[0:n]


# -- machine.CAN fake (docs/library/machine.CAN.rst) ------------------------------


class FakeMachineCAN:
    MODE_NORMAL = 0
    MODE_SLEEP = 1
    MODE_LOOPBACK = 2
    MODE_SILENT = 3
    MODE_SILENT_LOOPBACK = 4
    STATE_STOPPED = 0
    STATE_ACTIVE = 1
    STATE_WARNING = 2
    STATE_PASSIVE = 3
    STATE_BUS_OFF = 4
    FLAG_RTR = 1
    FLAG_EXT_ID = 2
    FLAG_UNORDERED = 4
    RECV_ERR_FULL = 1
    RECV_ERR_OVERRUN = 2
    TX_QUEUE_LEN = 3
    FILTERS_MAX = 8
    filters_max = FILTERS_MAX  # CAN.filters_max: how many filters this controller holds

    def __init__(self, id, *args, **kwargs):
        self.id = id
        self.filters = "unset"  # nothing is received before set_filters()
        self.tx = [None] * self.TX_QUEUE_LEN
        self.sent = []
        self.rx = []
        self._state = self.STATE_STOPPED
        self._view = _CapacityView()
        if not args and "bitrate" not in kwargs:
            raise TypeError("bitrate required")
        self.init(*args, **kwargs)

    def init(self, bitrate, mode=0, sample_point=75, sjw=1, tseg1=None, tseg2=None):
        self.bitrate = bitrate
        self.mode = mode
        self._state = self.STATE_ACTIVE

    def deinit(self):
        self._state = self.STATE_STOPPED
        self.rx = []
        self.tx = [None] * self.TX_QUEUE_LEN

    def state(self):
        return self._state

    def restart(self):
        self._state = self.STATE_ACTIVE
        self.tx = [None] * self.TX_QUEUE_LEN

    def set_filters(self, filters):
        if filters is not None and len(filters) > self.FILTERS_MAX:
            raise ValueError("too many filters")
        self.filters = filters

    def send(self, id, data, flags=0):
        if self._state in (self.STATE_BUS_OFF, self.STATE_STOPPED):
            raise OSError(EIO)
        if not flags & self.FLAG_UNORDERED:
            for m in self.tx:
                if m is not None and m[0] == id:
                    return None  # cannot guarantee same-id ordering
        for i in range(self.TX_QUEUE_LEN):
            if self.tx[i] is None:
                self.tx[i] = (id, bytes(data), flags)
                return i
        return None

    def recv(self, arg=None):
        if self.filters == "unset":
            return None
        while self.rx:
            can_id, data, flags, errs = self.rx.pop(0)
            if not self._accepts(can_id, flags):
                continue
            if arg is None:
                buf = bytearray(64)
                buf[0:len(data)] = data
                return [can_id, memoryview(buf)[0:len(data)], flags, errs]
            if len(arg) < 4:
                raise ValueError("list too short")
            self._view.fill(arg, 1, data, 8)
            arg[0] = can_id
            arg[2] = flags
            arg[3] = errs
            return arg
        return None

    def _accepts(self, can_id, flags):
        if self.filters is None:
            return True
        for ident, mask, fflags in self.filters:
            if (fflags & self.FLAG_EXT_ID) == (flags & self.FLAG_EXT_ID) and (can_id & mask) == (ident & mask):
                return True
        return False

    # test side: the bus
    def deliver(self, can_id, data, flags=0, errs=0):
        if flags & self.FLAG_RTR:
            data = bytes(len(data))  # an RTR arrives as zeroes of its DLC length
        self.rx.append((can_id, bytes(data), flags, errs))

    def transmit_all(self):
        for i in range(self.TX_QUEUE_LEN):
            if self.tx[i] is not None:
                self.sent.append(self.tx[i])
                self.tx[i] = None


def test_machine_round_trip_all_dlc():
    hw = FakeMachineCAN(1, 500000)
    port = MachineCanPort(hw)
    assert hw.filters is None  # accept everything, and receiving is enabled
    for can_id, ext, data in frames_all_dlc():
        assert port.send(can_id, data, ext)
        hw.transmit_all()
        hw.deliver(can_id, data, hw.FLAG_EXT_ID if ext else 0)
        got = port.recv()
        assert got == (can_id, ext, data), got
        assert type(got[2]) is bytes
    assert [(m[0], bool(m[2] & hw.FLAG_EXT_ID), m[1]) for m in hw.sent] == frames_all_dlc()
    assert port.recv() is None
    n = len(frames_all_dlc())
    assert port.counters() == (n, n, 0, 0)


def test_machine_full_queue_and_bus_off_drop():
    hw = FakeMachineCAN(1, 500000)
    port = MachineCanPort(hw)
    for i in range(3):
        assert port.send(0x10 + i, b"\x01")
    assert port.send(0x20, b"") is False  # queue full: None from the driver
    assert port.tx_dropped == 1
    hw.transmit_all()
    assert port.send(0x30, b"a")
    assert port.send(0x30, b"b") is False  # same id queued, ordering not allowed
    hw._state = hw.STATE_BUS_OFF
    assert port.send(0x40, b"") is False  # OSError from the driver is counted
    assert port.tx_dropped == 3 and port.tx_count == 4


def test_machine_unordered_flag_allows_same_id():
    hw = FakeMachineCAN(1, 500000)
    port = MachineCanPort(hw, unordered=True)
    assert port.send(0x30, b"a") and port.send(0x30, b"b", False)
    assert hw.tx[0][2] & hw.FLAG_UNORDERED


def test_machine_rtr_overrun_and_fd_counted():
    hw = FakeMachineCAN(1, 500000)
    port = MachineCanPort(hw)
    hw.deliver(0x55, b"12345678", hw.FLAG_RTR)
    hw.deliver(0x56, bytes(12))  # an FD-length frame has no place in a classic port
    hw.deliver(0x57, b"\x01", 0, hw.RECV_ERR_OVERRUN)
    assert port.recv() == (0x57, False, b"\x01")
    assert port.rx_errors == 3 and port.rx_count == 1


def test_machine_filters_passed_through():
    hw = FakeMachineCAN(1, 500000)
    port = MachineCanPort(hw, filters=((0x300, 0x700, 0),))
    hw.deliver(0x123, b"x")
    hw.deliver(0x3AB, b"y")
    assert port.recv() == (0x3AB, False, b"y")
    assert port.recv() is None


def test_machine_wait():
    hw = FakeMachineCAN(1, 500000)
    port = MachineCanPort(hw, poll_us=50)
    assert port.wait(3) is False
    hw.deliver(0x1, b"\x02")
    assert port.wait(0) is True
    assert port.wait(1000) is True  # the looked-ahead frame is still there
    assert port.recv() == (1, False, b"\x02")
    assert port.recv() is None and port.rx_count == 1


def test_machine_builds_can_from_arguments():
    made = []

    class FakeMachineModule:
        @staticmethod
        def CAN(id, *args, **kwargs):
            made.append(FakeMachineCAN(id, *args, **kwargs))
            return made[-1]

    saved = sys.modules.get("machine")
    sys.modules["machine"] = FakeMachineModule
    try:
        port = open_port({"interface": "machine", "channel": "2", "bitrate": 250000, "sample_point": 80})
    finally:
        if saved is None:
            del sys.modules["machine"]
        else:
            sys.modules["machine"] = saved
    assert isinstance(port, MachineCanPort)
    assert made[0].id == 2 and made[0].bitrate == 250000
    port.close()
    assert made[0].state() == FakeMachineCAN.STATE_STOPPED


# -- pyb.CAN fake (docs/library/pyb.CAN.rst) ----------------------------------------


class FakePybCAN:
    NORMAL = 0
    LOOPBACK = 1
    SILENT = 2
    SILENT_LOOPBACK = 3
    STOPPED = 0
    ERROR_ACTIVE = 1
    ERROR_WARNING = 2
    ERROR_PASSIVE = 3
    BUS_OFF = 4
    LIST16 = 0
    MASK16 = 1
    LIST32 = 2
    MASK32 = 3

    def __init__(self, bus, *args, **kwargs):
        self.bus = bus
        self.banks = {}
        self.fifo = ([], [])
        self.mailboxes = []
        self.sent = []
        self._state = self.STOPPED
        if args or kwargs:
            self.init(*args, **kwargs)

    def init(self, mode, prescaler=100, *, sjw=1, bs1=6, bs2=8, auto_restart=False, baudrate=0,
             sample_point=75, num_filter_banks=14, brs_sjw=1, brs_bs1=8, brs_bs2=3,
             brs_baudrate=0, brs_sample_point=75):
        self.mode = mode
        self.baudrate = baudrate
        self._state = self.ERROR_ACTIVE

    def deinit(self):
        self._state = self.STOPPED

    def state(self):
        return self._state

    def setfilter(self, bank, mode, fifo, params, *, rtr=None, extframe=False):
        if len(params) != (4 if mode in (self.LIST16, self.MASK16) else 2):
            raise ValueError("params")
        self.banks[bank] = (mode, fifo, tuple(params), extframe)

    def clearfilter(self, bank, extframe=False):
        self.banks.pop(bank, None)

    def any(self, fifo):
        return len(self.fifo[fifo]) > 0

    def recv(self, fifo, list=None, *, timeout=5000):
        q = self.fifo[fifo]
        if not q:
            raise OSError(ETIMEDOUT)  # a fake cannot wait: any timeout expires at once
        can_id, ext, rtr, fmi, data = q.pop(0)
        if list is None:
            return (can_id, ext, rtr, fmi, data)
        if len(list) < 5:
            raise ValueError("list too short")
        self.view.fill(list, 4, data, 8)
        list[0] = can_id
        list[1] = ext
        list[2] = rtr
        list[3] = fmi
        return list

    def send(self, data, id, *, timeout=0, rtr=False, extframe=False):
        if len(data) > 8:
            raise ValueError("CAN data field too long")
        if self._state in (self.BUS_OFF, self.STOPPED) or len(self.mailboxes) == 3:
            raise OSError(EIO)  # no free mailbox and timeout=0 (HAL error)
        self.mailboxes.append((id & (0x1FFFFFFF if extframe else 0x7FF), bytes(data), extframe, rtr))

    # test side
    view = None

    def deliver(self, can_id, data, ext=False, rtr=False):
        if self.view is None:
            self.view = _CapacityView()
        for bank in sorted(self.banks):
            mode, fifo, p, _ = self.banks[bank]
            if mode in (self.MASK16, self.MASK32):
                ok = any((can_id & p[i + 1]) == (p[i] & p[i + 1]) for i in range(0, len(p), 2))
            else:
                ok = can_id in p
            if ok:
                self.fifo[fifo].append((can_id, ext, rtr, bank, bytes(len(data)) if rtr else bytes(data)))
                return True
        return False

    def transmit_all(self):
        self.sent.extend(self.mailboxes)
        self.mailboxes = []


def test_pyb_round_trip_all_dlc():
    hw = FakePybCAN(1, FakePybCAN.NORMAL, baudrate=500000)
    port = PybCanPort(hw)
    assert hw.banks[0] == (FakePybCAN.MASK16, 0, (0, 0, 0, 0), False)  # accept all into FIFO 0
    for can_id, ext, data in frames_all_dlc():
        assert port.send(can_id, data, ext)
        hw.transmit_all()
        assert hw.deliver(can_id, data, ext)
        got = port.recv()
        assert got == (can_id, ext, data), got
        assert type(got[2]) is bytes
    assert [(m[0], m[2], m[1]) for m in hw.sent] == frames_all_dlc()
    assert port.recv() is None
    n = len(frames_all_dlc())
    assert port.counters() == (n, n, 0, 0)


def test_pyb_mailboxes_full_and_bus_off_drop():
    hw = FakePybCAN(1, FakePybCAN.NORMAL, baudrate=500000)
    port = PybCanPort(hw)
    for i in range(3):
        assert port.send(i, b"\x00")
    assert port.send(3, b"") is False
    hw.transmit_all()
    hw._state = hw.BUS_OFF
    assert port.send(4, b"") is False
    assert port.tx_dropped == 2 and port.tx_count == 3


def test_pyb_rtr_skipped_and_fifos():
    hw = FakePybCAN(1, FakePybCAN.NORMAL, baudrate=500000)
    port = PybCanPort(hw, accept_all=False, fifos=(0, 1))
    hw.setfilter(0, hw.LIST16, 0, (0x10, 0x11, 0x12, 0x13))
    hw.setfilter(1, hw.MASK32, 1, (0x18000000, 0x1F000000), extframe=True)
    assert not hw.deliver(0x20, b"no filter")
    hw.deliver(0x11, b"\x01\x02", rtr=True)
    hw.deliver(0x18ABCDEF, b"\x05", ext=True)
    hw.deliver(0x12, b"\x03")
    assert port.recv() == (0x12, False, b"\x03")  # FIFO 0 first; the RTR was skipped
    assert port.recv() == (0x18ABCDEF, True, b"\x05")
    assert port.recv() is None
    assert port.rx_errors == 1 and port.rx_count == 2


def test_pyb_wait():
    hw = FakePybCAN(1, FakePybCAN.NORMAL, baudrate=500000)
    port = PybCanPort(hw, poll_us=50)
    assert port.wait(3) is False
    hw.deliver(0x7, b"")
    assert port.wait(0) is True and port.wait(0) is True
    assert port.recv() == (7, False, b"")
    assert port.recv() is None


def test_pyb_builds_can_from_arguments():
    made = []

    class FakePybModule:
        class CAN(FakePybCAN):
            def __init__(self, bus, *args, **kwargs):
                FakePybCAN.__init__(self, bus, *args, **kwargs)
                made.append(self)

    saved = sys.modules.get("pyb")
    sys.modules["pyb"] = FakePybModule
    try:
        port = open_port({"interface": "pyb", "channel": 2, "baudrate": 250000})
    finally:
        if saved is None:
            del sys.modules["pyb"]
        else:
            sys.modules["pyb"] = saved
    assert isinstance(port, PybCanPort)
    assert made[0].bus == 2 and made[0].baudrate == 250000 and made[0].mode == FakePybCAN.NORMAL
    port.close()
    assert made[0].state() == FakePybCAN.STOPPED


# -- contract and MemoryPort --------------------------------------------------------


def test_invalid_frames_raise_value_error():
    a, _ = memory_pair()
    hw = FakeMachineCAN(1, 500000)
    ports = (a, MachineCanPort(hw), PybCanPort(FakePybCAN(1, 0, baudrate=500000)))
    for p in ports:
        assert raises(ValueError, p.send, 0x800, b"")
        assert raises(ValueError, p.send, 0x20000000, b"", True)
        assert raises(ValueError, p.send, -1, b"")
        assert raises(ValueError, p.send, 0x10, bytes(9))
        assert p.tx_count == 0 and p.tx_dropped == 0
    check_frame(0x7FF, bytes(8), False)
    check_frame(0x1FFFFFFF, b"", True)


def test_memory_pair_round_trip():
    a, b = memory_pair()
    for can_id, ext, data in frames_all_dlc():
        assert a.send(can_id, bytearray(data), ext)
        assert b.recv() == (can_id, ext, data)
        assert b.send(can_id, data, ext)
        assert a.recv() == (can_id, ext, data)
    assert a.recv() is None and b.recv() is None
    n = len(frames_all_dlc())
    assert a.counters() == (n, n, 0, 0) == b.counters()


def test_memory_bus_no_echo_and_fan_out():
    bus = MemoryBus()
    a, b, c = bus.port(), bus.port(), bus.port()
    assert a.send(0x100, b"\x01")
    assert a.recv() is None  # no echo of one's own frame
    assert b.recv() == (0x100, False, b"\x01") == c.recv()
    c.close()
    assert b.send(0x101, b"")
    assert a.recv() == (0x101, False, b"") and c.recv() is None


def test_memory_queue_full_drops_and_wait():
    a, b = memory_pair(queue_len=2)
    assert not b.wait(10)
    assert a.send(1, b"") and a.send(2, b"")
    assert a.send(3, b"") is False and a.tx_dropped == 1
    assert b.wait(10) and b.pending() == 2
    assert b.recv()[0] == 1 and b.recv()[0] == 2 and b.recv() is None
    assert a.send(4, b"x") and b.recv() == (4, False, b"x")  # the ring wraps around


def test_base_port_is_abstract():
    p = Port()
    assert raises(NotImplementedError, p.send, 1, b"")
    assert raises(NotImplementedError, p.recv)
    assert p.counters() == (0, 0, 0, 0)


# -- acceptance filter (set_filter) -------------------------------------------------

WANTED = [(0x100, False), (0x18DA10F1, True)]


def test_acceptance_set():
    assert acceptance(None) is None
    assert acceptance(WANTED) == {0x100: True, 0x18DA10F1 | EXT_KEY: True}
    assert acceptance([(0x100, True)]) != acceptance([(0x100, False)])  # 11 and 29 bit differ
    assert raises(ValueError, acceptance, [(0x800, False)])
    assert raises(ValueError, acceptance, [(0x20000000, True)])
    a, b = memory_pair()
    assert raises(ValueError, b.set_filter, [(0x100, False), (-1, False)])
    assert b._accept is None  # a refused list changes nothing


def test_memory_port_filter():
    a, b = memory_pair()
    assert b.set_filter(WANTED) is False  # no filter below a MemoryPort: the port filters
    for f in ((0x100, False, b"1"), (0x101, False, b"2"), (0x18DA10F1, True, b"3"), (0x100, True, b"4")):
        a.send(f[0], f[2], f[1])
    assert b.recv() == (0x100, False, b"1")
    assert b.recv() == (0x18DA10F1, True, b"3")
    assert b.recv() is None
    assert (b.rx_filtered, b.rx_count) == (2, 2)
    b.set_filter(None)
    a.send(0x101, b"5")
    assert b.recv() == (0x101, False, b"5") and b.rx_filtered == 2


def test_memory_port_filtered_frames_take_no_queue_slot():
    a, b = memory_pair(2)
    b.set_filter([(0x100, False)])
    for _ in range(5):
        assert a.send(0x200, b"x")  # filtered on arrival: never a full queue
    assert a.tx_dropped == 0 and b.pending() == 0 and b.rx_filtered == 5


def test_machine_filter_in_hardware():
    hw = FakeMachineCAN(1, 500000)
    port = MachineCanPort(hw)
    assert port.set_filter(WANTED) is True
    assert hw.filters == [(0x100, 0x7FF, 0), (0x18DA10F1, 0x1FFFFFFF, hw.FLAG_EXT_ID)]
    hw.deliver(0x101, b"x")
    hw.deliver(0x18DA10F1, b"y", hw.FLAG_EXT_ID)
    hw.deliver(0x100, b"z")
    assert port.recv() == (0x18DA10F1, True, b"y")
    assert port.recv() == (0x100, False, b"z")
    assert port.recv() is None
    assert port.rx_filtered == 0  # the controller dropped 0x101: the port never saw it
    assert port.set_filter(None) is False and hw.filters is None


def test_machine_filter_longer_than_the_hardware_holds():
    hw = FakeMachineCAN(1, 500000)
    port = MachineCanPort(hw)
    ids = [(0x100 + i, False) for i in range(hw.FILTERS_MAX + 1)]
    assert port.set_filter(ids) is False
    assert hw.filters is None  # the hardware passes everything ...
    hw.deliver(0x300, b"x")
    hw.deliver(0x108, b"y")
    assert port.recv() == (0x108, False, b"y")  # ... and the port filters
    assert port.rx_filtered == 1


def test_pyb_filter_in_the_port():
    hw = FakePybCAN(1, FakePybCAN.NORMAL, baudrate=500000)
    port = PybCanPort(hw)
    banks = dict(hw.banks)
    assert port.set_filter(WANTED) is False
    assert hw.banks == banks  # the accept-all banks stay
    hw.deliver(0x123, b"x")
    hw.deliver(0x100, b"y")
    hw.deliver(0x18DA10F1, b"z", ext=True)
    assert port.recv() == (0x100, False, b"y")
    assert port.recv() == (0x18DA10F1, True, b"z")
    assert port.recv() is None and port.rx_filtered == 1


def test_set_filter_judges_the_frame_wait_looked_ahead_at():
    hw = FakeMachineCAN(1, 500000)
    port = MachineCanPort(hw)
    hw.deliver(0x123, b"x")
    assert port.wait(0)  # 0x123 is now held for the next recv()
    port.set_filter([(0x100, False)])
    assert port.recv() is None and port.rx_filtered == 1
