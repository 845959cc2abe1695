"""PythonCanPort on python-can's virtual interface: frames, validation, wait, skipping."""
import os
import sys
import uuid

import can
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from controller.bus.ports import open_port  # noqa: E402
from controller.bus.ports.pythoncan import PythonCanPort  # noqa: E402

FRAMES = [(0x100 + n, False, bytes(range(n))) for n in range(9)]
FRAMES += [(0x18DAF100 + n, True, bytes(range(0xA0, 0xA0 + n))) for n in range(9)]
FRAMES += [(0x7FF, False, b"\xff" * 8), (0x1FFFFFFF, True, b""), (0, False, b"\x00")]


@pytest.fixture
def channel():
    return "test-" + uuid.uuid4().hex


@pytest.fixture
def pair(channel):
    a = PythonCanPort(interface="virtual", channel=channel)
    b = open_port({"interface": "virtual", "channel": channel})
    yield a, b
    a.close()
    b.close()


def test_two_ports_exchange_frames_both_ways(pair):
    a, b = pair
    assert isinstance(b, PythonCanPort)
    for can_id, ext, data in FRAMES:
        assert a.send(can_id, data, ext) is True
        assert b.wait(2000)
        got = b.recv()
        assert got == (can_id, ext, data) and type(got[2]) is bytes
        assert b.send(can_id, bytearray(data), ext) is True
        assert a.wait(2000)
        assert a.recv() == (can_id, ext, data)
    assert a.recv() is None and b.recv() is None  # and no echo of own frames
    assert a.counters() == (len(FRAMES), len(FRAMES), 0, 0) == b.counters()


@pytest.mark.parametrize("can_id,data,ext", [
    (0x800, b"", False), (-1, b"", False), (0x20000000, b"", True), (0x10, bytes(9), False),
])
def test_invalid_frames_raise_value_error(pair, can_id, data, ext):
    a, b = pair
    with pytest.raises(ValueError):
        a.send(can_id, data, ext)
    assert a.tx_count == a.tx_dropped == 0
    assert not b.wait(0)


def test_wait_false_on_timeout_true_when_waiting(pair):
    a, b = pair
    assert b.wait(20) is False
    assert b.wait(0) is False
    a.send(0x42, b"\x01")
    assert b.wait(2000) is True
    assert b.wait(0) is True  # the looked-ahead frame stays until recv takes it
    assert b.recv() == (0x42, False, b"\x01")
    assert b.recv() is None and b.rx_count == 1


def test_error_remote_and_fd_frames_counted_and_skipped(channel):
    port = PythonCanPort(interface="virtual", channel=channel)
    raw = can.Bus(interface="virtual", channel=channel)
    try:
        raw.send(can.Message(arbitration_id=0x1, is_error_frame=True, is_extended_id=False))
        raw.send(can.Message(arbitration_id=0x2, is_remote_frame=True, dlc=4, is_extended_id=False))
        raw.send(can.Message(arbitration_id=0x3, is_fd=True, data=bytes(12), is_extended_id=False))
        raw.send(can.Message(arbitration_id=0x4, data=b"ok", is_extended_id=False))
        assert port.wait(2000)
        assert port.recv() == (0x4, False, b"ok")
        assert port.rx_errors == 3 and port.rx_count == 1
    finally:
        raw.shutdown()
        port.close()


def test_wrapping_an_open_bus(channel):
    bus = can.Bus(interface="virtual", channel=channel)
    a = PythonCanPort(bus=bus)
    b = PythonCanPort(interface="virtual", channel=channel)
    try:
        assert a.bus is bus
        assert b.send(0x11, b"\x22") and a.wait(2000) and a.recv() == (0x11, False, b"\x22")
        with pytest.raises(TypeError):
            PythonCanPort(bus=bus, channel="x")
    finally:
        a.close()
        b.close()
    with pytest.raises(can.CanOperationError):  # the port owned the bus and shut it down
        bus.send(can.Message(arbitration_id=1))


