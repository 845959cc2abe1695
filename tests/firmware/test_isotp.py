"""ISO-TP endpoints talking over an in-memory CAN bus, in lockstep simulated time.

Runs under pytest and under MicroPython (tests/firmware/mp_run.py test_isotp).  Every
link starts just before the ticks wrap, so every timer here also crosses it.
"""

from controller.clock import TICKS_MAX, ticks_add, ticks_diff
from controller.diag.isotp import (FS_CTS, FS_OVFLW, FS_WAIT, N_BUFFER_OVFLW, N_INVALID_FS, N_OK, N_TIMEOUT_A,
                              N_TIMEOUT_BS, N_TIMEOUT_CR, N_UNEXP_PDU, N_WFT_OVRN, N_WRONG_SN, IsoTp, fixed_ids,
                              stmin_from_us, stmin_to_us)
from controller.bus.ports.memory import memory_pair

TESTER_TX = 0x7E0
TESTER_RX = 0x7E8


def _payload(n, seed=0):
    b = bytearray(n)
    for i in range(n):
        b[i] = (i * 7 + seed + (i >> 8)) & 0xFF
    return bytes(b)


class Link:
    """A tester endpoint `a` and an ECU endpoint `b` on one MemoryBus, one loop driving both.

    Every frame either side sends is logged as (now, side, can_id, data).  `filter(side,
    can_id, data)` may return "drop" (lost on the bus) or "hold" (delivered after the next
    frame of that side: a swap); None passes it.
    """

    def __init__(self, a_kw=None, b_kw=None, start=TICKS_MAX - 20000, queue_len=64, extended=False):
        self.pa, self.pb = memory_pair(queue_len)
        self.now = start
        self.log = []
        self.filter = None
        self.held = {"a": None, "b": None}
        self.refuse = {"a": False, "b": False}
        a_kw = dict(a_kw or {})
        b_kw = dict(b_kw or {})
        if extended:
            ecu_tx, ecu_rx, func = fixed_ids(0x10)
            a_kw.setdefault("tx_id", ecu_rx)
            a_kw.setdefault("rx_id", ecu_tx)
            a_kw.setdefault("functional_id", func)
            b_kw.setdefault("tx_id", ecu_tx)
            b_kw.setdefault("rx_id", ecu_rx)
            b_kw.setdefault("functional_id", func)
            a_kw["extended"] = b_kw["extended"] = True
        else:
            a_kw.setdefault("tx_id", TESTER_TX)
            a_kw.setdefault("rx_id", TESTER_RX)
        self.a = IsoTp(self._sender("a", self.pa), **a_kw)
        self.b = IsoTp(self._sender("b", self.pb), **b_kw)

    def _sender(self, side, port):
        def send(can_id, data, extended=False):
            if self.refuse[side]:
                return False
            d = bytes(data)
            self.log.append((self.now, side, can_id, d))
            verdict = self.filter(side, can_id, d) if self.filter is not None else None
            if verdict == "drop":
                return True  # the port took it; the bus lost it
            if verdict == "hold":
                self.held[side] = (can_id, d, extended)
                return True
            ok = port.send(can_id, d, extended)
            h = self.held[side]
            if h is not None:
                self.held[side] = None
                port.send(h[0], h[1], h[2])
            return ok
        return send

    def step(self, dt=100):
        for tp, port in ((self.a, self.pa), (self.b, self.pb)):
            f = port.recv()
            while f is not None:
                tp.on_port_frame(f, self.now)
                f = port.recv()
            tp.poll(self.now)
        self.now = ticks_add(self.now, dt)

    def run(self, until, dt=100, max_steps=200000):
        for _ in range(max_steps):
            if until():
                return True
            self.step(dt)
        return until()

    def frames(self, side):
        return [e for e in self.log if e[1] == side]


def _transfer(link, src, dst, msg, dt=100):
    assert src.send(msg, link.now)
    assert link.run(lambda: dst.pending() > 0 and not src.tx_busy(), dt)
    got = dst.recv()
    assert got == msg, (len(msg), None if got is None else len(got))
    assert src.tx_result == N_OK
    return got


