"""Our ISO-TP endpoint against the PyPI can-isotp stack on python-can's virtual bus.

Our endpoint (controller/diag/isotp.py) runs in a thread loop on a PythonCanPort, as the
gateway's real-time loop would run it; can-isotp's threaded CanStack is the other side.
Faults are injected by a relay between two virtual channels that drops, or swaps, chosen
frames; then each side must report what ISO 15765-2 says it should.
"""

import queue
import threading
import time
import uuid

import can
import isotp
import pytest

from controller.clock import RealClock
from controller.diag.isotp import (N_BUFFER_OVFLW, N_OK, N_TIMEOUT_BS, N_TIMEOUT_CR, N_WRONG_SN, IsoTp,
                              fixed_ids)
from controller.bus.ports.pythoncan import PythonCanPort

TIMEOUT_US = 1000000  # N_Bs/N_Cr on both sides: the ISO 15765-2 value, so a busy host cannot fake a timeout
TIMEOUT_MS = TIMEOUT_US // 1000


def _payload(n, seed=0):
    return bytes((i * 13 + seed + (i >> 8)) & 0xFF for i in range(n))


def _channel():
    return "isotp-peer-" + uuid.uuid4().hex[:12]


class Ours:
    """controller.diag.isotp.IsoTp in its own loop thread: the gateway side (ECU)."""

    def __init__(self, channel, **kw):
        self.port = PythonCanPort(interface="virtual", channel=channel)
        self.clock = RealClock()
        kw.setdefault("n_bs_us", TIMEOUT_US)
        kw.setdefault("n_cr_us", TIMEOUT_US)
        self.tp = IsoTp(self.port.send, **kw)
        self.inbox = queue.Queue()  # (message, functional)
        self.results = queue.Queue()  # tx_result of every send, in order
        self.errors = []  # rx-side N_Result errors, in order
        self.outbox = queue.Queue()
        self.hold_rx = threading.Event()  # set: the application does not read (queue fills)
        self._stop = threading.Event()
        self._sending = False
        self._seen_error = None
        self._rx_errors = 0
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        tp, port = self.tp, self.port
        while not self._stop.is_set():
            now = self.clock.ticks_us()
            f = port.recv()
            while f is not None:
                tp.on_port_frame(f, now)
                f = port.recv()
            if not self._sending and not self.outbox.empty():
                payload, functional = self.outbox.get()
                self._sending = tp.send(payload, now, functional)
                if not self._sending:
                    self.results.put("refused")
            tp.poll(now)
            if self._sending and not tp.tx_busy():
                self._sending = False
                self.results.put(tp.tx_result)
            if tp.rx_errors != self._rx_errors:
                self._rx_errors = tp.rx_errors
                self.errors.append(tp.rx_result)
            if not self.hold_rx.is_set():
                m = tp.recv()
                while m is not None:
                    self.inbox.put((m, tp.rx_functional))
                    m = tp.recv()
            hint = tp.wait_hint(now)
            port.wait(20.0 if hint is None else min(hint / 1000.0, 20.0))

    def send(self, payload, functional=False):
        self.outbox.put((payload, functional))

    def result(self, timeout=5.0):
        return self.results.get(timeout=timeout)

    def message(self, timeout=5.0):
        return self.inbox.get(timeout=timeout)

    def close(self):
        self._stop.set()
        self.thread.join(2.0)
        self.port.close()


