"""UDS server (ISO 14229-1), independent of the transport.

    srv = UdsServer(identity, secret, now=t0, live=..., config=ConfigAccess(cfg, store, overrides),
                    dtcs=DtcMemory(), update=..., routines={...}, reset=..., allow=...)
    rsp = srv.handle(request_bytes, now, functional=False)  # bytes, or None: send nothing
    rsp = srv.poll(now)                                     # call every few ms: bytes or None

handle() takes one complete request (the ISO-TP payload) and returns the complete
response, or None when nothing may be sent (suppressPosRspMsgIndicationBit, or a
functionally addressed request whose NRC ISO 14229-1 suppresses). It never raises.
poll() runs the timers (S3server, the SecurityAccess delay, a scheduled ECUReset)
and the long operations: a hook that cannot finish within P2server returns a
function step(now); handle() then answers NRC 0x78 responsePending and poll() calls
step(now) until it returns something other than PENDING, and returns the final
response (positive even with the suppress bit, as ISO 14229-1 A.1 requires) or a
negative one. While an operation is pending, poll() repeats 0x78 every
PENDING_REPEAT_US and pending() is True; new physical requests get 0x21
busyRepeatRequest, functional ones no answer.

Negative responses follow the order of ISO 14229-1 figures 5 and 6 (general server
response behaviour): 0x11 service not supported -> 0x7F not in this session -> 0x33
service needs security -> (sub-function services) 0x13 shorter than 2 bytes -> 0x12
sub-function not supported -> 0x7E not in this session -> 0x33 -> 0x24 sequence ->
the service's own checks (0x13 length, 0x31 identifiers and values, 0x33 per
identifier, 0x22 conditions (the `allow` hook), 0x70..0x73 programming). Functional
requests get no response for 0x11, 0x12, 0x31, 0x7E, 0x7F.

Hooks (duck-typed; any of them may raise UdsError(nrc) to answer with that NRC):
- live: {name: callable() -> value}, the live values of LIVE_DIDS (engineering units);
- config: get(path) / set(path, value) (ConfigAccess validates with controller.config);
- dtcs: a controller.diag.dtc.DtcMemory;
- update: capacity, begin(size), write(offset, data), finish() -> bool, optional abort();
- routines: {rid: object with start(option_bytes) / stop(..) / results(..) -> bytes or None};
- reset(kind): 0x01 hard, 0x03 soft; called from poll() RESET_DELAY_US after the response;
- allow(action) -> bool: "program", "reset", "write", "clear_dtc"; False gives 0x22;
- rng(n) -> n random bytes (default os.urandom);
- dids: {did: callable() -> bytes}, filled after construction by units with data of their
  own (controller/metering/diag.py).
docs/uds.md is the reference for the person at the workbench.
"""

import hashlib
import struct

from controller.diag import dtc as _dtc
from controller.clock import ticks_add, ticks_diff

# sessions (DiagnosticSessionControl sub-functions)
DEFAULT, PROGRAMMING, EXTENDED = 0x01, 0x02, 0x03
_DEF, _PRG, _EXT = 1 << DEFAULT, 1 << PROGRAMMING, 1 << EXTENDED
_ALL = _DEF | _PRG | _EXT

# negative response codes
GENERAL_REJECT = 0x10
SERVICE_NOT_SUPPORTED = 0x11
SUBFUNCTION_NOT_SUPPORTED = 0x12
INCORRECT_LENGTH = 0x13
RESPONSE_TOO_LONG = 0x14
BUSY_REPEAT_REQUEST = 0x21
CONDITIONS_NOT_CORRECT = 0x22
REQUEST_SEQUENCE_ERROR = 0x24
REQUEST_OUT_OF_RANGE = 0x31
SECURITY_ACCESS_DENIED = 0x33
INVALID_KEY = 0x35
EXCEEDED_ATTEMPTS = 0x36
TIME_DELAY_NOT_EXPIRED = 0x37
UPLOAD_DOWNLOAD_NOT_ACCEPTED = 0x70
TRANSFER_DATA_SUSPENDED = 0x71
GENERAL_PROGRAMMING_FAILURE = 0x72
WRONG_BLOCK_SEQUENCE_COUNTER = 0x73
RESPONSE_PENDING = 0x78
SUBFUNCTION_NOT_SUPPORTED_IN_SESSION = 0x7E
SERVICE_NOT_SUPPORTED_IN_SESSION = 0x7F
_FUNCTIONAL_SUPPRESSED = (0x11, 0x12, 0x31, 0x7E, 0x7F)