# ---------------------------------------------------------------- codecs


def test_stmin_encoding():
    assert stmin_to_us(0) == 0
    assert stmin_to_us(0x7F) == 127000
    assert stmin_to_us(0x05) == 5000
    for b in range(0xF1, 0xFA):
        assert stmin_to_us(b) == (b - 0xF0) * 100
    for b in list(range(0x80, 0xF1)) + list(range(0xFA, 0x100)):
        assert stmin_to_us(b) == 127000, b  # reserved: as 0x7F
    assert stmin_from_us(0) == 0
    assert stmin_from_us(100) == 0xF1
    assert stmin_from_us(150) == 0xF2  # never shorter than asked
    assert stmin_from_us(900) == 0xF9
    assert stmin_from_us(901) == 1
    assert stmin_from_us(5000) == 5
    assert stmin_from_us(10 ** 6) == 0x7F
    for us in (0, 1, 99, 100, 101, 555, 900, 1000, 1001, 20000, 127000):
        assert stmin_to_us(stmin_from_us(us)) >= us


def test_fixed_ids_29bit():
    tx, rx, func = fixed_ids(0x10, 0xF1)
    assert tx == 0x18DAF110 and rx == 0x18DA10F1 and func == 0x18DB33F1


def test_constructor_validates():
    for kw in ({"tx_id": 0x800}, {"rx_id": 0x7E8}, {"block_size": 256}, {"padding": 300}, {"max_len": 7},
               {"functional_id": 0x7E0}):
        try:
            IsoTp(lambda i, d, e: True, **kw)
        except ValueError:
            continue
        raise AssertionError("accepted %s" % kw)
    IsoTp(lambda i, d, e: True, tx_id=0x18DAF110, rx_id=0x18DA10F1, functional_id=None, extended=True)


# ---------------------------------------------------------------- normal exchanges


def test_single_frames_padded():
    link = Link()
    for n in range(1, 8):
        msg = _payload(n, n)
        _transfer(link, link.a, link.b, msg)
        t, side, cid, data = link.frames("a")[-1]
        assert cid == TESTER_TX and len(data) == 8
        assert data[0] == n and data[1:1 + n] == msg
        assert data[1 + n:] == b"\xcc" * (7 - n)
        _transfer(link, link.b, link.a, msg)
        assert link.frames("b")[-1][2] == 0x7E8
    assert link.a.tx_msgs == 7 and link.b.rx_msgs == 7 and link.b.tx_msgs == 7


def test_no_padding_uses_minimal_dlc():
    link = Link({"padding": None}, {"padding": None})
    _transfer(link, link.a, link.b, b"\x22\xf1\x90")
    assert link.frames("a")[-1][3] == b"\x03\x22\xf1\x90"
    msg = _payload(6 + 7 + 3)  # FF, one full CF, a CF with 3 bytes
    _transfer(link, link.a, link.b, msg)
    fa = link.frames("a")
    assert len(fa[-3][3]) == 8  # the FF always fills the frame
    assert len(fa[-2][3]) == 8 and len(fa[-1][3]) == 4
    assert link.frames("b")[-1][3] == b"\x30\x00\x00"


def test_multi_frame_many_lengths_both_ways():
    link = Link()
    for n in (8, 9, 12, 13, 14, 20, 62, 63, 111, 112, 113, 118, 256, 1000, 4094, 4095):
        _transfer(link, link.a, link.b, _payload(n, 1), dt=50)
        _transfer(link, link.b, link.a, _payload(n, 2), dt=50)
    assert link.a.error is None and link.b.error is None
    assert link.a.unexpected == 0 and link.b.unexpected == 0


def test_refused_sends():
    link = Link()
    a = link.a
    assert not a.send(b"", link.now)  # SF_DL 0 is not a message
    assert not a.send(bytes(4096), link.now)  # above max_len (4095 by default)
    assert not a.send(bytes(8), link.now, functional=True)  # functional: single frames only
    assert a.send(bytes(100), link.now)
    assert not a.send(b"\x01", link.now)  # busy
    assert a.tx_refused == 4
    assert link.run(lambda: link.b.pending() == 1)


