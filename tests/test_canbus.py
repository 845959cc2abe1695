"""tools.canbus.open_bus: the socketcand handshake race of python-can's client, and a
server that is not there (a clear OSError at once, not 10 s of retries)."""
import socket
import threading

import can
import pytest

from tools.canbus import open_bus


class RacingServer:
    """A socketcand server that, for its first `races` clients, sends the rawmode '< ok >'
    and a frame in one TCP segment, the way a busy socketcand can; clean afterwards."""

    def __init__(self, races):
        self.races = races
        self.clients = 0
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(8)
        self.ls.settimeout(0.1)
        self.port = self.ls.getsockname()[1]
        self.stop = threading.Event()
        self.conns = []
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _read_until(self, c, word):
        buf = b""
        while word not in buf:
            chunk = c.recv(256)
            if not chunk:
                raise OSError("closed")
            buf += chunk

    def _loop(self):
        while not self.stop.is_set():
            try:
                c, _ = self.ls.accept()
            except socket.timeout:
                continue
            self.conns.append(c)
            c.settimeout(2.0)
            try:
                c.sendall(b"< hi >")
                self._read_until(c, b"< open vcan0 >")
                c.sendall(b"< ok >")
                self._read_until(c, b"< rawmode >")
                self.clients += 1
                if self.clients <= self.races:
                    c.sendall(b"< ok >< frame 123 1.000000 0102 >")
                else:
                    c.sendall(b"< ok >")
            except OSError:
                pass

    def close(self):
        self.stop.set()
        self.thread.join(2)
        for c in self.conns:
            c.close()
        self.ls.close()


@pytest.fixture
def racing():
    made = []

    def make(races):
        s = RacingServer(races)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def test_python_can_alone_fails_on_the_race(racing):
    srv = racing(1)  # the reason for open_bus: python-can's constructor refuses this handshake
    with pytest.raises(can.CanError, match="< ok >< frame"):
        can.Bus(interface="socketcand", host="127.0.0.1", port=srv.port, channel="vcan0")


def test_open_bus_retries_the_race(racing):
    srv = racing(2)
    bus = open_bus(interface="socketcand", host="127.0.0.1", port=srv.port, channel="vcan0")
    try:
        assert srv.clients == 3  # two raced handshakes, then a clean one
    finally:
        bus.shutdown()


def test_open_bus_gives_up_after_its_attempts(racing):
    srv = racing(10)
    with pytest.raises(can.CanError, match="< ok >< frame"):
        open_bus(attempts=3, interface="socketcand", host="127.0.0.1", port=srv.port, channel="vcan0")
    assert srv.clients == 3


def test_unreachable_server_is_a_clear_error_at_once():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    # our own message: the probe answered, not python-can's TimeoutError after 10 s of retries
    with pytest.raises(OSError, match="socketcand server 127.0.0.1:%d: Connection refused" % port):
        open_bus(interface="socketcand", host="127.0.0.1", port=port, channel="vcan0")


def test_other_interfaces_pass_through():
    bus = open_bus(interface="virtual", channel="canbus-test")
    try:
        assert isinstance(bus, can.BusABC)
    finally:
        bus.shutdown()