# timing
P2_MS = 50  # P2server_max
P2_STAR_MS = 5000  # P2*server_max (sent in units of 10 ms)
S3_US = 5000000  # S3server: back to the default session without requests
PENDING_REPEAT_US = 2000000  # repeat 0x78 well inside P2*
RESET_DELAY_US = 50000  # the ECUReset response leaves before the reset
# SecurityAccess
SECURITY_DELAY_US = 10000000  # after 3 invalid keys, and at power-up
MAX_ATTEMPTS = 3
SEED_LEN = 8
KEY_LEN = 8
LEVEL_EXTENDED = 0x01  # requestSeed 0x01 / sendKey 0x02, extended session
LEVEL_PROGRAMMING = 0x03  # requestSeed 0x03 / sendKey 0x04, programming session
# data transfer
MAX_BLOCK = 0x0402  # maxNumberOfBlockLength: SID + counter + 1024 data bytes
MAX_DIDS = 16  # data identifiers in one ReadDataByIdentifier request
MAX_RESPONSE = 4095  # ISO-TP (classic CAN) maximum message length
# routine identifiers (ISO 14229-1 annex F.1 for 0xFF00 / 0xFF01)
RID_ERASE_MEMORY = 0xFF00
RID_CHECK_PROGRAMMING_DEPENDENCIES = 0xFF01
RID_SELF_TEST = 0x0200
RID_METER_RECORDS = 0x0210  # read metering interval records (controller/metering/diag.py)

PENDING = object()  # returned by a step(now) function while its work goes on


class UdsError(Exception):
    """Raised by a hook (or the server) to answer with negative response code `nrc`."""

    def __init__(self, nrc):
        super().__init__(nrc)
        self.nrc = nrc