def test_sequence_number_wraps():
    link = Link()
    n = 6 + 7 * 40
    _transfer(link, link.a, link.b, _payload(n))
    cfs = [e[3][0] for e in link.frames("a") if e[3][0] >> 4 == 2]
    assert len(cfs) == 40
    assert [b & 0x0F for b in cfs] == [(i + 1) & 0x0F for i in range(40)]
    assert cfs[14] == 0x2F and cfs[15] == 0x20 and cfs[16] == 0x21


def test_block_size_and_stmin_honoured():
    link = Link(b_kw={"block_size": 4, "st_min_us": 5000})
    _transfer(link, link.a, link.b, _payload(6 + 7 * 13))
    seq = [(e[0], e[1], e[3][0] >> 4) for e in link.log]
    kinds = "".join(("F" if k == 1 else "C" if k == 2 else "S") if s == "a" else "f" for t, s, k in seq)
    assert kinds == "Ff" + "CCCCf" * 3 + "C", kinds
    fc = link.frames("b")[0][3]
    assert fc[:3] == b"\x30\x04\x05" and fc[3:] == b"\xcc" * 5
    cf_times = [e[0] for e in link.frames("a") if e[3][0] >> 4 == 2]
    for t0, t1 in zip(cf_times, cf_times[1:]):
        assert ticks_diff(t1, t0) >= 5000  # between every two CFs, across block ends too
    assert ticks_diff(cf_times[1], cf_times[0]) <= 5100  # and not much more


def test_stmin_in_100us_steps():
    link = Link(b_kw={"st_min_us": 300})
    _transfer(link, link.a, link.b, _payload(60), dt=50)
    assert link.frames("b")[0][3][2] == 0xF3
    cf_times = [e[0] for e in link.frames("a") if e[3][0] >> 4 == 2]
    gaps = [ticks_diff(t1, t0) for t0, t1 in zip(cf_times, cf_times[1:])]
    assert min(gaps) >= 300 and max(gaps) <= 350


def _sender_alone(**kw):
    """A sender whose peer is the test itself: returns (tp, sent frames list, clock cell)."""
    sent = []
    clock = [TICKS_MAX - 5000]

    def send(can_id, data, extended=False):
        sent.append((clock[0], can_id, bytes(data)))
        return True
    kw.setdefault("tx_id", TESTER_TX)
    kw.setdefault("rx_id", TESTER_RX)
    return IsoTp(send, **kw), sent, clock


def _drive(tp, clock, until_us, dt=1000):
    end = ticks_add(clock[0], until_us)
    while ticks_diff(end, clock[0]) > 0:
        clock[0] = ticks_add(clock[0], dt)
        tp.poll(clock[0])


def test_reserved_stmin_is_127ms_and_first_fc_rules():
    tp, sent, clock = _sender_alone()
    assert tp.send(_payload(6 + 7 * 3), clock[0])
    tp.on_frame(TESTER_RX, b"\x30\x00\x80", clock[0])  # STmin 0x80 is reserved
    tp.on_frame(TESTER_RX, b"\x30\x00\x00", clock[0])  # not awaited: ignored
    assert tp.unexpected == 1
    _drive(tp, clock, 400000)
    cf = [s[0] for s in sent if s[2][0] >> 4 == 2]
    assert len(cf) == 3 and tp.tx_result == N_OK
    assert ticks_diff(cf[1], cf[0]) >= 127000 and ticks_diff(cf[2], cf[1]) >= 127000


def test_fc_wait_restarts_n_bs_then_cts():
    tp, sent, clock = _sender_alone()
    assert tp.send(_payload(20), clock[0])
    for _ in range(5):  # five waits, each inside N_Bs: 4.5 s in all without a timeout
        _drive(tp, clock, 900000, dt=10000)
        assert tp.tx_busy()
        assert tp.on_frame(TESTER_RX, b"\x31\x00\x00\xcc\xcc\xcc\xcc\xcc", clock[0])
    tp.on_frame(TESTER_RX, b"\x30\x00\x00", clock[0])
    _drive(tp, clock, 10000)
    assert tp.tx_result == N_OK and tp.wait_recv == 5
    assert [s[2][0] for s in sent] == [0x10, 0x21, 0x22]