class Peer:
    """can-isotp's CanStack as the tester."""

    def __init__(self, channel, txid=0x7E0, rxid=0x7E8, mode=isotp.AddressingMode.Normal_11bits, **params):
        self.bus = can.Bus(interface="virtual", channel=channel, receive_own_messages=False)
        self.errors = []
        p = {"stmin": 0, "blocksize": 0, "tx_padding": 0xCC, "wftmax": 5,
             "rx_flowcontrol_timeout": TIMEOUT_MS, "rx_consecutive_frame_timeout": TIMEOUT_MS}
        p.update(params)
        if mode == isotp.AddressingMode.NormalFixed_29bits:
            addr = isotp.Address(mode, target_address=txid, source_address=rxid)
        else:
            addr = isotp.Address(mode, txid=txid, rxid=rxid)
        self.stack = isotp.CanStack(self.bus, address=addr, error_handler=self.errors.append, params=p)
        self.stack.start()

    def send(self, payload, **kw):
        self.stack.send(payload, **kw)

    def wait_sent(self, timeout=5.0):
        end = time.monotonic() + timeout
        while self.stack.transmitting():
            assert time.monotonic() < end, "can-isotp still transmitting"
            time.sleep(0.002)

    def recv(self, timeout=5.0):
        return self.stack.recv(block=True, timeout=timeout)

    def error_types(self):
        return [type(e) for e in self.errors]

    def close(self):
        self.stack.stop()
        self.bus.shutdown()


class Observer:
    """A third node on the channel that only listens: the frames and their send times."""

    def __init__(self, channel):
        self.bus = can.Bus(interface="virtual", channel=channel, receive_own_messages=False)

    def frames(self):
        out = []
        m = self.bus.recv(timeout=0)
        while m is not None:
            out.append(m)
            m = self.bus.recv(timeout=0)
        return out

    def close(self):
        self.bus.shutdown()


class Relay:
    """Forwards frames between our channel and the peer's; `verdict(direction, msg)` may say
    "drop" (the frame is lost) or "hold" (it goes out after the next frame: a swap)."""

    def __init__(self, ours_channel, peer_channel, verdict):
        self.a = can.Bus(interface="virtual", channel=ours_channel, receive_own_messages=False)
        self.b = can.Bus(interface="virtual", channel=peer_channel, receive_own_messages=False)
        self.verdict = verdict
        self.log = []  # (direction, first byte, fate)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        held = {"to_ours": None, "to_peer": None}
        while not self._stop.is_set():
            moved = False
            for src, dst, direction in ((self.b, self.a, "to_ours"), (self.a, self.b, "to_peer")):
                m = src.recv(timeout=0)
                if m is None:
                    continue
                moved = True
                fate = self.verdict(direction, m) or "pass"
                self.log.append((direction, m.data[0], fate))
                if fate == "drop":
                    continue
                if fate == "hold":
                    held[direction] = m
                    continue
                dst.send(m)
                if held[direction] is not None:
                    dst.send(held[direction])
                    held[direction] = None
            if not moved:
                time.sleep(0.0002)

    def close(self):
        self._stop.set()
        self.thread.join(2.0)
        self.a.shutdown()
        self.b.shutdown()


@pytest.fixture
def nodes():
    """Factory for the nodes of one test; everything is closed afterwards."""
    made = []

    def make(cls, *args, **kw):
        obj = cls(*args, **kw)
        made.append(obj)
        return obj
    yield make
    for obj in reversed(made):
        obj.close()


def _once(direction_wanted, first_byte, fate):
    """A relay verdict that applies `fate` to the first frame with this first byte."""
    done = []

    def verdict(direction, msg):
        if not done and direction == direction_wanted and msg.data[0] == first_byte:
            done.append(1)
            return fate
        return None
    return verdict


def _cf_times(frames, arbitration_id):
    return [m.timestamp for m in frames if m.arbitration_id == arbitration_id and m.data[0] >> 4 == 2]


def _pattern(frames, sender_id):
    """F/C for the sender's FF/CF, f for each flow control of the receiver."""
    out = []
    for m in frames:
        kind = m.data[0] >> 4
        if m.arbitration_id == sender_id:
            out.append("F" if kind == 1 else "C" if kind == 2 else "S")
        else:
            out.append("f")
    return "".join(out)


# ---------------------------------------------------------------- clean exchanges


