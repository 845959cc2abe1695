"""The UDS server and the fault memory, byte by byte (run under MicroPython and CPython).

Every service and negative response code of docs/uds.md: sessions and their timing
parameters, SecurityAccess with invalid keys and the delay, the suppress bit,
multi-DID reads, configuration writes through config.validate, the DTC reports,
downloads with block sequence counters, 0x78 responsePending and the S3 timeout.
"""

import struct

from controller import config, events
from controller.diag import dtc
from controller.diag import uds
from controller.diag.dtc import DtcMemory
from controller.diag.uds import PENDING, UdsError, UdsServer, security_key

SECRET = b"per-device-secret-0123456789abcd"
READY = uds.SECURITY_DELAY_US  # the power-up security delay has passed
MS = 1000


class Rng:
    """Deterministic seeds: 1..8, 2..9, ..."""

    def __init__(self):
        self.n = 0

    def __call__(self, n):
        self.n += 1
        return bytes([(self.n + i) & 0xFF for i in range(n)])


class Update:
    def __init__(self, capacity=8192, ok=True, finish_steps=0, fail_write=False):
        self.capacity = capacity
        self.ok = ok
        self.finish_steps = finish_steps
        self.fail_write = fail_write
        self.image = None
        self.writes = 0
        self.aborted = 0
        self.finished = 0

    def begin(self, size):
        self.image = bytearray(size)

    def write(self, offset, data):
        if self.fail_write:
            raise OSError(5)
        self.image[offset:offset + len(data)] = data
        self.writes += 1

    def finish(self):
        self.finished += 1
        if not self.finish_steps:
            return self.ok
        left = [self.finish_steps]

        def step(now):
            left[0] -= 1
            return PENDING if left[0] > 0 else self.ok

        return step

    def abort(self):
        self.aborted += 1


class Routine:
    def __init__(self, record=b"\x00", steps=0, stop=True):
        self.record = record
        self.steps = steps
        self.calls = []
        if stop:
            self.stop = self._stop

    def start(self, option):
        self.calls.append(("start", option))
        if not self.steps:
            return self.record
        left = [self.steps]

        def step(now):
            left[0] -= 1
            return PENDING if left[0] > 0 else self.record

        return step

    def _stop(self, option):
        self.calls.append(("stop", option))
        return None

    def results(self, option):
        self.calls.append(("results", option))
        return b"\x10\x20"


LIVE = {
    "grid_state": lambda: 0,
    "operating_mode": lambda: 3,
    "active_limits": lambda: (4, -11000, 7400.4, -6000),
    "soc": lambda: 63.56,
    "grid_voltage": lambda: 229.96,
    "grid_frequency": lambda: 49.987,
    "grid_power": lambda: -1234.4,
    "inverter_power": lambda: None,
    "input_timeouts": lambda: 0b1010,
    "frames_refused": lambda: 7,
}


class Stored(list):
    """A configuration store that keeps every set of overrides it was given."""

    def save(self, overrides):
        self.append(overrides)


def _server(now=0, **kw):
    stored = Stored()
    allow = kw.pop("allow", None)
    d = dict(live=LIVE, config=uds.ConfigAccess(config.defaults(), stored), dtcs=DtcMemory(),
             update=Update(), routines={uds.RID_ERASE_MEMORY: Routine(), uds.RID_CHECK_PROGRAMMING_DEPENDENCIES:
                                        Routine(b"\x00"), uds.RID_SELF_TEST: Routine(b"\x01\x02", stop=False)},
             reset=[].append, rng=Rng())
    d.update(kw)
    s = UdsServer({"serial": "GW-000123", "sw_version": "1.4.0", "system_name": "v2x-gateway"}, SECRET, now,
                  allow=allow, **d)
    s.requests = 0
    return s, stored


def _neg(sid, nrc):
    return bytes((0x7F, sid, nrc))


def _unlock(s, now, level=1):
    """Enter the session of `level` (1 extended, 3 programming) and unlock it."""
    assert s.handle(b"\x10\x01", now)[:2] == b"\x50\x01"
    assert s.handle(b"\x10\x03", now)[:2] == b"\x50\x03"
    if level == 3:
        assert s.handle(b"\x10\x02", now)[:2] == b"\x50\x02"
    r = s.handle(bytes((0x27, level)), now)
    assert r[:2] == bytes((0x67, level)) and len(r) == 2 + uds.SEED_LEN
    key = security_key(SECRET, r[2:], level)
    assert s.handle(bytes((0x27, level + 1)) + key, now) == bytes((0x67, level + 1))
    assert s.level == level


