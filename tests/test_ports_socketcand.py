"""SocketcandPort and the socketcand hub, against python-can's own socketcand client.

Everything runs on 127.0.0.1 with the hub on an ephemeral port; the MicroPython test
runs our port under the real MicroPython unix interpreter in a subprocess.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import can
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from controller.bus.ports import open_port  # noqa: E402
from controller.bus.ports.socketcand import SocketcandPort  # noqa: E402
from hil.socketcand_hub import SocketcandHub, format_error, format_frame, parse_send  # noqa: E402
from tools.canbus import open_bus  # noqa: E402

FRAMES = [(0x100 + n, False, bytes(range(n))) for n in range(9)]
FRAMES += [(0x18DAF100 + n, True, bytes(range(0xA0, 0xA0 + n))) for n in range(9)]
FRAMES += [(0x7FF, False, b"\xff" * 8), (0x1FFFFFFF, True, b""), (0, False, b"\x00"), (5, True, b"\x0a")]


def msg(can_id, ext, data):
    return can.Message(arbitration_id=can_id, is_extended_id=ext, data=data)


def as_tuple(m):
    return (m.arbitration_id, m.is_extended_id, bytes(m.data))


@pytest.fixture
def bridge_channel():
    return "hub-" + uuid.uuid4().hex


@pytest.fixture
def hub(bridge_channel):
    bus = can.Bus(interface="virtual", channel=bridge_channel)
    h = SocketcandHub("127.0.0.1", 0, channel="vcan0", bus=bus).start()
    yield h
    h.stop()
    bus.shutdown()
    assert not [t for t in threading.enumerate() if t.name.startswith("socketcand-hub")]


@pytest.fixture
def plant(bridge_channel):
    """Another node on the python-can bus the hub bridges."""
    bus = can.Bus(interface="virtual", channel=bridge_channel)
    yield bus
    bus.shutdown()


def pc_client(hub):
    return open_bus(interface="socketcand", host=hub.address[0], port=hub.address[1], channel="vcan0")


def our_port(hub, **kw):
    return SocketcandPort(hub.address[0], hub.address[1], "vcan0", **kw)


def wait_until(cond, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.005)
    return cond()


class FakeServer:
    """A scripted socketcand server: handshake, then whatever bytes the test pushes."""

    def __init__(self, greet=True):
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(1)
        self.port = self.ls.getsockname()[1]
        self.greet = greet
        self.conn = None
        self.lines = b""
        self.t = threading.Thread(target=self._serve, daemon=True)
        self.t.start()

    def _serve(self):
        self.conn, _ = self.ls.accept()
        if not self.greet:
            return
        self.conn.sendall(b"< hi >")
        for _ in range(2):  # open, rawmode
            got = b""
            while not got.endswith(b">"):
                got += self.conn.recv(100)
            self.lines += got
            self.conn.sendall(b"< ok >")

    def push(self, data):
        self.t.join(5)
        self.conn.sendall(data)

    def close(self):
        self.t.join(5)
        if self.conn is not None:
            self.conn.close()
        self.ls.close()


# -- (a) python-can's socketcand client <-> SocketcandPort -----------------------


def test_python_can_client_and_our_port_exchange_frames(hub):
    pc = pc_client(hub)
    port = our_port(hub)
    try:
        assert port.connected and wait_until(lambda: hub.client_count() == 2)
        for can_id, ext, data in FRAMES:
            assert port.send(can_id, data, ext) is True
            got = pc.recv(5)
            assert got is not None and as_tuple(got) == (can_id, ext, data)
            pc.send(msg(can_id, ext, data))
            assert port.wait(5000)
            got = port.recv()
            assert got == (can_id, ext, data) and type(got[2]) is bytes
        assert port.recv() is None
        assert port.counters() == (len(FRAMES), len(FRAMES), 0, 0)
        assert hub.errors == 0
    finally:
        pc.shutdown()
        port.close()


def test_port_to_port_fan_out_without_echo(hub):
    a, b, c = our_port(hub), our_port(hub), open_port(
        {"interface": "socketcand", "host": hub.address[0], "port": hub.address[1], "channel": "vcan0"})
    try:
        assert isinstance(c, SocketcandPort)
        assert a.send(0x123, b"\x01\x02\x03")
        for p in (b, c):
            assert p.wait(5000) and p.recv() == (0x123, False, b"\x01\x02\x03")
        assert not a.wait(50)  # the hub does not echo a frame to its sender
        for i in range(200):  # many frames in a row arrive whole and in order
            a.send(i, bytes([i & 0xFF]))
        got = []
        while len(got) < 200 and b.wait(5000):
            got.append(b.recv())
        assert got == [(i, False, bytes([i & 0xFF])) for i in range(200)]
    finally:
        for p in (a, b, c):
            p.close()


def _stalled_client(hub):
    """A raw-mode client that never reads again, with a small receive buffer."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(hub.address)
    s.sendall(b"< open vcan0 >")
    time.sleep(0.05)
    s.sendall(b"< rawmode >")
    assert wait_until(lambda: hub.client_count() >= 1)
    time.sleep(0.1)
    return s