def test_fc_wait_limit():
    tp, sent, clock = _sender_alone(wft_max=2)
    assert tp.send(_payload(20), clock[0])
    tp.on_frame(TESTER_RX, b"\x31\x00\x00", clock[0])
    tp.on_frame(TESTER_RX, b"\x31\x00\x00", clock[0])
    assert tp.tx_busy()
    tp.on_frame(TESTER_RX, b"\x31\x00\x00", clock[0])
    assert tp.tx_result == N_WFT_OVRN and not tp.tx_busy() and tp.error == N_WFT_OVRN


def test_fc_invalid_flow_status_and_short_fc():
    tp, sent, clock = _sender_alone()
    assert tp.send(_payload(20), clock[0])
    tp.on_frame(TESTER_RX, b"\x30\x00", clock[0])  # too short for FS, BS, STmin
    assert tp.invalid == 1 and tp.tx_busy()
    tp.on_frame(TESTER_RX, b"\x33\x00\x00", clock[0])
    assert tp.tx_result == N_INVALID_FS


def test_n_bs_timeout_when_no_fc():
    tp, sent, clock = _sender_alone(n_bs_us=250000)
    t0 = clock[0]
    assert tp.send(_payload(50), t0)
    _drive(tp, clock, 249000)
    assert tp.tx_busy()
    _drive(tp, clock, 2000)
    assert tp.tx_result == N_TIMEOUT_BS and tp.timeouts == 1
    assert len(sent) == 1  # the FF only
    tp.on_frame(TESTER_RX, b"\x30\x00\x00", clock[0])  # a late FC changes nothing
    assert tp.unexpected == 1 and len(sent) == 1


def test_n_bs_timeout_between_blocks():
    link = Link(a_kw={"n_bs_us": 300000}, b_kw={"block_size": 2})
    link.filter = lambda side, cid, d: "drop" if side == "b" and len(link.frames("b")) == 3 else None
    assert link.a.send(_payload(100), link.now)
    assert link.run(lambda: not link.a.tx_busy(), dt=1000)
    assert link.a.tx_result == N_TIMEOUT_BS
    assert len([e for e in link.frames("a") if e[3][0] >> 4 == 2]) == 4  # two blocks went out
    # the receiver still waits for CFs and gives up after N_Cr
    assert link.run(lambda: not link.b.rx_busy(), dt=1000)
    assert link.b.rx_result == N_TIMEOUT_CR and link.b.pending() == 0


# ---------------------------------------------------------------- receiver flow control


def test_receiver_waits_while_its_queue_is_full():
    link = Link(a_kw={"wft_max": 10}, b_kw={"rx_queue": 1, "n_br_us": 100000, "wft_max": 10})
    first, second = _payload(40, 1), _payload(300, 2)
    assert link.a.send(first, link.now)
    assert link.run(lambda: link.b.pending() == 1 and not link.a.tx_busy())
    assert link.a.send(second, link.now)
    link.run(lambda: link.b.wait_sent >= 3, dt=1000)  # the application has not read the first yet
    link.step()
    assert link.a.tx_busy() and link.a.wait_recv == link.b.wait_sent
    assert link.b.recv() == first
    assert link.run(lambda: link.b.pending() == 1 and not link.a.tx_busy(), dt=1000)
    assert link.b.recv() == second and link.a.tx_result == N_OK
    waits = [e for e in link.frames("b") if e[3][0] == 0x31]
    for w0, w1 in zip(waits, waits[1:]):
        assert ticks_diff(w1[0], w0[0]) >= 100000  # one FC.WAIT per N_Br