# ---------------------------------------------------------------- algorithm
def test_hmac_sha256_rfc4231_vectors():
    assert uds.hmac_sha256(b"\x0b" * 20, b"Hi There") == bytes.fromhex(
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
    assert uds.hmac_sha256(b"Jefe", b"what do ya want for nothing?") == bytes.fromhex(
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    # case 6: a key longer than the block is hashed first
    assert uds.hmac_sha256(b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First") == bytes.fromhex(
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")


def test_security_key_is_truncated_hmac_of_seed_and_level():
    seed = bytes(range(1, 9))
    k = security_key(SECRET, seed, 0x01)
    assert len(k) == uds.KEY_LEN == 8
    assert k == uds.hmac_sha256(SECRET, seed + b"\x01")[:8]
    assert k != security_key(SECRET, seed, 0x03)


def test_secret_must_be_long_enough():
    try:
        UdsServer({}, b"short", 0, rng=Rng())
        assert False
    except ValueError:
        pass


# ---------------------------------------------------------------- general rules
def test_empty_and_unknown_services():
    s, _ = _server()
    assert s.handle(b"", 0) is None
    assert s.handle(b"\x85\x01", 0) == _neg(0x85, 0x11)
    assert s.handle(b"\x23\x00", 0) == _neg(0x23, 0x11)
    assert s.handle(b"\x85\x01", 0, functional=True) is None  # 0x11 is suppressed on functional requests


def test_services_not_in_default_session():
    s, _ = _server()
    assert s.handle(b"\x27\x01", READY) == _neg(0x27, 0x7F)
    assert s.handle(b"\x31\x01\x02\x00", READY) == _neg(0x31, 0x7F)
    assert s.handle(b"\x34\x00\x44\x00\x00\x00\x00\x00\x00\x01\x00", READY) == _neg(0x34, 0x7F)
    assert s.handle(b"\x36\x01\x00", READY) == _neg(0x36, 0x7F)
    assert s.handle(b"\x37", READY) == _neg(0x37, 0x7F)
    assert s.handle(b"\x27\x01", READY, functional=True) is None


def test_services_without_hooks_are_not_supported():
    s = UdsServer({}, SECRET, 0, rng=Rng())
    assert s.handle(b"\x11\x01", 0) == _neg(0x11, 0x11)
    assert s.handle(b"\x19\x0a", 0) == _neg(0x19, 0x11)
    assert s.handle(b"\x14\xff\xff\xff", 0) == _neg(0x14, 0x11)
    assert s.handle(b"\x10\x03", 0)[:2] == b"\x50\x03"
    assert s.handle(b"\x10\x02", 0)[:2] == b"\x50\x02"
    assert s.handle(b"\x34\x00\x11\x00\x10", 0) == _neg(0x34, 0x11)
    assert s.handle(b"\x22\xd0\x00", 0) == _neg(0x22, 0x31)  # no live values


# ---------------------------------------------------------------- 0x10
def test_session_control_responses_carry_p2_and_p2star():
    s, _ = _server()
    # P2server_max 50 ms = 0x0032 (1 ms), P2*server_max 5000 ms = 0x01F4 (10 ms)
    assert s.handle(b"\x10\x01", 0) == b"\x50\x01\x00\x32\x01\xf4"
    assert s.handle(b"\x10\x03", 0) == b"\x50\x03\x00\x32\x01\xf4"
    assert s.session == uds.EXTENDED
    assert s.handle(b"\x10\x02", 0) == b"\x50\x02\x00\x32\x01\xf4"
    assert s.session == uds.PROGRAMMING
    assert s.handle(b"\x10\x02", 0) == b"\x50\x02\x00\x32\x01\xf4"  # re-entering is allowed
    assert s.handle(b"\x10\x01", 0) == b"\x50\x01\x00\x32\x01\xf4"
    assert s.session == uds.DEFAULT


def test_session_control_errors():
    s, _ = _server()
    assert s.handle(b"\x10", 0) == _neg(0x10, 0x13)
    assert s.handle(b"\x10\x03\x00", 0) == _neg(0x10, 0x13)
    assert s.handle(b"\x10\x04", 0) == _neg(0x10, 0x12)
    assert s.handle(b"\x10\x04", 0, functional=True) is None
    # programming only from the extended session
    assert s.handle(b"\x10\x02", 0) == _neg(0x10, 0x7E)
    assert s.handle(b"\x10\x02", 0, functional=True) is None
    s.handle(b"\x10\x03", 0)
    s.handle(b"\x10\x02", 0)
    assert s.handle(b"\x10\x03", 0) == _neg(0x10, 0x7E)  # programming -> extended goes through default
    assert s.session == uds.PROGRAMMING


def test_programming_session_refused_when_conditions_forbid():
    s, _ = _server(allow=lambda action: action != "program")
    s.handle(b"\x10\x03", 0)
    assert s.handle(b"\x10\x02", 0) == _neg(0x10, 0x22)
    assert s.session == uds.EXTENDED


def test_suppress_positive_response_bit():
    s, _ = _server()
    assert s.handle(b"\x10\x83", 0) is None
    assert s.session == uds.EXTENDED
    assert s.handle(b"\x3e\x80", 0) is None
    assert s.handle(b"\x3e\x80", 0, functional=True) is None
    # a negative response is sent even with the bit set (physical request)
    assert s.handle(b"\x10\x84", 0) == _neg(0x10, 0x12)
    assert s.handle(b"\x3e\x80\x00", 0) == _neg(0x3E, 0x13)


# ---------------------------------------------------------------- 0x3E 0x11
def test_tester_present():
    s, _ = _server()
    assert s.handle(b"\x3e\x00", 0) == b"\x7e\x00"
    assert s.handle(b"\x3e\x01", 0) == _neg(0x3E, 0x12)
    assert s.handle(b"\x3e", 0) == _neg(0x3E, 0x13)
    assert s.handle(b"\x3e\x00\x00", 0) == _neg(0x3E, 0x13)


def test_ecu_reset_answers_first_then_resets():
    resets = []
    s, _ = _server(reset=resets.append)
    s.handle(b"\x10\x03", 0)
    assert s.handle(b"\x11\x01", 1000) == b"\x51\x01"
    assert resets == []
    assert s.poll(1000 + uds.RESET_DELAY_US - 1) is None and resets == []
    s.poll(1000 + uds.RESET_DELAY_US)
    assert resets == [1]
    assert s.session == uds.DEFAULT
    s.poll(1000 + 2 * uds.RESET_DELAY_US)
    assert resets == [1]  # once
    # soft reset: not in the default session
    assert s.handle(b"\x11\x03", 0) == _neg(0x11, 0x7E)
    s.handle(b"\x10\x03", 0)
    assert s.handle(b"\x11\x83", 0) is None  # suppressed response, the reset still happens
    s.poll(uds.RESET_DELAY_US)
    assert resets == [1, 3]
    assert s.handle(b"\x11\x02", 0) == _neg(0x11, 0x12)
    assert s.handle(b"\x11\x01\x00", 0) == _neg(0x11, 0x13)


def test_ecu_reset_refused_when_conditions_forbid():
    s, _ = _server(allow=lambda action: action != "reset")
    assert s.handle(b"\x11\x01", 0) == _neg(0x11, 0x22)


# ---------------------------------------------------------------- 0x27
def test_security_unlock_extended_and_zero_seed_when_unlocked():
    s, _ = _server()
    s.handle(b"\x10\x03", READY)
    r = s.handle(b"\x27\x01", READY)
    assert r == b"\x67\x01" + bytes(range(1, 9))
    assert s.handle(b"\x27\x02" + security_key(SECRET, r[2:], 1), READY) == b"\x67\x02"
    assert s.level == 1
    assert s.handle(b"\x27\x01", READY) == b"\x67\x01" + bytes(8)


def test_seed_is_fresh_for_every_request():
    s, _ = _server()
    s.handle(b"\x10\x03", READY)
    a = s.handle(b"\x27\x01", READY)
    b = s.handle(b"\x27\x01", READY)
    assert a != b
    # only the latest seed counts
    assert s.handle(b"\x27\x02" + security_key(SECRET, a[2:], 1), READY) == _neg(0x27, 0x35)


def test_security_delay_at_power_up():
    s, _ = _server(now=5000)
    s.handle(b"\x10\x03", 5000)
    assert s.handle(b"\x27\x01", 5000) == _neg(0x27, 0x37)
    assert s.handle(b"\x27\x01", 5000 + uds.SECURITY_DELAY_US - 1) == _neg(0x27, 0x37)
    assert s.handle(b"\x27\x01", 5000 + uds.SECURITY_DELAY_US)[:2] == b"\x67\x01"


def test_three_invalid_keys_then_delay():
    s, _ = _server()
    t = READY
    s.handle(b"\x10\x03", t)
    bad = b"\x27\x02" + bytes(8)
    s.handle(b"\x27\x01", t)
    assert s.handle(bad, t) == _neg(0x27, 0x35)
    s.handle(b"\x27\x01", t)
    assert s.handle(bad, t) == _neg(0x27, 0x35)
    s.handle(b"\x27\x01", t)
    assert s.handle(bad, t) == _neg(0x27, 0x36)
    assert s.level == 0
    # seeds are refused during the delay; a key without a seed is a sequence error
    assert s.handle(bad, t) == _neg(0x27, 0x24)
    for dt in (0, 4000 * MS, 8000 * MS, uds.SECURITY_DELAY_US - 1):
        assert s.handle(b"\x27\x01", t + dt) == _neg(0x27, 0x37)
        assert s.poll(t + dt) is None
    t += uds.SECURITY_DELAY_US
    r = s.handle(b"\x27\x01", t)
    assert r[:2] == b"\x67\x01"
    assert s.handle(b"\x27\x02" + security_key(SECRET, r[2:], 1), t) == b"\x67\x02"


def test_attempt_counter_resets_after_success():
    s, _ = _server()
    s.handle(b"\x10\x03", READY)
    for _ in range(2):
        s.handle(b"\x27\x01", READY)
        assert s.handle(b"\x27\x02" + bytes(8), READY) == _neg(0x27, 0x35)
    r = s.handle(b"\x27\x01", READY)
    assert s.handle(b"\x27\x02" + security_key(SECRET, r[2:], 1), READY) == b"\x67\x02"
    s.handle(b"\x10\x03", READY)  # relock
    s.handle(b"\x27\x01", READY)
    assert s.handle(b"\x27\x02" + bytes(8), READY) == _neg(0x27, 0x35)  # a fresh count


def test_security_sequence_and_length_errors():
    s, _ = _server()
    s.handle(b"\x10\x03", READY)
    assert s.handle(b"\x27\x02" + bytes(8), READY) == _neg(0x27, 0x24)  # no seed requested
    assert s.handle(b"\x27", READY) == _neg(0x27, 0x13)
    assert s.handle(b"\x27\x05", READY) == _neg(0x27, 0x12)
    assert s.handle(b"\x27\x03", READY) == _neg(0x27, 0x7E)  # programming level in the extended session
    assert s.handle(b"\x27\x04" + bytes(8), READY) == _neg(0x27, 0x7E)
    r = s.handle(b"\x27\x01", READY)
    assert s.handle(b"\x27\x02" + bytes(4), READY) == _neg(0x27, 0x13)
    # the length error did not consume the seed
    assert s.handle(b"\x27\x02" + security_key(SECRET, r[2:], 1), READY) == b"\x67\x02"


def test_programming_level_uses_its_own_key():
    s, _ = _server()
    s.handle(b"\x10\x03", READY)
    s.handle(b"\x10\x02", READY)
    assert s.handle(b"\x27\x01", READY) == _neg(0x27, 0x7E)
    r = s.handle(b"\x27\x03", READY)
    assert s.handle(b"\x27\x04" + security_key(SECRET, r[2:], 1), READY) == _neg(0x27, 0x35)
    r = s.handle(b"\x27\x03", READY)
    assert s.handle(b"\x27\x04" + security_key(SECRET, r[2:], 3), READY) == b"\x67\x04"
    assert s.level == 3


def test_session_change_relocks():
    s, _ = _server()
    _unlock(s, READY)
    assert s.handle(b"\x10\x03", READY)[:2] == b"\x50\x03"
    assert s.level == 0
    assert s.handle(b"\x2e\xd1\x00\x01\x5e", READY) == _neg(0x2E, 0x33)


def test_s3_timeout_returns_to_default_and_relocks():
    s, _ = _server()
    t = READY
    _unlock(s, t)
    assert s.poll(t + uds.S3_US - 1) is None
    assert s.session == uds.EXTENDED and s.level == 1
    t += uds.S3_US - 1
    assert s.handle(b"\x3e\x80", t, functional=True) is None  # keeps the session alive
    s.poll(t + uds.S3_US - 1)
    assert s.session == uds.EXTENDED
    s.poll(t + uds.S3_US)
    assert s.session == uds.DEFAULT and s.level == 0
    assert s.handle(b"\x27\x01", t + uds.S3_US) == _neg(0x27, 0x7F)


def test_no_s3_timeout_in_default_session():
    s, _ = _server()
    s.poll(10 * uds.S3_US)
    assert s.session == uds.DEFAULT


# ---------------------------------------------------------------- 0x22
def test_read_identity_dids_one_request():
    s, _ = _server()
    r = s.handle(b"\x22\xf1\x8c\xf1\x95\xf1\x97", 0)
    assert r == (b"\x62\xf1\x8c" + b"GW-000123       " + b"\xf1\x95" + b"1.4.0           " + b"\xf1\x97"
                 + b"v2x-gateway     ")


def test_read_live_values_encoding():
    s, _ = _server()
    assert s.handle(b"\x22\xd0\x00", 0) == b"\x62\xd0\x00\x00"
    assert s.handle(b"\x22\xd0\x01", 0) == b"\x62\xd0\x01\x03"
    assert s.handle(b"\x22\xd0\x02", 0) == (b"\x62\xd0\x02\x04" + b"\xff\xff\xd5\x08" + b"\x00\x00\x1c\xe8"
                                            + b"\xff\xff\xe8\x90")
    assert s.handle(b"\x22\xd0\x03", 0) == b"\x62\xd0\x03\x02\x7c"  # 63.56 % -> 636 (0.1 %)
    assert s.handle(b"\x22\xd0\x04", 0) == b"\x62\xd0\x04\x08\xfc"  # 229.96 V -> 2300
    assert s.handle(b"\x22\xd0\x05", 0) == b"\x62\xd0\x05\x13\x87"  # 49.987 Hz -> 4999
    assert s.handle(b"\x22\xd0\x06", 0) == b"\x62\xd0\x06\xff\xff\xfb\x2e"  # -1234 W
    assert s.handle(b"\x22\xd0\x07", 0) == b"\x62\xd0\x07\x80\x00\x00\x00"  # not available
    assert s.handle(b"\x22\xd0\x08", 0) == b"\x62\xd0\x08\x0a"
    assert s.handle(b"\x22\xd0\x09", 0) == b"\x62\xd0\x09\x00\x00\x00\x07"
    assert s.handle(b"\x22\xd0\x0a", 0) == _neg(0x22, 0x31)  # no operating-time source given


def test_read_live_value_failing_callback_reads_not_available():
    def broken():
        raise RuntimeError("sensor")

    live = dict(LIVE)
    live["grid_voltage"] = broken
    live["active_limits"] = lambda: None
    s, _ = _server(live=live)
    assert s.handle(b"\x22\xd0\x04", 0) == b"\x62\xd0\x04\xff\xff"
    assert s.handle(b"\x22\xd0\x02", 0) == b"\x62\xd0\x02\xff" + b"\x80\x00\x00\x00" * 3
    assert s.faults == 1


def test_read_values_clamp_below_not_available():
    live = dict(LIVE)
    live["soc"] = lambda: 1e9
    live["grid_power"] = lambda: -1e12
    s, _ = _server(live=live)
    assert s.handle(b"\x22\xd0\x03", 0) == b"\x62\xd0\x03\xff\xfe"
    assert s.handle(b"\x22\xd0\x06", 0) == b"\x62\xd0\x06\x80\x00\x00\x01"


def test_read_config_dids():
    s, _ = _server()
    assert s.handle(b"\x22\xd1\x00", 0) == b"\x62\xd1\x00\x01\x5e"  # 35.0 A
    assert s.handle(b"\x22\xd1\x01", 0) == b"\x62\xd1\x01\xff\xff"  # no export limit
    assert s.handle(b"\x22\xd1\x02", 0) == b"\x62\xd1\x02\x00"  # EN50549-1
    assert s.handle(b"\x22\xd1\x07", 0) == b"\x62\xd1\x07\x00\x00\x4e\x20"  # 20 kW/s
    assert s.handle(b"\x22\xd1\x08", 0) == b"\x62\xd1\x08\x01"
    assert s.handle(b"\x22\xd1\x0b", 0) == b"\x62\xd1\x0b\x00\x00\x00\x00"


def test_read_unknown_and_mixed_dids():
    s, _ = _server()
    assert s.handle(b"\x22\x12\x34", 0) == _neg(0x22, 0x31)
    assert s.handle(b"\x22\x12\x34", 0, functional=True) is None
    # unsupported identifiers are left out when at least one is supported
    assert s.handle(b"\x22\x12\x34\xd0\x01", 0) == b"\x62\xd0\x01\x03"
    assert s.handle(b"\x22\xd0\xf0", 0) == _neg(0x22, 0x31)  # the snapshot DID lives in 0x19 only


def test_read_length_errors():
    s, _ = _server()
    assert s.handle(b"\x22", 0) == _neg(0x22, 0x13)
    assert s.handle(b"\x22\xf1", 0) == _neg(0x22, 0x13)
    assert s.handle(b"\x22\xf1\x8c\xf1", 0) == _neg(0x22, 0x13)
    assert s.handle(b"\x22" + b"\xd0\x01" * (uds.MAX_DIDS + 1), 0) == _neg(0x22, 0x13)
    assert s.handle(b"\x22" + b"\xd0\x01" * uds.MAX_DIDS, 0)[:1] == b"\x62"


def test_read_response_too_long():
    s, _ = _server(max_response=40)
    assert s.handle(b"\x22\xf1\x8c\xf1\x95", 0)[:1] == b"\x62"  # 37 bytes
    assert s.handle(b"\x22\xf1\x8c\xf1\x95\xf1\x97", 0) == _neg(0x22, 0x14)


# ---------------------------------------------------------------- 0x2E
def test_write_config_needs_extended_session_and_security():
    s, stored = _server()
    w = b"\x2e\xd1\x00\x00\xc8"  # main fuse 20.0 A
    assert s.handle(w, READY) == _neg(0x2E, 0x31)  # not writable in the default session
    s.handle(b"\x10\x03", READY)
    assert s.handle(w, READY) == _neg(0x2E, 0x33)
    _unlock(s, READY)
    assert s.handle(w, READY) == b"\x6e\xd1\x00"
    assert s.config.cfg["site"]["main_fuse_a"] == 20.0
    assert stored == [{"site": {"main_fuse_a": 20.0}}]  # the key written, not the whole configuration
    assert s.handle(b"\x22\xd1\x00", READY) == b"\x62\xd1\x00\x00\xc8"
    s.handle(b"\x10\x03", READY)
    s.handle(b"\x10\x02", READY)
    assert s.handle(w, READY) == _neg(0x2E, 0x31)  # nor in the programming session


def test_write_config_validation():
    s, stored = _server()
    _unlock(s, READY)
    assert s.handle(b"\x2e\xd1\x00\x00\x00", READY) == _neg(0x2E, 0x31)  # 0 A < 1 A (config.validate)
    assert s.handle(b"\x2e\xd1\x05\x04", READY) == _neg(0x2E, 0x31)  # 4 phases
    assert s.handle(b"\x2e\xd1\x02\x04", READY) == _neg(0x2E, 0x31)  # no grid code 4
    assert s.handle(b"\x2e\xd1\x08\x02", READY) == _neg(0x2E, 0x31)  # a boolean is 0 or 1
    assert stored == []
    assert s.handle(b"\x2e\xd1\x02\x03", READY) == b"\x6e\xd1\x02"
    assert s.config.cfg["site"]["grid_code"] == "DK-EN50549-1"
    assert s.handle(b"\x2e\xd1\x01\x00\x64", READY) == b"\x6e\xd1\x01"  # export limit 10.0 kW
    assert s.config.cfg["site"]["export_limit_kw"] == 10.0
    assert s.handle(b"\x2e\xd1\x01\xff\xff", READY) == b"\x6e\xd1\x01"  # back to no limit
    assert s.config.cfg["site"]["export_limit_kw"] is None
    assert s.handle(b"\x2e\xd1\x0b\xff\xff\xe8\x90", READY) == b"\x6e\xd1\x0b"  # -6000 W
    assert s.config.cfg["mode"]["setpoint_kw"] == -6.0
    assert s.handle(b"\x2e\xd1\x05\x01", READY) == b"\x6e\xd1\x05"
    assert s.config.cfg["site"]["phases"] == 1 and isinstance(s.config.cfg["site"]["phases"], int)
    assert len(stored) == 5
    assert stored[-1] == {"site": {"grid_code": "DK-EN50549-1", "export_limit_kw": None, "phases": 1},
                          "mode": {"setpoint_kw": -6.0}}  # every key written so far, the last value of each
    config.validate(stored[-1])  # a valid set of overrides


def test_write_errors():
    s, _ = _server()
    _unlock(s, READY)
    assert s.handle(b"\x2e\xd1\x00", READY) == _neg(0x2E, 0x13)
    assert s.handle(b"\x2e\xd1\x00\x00", READY) == _neg(0x2E, 0x13)  # two bytes expected
    assert s.handle(b"\x2e\xd1\x00\x00\xc8\x00", READY) == _neg(0x2E, 0x13)
    assert s.handle(b"\x2e\xf1\x8c\x41", READY) == _neg(0x2E, 0x31)  # read-only
    assert s.handle(b"\x2e\xd0\x00\x00", READY) == _neg(0x2E, 0x31)
    assert s.handle(b"\x2e\x12\x34\x00", READY) == _neg(0x2E, 0x31)


def test_write_refused_by_conditions_and_store_failure():
    s, _ = _server(allow=lambda action: action != "write")
    _unlock(s, READY)
    assert s.handle(b"\x2e\xd1\x00\x00\xc8", READY) == _neg(0x2E, 0x22)

    class Broken:
        def save(self, overrides):
            raise OSError(28)

    s, _ = _server(config=uds.ConfigAccess(config.defaults(), Broken()))
    _unlock(s, READY)
    assert s.handle(b"\x2e\xd1\x00\x00\xc8", READY) == _neg(0x2E, 0x72)
    assert s.config.cfg["site"]["main_fuse_a"] == 35.0  # not applied when it could not be stored


def test_write_config_keeps_the_overrides_in_force():
    stored = Stored()
    loaded = {"site": {"main_fuse_a": 20.0}, "mode": {"kind": "v2h"}}
    cfg = config.validate(loaded)
    s, _ = _server(config=uds.ConfigAccess(cfg, stored, loaded))
    _unlock(s, READY)
    assert s.handle(b"\x2e\xd1\x05\x01", READY) == b"\x6e\xd1\x05"  # phases 1
    assert stored == [{"site": {"main_fuse_a": 20.0, "phases": 1}, "mode": {"kind": "v2h"}}]
    assert loaded == {"site": {"main_fuse_a": 20.0}, "mode": {"kind": "v2h"}}  # not changed in place
    assert s.handle(b"\x2e\xd1\x00\x00\xfa", READY) == b"\x6e\xd1\x00"  # fuse 25.0 A
    assert stored[-1]["site"] == {"main_fuse_a": 25.0, "phases": 1}


# ---------------------------------------------------------------- fault memory
SNAP = (230.4, 50.02, 81.5, 1500, -3000)


def test_dtc_text_and_table():
    assert dtc.text(dtc.TRIP_UNDERVOLTAGE) == "P1A10-16"
    assert dtc.text(dtc.COMM_METER) == "U1100-87"
    assert dtc.text(dtc.FRAME_CRC) == "U1110-83"
    assert dtc.text(dtc.INV_OVERTEMPERATURE) == "P1A21-4B"
    assert len(dtc.SUPPORTED) == len(dtc.DTCS) == 29
    names = [dtc.DTCS[c][0] for c in dtc.DTCS]
    assert len(set(names)) == len(names)


def test_trip_reasons_map_to_families():
    from controller.protection import interface_protection as ip

    for code in ip.REASON_NAMES:
        assert code in dtc.TRIP_DTC, code
    from controller.event_names import TRIP_NAMES

    for code in TRIP_NAMES:
        assert code in dtc.TRIP_DTC, code
    assert dtc.TRIP_DTC[ip.UNDERVOLTAGE_1] == dtc.TRIP_DTC[ip.UNDERVOLTAGE_2] == dtc.TRIP_UNDERVOLTAGE
    assert dtc.TRIP_DTC[ip.OVERVOLTAGE_10MIN] == dtc.TRIP_OVERVOLTAGE
    assert dtc.TRIP_DTC[ip.UNDERFREQUENCY_1] == dtc.TRIP_UNDERFREQUENCY
    assert dtc.TRIP_DTC[ip.OVERFREQUENCY_2] == dtc.TRIP_OVERFREQUENCY
    assert dtc.TRIP_DTC[ip.ROCOF] == dtc.TRIP_ROCOF
    assert dtc.TRIP_DTC[ip.VECTOR_SHIFT] == dtc.TRIP_VECTOR_SHIFT
    assert dtc.TRIP_DTC[ip.ISLANDING] == dtc.TRIP_ANTI_ISLANDING


def test_events_to_dtcs():
    f = dtc.for_event
    assert f(events.TRIP, events.T_INV_OVERTEMP) == (dtc.INV_OVERTEMPERATURE, True)
    assert f(events.TRIP, 99) is None
    assert f(events.ISLAND_DETECTED, 16) == (dtc.ISLANDING_EVENT, True)
    assert f(events.GRID_FOLLOWING, 0) == (dtc.ISLANDING_EVENT, False)
    assert f(events.INPUT_TIMEOUT, events.IN_EV) == (dtc.COMM_EV, True)
    assert f(events.INPUT_RESTORED, events.IN_METER) == (dtc.COMM_METER, False)
    assert f(events.IMPLAUSIBLE, events.IN_PLAUSIBILITY) == (dtc.IMPLAUSIBLE, True)
    assert f(events.INPUT_RESTORED, events.IN_PLAUSIBILITY) == (dtc.IMPLAUSIBLE, False)
    assert f(events.FRAME_REFUSED, events.R_CRC) == (dtc.FRAME_CRC, True)
    assert f(events.FRAME_REFUSED, events.R_COUNTER) == (dtc.FRAME_COUNTER, True)
    assert f(events.FRAME_REFUSED, events.R_LENGTH) == (dtc.FRAME_INVALID, True)
    assert f(events.FRAME_REFUSED, events.R_UNKNOWN_ID) is None
    assert f(events.BACKUP_OVERLOAD, 0) == (dtc.BACKUP_OVERLOAD, True)
    assert f(events.RELAY_FAULT, 1) == (dtc.RELAY_FAULT, True)
    assert f(events.MODE_CHANGE, 1) is None


def test_snapshot_encoding_round_trip():
    b = dtc.encode_snapshot(7, 3600, SNAP)
    assert len(b) == dtc.SNAPSHOT_LEN == 15
    assert b == bytes.fromhex("0007" "00000e10" "0900" "138a" "a3" "0096" "fed4")
    assert dtc.decode_snapshot(b) == (7, 3600, 230.4, 50.02, 81.5, 1500.0, -3000.0)
    n = dtc.decode_snapshot(dtc.encode_snapshot(1, 0, None))
    assert n == (1, 0, None, None, None, None, None)


def test_record_sets_status_and_snapshots():
    m = DtcMemory()
    m.new_operation_cycle()
    m.tick(0)
    assert m.record(dtc.TRIP_UNDERVOLTAGE, SNAP, 2500000)
    assert m.status(dtc.TRIP_UNDERVOLTAGE) == 0x2F
    snaps = m.snapshots(dtc.TRIP_UNDERVOLTAGE)
    assert len(snaps) == 1 and snaps[0][0] == 1
    assert dtc.decode_snapshot(snaps[0][1])[:2] == (1, 2)  # operation cycle 1, 2 s into it
    m.record(dtc.TRIP_UNDERVOLTAGE, (200.0, 50.0, 80.0, 0, 0), 4000000)
    snaps = m.snapshots(dtc.TRIP_UNDERVOLTAGE)
    assert [n for n, _ in snaps] == [1, 2]
    assert dtc.decode_snapshot(snaps[0][1])[2] == 230.4  # the first occurrence stays
    assert dtc.decode_snapshot(snaps[1][1])[2] == 200.0
    assert m.occurrences(dtc.TRIP_UNDERVOLTAGE) == 2
    assert not m.record(0x123456, SNAP, 0) and m.unknown == 1
    m.passed(dtc.TRIP_UNDERVOLTAGE)
    assert m.status(dtc.TRIP_UNDERVOLTAGE) == 0x2E


def test_operation_cycles_pending_and_aging():
    m = DtcMemory()
    m.record(dtc.COMM_EV, None, 0)
    m.new_operation_cycle()
    st = m.status(dtc.COMM_EV)
    assert st == dtc.PDTC | dtc.CDTC | dtc.TFSLC  # failed last cycle: still pending
    m.new_operation_cycle()
    assert m.status(dtc.COMM_EV) == dtc.CDTC | dtc.TFSLC  # a clean cycle: no longer pending
    for _ in range(dtc.AGING_CYCLES - 2):
        m.new_operation_cycle()
    assert m.status(dtc.COMM_EV) == dtc.CDTC | dtc.TFSLC
    m.new_operation_cycle()
    assert m.status(dtc.COMM_EV) == 0 and m.entries == []  # aged out
    # a new failure restarts the aging
    m.record(dtc.COMM_EV, None, 0)
    for _ in range(dtc.AGING_CYCLES - 1):
        m.new_operation_cycle()
    m.record(dtc.COMM_EV, None, 0)
    m.new_operation_cycle()
    assert m.status(dtc.COMM_EV) & dtc.CDTC


def test_operating_time_is_wrap_safe():
    from controller.clock import TICKS_MAX

    m = DtcMemory()
    t = TICKS_MAX - 500000
    m.tick(t)
    for _ in range(30):
        t = (t + 100000) & TICKS_MAX
        m.tick(t)
    assert m.up_s == 3


def test_replacement_policy():
    m = DtcMemory(capacity=3)
    m.record(dtc.FRAME_CRC, None, 0)
    m.record(dtc.COMM_METER, None, 0)
    m.record(dtc.TRIP_OVERVOLTAGE, None, 0)
    # full: the lowest priority (a frame refusal) makes room
    assert m.record(dtc.TRIP_ROCOF, None, 0)
    assert m.status(dtc.FRAME_CRC) == 0 and m.evicted == 1
    # a frame refusal does not displace active entries of higher priority
    assert not m.record(dtc.FRAME_COUNTER, None, 0) and m.dropped == 1
    # an inactive entry goes before an active one, whatever its priority
    m.passed(dtc.TRIP_OVERVOLTAGE)
    assert m.record(dtc.FRAME_COUNTER, None, 0)
    assert m.status(dtc.TRIP_OVERVOLTAGE) == 0
    # among equals the oldest occurrence goes
    m.record(dtc.TRIP_UNDERVOLTAGE, None, 0)  # evicts FRAME_COUNTER (lowest priority)
    m.record(dtc.COMM_METER, None, 0)  # refreshes COMM_METER
    m.record(dtc.TRIP_VECTOR_SHIFT, None, 0)  # COMM_METER is the lowest priority
    assert m.status(dtc.COMM_METER) == 0
    assert [c for c, _ in m.by_mask(0xFF)] == sorted([dtc.TRIP_ROCOF, dtc.TRIP_UNDERVOLTAGE, dtc.TRIP_VECTOR_SHIFT])


def test_clear_groups():
    m = DtcMemory()
    m.record(dtc.COMM_EV, None, 0)
    m.record(dtc.COMM_METER, None, 0)
    assert m.clear(dtc.COMM_EV) and m.status(dtc.COMM_EV) == 0 and m.status(dtc.COMM_METER)
    assert not m.clear(0x123456)
    assert m.clear(dtc.GROUP_ALL) and m.entries == []


def test_persistence_round_trip():
    m = DtcMemory()
    m.new_operation_cycle()
    m.record(dtc.TRIP_UNDERVOLTAGE, SNAP, 0)
    m.record(dtc.TRIP_UNDERVOLTAGE, SNAP, 1000)
    m.record(dtc.BACKUP_OVERLOAD, None, 2000)
    m.passed(dtc.BACKUP_OVERLOAD)
    b = m.to_bytes()
    n = DtcMemory.from_bytes(b)
    assert n.corrupt == 0
    assert n.to_bytes() == b
    assert n.by_mask(0xFF) == m.by_mask(0xFF)
    assert n.snapshots(dtc.TRIP_UNDERVOLTAGE) == m.snapshots(dtc.TRIP_UNDERVOLTAGE)
    assert n.cycle == 1 and n.seq == m.seq
    # a smaller capacity keeps the most important entries
    k = DtcMemory.from_bytes(b, capacity=1)
    assert [c for c, _ in k.by_mask(0xFF)] == [dtc.TRIP_UNDERVOLTAGE]


def test_from_bytes_never_raises_on_damage():
    m = DtcMemory()
    for code in (dtc.TRIP_UNDERVOLTAGE, dtc.COMM_EV, dtc.FRAME_CRC):
        m.record(code, SNAP, 0)
    good = m.to_bytes()
    bad = [b"", b"\x00", b"DTM", bytes(64), b"garbage" * 20, None, 12, "text"]
    for i in range(len(good)):
        bad.append(good[:i])  # cut at every length
    for i in range(0, len(good), 3):
        x = bytearray(good)
        x[i] ^= 0x40  # one flipped bit anywhere
        bad.append(bytes(x))
    for b in bad:
        n = DtcMemory.from_bytes(b)
        assert n.corrupt == 1 and n.entries == [], b
        n.record(dtc.COMM_EV, None, 0)  # and it works
    assert DtcMemory.from_bytes(DtcMemory().to_bytes()).corrupt == 0


def test_gateway_snapshot():
    from controller.control.gateway import Gateway
    from sitebus import Site

    site = Site()
    gw = Gateway(config.validate({"control": {"recover_hold_ms": 0}}), site.gw_port)
    snap = dtc.gateway_snapshot(gw)
    assert snap[2] is None and snap[3] is None and snap[4] is None  # nothing received yet
    t = 0
    for _ in range(5):
        site.send_all()
        gw.poll(t)
        gw.tick(t)
        t += 10000
    snap = dtc.gateway_snapshot(gw)
    assert abs(snap[0] - 230.0) < 0.2 and abs(snap[1] - 50.0) < 0.01 and abs(snap[2] - 80.0) < 0.2
    assert snap[3] == 1000


# ---------------------------------------------------------------- 0x19 0x14
def _with_dtcs():
    s, _ = _server()
    m = s.dtcs
    m.new_operation_cycle()
    m.record(dtc.TRIP_UNDERVOLTAGE, SNAP, 0)
    m.record(dtc.TRIP_UNDERVOLTAGE, (199.5, 49.9, 80.0, 0, 100), 1000)
    m.record(dtc.COMM_EV, None, 0)
    m.passed(dtc.COMM_EV)
    return s


def test_report_number_of_dtc_by_status_mask():
    s = _with_dtcs()
    assert s.handle(b"\x19\x01\xff", 0) == b"\x59\x01\x2f\x00\x00\x02"
    assert s.handle(b"\x19\x01\x01", 0) == b"\x59\x01\x2f\x00\x00\x01"  # testFailed: one
    assert s.handle(b"\x19\x01\x40", 0) == b"\x59\x01\x2f\x00\x00\x00"  # unsupported bit


def test_report_dtc_by_status_mask():
    s = _with_dtcs()
    assert s.handle(b"\x19\x02\x08", 0) == b"\x59\x02\x2f" + b"\x1a\x10\x16\x2f" + b"\xd1\x03\x87\x2e"
    assert s.handle(b"\x19\x02\x01", 0) == b"\x59\x02\x2f\x1a\x10\x16\x2f"
    assert s.handle(b"\x19\x02\x00", 0) == b"\x59\x02\x2f"


def test_report_supported_dtcs():
    s = _with_dtcs()
    r = s.handle(b"\x19\x0a", 0)
    assert r[:3] == b"\x59\x0a\x2f" and len(r) == 3 + 4 * len(dtc.SUPPORTED)
    rows = {}
    for i in range(3, len(r), 4):
        rows[(r[i] << 16) | (r[i + 1] << 8) | r[i + 2]] = r[i + 3]
    assert sorted(rows) == list(dtc.SUPPORTED)
    assert rows[dtc.TRIP_UNDERVOLTAGE] == 0x2F and rows[dtc.COMM_EV] == 0x2E and rows[dtc.FRAME_CRC] == 0


def test_report_snapshot_records():
    s = _with_dtcs()
    first = dtc.encode_snapshot(1, 0, SNAP)
    r = s.handle(b"\x19\x04\x1a\x10\x16\x01", 0)
    assert r == b"\x59\x04\x1a\x10\x16\x2f" + b"\x01\x01\xd0\xf0" + first
    r = s.handle(b"\x19\x04\x1a\x10\x16\xff", 0)
    assert r[:6 + 4 + 15] == b"\x59\x04\x1a\x10\x16\x2f" + b"\x01\x01\xd0\xf0" + first
    assert r[25:29] == b"\x02\x01\xd0\xf0" and len(r) == 25 + 4 + 15
    assert dtc.decode_snapshot(r[29:])[2] == 199.5
    # one occurrence: only record 1; a supported DTC not in memory: status only
    assert s.handle(b"\x19\x04\xd1\x03\x87\x02", 0) == b"\x59\x04\xd1\x03\x87\x2e"
    assert s.handle(b"\x19\x04\xd1\x10\x83\xff", 0) == b"\x59\x04\xd1\x10\x83\x00"


def test_read_dtc_information_errors():
    s = _with_dtcs()
    assert s.handle(b"\x19\x04\x12\x34\x56\x01", 0) == _neg(0x19, 0x31)  # unknown DTC
    assert s.handle(b"\x19\x04\x1a\x10\x16\x03", 0) == _neg(0x19, 0x31)  # unknown record number
    assert s.handle(b"\x19\x04\x1a\x10\x16", 0) == _neg(0x19, 0x13)
    assert s.handle(b"\x19\x02", 0) == _neg(0x19, 0x13)
    assert s.handle(b"\x19\x01\xff\x00", 0) == _neg(0x19, 0x13)
    assert s.handle(b"\x19\x0a\x00", 0) == _neg(0x19, 0x13)
    assert s.handle(b"\x19", 0) == _neg(0x19, 0x13)
    assert s.handle(b"\x19\x06\x1a\x10\x16\xff", 0) == _neg(0x19, 0x12)
    assert s.handle(b"\x19\x82\xff", 0) == _neg(0x19, 0x12)  # reportType has no suppress bit
    s.handle(b"\x10\x03", 0)
    s.handle(b"\x10\x02", 0)
    assert s.handle(b"\x19\x0a", 0) == _neg(0x19, 0x7F)


def test_clear_diagnostic_information():
    s = _with_dtcs()
    assert s.handle(b"\x14\xd1\x03\x87", 0) == b"\x54"
    assert s.dtcs.status(dtc.COMM_EV) == 0 and s.dtcs.status(dtc.TRIP_UNDERVOLTAGE)
    assert s.handle(b"\x14\x12\x34\x56", 0) == _neg(0x14, 0x31)
    assert s.handle(b"\x14\xff\xff", 0) == _neg(0x14, 0x13)
    assert s.handle(b"\x14\xff\xff\xff", 0) == b"\x54"
    assert s.handle(b"\x19\x01\xff", 0) == b"\x59\x01\x2f\x00\x00\x00"
    s.handle(b"\x10\x03", 0)
    s.handle(b"\x10\x02", 0)
    assert s.handle(b"\x14\xff\xff\xff", 0) == _neg(0x14, 0x7F)
    s, _ = _server(allow=lambda a: a != "clear_dtc")
    assert s.handle(b"\x14\xff\xff\xff", 0) == _neg(0x14, 0x22)


# ---------------------------------------------------------------- 0x31
def test_routine_self_test():
    s, _ = _server()
    s.handle(b"\x10\x03", 0)
    assert s.handle(b"\x31\x03\x02\x00", 0) == _neg(0x31, 0x24)  # results before start
    assert s.handle(b"\x31\x01\x02\x00\xaa", 0) == b"\x71\x01\x02\x00\x01\x02"
    assert s.routines[uds.RID_SELF_TEST].calls == [("start", b"\xaa")]
    assert s.handle(b"\x31\x03\x02\x00", 0) == b"\x71\x03\x02\x00\x10\x20"
    assert s.handle(b"\x31\x02\x02\x00", 0) == _neg(0x31, 0x12)  # the self-test cannot be stopped
    assert s.handle(b"\x31\x81\x02\x00", 0) is None


def test_routine_errors():
    s, _ = _server()
    s.handle(b"\x10\x03", READY)
    assert s.handle(b"\x31\x01\x02", READY) == _neg(0x31, 0x13)
    assert s.handle(b"\x31\x04\x02\x00", READY) == _neg(0x31, 0x12)
    assert s.handle(b"\x31\x01\x12\x34", READY) == _neg(0x31, 0x31)
    assert s.handle(b"\x31\x01\xff\x00", READY) == _neg(0x31, 0x31)  # erase: programming session only
    assert s.handle(b"\x31\x01\xff\x00", READY, functional=True) is None
    s.handle(b"\x10\x02", READY)
    assert s.handle(b"\x31\x01\xff\x00", READY) == _neg(0x31, 0x33)
    assert s.handle(b"\x31\x01\xff\x01", READY) == _neg(0x31, 0x33)
    assert s.handle(b"\x31\x02\xff\x00", READY) == _neg(0x31, 0x33)


def test_routine_erase_and_check_with_security():
    s, _ = _server()
    _unlock(s, READY, 3)
    assert s.handle(b"\x31\x02\xff\x00", READY) == _neg(0x31, 0x24)  # stop before start
    assert s.handle(b"\x31\x01\xff\x00\x44\x00\x00\x00\x00\x00\x00\x10\x00", READY) == b"\x71\x01\xff\x00\x00"
    assert s.routines[uds.RID_ERASE_MEMORY].calls == [("start", b"\x44\x00\x00\x00\x00\x00\x00\x10\x00")]
    assert s.handle(b"\x31\x02\xff\x00", READY) == b"\x71\x02\xff\x00"
    assert s.handle(b"\x31\x01\xff\x01", READY) == b"\x71\x01\xff\x01\x00"


def test_routine_hook_errors():
    class Failing:
        def start(self, opt):
            raise UdsError(0x22)

        def results(self, opt):
            return b""

    class Broken:
        def start(self, opt):
            raise RuntimeError("bug")

    s, _ = _server(routines={uds.RID_SELF_TEST: Failing(), uds.RID_ERASE_MEMORY: Broken()})
    s.handle(b"\x10\x03", 0)
    assert s.handle(b"\x31\x01\x02\x00", 0) == _neg(0x31, 0x22)
    assert s.handle(b"\x31\x03\x02\x00", 0) == _neg(0x31, 0x24)  # a failed start does not count


def test_pending_routine_then_final_response():
    r = Routine(b"\x00", steps=3)
    s, _ = _server(routines={uds.RID_SELF_TEST: r})
    s.handle(b"\x10\x03", 0)
    assert s.handle(b"\x31\x01\x02\x00", 0) == _neg(0x31, 0x78)
    assert s.pending()
    assert s.poll(10 * MS) is None
    assert s.handle(b"\x3e\x00", 10 * MS) == _neg(0x3E, 0x21)  # busy
    assert s.handle(b"\x3e\x80", 10 * MS, functional=True) is None
    assert s.poll(20 * MS) is None
    assert s.poll(30 * MS) == b"\x71\x01\x02\x00\x00"
    assert not s.pending()
    assert s.poll(40 * MS) is None


def test_pending_final_response_despite_suppress_bit():
    r = Routine(b"\x05", steps=2)
    s, _ = _server(routines={uds.RID_SELF_TEST: r})
    s.handle(b"\x10\x03", 0)
    assert s.handle(b"\x31\x81\x02\x00", 0) == _neg(0x31, 0x78)
    assert s.poll(1) is None
    assert s.poll(2) == b"\x71\x01\x02\x00\x05"


def test_pending_repeats_0x78_within_p2star():
    r = Routine(b"\x00", steps=1000)
    s, _ = _server(routines={uds.RID_SELF_TEST: r})
    s.handle(b"\x10\x03", 0)
    s.handle(b"\x31\x01\x02\x00", 0)
    sent = []
    t = 0
    while s.pending():
        t += 10 * MS
        out = s.poll(t)
        if out is not None:
            sent.append((t, out))
    assert sent[-1][1] == b"\x71\x01\x02\x00\x00"
    pend = [x for x in sent if x[1] == _neg(0x31, 0x78)]
    assert len(pend) == 4  # at 2, 4, 6, 8 s; the work ends at 10 s
    last = 0
    for at, _ in sent:
        assert at - last <= uds.PENDING_REPEAT_US < uds.P2_STAR_MS * 1000
        last = at
    assert s.session == uds.EXTENDED  # busy is not idle: no S3 timeout


# ---------------------------------------------------------------- 0x34 0x36 0x37
def _download(s, t, size, alfid=0x44):
    alen = alfid & 0xF
    slen = alfid >> 4
    req = b"\x34\x00" + bytes((alfid,)) + bytes(alen) + size.to_bytes(slen, "big")
    return s.handle(req, t)


def test_download_sequence():
    s, _ = _server()
    _unlock(s, READY, 3)
    image = bytes([(i * 7) & 0xFF for i in range(2500)])
    assert _download(s, READY, len(image)) == b"\x74\x20\x04\x02"
    assert s.update.image == bytearray(2500)
    block = uds.MAX_BLOCK - 2
    ctr = 1
    for off in range(0, len(image), block):
        assert s.handle(b"\x36" + bytes((ctr,)) + image[off:off + block], READY) == b"\x76" + bytes((ctr,))
        ctr += 1
    assert s.downloading() == (2500, 2500)
    assert s.handle(b"\x37", READY) == b"\x77"
    assert bytes(s.update.image) == image
    assert s.update.finished == 1 and s.downloading() is None
    assert s.handle(b"\x37", READY) == _neg(0x37, 0x24)


def test_download_repeated_block_and_wrong_counter():
    s, _ = _server()
    _unlock(s, READY, 3)
    assert _download(s, READY, 6, 0x11) == b"\x74\x20\x04\x02"
    assert s.handle(b"\x36\x02\xaa\xbb", READY) == _neg(0x36, 0x73)  # the first block is 1
    assert s.handle(b"\x36\x00\xaa\xbb", READY) == _neg(0x36, 0x73)
    assert s.handle(b"\x36\x01\xaa\xbb", READY) == b"\x76\x01"
    writes = s.update.writes
    assert s.handle(b"\x36\x01\xaa\xbb", READY) == b"\x76\x01"  # repeated: accepted, not written again
    assert s.update.writes == writes and s.downloading() == (6, 2)
    assert s.handle(b"\x36\x03\xcc\xdd", READY) == _neg(0x36, 0x73)
    assert s.handle(b"\x36\x02\xcc\xdd", READY) == b"\x76\x02"
    assert s.handle(b"\x36\x03\xee\xff", READY) == b"\x76\x03"
    assert s.handle(b"\x37", READY) == b"\x77"
    assert bytes(s.update.image) == b"\xaa\xbb\xcc\xdd\xee\xff"


def test_block_counter_wraps_to_zero():
    s, _ = _server()
    _unlock(s, READY, 3)
    _download(s, READY, 300, 0x22)
    for i in range(300):
        ctr = (i + 1) & 0xFF
        assert s.handle(bytes((0x36, ctr, i & 0xFF)), READY) == bytes((0x76, ctr)), i
    assert s.handle(b"\x37", READY) == b"\x77"
    assert bytes(s.update.image) == bytes([i & 0xFF for i in range(300)])


def test_download_request_errors():
    s, _ = _server()
    s.handle(b"\x10\x03", READY)
    s.handle(b"\x10\x02", READY)
    assert _download(s, READY, 100) == _neg(0x34, 0x33)  # locked
    assert s.handle(b"\x36\x01\x00", READY) == _neg(0x36, 0x33)
    _unlock(s, READY, 3)
    assert s.handle(b"\x34\x00\x44\x00\x00", READY) == _neg(0x34, 0x13)
    assert s.handle(b"\x34\x00\x44\x00\x00\x00\x00\x00\x00\x01", READY) == _neg(0x34, 0x13)
    assert s.handle(b"\x34\x11\x44\x00\x00\x00\x00\x00\x00\x01\x00", READY) == _neg(0x34, 0x31)  # compressed
    assert s.handle(b"\x34\x00\x00\x00\x00", READY) == _neg(0x34, 0x31)  # no address/size lengths
    assert s.handle(b"\x34\x00\x54\x00\x00\x00\x00\x00\x00\x00\x01\x00", READY) == _neg(0x34, 0x31)
    assert _download(s, READY, 0) == _neg(0x34, 0x31)
    assert s.handle(b"\x34\x00\x44\x00\x00\x10\x00\x00\x00\x01\x00", READY) == _neg(0x34, 0x31)  # address
    assert _download(s, READY, s.update.capacity + 1) == _neg(0x34, 0x70)  # oversized
    assert s.downloading() is None
    assert _download(s, READY, s.update.capacity) == b"\x74\x20\x04\x02"
    assert _download(s, READY, 10) == _neg(0x34, 0x22)  # one at a time


def test_download_refused_by_conditions():
    s, _ = _server()
    _unlock(s, READY, 3)
    s.allow = lambda action: action != "program"
    assert _download(s, READY, 10) == _neg(0x34, 0x22)


def test_transfer_errors():
    s, _ = _server()
    _unlock(s, READY, 3)
    assert s.handle(b"\x36\x01\xaa", READY) == _neg(0x36, 0x24)  # no RequestDownload
    assert s.handle(b"\x37", READY) == _neg(0x37, 0x24)
    assert s.handle(b"\x36", READY) == _neg(0x36, 0x13)
    _download(s, READY, 2000)
    assert s.handle(b"\x36\x01" + bytes(uds.MAX_BLOCK - 1), READY) == _neg(0x36, 0x13)  # longer than announced
    assert s.handle(b"\x36\x01", READY) == _neg(0x36, 0x13)  # no data
    assert s.handle(b"\x36\x01" + bytes(1024), READY) == b"\x76\x01"
    assert s.handle(b"\x37", READY) == _neg(0x37, 0x24)  # not all data yet
    assert s.downloading() == (2000, 1024)
    assert s.handle(b"\x36\x02" + bytes(1000), READY) == _neg(0x36, 0x71)  # more than 2000 bytes
    assert s.downloading() is None and s.update.aborted == 1
    assert s.handle(b"\x36\x02" + bytes(10), READY) == _neg(0x36, 0x24)


def test_transfer_write_failure_and_verify_failure():
    s, _ = _server(update=Update(fail_write=True))
    _unlock(s, READY, 3)
    _download(s, READY, 10)
    assert s.handle(b"\x36\x01" + bytes(10), READY) == _neg(0x36, 0x72)
    assert s.downloading() is None
    s, _ = _server(update=Update(ok=False))
    _unlock(s, READY, 3)
    _download(s, READY, 10)
    s.handle(b"\x36\x01" + bytes(10), READY)
    assert s.handle(b"\x37", READY) == _neg(0x37, 0x72)  # the image did not verify
    assert s.downloading() is None


def test_transfer_exit_pending_then_final_response():
    s, _ = _server(update=Update(finish_steps=3))
    _unlock(s, READY, 3)
    _download(s, READY, 4)
    s.handle(b"\x36\x01\x01\x02\x03\x04", READY)
    assert s.handle(b"\x37", READY) == _neg(0x37, 0x78)
    assert s.handle(b"\x36\x02\x00", READY + 1) == _neg(0x36, 0x21)
    assert s.poll(READY + 2) is None
    assert s.poll(READY + 3) is None
    assert s.poll(READY + 4) == b"\x77"
    assert s.downloading() is None


def test_transfer_exit_pending_then_failure():
    s, _ = _server(update=Update(finish_steps=2, ok=False))
    _unlock(s, READY, 3)
    _download(s, READY, 1)
    s.handle(b"\x36\x01\x01", READY)
    assert s.handle(b"\x37", READY) == _neg(0x37, 0x78)
    assert s.poll(READY) is None
    assert s.poll(READY) == _neg(0x37, 0x72)


def test_session_timeout_aborts_download():
    s, _ = _server()
    _unlock(s, READY, 3)
    _download(s, READY, 100)
    s.handle(b"\x36\x01" + bytes(50), READY)
    s.poll(READY + uds.S3_US)
    assert s.session == uds.DEFAULT and s.downloading() is None and s.update.aborted == 1


# ---------------------------------------------------------------- robustness and wiring
def test_random_requests_never_raise():
    s, _ = _server()
    x = 12345
    for i in range(3000):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        n = x % 12
        sid = (0x10, 0x11, 0x14, 0x19, 0x22, 0x27, 0x2E, 0x31, 0x34, 0x36, 0x37, 0x3E, 0x85, 0x7F)[(x >> 8) % 14]
        body = bytes([((x >> (k % 24)) + k * 31) & 0xFF for k in range(n)])
        r = s.handle(bytes((sid,)) + body, READY + i * 1000, functional=bool(x & 0x10000))
        assert r is None or isinstance(r, bytes)
        if r is not None and r[0] == 0x7F:
            assert len(r) == 3 and r[1] == sid
        s.poll(READY + i * 1000)


def test_gateway_live_values():
    from controller.control.gateway import Gateway
    from sitebus import Site

    site = Site()
    gw = Gateway(config.validate({"mode": {"kind": "v2g", "setpoint_kw": -6.0},
                                  "control": {"recover_hold_ms": 0}, "limits": {"ramp_up_kw_per_s": None}}),
                 site.gw_port)
    mem = DtcMemory()
    s, _ = _server(live=uds.gateway_live(gw, lambda: mem.up_s))
    assert s.handle(b"\x22\xd0\x08", 0) == b"\x62\xd0\x08\x0f"  # nothing received: all inputs timed out
    assert s.handle(b"\x22\xd0\x01", 0) == b"\x62\xd0\x01\x05"  # safe state
    t = 0
    for _ in range(5):
        site.send_all()
        gw.poll(t)
        gw.tick(t)
        mem.tick(t)
        t += 250000
    r = s.handle(b"\x22\xd0\x00\xd0\x01\xd0\x03\xd0\x04\xd0\x05\xd0\x06\xd0\x08\xd0\x0a", t)
    assert r == (b"\x62\xd0\x00\x00" + b"\xd0\x01\x03" + b"\xd0\x03\x03\x20" + b"\xd0\x04\x08\xfc"
                 + b"\xd0\x05\x13\x88" + b"\xd0\x06\x00\x00\x03\xe8" + b"\xd0\x08\x00" + b"\xd0\x0a\x00\x00\x00\x01")
    lim = s.handle(b"\x22\xd0\x02", t)
    factor, lo, hi, cmd = struct.unpack(">Biii", lim[3:])
    assert factor == gw.limiting
    assert lo == int(round(gw.arbiter.lo_w)) and hi == int(round(gw.arbiter.hi_w))
    assert cmd == -6000


class _Slot:
    def __init__(self, size):
        self.size = size


class FakeUpdater:
    """controller.update.slots.Updater's UDS contract: begin/write/erase -> bool (+ reason), finish/check -> (ok, why)."""

    def __init__(self):
        self.slots = [_Slot(1000), _Slot(2000)]
        self.reason = ""
        self.trial = False
        self.valid = True
        self.data = None
        self.erased = 0
        self.erase_steps_n = 1

    def target_slot(self):
        return 1

    def begin(self, size):
        if self.trial:
            self.reason = "unconfirmed image running"
            return False
        if size < 82:
            self.reason = "size"
            return False
        self.data = bytearray(size)
        return True

    def write(self, offset, data):
        if offset + len(data) > len(self.data) or data[:1] == b"\xee":
            self.reason = "overflow"
            return False
        self.data[offset:offset + len(data)] = data
        return True

    # the Updater's stepped contract (controller.steps): generators of bounded work
    def finish_steps(self):
        yield
        return (True, "ok") if self.valid else (False, "signature")

    def erase_steps(self):
        if self.trial:
            self.reason = "unconfirmed image running"
            return False
        for _ in range(self.erase_steps_n - 1):
            yield
        self.erased += 1
        return True

    def check_steps(self):
        yield
        return (True, "ok") if self.valid else (False, "signature")


def _updater_server():
    u = FakeUpdater()
    hooks = uds.UpdaterHooks(u)
    s, _ = _server(update=hooks, routines=hooks.routines())
    _unlock(s, READY, 3)
    return s, u, hooks


def test_updater_hooks_download():
    s, u, hooks = _updater_server()
    assert hooks.capacity == 2000
    assert _download(s, READY, 2001) == _neg(0x34, 0x70)  # larger than the download slot
    assert _download(s, READY, 10) == _neg(0x34, 0x70)  # the Updater refuses the size
    assert hooks.reason == "size"
    u.trial = True
    assert _download(s, READY, 100) == _neg(0x34, 0x22)  # an unconfirmed image runs
    u.trial = False
    assert _download(s, READY, 100) == b"\x74\x20\x04\x02"
    assert s.handle(b"\x36\x01" + bytes(100), READY) == b"\x76\x01"
    assert s.handle(b"\x37", READY) == _neg(0x37, 0x78)  # verification runs after the 0x78
    assert s.poll(READY) is None  # one bounded step per poll
    assert s.poll(READY) == b"\x77"
    u.valid = False
    assert _download(s, READY, 100) == b"\x74\x20\x04\x02"
    s.handle(b"\x36\x01" + bytes(100), READY)
    assert s.handle(b"\x37", READY) == _neg(0x37, 0x78)
    s.poll(READY)
    assert s.poll(READY) == _neg(0x37, 0x72)
    assert hooks.reason == "signature"
    assert _download(s, READY, 100) == b"\x74\x20\x04\x02"
    assert s.handle(b"\x36\x01\xee" + bytes(99), READY) == _neg(0x36, 0x72)
    assert s.downloading() is None


def test_long_erase_runs_a_step_per_poll_with_response_pending_and_busy():
    s, u, hooks = _updater_server()
    u.erase_steps_n = 5
    assert s.handle(b"\x31\x01\xff\x00", READY) == _neg(0x31, 0x78)
    t = READY
    out = []
    for _ in range(4):
        t += uds.PENDING_REPEAT_US // 2
        out.append(s.poll(t))
        assert s.pending() and u.erased == 0
        assert s.handle(b"\x3e\x00", t) == _neg(0x3E, 0x21)  # busyRepeatRequest meanwhile
    assert out == [None, _neg(0x31, 0x78), None, _neg(0x31, 0x78)]  # 0x78 again every PENDING_REPEAT_US
    assert s.poll(t) == b"\x71\x01\xff\x00\x00" and u.erased == 1 and not s.pending()


def test_updater_hooks_routines():
    s, u, hooks = _updater_server()
    assert s.handle(b"\x31\x01\xff\x00", READY) == _neg(0x31, 0x78)
    assert u.erased == 0
    assert s.poll(READY) == b"\x71\x01\xff\x00\x00" and u.erased == 1
    assert s.handle(b"\x31\x01\xff\x01", READY) == _neg(0x31, 0x78)
    assert s.poll(READY) is None
    assert s.poll(READY) == b"\x71\x01\xff\x01\x00"
    u.valid = False
    s.handle(b"\x31\x01\xff\x01", READY)
    s.poll(READY)
    assert s.poll(READY) == b"\x71\x01\xff\x01\x01"
    u.trial = True
    s.handle(b"\x31\x01\xff\x00", READY)
    assert s.poll(READY) == _neg(0x31, 0x22)


def test_operating_time_did_is_right_past_the_ticks_half_period():
    # the gateway's diagnostics count operating time by adding up poll intervals: after
    # 20 minutes (more than the ~9 minutes a raw ticks difference spans), started just
    # before a wrap, the operating-time value says 1200 s
    from controller.clock import TICKS_MAX, ticks_add
    from controller.control.gateway import Gateway
    from controller.diag.diagnostics import Diagnostics
    from sitebus import Site

    site = Site()
    gw = Gateway(config.validate({}), site.gw_port)
    t0 = TICKS_MAX - 3000000
    d = Diagnostics(gw, {"serial": "T", "sw_version": "t", "system_name": "t"}, b"\x11" * 32, t0)
    for s in range(1, 1201):
        d.poll(ticks_add(t0, s * 1000000))
    assert d.uds.live["operating_time"]() == 1200