def test_acceptance_filter_skips_foreign_lines_before_their_data(hub):
    pc = pc_client(hub)
    port = our_port(hub)
    try:
        assert wait_until(lambda: hub.client_count() == 2)
        assert port.set_filter([(0x100, False), (0x18DA10F1, True)]) is False  # raw mode: no subscription
        for can_id, ext, data in ((0x200, False, b"x"), (0x100, True, b"y"), (0x100, False, b"a"),
                                  (0x18DA10F1, True, b"c")):
            pc.send(can.Message(arbitration_id=can_id, is_extended_id=ext, data=data))
        got = []
        while len(got) < 2 and port.wait(5000):
            got.append(port.recv())
        assert got == [(0x100, False, b"a"), (0x18DA10F1, True, b"c")]
        assert port.rx_filtered == 2 and port.rx_errors == 0
    finally:
        pc.shutdown()
        port.close()


def test_a_client_that_stops_reading_does_not_hold_up_the_others(bridge_channel):
    """With a send_timeout of a minute, a hub that waited on the stalled client would
    hold every frame after its socket filled for that minute; the others must get
    all of them at once, and the stalled client is cut when its backlog passes its bound."""
    bus = can.Bus(interface="virtual", channel=bridge_channel)
    h = SocketcandHub("127.0.0.1", 0, channel="vcan0", bus=bus, send_timeout=60.0, max_backlog=65536,
                      sndbuf=16384).start()
    stalled = _stalled_client(h)
    a, b = our_port(h), our_port(h)
    try:
        n = 20000  # ~1 MB of frame lines: far more than the stalled socket's buffers and the bound
        got = 0
        for i in range(n):
            assert a.send(0x100 + (i & 0xFF), bytes(8))
            if i % 50 == 49:
                # b keeps up (it takes each batch before the next is sent), so it never nears
                # the bound itself; a hub that waited on the stalled client would stop here
                # for the minute of send_timeout, and b.wait would give up after 5 s
                while got <= i and b.wait(5000):
                    assert b.recv() == (0x100 + (got & 0xFF), False, bytes(8))
                    got += 1
                assert got == i + 1
        assert got == n  # every frame reached the healthy client, in order
        assert wait_until(lambda: h.clients_dropped == 1, 10.0)  # the stalled one, for its backlog
        assert h.client_count() == 2
    finally:
        a.close()
        b.close()
        stalled.close()
        h.stop()
        bus.shutdown()


def test_a_stuck_client_is_dropped_after_send_timeout(bridge_channel):
    bus = can.Bus(interface="virtual", channel=bridge_channel)
    h = SocketcandHub("127.0.0.1", 0, channel="vcan0", bus=bus, send_timeout=0.5, sndbuf=16384).start()
    stalled = _stalled_client(h)
    a = our_port(h)
    try:
        for i in range(3000):  # enough to fill the stalled socket, far below the backlog bound
            a.send(0x200, bytes(8))
        a.flush()
        assert wait_until(lambda: h.clients_dropped == 1, 10.0)
        assert h.client_count() == 1
    finally:
        a.close()
        stalled.close()
        h.stop()
        bus.shutdown()