def test_peer_to_us_block_size_and_stmin(nodes):
    ch = _channel()
    obs = nodes(Observer, ch)
    ours = nodes(Ours, ch, block_size=4, st_min_us=2000)
    peer = nodes(Peer, ch)
    msg = _payload(6 + 7 * 13)
    peer.send(msg)
    assert ours.message() == (msg, False)
    peer.wait_sent()
    frames = obs.frames()
    assert _pattern(frames, 0x7E0) == "Ff" + "CCCCf" * 3 + "C"
    fc = [m for m in frames if m.arbitration_id == 0x7E8]
    assert all(bytes(m.data) == b"\x30\x04\x02\xcc\xcc\xcc\xcc\xcc" for m in fc)
    times = _cf_times(frames, 0x7E0)
    gaps = [t1 - t0 for t0, t1 in zip(times, times[1:])]
    assert min(gaps) >= 0.0015 and sum(gaps) / len(gaps) >= 0.002, gaps  # can-isotp honours our 2 ms
    assert peer.errors == [] and ours.errors == []


def test_us_to_peer_block_size_and_stmin(nodes):
    ch = _channel()
    obs = nodes(Observer, ch)
    ours = nodes(Ours, ch)
    peer = nodes(Peer, ch, blocksize=3, stmin=2)
    msg = _payload(6 + 7 * 10, 1)
    ours.send(msg)
    assert peer.recv() == msg
    assert ours.result() == N_OK
    frames = obs.frames()
    assert _pattern(frames, 0x7E8) == "Ff" + "CCCf" * 3 + "C"
    times = _cf_times(frames, 0x7E8)
    gaps = [t1 - t0 for t0, t1 in zip(times, times[1:])]
    assert min(gaps) >= 0.0015 and sum(gaps) / len(gaps) >= 0.002, gaps  # we honour can-isotp's 2 ms
    assert peer.errors == []


def test_stmin_in_100us_steps_both_ways(nodes):
    ch = _channel()
    obs = nodes(Observer, ch)
    ours = nodes(Ours, ch, st_min_us=500)
    peer = nodes(Peer, ch, stmin=0xF5)
    msg = _payload(300, 2)
    peer.send(msg)
    assert ours.message()[0] == msg
    peer.wait_sent()
    ours.send(msg)
    assert peer.recv() == msg and ours.result() == N_OK
    frames = obs.frames()
    assert [m.data[2] for m in frames if m.data[0] == 0x30] == [0xF5, 0xF5]
    for sender in (0x7E0, 0x7E8):
        times = _cf_times(frames, sender)
        gaps = [t1 - t0 for t0, t1 in zip(times, times[1:])]
        assert sum(gaps) / len(gaps) >= 0.0005, (hex(sender), gaps)
    assert peer.errors == []


@pytest.mark.parametrize("padding", [0xCC, None], ids=["padded", "minimal-dlc"])
def test_many_lengths_both_ways(nodes, padding):
    ch = _channel()
    ours = nodes(Ours, ch, padding=padding, block_size=8)
    peer = nodes(Peer, ch, tx_padding=padding, blocksize=16)
    obs = nodes(Observer, ch)
    for n in (1, 6, 7, 8, 13, 62, 63, 111, 112, 1000, 4095):
        msg = _payload(n, n)
        peer.send(msg)
        assert ours.message() == (msg, False), n
        peer.wait_sent()
        ours.send(msg)
        assert peer.recv() == msg, n
        assert ours.result() == N_OK
    frames = obs.frames()
    if padding is None:
        assert any(len(m.data) < 8 for m in frames if m.arbitration_id == 0x7E8)
    else:
        assert all(len(m.data) == 8 for m in frames)
    assert peer.errors == [] and ours.errors == []