def test_receiver_wait_limit_ends_in_overflow():
    link = Link(b_kw={"rx_queue": 1, "n_br_us": 100000, "wft_max": 2})
    assert link.a.send(b"\x01\x02", link.now)
    assert link.run(lambda: link.b.pending() == 1)
    assert link.a.send(_payload(30), link.now)
    assert link.run(lambda: not link.a.tx_busy(), dt=1000)
    assert link.a.tx_result == N_BUFFER_OVFLW
    assert [e[3][0] for e in link.frames("b")] == [FS_WAIT | 0x30, FS_WAIT | 0x30, FS_OVFLW | 0x30]
    assert link.b.error == N_WFT_OVRN and link.b.pending() == 1


def test_overflow_above_max_len():
    link = Link(b_kw={"max_len": 100})
    assert link.a.send(_payload(101), link.now)
    assert link.run(lambda: not link.a.tx_busy())
    assert link.a.tx_result == N_BUFFER_OVFLW and link.b.overflow == 1
    assert link.frames("b")[0][3][0] == 0x30 | FS_OVFLW
    _transfer(link, link.a, link.b, _payload(100))  # the connection goes on


def test_escape_first_frame_above_4095():
    link = Link({"max_len": 5000}, {"max_len": 5000})
    msg = _payload(4500, 3)
    _transfer(link, link.a, link.b, msg, dt=50)
    ff = link.frames("a")[0][3]
    assert ff[:6] == b"\x10\x00\x00\x00\x11\x94" and ff[6:] == msg[:2]
    # the same FF to a default receiver (max_len 4095): refused with FC.OVFLW
    link2 = Link(a_kw={"max_len": 5000})
    assert link2.a.send(msg, link2.now)
    assert link2.run(lambda: not link2.a.tx_busy())
    assert link2.a.tx_result == N_BUFFER_OVFLW and link2.b.overflow == 1


def test_escape_ff_huge_length_refused_cleanly():
    sent = []
    tp = IsoTp(lambda i, d, e: sent.append(bytes(d)) or True)
    assert tp.on_frame(0x7E0, b"\x10\x00\xff\xff\xff\xff\x01\x02", 0)
    assert sent == [b"\x32\x00\x00\xcc\xcc\xcc\xcc\xcc"] and tp.overflow == 1 and not tp.rx_busy()


def test_invalid_first_frames_ignored():
    sent = []
    tp = IsoTp(lambda i, d, e: sent.append(bytes(d)) or True)
    tp.on_frame(0x7E0, b"\x10\x00\x00\x00\x0f\xff\x01\x02", 0)  # escape with a 12-bit length
    tp.on_frame(0x7E0, b"\x10\x07\x01\x02\x03\x04\x05\x06", 0)  # FF_DL 7: a single frame's job
    tp.on_frame(0x7E0, b"\x10\x14\x01\x02\x03", 0)  # an FF shorter than 8 bytes
    assert sent == [] and tp.invalid == 3 and not tp.rx_busy()


# ---------------------------------------------------------------- faults


def test_wrong_sequence_number_aborts_reception():
    link = Link()
    state = {"n": 0}

    def swap_cf2_cf3(side, cid, d):
        if side == "a" and d[0] == 0x22 and state["n"] == 0:
            state["n"] = 1
            return "hold"
        return None
    link.filter = swap_cf2_cf3
    assert link.a.send(_payload(6 + 7 * 5), link.now)
    assert link.run(lambda: not link.a.tx_busy() and not link.b.rx_busy())
    assert link.b.rx_result == N_WRONG_SN and link.b.wrong_sn == 1 and link.b.pending() == 0
    assert link.b.unexpected >= 2  # the CFs after the abort
    assert link.a.tx_result == N_OK  # with BS 0 the sender cannot know
    link.filter = None
    _transfer(link, link.a, link.b, _payload(6 + 7 * 5, 9))  # the next message is fine