# -- (b) hub <-> bridged python-can bus ----------------------------------------------


def test_hub_bridges_virtual_bus_both_ways(hub, plant):
    pc = pc_client(hub)
    port = our_port(hub)
    try:
        for can_id, ext, data in FRAMES:
            plant.send(msg(can_id, ext, data))
            assert port.wait(5000) and port.recv() == (can_id, ext, data)
            got = pc.recv(5)
            assert got is not None and as_tuple(got) == (can_id, ext, data)
            port.send(can_id, data, ext)
            for node in (plant, pc):  # to the bridged bus and the other client
                got = node.recv(5)
                assert got is not None and as_tuple(got) == (can_id, ext, data)
        assert hub.frames_from_bus == len(FRAMES) and hub.frames_from_clients == len(FRAMES)
        assert plant.recv(0.05) is None
        plant.send(can.Message(arbitration_id=0x4, is_error_frame=True))  # reported, not a frame
        plant.send(can.Message(arbitration_id=0x5, is_remote_frame=True, is_extended_id=False))  # dropped
        plant.send(msg(0x6, False, b"\x06"))
        assert port.wait(5000) and port.recv() == (0x6, False, b"\x06")
        assert port.rx_errors == 1 and hub.errors == 1 and hub.error_frames_from_bus == 1
        got = pc.recv(5)  # python-can's client turns the line into an error frame
        assert got is not None and got.is_error_frame and got.arbitration_id == 0x4
        got = pc.recv(5)
        assert got is not None and as_tuple(got) == (0x6, False, b"\x06")
    finally:
        pc.shutdown()
        port.close()


# -- (c) malformed input ---------------------------------------------------------------


def raw_client(hub):
    s = socket.create_connection(hub.address, timeout=5)
    assert s.recv(100) == b"< hi >"
    return s


def read_reply(s):
    got = b""
    while not got.endswith(b">"):
        got += s.recv(100)
    return got


def test_malformed_client_lines_are_counted_and_harmless(hub):
    port = our_port(hub)
    s = raw_client(hub)
    try:
        s.sendall(b"< rawmode >")  # before open: unknown in NO_BUS state
        assert read_reply(s) == b"< error unknown command >"
        s.sendall(b"< open can7 >")
        assert read_reply(s) == b"< error could not open bus >"
        s.sendall(b"< open vcan0 >")
        assert read_reply(s) == b"< ok >"
        s.sendall(b"< bcmmode >")
        assert read_reply(s) == b"< error only rawmode is supported >"
        s.sendall(b"< rawmode >")
        assert read_reply(s) == b"< ok >"
        errors = hub.errors
        bad = [
            b"< send 123 2 01 >",  # dlc and data disagree
            b"< send 123 9 1 2 3 4 5 6 7 8 9 >",  # dlc > 8
            b"< send 800 0 >",  # 12-bit standard id
            b"< send 0x12 0 >",  # not plain hex
            b"< send 123 1 100 >",  # byte > 0xFF
            b"< send zz 0 >",
            b"< send >",
            b"garbage outside brackets",
            b"< send 123 1 <",  # cut short by a new line
            b"< fly me to the moon >",
            b"<>",
            b"\xff\xfe< \x00 >",
            b"<" + b"x" * 2000,  # never closed, overlong
        ]
        for line in bad:
            s.sendall(line)
        s.sendall(b">< send 1F 2 a B >")  # close the overlong line, then a valid send
        assert port.wait(5000) and port.recv() == (0x1F, False, b"\x0a\x0b")
        assert hub.errors - errors >= len(bad)
        s.sendall(b"< echo >")  # the connection survived all of it
        replies = b""
        while not replies.endswith(b"< echo >"):
            replies += read_reply(s)
        assert set(replies.replace(b"><", b">\n<").split(b"\n")) == {b"< error unknown command >", b"< echo >"}
        assert hub.client_count() == 2
    finally:
        s.close()
        port.close()