def test_escape_first_frame_above_4095_both_ways(nodes):
    ch = _channel()
    ours = nodes(Ours, ch, max_len=5000)
    peer = nodes(Peer, ch, max_frame_size=5000)
    obs = nodes(Observer, ch)
    msg = _payload(4500, 7)
    peer.send(msg)
    assert ours.message()[0] == msg
    peer.wait_sent()
    ours.send(msg)
    assert peer.recv() == msg and ours.result() == N_OK
    ffs = [bytes(m.data[:6]) for m in obs.frames() if m.data[0] == 0x10]
    assert ffs == [b"\x10\x00\x00\x00\x11\x94"] * 2
    assert peer.errors == []


def test_functional_single_frame_from_peer(nodes):
    ch = _channel()
    ours = nodes(Ours, ch)
    func = nodes(Peer, ch, txid=0x7DF, rxid=0x7E8)
    obs = nodes(Observer, ch)
    func.send(b"\x3e\x80")
    assert ours.message() == (b"\x3e\x80", True)
    raw = nodes(Observer, ch)  # a raw node sends an FF functionally: must be ignored
    raw.bus.send(can.Message(arbitration_id=0x7DF, is_extended_id=False, data=b"\x10\x14" + bytes(6)))
    _until(lambda: ours.tp.unexpected == 1)
    assert not any(m.arbitration_id == 0x7E8 for m in obs.frames())  # no flow control went out
    assert ours.tp.unexpected == 1


def test_29bit_normal_fixed_addressing(nodes):
    ch = _channel()
    tx, rx, func = fixed_ids(0x10, 0xF1, functional_ta=0x10)
    ours = nodes(Ours, ch, tx_id=tx, rx_id=rx, functional_id=func, extended=True)
    peer = nodes(Peer, ch, txid=0x10, rxid=0xF1, mode=isotp.AddressingMode.NormalFixed_29bits)
    obs = nodes(Observer, ch)
    msg = _payload(200, 3)
    peer.send(msg)
    assert ours.message() == (msg, False)
    peer.wait_sent()
    ours.send(msg)
    assert peer.recv() == msg and ours.result() == N_OK
    peer.send(b"\x3e\x80", target_address_type=isotp.TargetAddressType.Functional)
    assert ours.message() == (b"\x3e\x80", True)
    ids = {m.arbitration_id for m in obs.frames()}
    assert ids == {0x18DA10F1, 0x18DAF110, 0x18DB10F1}
    assert peer.errors == []


# ---------------------------------------------------------------- receiver flow control


def test_our_fc_wait_while_our_queue_is_full(nodes):
    ch = _channel()
    ours = nodes(Ours, ch, rx_queue=1, n_br_us=100000, wft_max=10)
    peer = nodes(Peer, ch, wftmax=10)
    first, second = _payload(40, 1), _payload(500, 2)
    ours.hold_rx.set()
    peer.send(first)
    peer.wait_sent()
    peer.send(second)
    _until(lambda: ours.tp.wait_sent >= 3)  # one FC.WAIT per 100 ms while the application does not read
    assert peer.stack.transmitting()
    ours.hold_rx.clear()
    assert ours.message()[0] == first
    assert ours.message()[0] == second
    peer.wait_sent()
    assert peer.errors == []


def test_our_overflow_refuses_too_long(nodes):
    ch = _channel()
    ours = nodes(Ours, ch, max_len=100)
    peer = nodes(Peer, ch)
    peer.send(_payload(101))
    _until(lambda: peer.errors)
    assert peer.error_types() == [isotp.errors.OverflowError]
    assert ours.tp.overflow == 1 and ours.inbox.empty()
    peer.send(_payload(100))
    assert ours.message()[0] == _payload(100)


def test_peer_overflow_refuses_too_long(nodes):
    ch = _channel()
    ours = nodes(Ours, ch)
    peer = nodes(Peer, ch, max_frame_size=100)
    ours.send(_payload(101))
    assert ours.result() == N_BUFFER_OVFLW


# ---------------------------------------------------------------- lost and out-of-order frames