def test_lost_last_cf_gives_n_cr_timeout():
    link = Link(b_kw={"n_cr_us": 200000})
    link.filter = lambda side, cid, d: "drop" if side == "a" and d[0] == 0x23 else None
    assert link.a.send(_payload(6 + 7 * 3), link.now)
    assert link.run(lambda: not link.a.tx_busy())
    last_cf = link.frames("a")[-1][0]
    assert link.run(lambda: not link.b.rx_busy(), dt=1000)
    assert link.b.rx_result == N_TIMEOUT_CR and link.b.timeouts == 1 and link.b.pending() == 0
    waited = ticks_diff(link.now, last_cf)
    assert 200000 - 7000 <= waited <= 200000 + 3000, waited  # from the last CF that did arrive


def test_new_sf_or_ff_during_reception_restarts():
    sent = []
    tp = IsoTp(lambda i, d, e: sent.append(bytes(d)) or True)
    tp.on_frame(0x7E0, b"\x10\x14" + _payload(6), 0)
    assert tp.rx_busy() and sent[-1][0] == 0x30
    tp.on_frame(0x7E0, b"\x02\x3e\x00", 10)  # an SF ends the reception and is delivered
    assert not tp.rx_busy() and tp.recv() == b"\x3e\x00"
    assert tp.error == N_UNEXP_PDU and tp.unexpected == 1
    msg = _payload(20, 5)
    tp.on_frame(0x7E0, b"\x10\x14" + _payload(6), 20)
    tp.on_frame(0x7E0, b"\x21" + _payload(7)[:7], 30)
    tp.on_frame(0x7E0, b"\x10\x14" + msg[:6], 40)  # a new FF: restart with the new message
    assert tp.unexpected == 2 and tp.rx_busy()
    tp.on_frame(0x7E0, b"\x21" + msg[6:13], 50)
    tp.on_frame(0x7E0, b"\x22" + msg[13:20] + b"\xcc", 60)
    assert tp.recv() == msg and tp.rx_result == N_OK


def test_unexpected_cf_and_fc_ignored():
    sent = []
    tp = IsoTp(lambda i, d, e: sent.append(bytes(d)) or True)
    assert tp.on_frame(0x7E0, b"\x21\x01\x02\x03\x04\x05\x06\x07", 0)
    assert tp.on_frame(0x7E0, b"\x30\x00\x00", 0)
    assert tp.on_frame(0x7E0, b"\x40\x00", 0)  # reserved N_PCI type
    assert tp.on_frame(0x7E0, b"", 0)
    assert not tp.on_frame(0x123, b"\x02\x10\x03", 0)  # somebody else's frame
    assert tp.unexpected == 2 and tp.invalid == 2 and sent == [] and tp.recv() is None


def test_short_cf_and_bad_sf_ignored():
    sent = []
    tp = IsoTp(lambda i, d, e: sent.append(bytes(d)) or True)
    for bad in (b"\x00\x11", b"\x08\x01\x02\x03\x04\x05\x06\x07", b"\x05\x01\x02"):
        tp.on_frame(0x7E0, bad, 0)
    assert tp.invalid == 3 and tp.recv() is None
    tp.on_frame(0x7E0, b"\x10\x0a" + _payload(6), 0)
    tp.on_frame(0x7E0, b"\x21\x01\x02", 1)  # 4 bytes still due, only 2 carried
    assert tp.invalid == 4 and tp.rx_busy()
    tp.on_frame(0x7E0, b"\x21\x01\x02\x03\x04", 2)
    assert tp.recv() == _payload(6) + b"\x01\x02\x03\x04"


def test_functional_single_frames_only():
    link = Link()
    assert link.a.send(b"\x3e\x80", link.now, functional=True)
    assert link.frames("a")[-1][2] == 0x7DF
    assert link.run(lambda: link.b.pending() == 1)
    assert link.b.recv() == b"\x3e\x80" and link.b.rx_functional
    _transfer(link, link.a, link.b, b"\x3e\x00")
    assert not link.b.rx_functional
    n = len(link.frames("b"))
    assert link.b.on_frame(0x7DF, b"\x10\x14" + _payload(6), link.now)  # FF on functional: ignored
    assert link.b.on_frame(0x7DF, b"\x21" + _payload(7), link.now)
    assert len(link.frames("b")) == n and not link.b.rx_busy() and link.b.unexpected == 2