def test_client_vanishing_mid_line_does_not_hurt_the_hub(hub):
    port = our_port(hub)
    s = raw_client(hub)
    s.sendall(b"< open vcan0 >< rawmode >< send 12")
    s.close()
    assert wait_until(lambda: hub.client_count() == 1)
    pc = pc_client(hub)
    try:
        pc.send(msg(0x12, False, b"\x01"))
        assert port.wait(5000) and port.recv() == (0x12, False, b"\x01")
    finally:
        pc.shutdown()
        port.close()


def test_our_port_counts_malformed_server_lines_and_joins_partial_ones():
    srv = FakeServer()
    port = SocketcandPort("127.0.0.1", srv.port, "vcan0", timeout_ms=5000)
    try:
        assert srv.lines == b"< open vcan0 >< rawmode >"
        bad = [
            b"< error 004 1700000000.000001 >",  # an error frame
            b"< rtr 123 1.0 4 >",
            b"< fdframe 123 00 1.0 0102 >",
            b"< frame 800 1.0 >",  # standard id out of range
            b"< frame 1234 1.0 >",  # 4 id digits: standard, out of range
            b"< frame 12G 1.0 >",
            b"< frame 123 >",  # no timestamp
            b"< frame 123 1.0 010 >",  # odd number of hex digits
            b"< frame 123 1.0 010203040506070809 >",  # 9 bytes
            b"< frame 123 1.0 zz >",
            b"junk",
            b"< frame 123 ",  # cut short by the next line
        ]
        srv.push(b"".join(bad) + b"< ok >< echo >")
        assert not port.wait(200)
        assert port.rx_errors == len(bad) and port.rx_count == 0
        good = b"< frame 1ABCDEF0 1700000000.123456 DEADBEEF >< frame 7FF 1.0  >< frame 001 2.5 11 22 3 >"
        for i in range(len(good)):  # one byte per TCP segment: lines split everywhere
            srv.push(good[i:i + 1])
            time.sleep(0.0005)
        got = []
        while len(got) < 3 and port.wait(5000):
            got.append(port.recv())
        assert got == [(0x1ABCDEF0, True, b"\xde\xad\xbe\xef"), (0x7FF, False, b""), (1, False, b"\x11\x22\x03")]
        assert port.rx_errors == len(bad)
        srv.push(b"<" + b"y" * 5000)  # never closed and longer than the receive buffer
        srv.push(b" >< frame 002 1.0 02 >")
        assert port.wait(5000) and port.recv() == (2, False, b"\x02")
        assert port.rx_errors > len(bad)
    finally:
        port.close()
        srv.close()


def test_lost_connection_is_reported_not_raised():
    srv = FakeServer()
    port = SocketcandPort("127.0.0.1", srv.port, "vcan0", timeout_ms=5000)
    srv.push(b"< frame 010 1.0 01 >")
    srv.close()
    assert port.wait(5000) and port.recv() == (0x10, False, b"\x01")  # data before EOF is kept
    assert port.wait(1000) is False
    assert port.recv() is None and port.connected is False
    assert port.send(0x10, b"") is False and port.tx_dropped == 1
    port.close()


def test_send_never_blocks_when_the_server_stops_reading():
    srv = FakeServer()
    port = SocketcandPort("127.0.0.1", srv.port, "vcan0", timeout_ms=5000, tx_buffer=256)
    try:
        sent = 0
        for _ in range(500000):  # fills the kernel socket buffers, then ours
            if not port.send(0x1FFFFFFF, bytes(8), True):
                break
            sent += 1
        assert port.tx_dropped == 1 and port.tx_count == sent and port.connected
        assert port.flush() is False
    finally:
        port.close()
        srv.close()


def test_connect_failures_raise_within_the_timeout():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    free_port = s.getsockname()[1]
    s.close()
    with pytest.raises(OSError):
        SocketcandPort("127.0.0.1", free_port, "vcan0", timeout_ms=2000)
    srv = FakeServer(greet=False)  # accepts but never says hi
    try:
        with pytest.raises(OSError):
            SocketcandPort("127.0.0.1", srv.port, "vcan0", timeout_ms=200)
    finally:
        srv.close()