def _relayed(nodes, verdict, ours_kw=None, peer_kw=None):
    a, b = _channel(), _channel()
    relay = nodes(Relay, a, b, verdict)
    ours = nodes(Ours, a, **(ours_kw or {}))
    peer = nodes(Peer, b, **(peer_kw or {}))
    return relay, ours, peer


def _until(cond, timeout=10.0):
    """Wait until cond() is true (the fault cases end in timeouts of 1 s); fail after `timeout` s."""
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.005)


def test_peer_to_us_lost_cf_inside_block(nodes):
    relay, ours, peer = _relayed(nodes, _once("to_ours", 0x23, "drop"), {"block_size": 4})
    peer.send(_payload(100))
    _until(lambda: ours.errors and peer.errors)
    # we: CF 4 arrives where CF 3 was due -> abort with N_WRONG_SN, later CFs ignored
    assert ours.errors == [N_WRONG_SN] and ours.tp.wrong_sn == 1 and ours.inbox.empty()
    # can-isotp: after its 4th CF it waits for our FC, which never comes -> N_Bs
    assert isotp.errors.FlowControlTimeoutError in peer.error_types()
    peer.errors.clear()
    msg = _payload(100, 1)
    peer.send(msg)  # and the connection recovers
    assert ours.message()[0] == msg


def test_peer_to_us_out_of_order_cf(nodes):
    relay, ours, peer = _relayed(nodes, _once("to_ours", 0x22, "hold"))
    peer.send(_payload(60))
    peer.wait_sent()
    _until(lambda: ours.errors)
    assert ours.errors == [N_WRONG_SN] and ours.inbox.empty()
    assert ("to_ours", 0x22, "hold") in relay.log
    assert peer.errors == []  # with BS 0 the sender cannot notice


def test_peer_to_us_lost_last_cf(nodes):
    relay, ours, peer = _relayed(nodes, _once("to_ours", 0x23, "drop"))
    peer.send(_payload(6 + 7 * 3))
    peer.wait_sent()
    _until(lambda: ours.errors)
    assert ours.errors == [N_TIMEOUT_CR] and ours.tp.timeouts == 1 and ours.inbox.empty()
    assert peer.errors == []


def test_us_to_peer_lost_cf_inside_block(nodes):
    relay, ours, peer = _relayed(nodes, _once("to_peer", 0x22, "drop"), peer_kw={"blocksize": 4})
    ours.send(_payload(100))
    assert ours.result() == N_TIMEOUT_BS  # no FC after our 4th CF: the peer had given up
    _until(lambda: peer.errors)
    assert isotp.errors.WrongSequenceNumberError in peer.error_types()
    assert peer.stack.recv() is None
    peer.errors.clear()
    msg = _payload(100, 4)
    ours.send(msg)
    assert peer.recv() == msg and ours.result() == N_OK


def test_us_to_peer_out_of_order_cf(nodes):
    relay, ours, peer = _relayed(nodes, _once("to_peer", 0x22, "hold"))
    ours.send(_payload(60))
    assert ours.result() == N_OK
    _until(lambda: peer.errors)
    assert isotp.errors.WrongSequenceNumberError in peer.error_types()
    assert peer.stack.recv() is None


def test_us_to_peer_lost_flow_control(nodes):
    relay, ours, peer = _relayed(nodes, _once("to_ours", 0x30, "drop"))
    ours.send(_payload(60))
    assert ours.result() == N_TIMEOUT_BS
    _until(lambda: peer.errors)
    # can-isotp sent its FC and waited for our first CF: N_Cr
    assert isotp.errors.ConsecutiveFrameTimeoutError in peer.error_types()


def test_us_to_peer_lost_last_cf(nodes):
    relay, ours, peer = _relayed(nodes, _once("to_peer", 0x23, "drop"))
    ours.send(_payload(6 + 7 * 3))
    assert ours.result() == N_OK
    _until(lambda: peer.errors)
    assert isotp.errors.ConsecutiveFrameTimeoutError in peer.error_types()
    assert peer.stack.recv() is None