def test_send_after_close_is_counted_not_raised(pair):
    a, _ = pair
    a.close()
    assert a.send(0x1, b"") is False
    assert a.tx_dropped == 1
    a.close()  # twice is fine


def test_default_interface_is_virtual_vcan0(monkeypatch, tmp_path):
    monkeypatch.delenv("CAN_INTERFACE", raising=False)
    monkeypatch.delenv("CAN_CHANNEL", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.canrc
    monkeypatch.setattr(can, "rc", {})
    if os.path.exists("/etc/can.conf"):
        pytest.skip("/etc/can.conf configures python-can on this machine")
    a = PythonCanPort()
    b = PythonCanPort(interface="virtual", channel="vcan0")
    try:
        assert isinstance(a.bus, can.interfaces.virtual.VirtualBus)
        assert a.send(0x321, b"\x07")
        assert b.wait(2000) and b.recv() == (0x321, False, b"\x07")
    finally:
        a.close()
        b.close()


def test_environment_configuration_is_honoured(monkeypatch, channel):
    monkeypatch.setenv("CAN_INTERFACE", "virtual")
    monkeypatch.setenv("CAN_CHANNEL", channel)
    monkeypatch.setattr(can, "rc", {})
    a = PythonCanPort()
    b = PythonCanPort(interface="virtual", channel=channel)
    try:
        assert a.send(0x1, b"")
        assert b.wait(2000) and b.recv() == (0x1, False, b"")
    finally:
        a.close()
        b.close()


def test_acceptance_filter_on_a_virtual_bus(channel):
    """python-can filters the virtual bus in its own recv, whose recv(timeout=0) gives up at
    the first frame it filters: the port keeps python-can unfiltered and skips such frames
    itself, so one poll still drains every wanted frame behind a run of foreign ones."""
    bus = can.Bus(interface="virtual", channel=channel)
    port = PythonCanPort(interface="virtual", channel=channel)
    try:
        assert port.set_filter([(0x100, False), (0x18DA10F1, True)]) is False  # no filter below
        for i in range(20):
            bus.send(can.Message(arbitration_id=0x200 + i, data=b"x", is_extended_id=False))
        bus.send(can.Message(arbitration_id=0x100, data=b"a", is_extended_id=False))
        bus.send(can.Message(arbitration_id=0x100, data=b"b", is_extended_id=True))  # 29-bit 0x100
        bus.send(can.Message(arbitration_id=0x18DA10F1, data=b"c", is_extended_id=True))
        assert port.wait(2000)
        got = []
        f = port.recv()
        while f is not None:
            got.append(f)
            f = port.recv()
        assert got == [(0x100, False, b"a"), (0x18DA10F1, True, b"c")]
        assert port.rx_filtered == 21 and port.rx_count == 2
    finally:
        port.close()
        bus.shutdown()


def test_wait_ends_on_time_under_a_stream_of_filtered_frames(channel):
    """Foreign frames arriving faster than wait()'s timeout must not restart it: the
    control loop sleeps in wait() and would miss its ticks (the bench caught this)."""
    import threading

    port = PythonCanPort(interface="virtual", channel=channel)
    port.set_filter([(0x100, False)])
    bus = can.Bus(interface="virtual", channel=channel)
    stop = threading.Event()

    def flood():
        while not stop.is_set():
            bus.send(can.Message(arbitration_id=0x700, data=bytes(8), is_extended_id=False))
            stop.wait(0.0005)

    t = threading.Thread(target=flood, daemon=True)
    t.start()
    result = []
    waiter = threading.Thread(target=lambda: result.append(port.wait(50)), daemon=True)
    try:
        waiter.start()
        waiter.join(10.0)  # liveness, not timing: a restarted wait never returns while the flood goes on
        assert result == [False] and port.rx_filtered > 0
    finally:
        stop.set()
        t.join(2)
        waiter.join(2)
        port.close()
        bus.shutdown()