def test_wrong_channel_is_refused(hub):
    with pytest.raises(OSError):
        SocketcandPort(hub.address[0], hub.address[1], "can9", timeout_ms=2000)
    with pytest.raises(can.CanError):
        can.Bus(interface="socketcand", host=hub.address[0], port=hub.address[1], channel="can9")


def test_stop_disconnects_clients_and_joins_threads(bridge_channel):
    h = SocketcandHub("127.0.0.1", 0).start()
    port = our_port(h)
    h.stop()
    assert not port.wait(2000)
    assert not port.connected and port.send(1, b"") is False
    h.stop()  # idempotent
    assert not [t for t in threading.enumerate() if t.name.startswith("socketcand-hub")]


def test_frame_format_matches_socketcand():
    assert format_frame(0x123, False, b"", 1_700_000_000_000_001_000) == b"< frame 123 1700000000.000001  >"
    assert format_frame(0x1, True, b"\x0a\xff", 5_000_000_000) == b"< frame 00000001 5.000000 0AFF >"
    assert parse_send([b"1AAAAAAA", b"2", b"1", b"F1"]) == (0x1AAAAAAA, True, b"\x01\xf1")
    assert parse_send([b"123", b"0"]) == (0x123, False, b"")
    assert format_error(0x20, 1_000_000) == b"< error 020 0.001000 >"


# -- (d) the port under the real MicroPython interpreter ------------------------------


def find_micropython():
    exe = shutil.which("micropython")
    if exe is None:
        cand = os.path.join(os.path.dirname(sys.executable), "micropython")
        exe = cand if os.access(cand, os.X_OK) else None
    return exe


MP_ECHO = """
import sys
sys.path.insert(0, ROOT)
from controller.bus.ports.socketcand import SocketcandPort
port = SocketcandPort("127.0.0.1", PORT, "vcan0", 5000)
print("READY")
n = 0
while n < COUNT and port.wait(5000):
    can_id, ext, data = port.recv()
    port.send(can_id ^ 1, bytes(reversed(data)), ext)
    n += 1
port.close()
print("ECHOED", n, port.rx_count, port.tx_count, port.tx_dropped, port.rx_errors)
"""


def test_port_under_micropython_echoes_frames(hub, tmp_path):
    exe = find_micropython()
    if exe is None:
        pytest.skip("no micropython binary on PATH or next to %s" % sys.executable)
    script = tmp_path / "mp_echo.py"
    script.write_text(MP_ECHO.replace("ROOT", repr(ROOT)).replace("PORT", str(hub.address[1]))
                      .replace("COUNT", str(len(FRAMES))))
    proc = subprocess.Popen([exe, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pc = None
    try:
        assert proc.stdout.readline().strip() == "READY"
        pc = pc_client(hub)
        for can_id, ext, data in FRAMES:
            pc.send(msg(can_id, ext, data))
            got = pc.recv(10)
            assert got is not None and as_tuple(got) == (can_id ^ 1, ext, bytes(reversed(data)))
        out, err = proc.communicate(timeout=30)
        n = len(FRAMES)
        assert out.split() == ["ECHOED"] + [str(x) for x in (n, n, n, 0, 0)], err
        assert proc.returncode == 0
    finally:
        if pc is not None:
            pc.shutdown()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_main_runs_a_standalone_hub_until_interrupted():
    proc = subprocess.Popen([sys.executable, "-m", "hil.socketcand_hub", "--host", "127.0.0.1", "--port", "0"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("socketcand hub on 127.0.0.1:"), proc.stderr.read() if not line else line
        port_no = int(line.split(":")[1].split()[0])
        a = SocketcandPort("127.0.0.1", port_no, "vcan0", timeout_ms=5000)
        b = SocketcandPort("127.0.0.1", port_no, "vcan0", timeout_ms=5000)
        assert a.send(0x3, b"\x03") and b.wait(5000) and b.recv() == (3, False, b"\x03")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
        assert not b.wait(2000) and not b.connected
        a.close()
        b.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