def test_functional_sf_does_not_break_physical_reception():
    sent = []
    tp = IsoTp(lambda i, d, e: sent.append(bytes(d)) or True)
    msg = _payload(13)
    tp.on_frame(0x7E0, b"\x10\x0d" + msg[:6], 0)
    tp.on_frame(0x7DF, b"\x02\x3e\x80", 1)
    tp.on_frame(0x7E0, b"\x21" + msg[6:], 2)
    assert tp.recv() == b"\x3e\x80" and tp.rx_functional
    assert tp.recv() == msg and not tp.rx_functional


def test_29bit_ids():
    link = Link(extended=True)
    _transfer(link, link.a, link.b, _payload(300))
    _transfer(link, link.b, link.a, _payload(7))
    assert link.frames("a")[0][2] == 0x18DA10F1 and link.frames("b")[0][2] == 0x18DAF110
    assert not link.b.on_frame(0x18DA10F1, b"\x02\x10\x01", link.now, False)  # an 11-bit id is not ours
    assert link.b.on_frame(0x18DA10F1, b"\x02\x10\x01", link.now, True)


def test_port_refusing_frames_retried_then_n_as():
    link = Link(a_kw={"n_as_us": 50000})
    link.refuse["a"] = True
    assert link.a.send(_payload(30), link.now)  # accepted: the port may take it later
    link.run(lambda: False, max_steps=100)
    assert link.a.tx_busy()
    link.refuse["a"] = False
    assert link.run(lambda: link.b.pending() == 1)
    assert link.b.recv() == _payload(30)
    link.refuse["a"] = True
    assert link.a.send(_payload(30), link.now)
    assert link.run(lambda: not link.a.tx_busy(), dt=1000)
    assert link.a.tx_result == N_TIMEOUT_A


def test_fc_refused_by_port_gives_n_ar():
    link = Link(b_kw={"n_ar_us": 30000})
    link.refuse["b"] = True
    assert link.a.send(_payload(30), link.now)
    assert link.run(lambda: link.b.error is not None, dt=1000)
    assert link.b.error == N_TIMEOUT_A and not link.b.rx_busy()


def test_late_poll_counts_n_cs():
    link = Link(a_kw={"n_cs_us": 1000}, b_kw={"st_min_us": 1000})
    assert link.a.send(_payload(30), link.now)
    link.step(100)
    link.step(100)
    link.step(100)
    link.step(5000)  # the loop stalls: a CF goes out 4 ms after it was due
    assert link.run(lambda: not link.a.tx_busy())
    assert link.a.late_cf >= 1 and link.a.tx_result == N_OK


def test_wait_hint():
    tp, sent, clock = _sender_alone(n_bs_us=100000)
    assert tp.wait_hint(clock[0]) is None
    tp.send(_payload(20), clock[0])
    assert tp.wait_hint(clock[0]) == 100000
    tp.on_frame(TESTER_RX, b"\x30\x00\x05", clock[0])  # STmin 5 ms
    assert tp.wait_hint(clock[0]) == 5000
    assert tp.wait_hint(ticks_add(clock[0], 7000)) == 0


def test_garbage_never_crashes_and_memory_stays_bounded():
    sent = []
    tp = IsoTp(lambda i, d, e: sent.append(len(d)) or True, rx_queue=2, max_len=200, n_cr_us=5000)
    x = 12345
    now = TICKS_MAX - 100000
    for i in range(6000):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        n = x % 9
        data = bytearray(n)
        y = x
        for k in range(n):
            y = (y * 69069 + 1) & 0x7FFFFFFF
            data[k] = (y >> 8) & 0xFF
        if n and i % 3 == 0:
            data[0] = (data[0] & 0x0F) | ((x >> 20) % 4 << 4)  # bias to valid N_PCI types
        tp.on_frame(0x7E0 if x & 1 else 0x7DF, bytes(data), now)
        tp.poll(now)
        if i % 50 == 0:
            while tp.recv() is not None:
                pass
        assert tp.pending() <= 2
        now = ticks_add(now, 97)
    assert tp.rx_frames == 6000
    assert len(sent) < 6000