# --------------------------------------------------------------- security algorithm
def hmac_sha256(key, msg):
    """HMAC-SHA256 (RFC 2104) on hashlib.sha256: MicroPython has no hmac module."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = bytes(key) + bytes(64 - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    inner.update(msg)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    return outer.digest()


def security_key(secret, seed, level):
    """The key a tester sends for `seed` at `level` (the requestSeed sub-function, 0x01 or 0x03):
    the first KEY_LEN bytes of HMAC-SHA256(secret, seed || level)."""
    return hmac_sha256(secret, bytes(seed) + bytes((level,)))[:KEY_LEN]


def _same(a, b):
    """Constant-time comparison of two byte strings."""
    if len(a) != len(b):
        return False
    d = 0
    for i in range(len(a)):
        d |= a[i] ^ b[i]
    return d == 0


# --------------------------------------------------------------- data identifiers
IDENTITY_DIDS = {  # DID -> (identity key, fixed length); ASCII, right-padded with spaces
    0xF18C: ("serial", 16),  # ECUSerialNumberDataIdentifier
    0xF195: ("sw_version", 16),  # SystemSupplierECUSoftwareVersionNumberDataIdentifier
    0xF197: ("system_name", 16),  # SystemNameOrEngineTypeDataIdentifier
}

# live values: DID -> (name in the `live` dict, struct format, scale per field)
LIVE_DIDS = {
    0xD000: ("grid_state", "B", (1,)),  # controller.control.backup state: 0 grid .. 5 closing
    0xD001: ("operating_mode", "B", (1,)),  # GW_Status.OperatingMode: 0 idle .. 5 safe_state
    0xD002: ("active_limits", "Biii", (1, 1, 1, 1)),  # limiting factor, min W, max W, command W
    0xD003: ("soc", "H", (10,)),  # EV state of charge, 0.1 %
    0xD004: ("grid_voltage", "H", (10,)),  # 0.1 V
    0xD005: ("grid_frequency", "H", (100,)),  # 0.01 Hz
    0xD006: ("grid_power", "i", (1,)),  # W, import positive
    0xD007: ("inverter_power", "i", (1,)),  # W AC, charging the EV positive
    0xD008: ("input_timeouts", "B", (1,)),  # bit 0 meter, 1 inverter, 2 relay, 3 EV
    0xD009: ("frames_refused", "I", (1,)),  # count since power-up
    0xD00A: ("operating_time", "I", (1,)),  # s since power-up
}

# configuration: DID -> (path, struct format letter, scale or choices, raw value meaning null)
CONFIG_DIDS = {
    0xD100: ("site.main_fuse_a", "H", 10, None),
    0xD101: ("site.export_limit_kw", "H", 10, 0xFFFF),
    0xD102: ("site.grid_code", "B", ("EN50549-1", "IEEE1547-2018-CatII", "IEEE1547-2018-CatIII",
                                     "DK-EN50549-1"), None),
    0xD103: ("site.nominal_voltage_v", "H", 10, None),
    0xD104: ("site.nominal_frequency_hz", "H", 100, None),
    0xD105: ("site.phases", "B", 1, None),
    0xD106: ("inverter.rating_kva", "H", 10, None),
    0xD107: ("limits.ramp_up_kw_per_s", "I", 1000, 0xFFFFFFFF),
    0xD108: ("backup.enabled", "B", (False, True), None),
    0xD109: ("anti_islanding.active_method", "B", ("off", "sfs"), None),
    0xD10A: ("mode.kind", "B", ("idle", "charge", "v2h", "v2g"), None),
    0xD10B: ("mode.setpoint_kw", "i", 1000, None),
}
_SIZE = {"B": 1, "H": 2, "h": 2, "I": 4, "i": 4}


def encode_config(did, value):
    path, fmt, scale, null = CONFIG_DIDS[did]
    if value is None:
        return struct.pack(">" + fmt, null)
    if isinstance(scale, tuple):
        return struct.pack(">" + fmt, scale.index(value))
    lo, hi, _na = _dtc._RANGE[fmt]
    r = int(round(value * scale))
    return struct.pack(">" + fmt, lo if r < lo else hi if r > hi else r)


def decode_config(did, data):
    """The configuration value written to `did`; UdsError(0x31) for a raw value without meaning."""
    path, fmt, scale, null = CONFIG_DIDS[did]
    raw = struct.unpack(">" + fmt, data)[0]
    if null is not None and raw == null:
        return None
    if isinstance(scale, tuple):
        if raw >= len(scale):
            raise UdsError(REQUEST_OUT_OF_RANGE)
        return scale[raw]
    if scale == 1:
        return raw
    return raw / scale


class ConfigAccess:
    """The `config` hook on a controller.config dictionary: writes are validated with
    config.validate (the configuration file's own rules) and handed to
    store.save(overrides) to persist before they are accepted; `overrides` is every key
    written over UDS so far, {section: {key: value}} (storage.ConfigStore keeps them).
    They take effect at the next ECUReset: controller.main puts the stored overrides on
    top of the configuration file at start. `overrides` given here are the ones in
    force (loaded at start), so that a new write keeps them."""

    __slots__ = ("cfg", "store", "overrides")

    def __init__(self, cfg, store=None, overrides=None):
        self.cfg = cfg
        self.store = store
        self.overrides = overrides if overrides is not None else {}

    def get(self, path):
        sec, key = path.split(".")
        return self.cfg[sec][key]

    def set(self, path, value):
        from controller.config import validate

        sec, key = path.split(".")
        new = validate({sec: {key: value}}, self.cfg)  # ConfigError (a ValueError) -> 0x31
        ov = {}
        for s in self.overrides:
            ov[s] = dict(self.overrides[s])
        if sec not in ov:
            ov[sec] = {}
        ov[sec][key] = new[sec][key]  # as validated (a whole number stays an int)
        if self.store is not None:
            try:
                self.store.save(ov)
            except UdsError:
                raise
            except Exception:
                raise UdsError(GENERAL_PROGRAMMING_FAILURE)
        self.cfg = new
        self.overrides = ov


def gateway_live(gw, uptime_s=None):
    """The `live` hook dict for a controller.control.gateway.Gateway (duck-typed).

    uptime_s: callable() -> operating seconds (e.g. DtcMemory's up_s); without it
    the operating-time DID is not supported.
    """
    from controller import events

    def fresh(grp, values, name):
        return None if gw.timed_out[grp] else values.get(name)

    def timeouts():
        b = 0
        for i, grp in ((0, events.IN_METER), (1, events.IN_INVERTER), (2, events.IN_RELAY), (3, events.IN_EV)):
            if gw.timed_out[grp]:
                b |= 1 << i
        return b

    live = {
        "grid_state": lambda: gw.backup.state,
        "operating_mode": lambda: events.SAFE if gw.safe else gw.mode,
        "active_limits": lambda: (gw.limiting, gw.arbiter.lo_w, gw.arbiter.hi_w, gw.p_cmd),
        "soc": lambda: fresh(events.IN_EV, gw.ev_status.values, "Soc"),
        "grid_voltage": lambda: fresh(events.IN_METER, gw.mtr_grid.values, "GridVoltage"),
        "grid_frequency": lambda: fresh(events.IN_METER, gw.mtr_grid.values, "GridFrequency"),
        "grid_power": lambda: fresh(events.IN_METER, gw.mtr_power.values, "ActivePower"),
        "inverter_power": lambda: None if gw.timed_out[events.IN_INVERTER] else gw.p_ac_avg.value,
        "input_timeouts": timeouts,
        "frames_refused": lambda: gw.refused_total,
    }
    if uptime_s is not None:
        live["operating_time"] = uptime_s
    return live


def _stepped(gen, then):
    """A step(now) over a generator of bounded work (controller.steps): one piece per
    poll, PENDING until the generator returns, then then(its value). handle() answers
    0x78 at once; the flash erase or signature check then runs a sector or a slice at a
    time between control periods instead of stalling them."""

    def step(now):
        try:
            next(gen)
        except StopIteration as e:
            return then(e.value)
        return PENDING

    return step


class UpdaterHooks:
    """The `update` hook and the erase / check routines on a controller.update.slots.Updater
    (its UDS contract: begin/write/erase -> bool with .reason; finish/check -> (ok, reason)).

    RequestDownload: begin() refused for its size -> 0x70, otherwise -> 0x22; a write
    refused -> 0x72; RequestTransferExit: the image verification runs after a 0x78
    and a refused image -> 0x72. Routines: 0xFF00 erases the download slot (after a
    0x78; refused -> 0x22), 0xFF01 verifies it: status record 0x00 valid, 0x01 not.
    `reason` keeps the Updater's last reason for the workbench.
    """

    __slots__ = ("u", "reason")

    def __init__(self, updater):
        self.u = updater
        self.reason = ""

    @property
    def capacity(self):
        return self.u.slots[self.u.target_slot()].size

    def begin(self, size):
        if not self.u.begin(size):
            self.reason = self.u.reason
            raise UdsError(UPLOAD_DOWNLOAD_NOT_ACCEPTED if self.reason == "size" else CONDITIONS_NOT_CORRECT)

    def write(self, offset, data):
        if not self.u.write(offset, data):
            self.reason = self.u.reason
            raise UdsError(GENERAL_PROGRAMMING_FAILURE)

    def finish(self):
        def verdict(r):
            ok, self.reason = r
            return ok

        return _stepped(self.u.finish_steps(), verdict)

    def routines(self):
        return {RID_ERASE_MEMORY: _EraseRoutine(self), RID_CHECK_PROGRAMMING_DEPENDENCIES: _CheckRoutine(self)}


class _EraseRoutine:
    __slots__ = ("h",)

    def __init__(self, hooks):
        self.h = hooks

    def start(self, option):
        h = self.h

        def verdict(ok):
            if not ok:
                h.reason = h.u.reason
                raise UdsError(CONDITIONS_NOT_CORRECT)
            return b"\x00"

        return _stepped(h.u.erase_steps(), verdict)


class _CheckRoutine:
    __slots__ = ("h",)

    def __init__(self, hooks):
        self.h = hooks

    def start(self, option):
        h = self.h

        def verdict(r):
            ok, h.reason = r
            return b"\x00" if ok else b"\x01"

        return _stepped(h.u.check_steps(), verdict)


# --------------------------------------------------------------- service table
# SID -> (method, sessions, security level, sub-functions {sf: (sessions, level)} or None,
#         suppressPosRspMsgIndicationBit honoured)
_SERVICES = {
    0x10: ("_session", _ALL, 0, {DEFAULT: (_ALL, 0), PROGRAMMING: (_EXT | _PRG, 0),
                                 EXTENDED: (_DEF | _EXT, 0)}, True),
    0x11: ("_ecu_reset", _ALL, 0, {0x01: (_ALL, 0), 0x03: (_EXT | _PRG, 0)}, True),
    0x27: ("_security", _EXT | _PRG, 0, {0x01: (_EXT, 0), 0x02: (_EXT, 0), 0x03: (_PRG, 0), 0x04: (_PRG, 0)},
           True),
    0x3E: ("_tester_present", _ALL, 0, {0x00: (_ALL, 0)}, True),
    0x22: ("_read_dids", _ALL, 0, None, False),
    0x2E: ("_write_did", _ALL, 0, None, False),
    0x19: ("_read_dtcs", _DEF | _EXT, 0, {0x01: (_DEF | _EXT, 0), 0x02: (_DEF | _EXT, 0), 0x04: (_DEF | _EXT, 0),
                                          0x0A: (_DEF | _EXT, 0)}, False),
    0x14: ("_clear_dtcs", _DEF | _EXT, 0, None, False),
    0x31: ("_routine", _EXT | _PRG, 0, {0x01: (_EXT | _PRG, 0), 0x02: (_EXT | _PRG, 0), 0x03: (_EXT | _PRG, 0)},
           True),
    0x34: ("_request_download", _PRG, LEVEL_PROGRAMMING, None, False),
    0x36: ("_transfer_data", _PRG, LEVEL_PROGRAMMING, None, False),
    0x37: ("_transfer_exit", _PRG, LEVEL_PROGRAMMING, None, False),
}
_PROGRAMMING_SIDS = (0x34, 0x36, 0x37)
# routine -> (sessions, security level)
ROUTINES = {
    RID_ERASE_MEMORY: (_PRG, LEVEL_PROGRAMMING),
    RID_CHECK_PROGRAMMING_DEPENDENCIES: (_PRG, LEVEL_PROGRAMMING),
    RID_SELF_TEST: (_EXT | _PRG, 0),
    RID_METER_RECORDS: (_EXT, 0),
}
_ROUTINE_METHODS = ("start", "stop", "results")


def _neg(sid, nrc):
    return bytes((0x7F, sid, nrc))


class _Download:
    __slots__ = ("size", "received", "counter", "blocks")

    def __init__(self, size):
        self.size = size
        self.received = 0
        self.counter = 0  # last accepted blockSequenceCounter
        self.blocks = 0


class UdsServer:
    __slots__ = ("identity", "secret", "live", "config", "dtcs", "update", "routines", "reset", "allow", "rng",
                 "max_response", "dids", "session", "level", "attempts", "_seed", "_seed_level", "_delay_until",
                 "_s3_start", "_dl", "_ran", "_busy", "_busy_at", "_reset", "requests", "faults")

    def __init__(self, identity, secret, now=0, live=None, config=None, dtcs=None, update=None, routines=None,
                 reset=None, allow=None, rng=None, max_response=MAX_RESPONSE):
        if not isinstance(secret, (bytes, bytearray)) or len(secret) < 16:
            raise ValueError("secret: at least 16 bytes")
        self.identity = {}
        for did in IDENTITY_DIDS:
            key, n = IDENTITY_DIDS[did]
            v = identity.get(key, "")
            if isinstance(v, str):
                v = v.encode()
            if len(v) > n:
                raise ValueError("identity %s: at most %d bytes" % (key, n))
            self.identity[did] = bytes(v) + b" " * (n - len(v))
        self.secret = bytes(secret)
        self.live = live or {}
        self.config = config
        self.dtcs = dtcs
        self.update = update
        self.routines = routines or {}
        self.reset = reset
        self.allow = allow
        if rng is None:
            import os

            rng = getattr(os, "urandom", None)
            if rng is None:
                raise ValueError("rng: this port has no os.urandom, pass a random source")
        self.rng = rng
        self.max_response = max_response
        self.dids = {}  # {did: callable() -> bytes}: read-only identifiers of attached units (metering)
        self.session = DEFAULT
        self.level = 0  # unlocked security level, 0 = locked
        self.attempts = 0
        self._seed = None
        self._seed_level = 0
        self._delay_until = ticks_add(now, SECURITY_DELAY_US)  # the delay also runs at power-up
        self._s3_start = now
        self._dl = None
        self._ran = []
        self._busy = None  # (sid, step, done) of a pending operation
        self._busy_at = 0
        self._reset = None  # (kind, at) of a scheduled ECUReset
        self.requests = 0
        self.faults = 0  # unexpected exceptions from hooks (answered 0x10 / 0x72)

    # ------------------------------------------------------------ entry points
    def handle(self, request, now, functional=False):
        """One request -> the response bytes, or None when no response may be sent."""
        if not request:
            return None
        self.requests += 1
        self._s3_start = now
        sid = request[0]
        if self._busy is not None:
            return None if functional else _neg(sid, BUSY_REPEAT_REQUEST)
        suppress = False
        try:
            svc = _SERVICES.get(sid)
            if svc is None or not self._available(sid):
                raise UdsError(SERVICE_NOT_SUPPORTED)
            name, sessions, level, subs, spr = svc
            if not sessions & (1 << self.session):
                raise UdsError(SERVICE_NOT_SUPPORTED_IN_SESSION)
            if level and self.level != level:
                raise UdsError(SECURITY_ACCESS_DENIED)
            sf = None
            if subs is not None:
                if len(request) < 2:
                    raise UdsError(INCORRECT_LENGTH)
                sf = request[1]
                if spr:
                    suppress = bool(sf & 0x80)
                    sf &= 0x7F
                rule = subs.get(sf)
                if rule is None:
                    raise UdsError(SUBFUNCTION_NOT_SUPPORTED)
                if not rule[0] & (1 << self.session):
                    raise UdsError(SUBFUNCTION_NOT_SUPPORTED_IN_SESSION)
                if rule[1] and self.level != rule[1]:
                    raise UdsError(SECURITY_ACCESS_DENIED)
            rsp = getattr(self, name)(request, sf, now)
        except UdsError as e:
            rsp = _neg(sid, e.nrc)
        except Exception:  # a hook failed unexpectedly: answer, never raise into the transport
            self.faults += 1
            rsp = _neg(sid, GENERAL_PROGRAMMING_FAILURE if sid in _PROGRAMMING_SIDS else GENERAL_REJECT)
        if rsp[0] == 0x7F:
            if functional and rsp[2] in _FUNCTIONAL_SUPPRESSED:
                return None
            return rsp
        if len(rsp) > self.max_response:
            return _neg(sid, RESPONSE_TOO_LONG)
        return None if suppress else rsp

    def poll(self, now):
        """Timers and pending work; returns a response to send now, or None."""
        out = None
        if self._busy is not None:
            self._s3_start = now  # the server is busy for the tester: no session timeout
            sid, step, done = self._busy
            try:
                r = step(now)
                if r is PENDING:
                    if ticks_diff(now, self._busy_at) >= PENDING_REPEAT_US:
                        self._busy_at = now
                        out = _neg(sid, RESPONSE_PENDING)
                else:
                    self._busy = None
                    out = done(r)
            except UdsError as e:
                self._busy = None
                out = _neg(sid, e.nrc)
            except Exception:
                self._busy = None
                self.faults += 1
                out = _neg(sid, GENERAL_PROGRAMMING_FAILURE if sid in _PROGRAMMING_SIDS else GENERAL_REJECT)
        if self._reset is not None and ticks_diff(now, self._reset[1]) >= 0:
            kind = self._reset[0]
            self._reset = None
            self._enter(DEFAULT, now)
            try:
                self.reset(kind)
            except Exception:  # on a board reset() does not return; elsewhere it must not break poll()
                self.faults += 1
        if self.session != DEFAULT and ticks_diff(now, self._s3_start) >= S3_US:
            self._enter(DEFAULT, now)
        if self._delay_until is not None and ticks_diff(now, self._delay_until) >= 0:
            self._delay_until = None
        return out

    def pending(self):
        """True while a long operation runs (its final response will come from poll())."""
        return self._busy is not None

    def downloading(self):
        """(size, received) of the active download, or None."""
        dl = self._dl
        return None if dl is None else (dl.size, dl.received)

    # ------------------------------------------------------------ helpers
    def _available(self, sid):
        if sid == 0x11:
            return self.reset is not None
        if sid == 0x19 or sid == 0x14:
            return self.dtcs is not None
        if sid in _PROGRAMMING_SIDS:
            return self.update is not None
        return True

    def _allowed(self, action):
        if self.allow is not None and not self.allow(action):
            raise UdsError(CONDITIONS_NOT_CORRECT)

    def _later(self, sid, result, done, now):
        """done(result) now, or 0x78 and done(final result) from poll() when result is a step function."""
        if callable(result):
            self._busy = (sid, result, done)
            self._busy_at = now
            return _neg(sid, RESPONSE_PENDING)
        return done(result)

    def _enter(self, session, now):
        """Session transition: security relocks, a download or routine sequence is abandoned."""
        self.session = session
        self.level = 0
        self._seed = None
        self._ran = []
        self._s3_start = now
        self._abort_download()

    def _abort_download(self):
        if self._dl is not None:
            self._dl = None
            abort = getattr(self.update, "abort", None)
            if abort is not None:
                try:
                    abort()
                except Exception:
                    self.faults += 1

    # ------------------------------------------------------------ 0x10 0x11 0x3E
    def _session(self, req, sf, now):
        if len(req) != 2:
            raise UdsError(INCORRECT_LENGTH)
        if sf == PROGRAMMING:
            self._allowed("program")
        self._enter(sf, now)
        return bytes((0x50, sf, P2_MS >> 8, P2_MS & 0xFF, (P2_STAR_MS // 10) >> 8, (P2_STAR_MS // 10) & 0xFF))

    def _ecu_reset(self, req, sf, now):
        if len(req) != 2:
            raise UdsError(INCORRECT_LENGTH)
        self._allowed("reset")
        self._reset = (sf, ticks_add(now, RESET_DELAY_US))
        return bytes((0x51, sf))

    def _tester_present(self, req, sf, now):
        if len(req) != 2:
            raise UdsError(INCORRECT_LENGTH)
        return b"\x7e\x00"

    # ------------------------------------------------------------ 0x27
    def _security(self, req, sf, now):
        if sf & 1:  # requestSeed (securityAccessDataRecord, if any, is ignored)
            if self._delay_until is not None and ticks_diff(now, self._delay_until) < 0:
                raise UdsError(TIME_DELAY_NOT_EXPIRED)
            if self.level == sf:
                return bytes((0x67, sf)) + bytes(SEED_LEN)  # already unlocked: seed of zeros
            seed = bytes(self.rng(SEED_LEN))
            if len(seed) != SEED_LEN:
                raise UdsError(CONDITIONS_NOT_CORRECT)
            if seed == bytes(SEED_LEN):
                seed = seed[:-1] + b"\x01"  # all zeros means "unlocked": never send it as a seed
            self._seed = seed
            self._seed_level = sf
            return bytes((0x67, sf)) + seed
        level = sf - 1  # sendKey
        if self._seed is None or self._seed_level != level:
            raise UdsError(REQUEST_SEQUENCE_ERROR)
        if len(req) != 2 + KEY_LEN:
            raise UdsError(INCORRECT_LENGTH)
        seed = self._seed
        self._seed = None  # one key per seed
        if not _same(req[2:], security_key(self.secret, seed, level)):
            self.attempts += 1
            if self.attempts >= MAX_ATTEMPTS:
                self.attempts = 0
                self._delay_until = ticks_add(now, SECURITY_DELAY_US)
                raise UdsError(EXCEEDED_ATTEMPTS)
            raise UdsError(INVALID_KEY)
        self.attempts = 0
        self.level = level
        return bytes((0x67, sf))

    # ------------------------------------------------------------ 0x22 0x2E
    def _read_did(self, did):
        v = self.identity.get(did)
        if v is not None:
            return v
        spec = LIVE_DIDS.get(did)
        if spec is not None:
            fn = self.live.get(spec[0])
            if fn is None:
                return None
            try:
                value = fn()
            except UdsError:
                raise
            except Exception:
                self.faults += 1
                value = None
            if len(spec[1]) == 1:
                value = (value,)
            elif value is None:
                value = (None,) * len(spec[1])
            return _dtc.pack_scaled(spec[1], spec[2], value)
        if did in CONFIG_DIDS and self.config is not None:
            return encode_config(did, self.config.get(CONFIG_DIDS[did][0]))
        fn = self.dids.get(did)
        if fn is not None:
            return fn()
        return None

    def _read_dids(self, req, sf, now):
        n = len(req)
        if n < 3 or (n - 1) % 2 or (n - 1) // 2 > MAX_DIDS:
            raise UdsError(INCORRECT_LENGTH)
        out = bytearray(b"\x62")
        found = False
        for i in range(1, n, 2):
            did = (req[i] << 8) | req[i + 1]
            data = self._read_did(did)
            if data is None:
                continue  # unsupported identifiers are left out; 0x31 only when none is supported
            found = True
            out.append(req[i])
            out.append(req[i + 1])
            out += data
            if len(out) > self.max_response:
                raise UdsError(RESPONSE_TOO_LONG)
        if not found:
            raise UdsError(REQUEST_OUT_OF_RANGE)
        return bytes(out)

    def _write_did(self, req, sf, now):
        n = len(req)
        if n < 4:
            raise UdsError(INCORRECT_LENGTH)
        did = (req[1] << 8) | req[2]
        spec = CONFIG_DIDS.get(did)
        if spec is None or self.config is None or self.session != EXTENDED:
            raise UdsError(REQUEST_OUT_OF_RANGE)  # not writable (in this session)
        if self.level != LEVEL_EXTENDED:
            raise UdsError(SECURITY_ACCESS_DENIED)
        if n - 3 != _SIZE[spec[1]]:
            raise UdsError(INCORRECT_LENGTH)
        self._allowed("write")
        value = decode_config(did, bytes(req[3:]))
        try:
            self.config.set(spec[0], value)
        except UdsError:
            raise
        except ValueError:  # controller.config.ConfigError: the value breaks a rule
            raise UdsError(REQUEST_OUT_OF_RANGE)
        return bytes((0x6E, req[1], req[2]))

    # ------------------------------------------------------------ 0x19 0x14
    def _read_dtcs(self, req, sf, now):
        mem = self.dtcs
        n = len(req)
        if sf == 0x01 or sf == 0x02:
            if n != 3:
                raise UdsError(INCORRECT_LENGTH)
            found = mem.by_mask(req[2])
            if sf == 0x01:
                c = len(found)
                return bytes((0x59, 0x01, _dtc.AVAILABILITY_MASK, _dtc.FORMAT, (c >> 8) & 0xFF, c & 0xFF))
            return self._dtc_list(0x02, found)
        if sf == 0x0A:
            if n != 2:
                raise UdsError(INCORRECT_LENGTH)
            return self._dtc_list(0x0A, mem.supported())
        # 0x04 reportDTCSnapshotRecordByDTCNumber
        if n != 6:
            raise UdsError(INCORRECT_LENGTH)
        code = (req[2] << 16) | (req[3] << 8) | req[4]
        rec = req[5]
        if code not in _dtc.DTCS or not (rec == 0xFF or rec == 0x01 or rec == 0x02):
            raise UdsError(REQUEST_OUT_OF_RANGE)
        out = bytearray((0x59, 0x04, req[2], req[3], req[4], mem.status(code) & _dtc.AVAILABILITY_MASK))
        for number, data in mem.snapshots(code):
            if rec == 0xFF or rec == number:
                out.append(number)
                out.append(1)  # DTCSnapshotRecordNumberOfIdentifiers
                out.append(_dtc.SNAPSHOT_DID >> 8)
                out.append(_dtc.SNAPSHOT_DID & 0xFF)
                out += data
        return bytes(out)

    def _dtc_list(self, sf, items):
        out = bytearray((0x59, sf, _dtc.AVAILABILITY_MASK))
        for code, status in items:
            out.append((code >> 16) & 0xFF)
            out.append((code >> 8) & 0xFF)
            out.append(code & 0xFF)
            out.append(status)
            if len(out) > self.max_response:
                raise UdsError(RESPONSE_TOO_LONG)
        return bytes(out)

    def _clear_dtcs(self, req, sf, now):
        if len(req) != 4:
            raise UdsError(INCORRECT_LENGTH)
        group = (req[1] << 16) | (req[2] << 8) | req[3]
        if group != _dtc.GROUP_ALL and group not in _dtc.DTCS:
            raise UdsError(REQUEST_OUT_OF_RANGE)
        self._allowed("clear_dtc")
        try:
            self.dtcs.clear(group)
        except Exception:
            raise UdsError(GENERAL_PROGRAMMING_FAILURE)
        return b"\x54"

    # ------------------------------------------------------------ 0x31
    def _routine(self, req, sf, now):
        if len(req) < 4:
            raise UdsError(INCORRECT_LENGTH)
        rid = (req[2] << 8) | req[3]
        rule = ROUTINES.get(rid)
        hook = self.routines.get(rid)
        if rule is None or hook is None or not rule[0] & (1 << self.session):
            raise UdsError(REQUEST_OUT_OF_RANGE)
        if rule[1] and self.level != rule[1]:
            raise UdsError(SECURITY_ACCESS_DENIED)
        fn = getattr(hook, _ROUTINE_METHODS[sf - 1], None)
        if fn is None:
            raise UdsError(SUBFUNCTION_NOT_SUPPORTED)
        if sf != 0x01 and rid not in self._ran:
            raise UdsError(REQUEST_SEQUENCE_ERROR)  # stop / results before start
        head = bytes((0x71, sf, req[2], req[3]))

        def done(record):
            if sf == 0x01 and rid not in self._ran:
                self._ran.append(rid)
            return head if record is None else head + bytes(record)

        return self._later(0x31, fn(bytes(req[4:])), done, now)

    # ------------------------------------------------------------ 0x34 0x36 0x37
    def _request_download(self, req, sf, now):
        n = len(req)
        if n < 5:
            raise UdsError(INCORRECT_LENGTH)
        dfi = req[1]
        alfid = req[2]
        alen = alfid & 0x0F
        slen = alfid >> 4
        if dfi != 0x00 or not (1 <= alen <= 4) or not (1 <= slen <= 4):
            raise UdsError(REQUEST_OUT_OF_RANGE)  # compression/encryption or a format we do not take
        if n != 3 + alen + slen:
            raise UdsError(INCORRECT_LENGTH)
        self._allowed("program")
        if self._dl is not None:
            raise UdsError(CONDITIONS_NOT_CORRECT)  # a download is already active
        addr = 0
        for i in range(3, 3 + alen):
            addr = (addr << 8) | req[i]
        size = 0
        for i in range(3 + alen, n):
            size = (size << 8) | req[i]
        if addr != 0 or size == 0:
            raise UdsError(REQUEST_OUT_OF_RANGE)  # the address is the offset in the update slot
        if size > self.update.capacity:
            raise UdsError(UPLOAD_DOWNLOAD_NOT_ACCEPTED)

        def done(_r):
            self._dl = _Download(size)
            return bytes((0x74, 0x20, MAX_BLOCK >> 8, MAX_BLOCK & 0xFF))

        return self._later(0x34, self.update.begin(size), done, now)

    def _transfer_data(self, req, sf, now):
        n = len(req)
        if n < 2:
            raise UdsError(INCORRECT_LENGTH)
        dl = self._dl
        if dl is None:
            raise UdsError(REQUEST_SEQUENCE_ERROR)
        ctr = req[1]
        if n > MAX_BLOCK:
            raise UdsError(INCORRECT_LENGTH)
        if dl.blocks and ctr == dl.counter:
            return bytes((0x76, ctr))  # the tester repeated the last block: acknowledge, do not write again
        if ctr != (dl.counter + 1) & 0xFF:
            raise UdsError(WRONG_BLOCK_SEQUENCE_COUNTER)
        if n == 2:
            raise UdsError(INCORRECT_LENGTH)
        data = bytes(req[2:])
        if dl.received + len(data) > dl.size:
            self._abort_download()
            raise UdsError(TRANSFER_DATA_SUSPENDED)  # more than RequestDownload announced
        offset = dl.received

        def done(_r):
            dl.received = offset + len(data)
            dl.counter = ctr
            dl.blocks += 1
            return bytes((0x76, ctr))

        try:
            r = self.update.write(offset, data)
        except UdsError:
            self._abort_download()
            raise
        except Exception:
            self.faults += 1
            self._abort_download()
            raise UdsError(GENERAL_PROGRAMMING_FAILURE)
        return self._later(0x36, r, done, now)

    def _transfer_exit(self, req, sf, now):
        dl = self._dl
        if dl is None or dl.received != dl.size:
            raise UdsError(REQUEST_SEQUENCE_ERROR)  # no download, or not all data transferred

        def done(ok):
            self._dl = None
            if not ok:
                raise UdsError(GENERAL_PROGRAMMING_FAILURE)
            return b"\x77"

        try:
            r = self.update.finish()
        except UdsError:
            self._dl = None
            raise
        except Exception:
            self.faults += 1
            self._dl = None
            raise UdsError(GENERAL_PROGRAMMING_FAILURE)
        return self._later(0x37, r, done, now)
