"""Fault memory: diagnostic trouble codes with ISO 14229-1 status bits and snapshot data.

    mem = DtcMemory()                      # or DtcMemory.from_bytes(stored) after power-up
    mem.new_operation_cycle()              # once per power-up (after loading)
    mem.tick(now)                          # every control period: operating time
    mem.record(TRIP_UNDERVOLTAGE, (229.8, 50.01, 63.5, 1200, -3400), now)
    mem.passed(COMM_METER)                 # the monitor saw the input healthy again
    if mem.changed: store(mem.to_bytes()); mem.changed = False

DTCs are 3 bytes: a two-byte SAE J2012 style code (P/C/B/U + four digits) and a
failure-type byte (FTB), reported with DTCFormatIdentifier 0x00
(SAE_J2012-DA_DTCFormat_00). The base codes are manufacturer-specific (P1Axx, U11xx);
the FTBs follow the SAE J2012-DA categories where one fits (0x16/0x17 voltage
below/above threshold, 0x19 current above threshold, 0x4B over temperature,
0x64 signal plausibility failure, 0x81 invalid serial data, 0x82 alive/sequence
counter, 0x83 signal protection calculation (CRC), 0x87 missing message) and 0x00
otherwise. docs/uds.md lists every code.

Status bits (ISO 14229-1 annex D): testFailed, testFailedThisOperationCycle,
pendingDTC, confirmedDTC and testFailedSinceLastClear are supported (availability
mask 0x2F). Every monitor of the gateway runs continuously from power-up, so the two
"test not completed" bits are never set (not supported), and a DTC that is not in
memory has status 0x00. A DTC is confirmed at its first failure: the monitors that
report here (protection stages, receive timeouts, island detection) are debounced by
their own clearing and confirmation times already.

- record(): sets TF, TFTOC, PDTC, CDTC and TFSLC; counts the occurrence (saturating at
  255); keeps snapshot record 0x01 (first occurrence) and 0x02 (most recent one).
- passed(): clears TF.
- new_operation_cycle(): an entry that did not fail in the ending cycle loses PDTC and
  ages by one; after AGING_CYCLES fault-free cycles it is removed (self-healing). TF and
  TFTOC are cleared: event-type monitors start each cycle unfailed.
- clear(0xFFFFFF) removes every entry; clear(code) removes one.

Capacity and replacement: at most `capacity` entries (default 20). When a new DTC
finds the memory full, the victim is the entry with the smallest
(testFailed, priority, last occurrence): inactive before active, low priority before
high (PRIO_FRAME < PRIO_COMM < PRIO_SAFETY), oldest first. If even that victim is
active and of higher priority than the newcomer, the newcomer is dropped instead
(counted in `dropped`); evictions are counted in `evicted`.

Persistence belongs to the storage layer: to_bytes() gives a self-checking image
(magic, version, SHA-256 truncated to 4 bytes), from_bytes() never raises: on any
damage it returns an empty memory with `corrupt` = 1.
"""

import hashlib
import struct

from controller import events
from controller.clock import ticks_diff

# DTC status bits (ISO 14229-1 D.2)
TF = 0x01  # testFailed
TFTOC = 0x02  # testFailedThisOperationCycle
PDTC = 0x04  # pendingDTC
CDTC = 0x08  # confirmedDTC
TNCSLC = 0x10  # testNotCompletedSinceLastClear (not supported)
TFSLC = 0x20  # testFailedSinceLastClear
TNCTOC = 0x40  # testNotCompletedThisOperationCycle (not supported)
WIR = 0x80  # warningIndicatorRequested (not supported)
AVAILABILITY_MASK = TF | TFTOC | PDTC | CDTC | TFSLC  # 0x2F
_ON_FAIL = TF | TFTOC | PDTC | CDTC | TFSLC
FORMAT = 0x00  # DTCFormatIdentifier: SAE_J2012-DA_DTCFormat_00
GROUP_ALL = 0xFFFFFF

AGING_CYCLES = 40
CAPACITY = 20

PRIO_FRAME, PRIO_COMM, PRIO_SAFETY = 0, 1, 2

# --- the codes (hex digits read as the J2012 text: 0x1A1016 is P1A10-16) ---
# protection trips, one per reason family
TRIP_UNDERVOLTAGE = 0x1A1016  # P1A10-16 U< / U<< stage
TRIP_OVERVOLTAGE = 0x1A1017  # P1A10-17 U> / U>> stage or 10-minute mean
TRIP_UNDERFREQUENCY = 0x1A1100  # P1A11-00 f< stages
TRIP_OVERFREQUENCY = 0x1A1200  # P1A12-00 f> stages
TRIP_ROCOF = 0x1A1300  # P1A13-00 rate of change of frequency
TRIP_VECTOR_SHIFT = 0x1A1400  # P1A14-00 vector shift (phase jump)
TRIP_AC_LOSS = 0x1A1516  # P1A15-16 hard outage reported by the inverter
TRIP_ANTI_ISLANDING = 0x1A1600  # P1A16-00 active/passive island detection (SFS, frequency drift)
INV_OVERCURRENT = 0x1A2019  # P1A20-19 inverter overcurrent
INV_OVERTEMPERATURE = 0x1A214B  # P1A21-4B inverter over temperature
INV_DC_FAULT = 0x1A2200  # P1A22-00 inverter DC-side fault
INV_AC_GRID_FAULT = 0x1A2300  # P1A23-00 inverter reports an AC grid fault
INV_NOT_FOLLOWING = 0x1A2400  # P1A24-00 inverter does not take the commanded mode
INV_UNCOMMANDED = 0x1A2500  # P1A25-00 inverter runs although commanded off
INV_FAULT_STATE = 0x1A2600  # P1A26-00 inverter reports the state Fault without a cause
# islanding, backup, relay
ISLANDING_EVENT = 0x1A3000  # P1A30-00 the site separated from the grid (island or blackout)
BACKUP_OVERLOAD = 0x1A4000  # P1A40-00 backup island overloaded
RELAY_FAULT = 0x1A5000  # P1A50-00 grid relay did not follow its command
# communication losses (receive timeouts) and plausibility
COMM_METER = 0xD10087  # U1100-87 missing message: grid meter
COMM_INVERTER = 0xD10187  # U1101-87 missing message: inverter
COMM_RELAY = 0xD10287  # U1102-87 missing message: relay feedback
COMM_EV = 0xD10387  # U1103-87 missing message: EV (EVCC)
COMM_EMS = 0xD10587  # U1105-87 missing message: energy manager (its request expired)
INV_CMD_TIMEOUT = 0xD10687  # U1106-87 the inverter reports our command missing
IMPLAUSIBLE = 0xD10464  # U1104-64 meter and inverter disagree on the same bus
# frames refused by the end-to-end checks
FRAME_INVALID = 0xD11081  # U1110-81 invalid serial data (length or signal range)
FRAME_COUNTER = 0xD11082  # U1110-82 alive counter incorrect
FRAME_CRC = 0xD11083  # U1110-83 signal protection calculation (CRC) incorrect
INV_E2E = 0xD11183  # U1111-83 the inverter refuses our commands (CRC or alive counter)

# code -> (name, priority)
DTCS = {
    TRIP_UNDERVOLTAGE: ("trip_undervoltage", PRIO_SAFETY),
    TRIP_OVERVOLTAGE: ("trip_overvoltage", PRIO_SAFETY),
    TRIP_UNDERFREQUENCY: ("trip_underfrequency", PRIO_SAFETY),
    TRIP_OVERFREQUENCY: ("trip_overfrequency", PRIO_SAFETY),
    TRIP_ROCOF: ("trip_rocof", PRIO_SAFETY),
    TRIP_VECTOR_SHIFT: ("trip_vector_shift", PRIO_SAFETY),
    TRIP_AC_LOSS: ("trip_ac_loss", PRIO_SAFETY),
    TRIP_ANTI_ISLANDING: ("trip_anti_islanding", PRIO_SAFETY),
    INV_OVERCURRENT: ("inverter_overcurrent", PRIO_SAFETY),
    INV_OVERTEMPERATURE: ("inverter_overtemperature", PRIO_SAFETY),
    INV_DC_FAULT: ("inverter_dc_fault", PRIO_SAFETY),
    INV_AC_GRID_FAULT: ("inverter_ac_grid_fault", PRIO_SAFETY),
    INV_NOT_FOLLOWING: ("inverter_not_following", PRIO_SAFETY),
    INV_UNCOMMANDED: ("inverter_running_uncommanded", PRIO_SAFETY),
    INV_FAULT_STATE: ("inverter_fault_state", PRIO_SAFETY),
    ISLANDING_EVENT: ("islanding_event", PRIO_SAFETY),
    BACKUP_OVERLOAD: ("backup_overload", PRIO_SAFETY),
    RELAY_FAULT: ("relay_fault", PRIO_SAFETY),
    COMM_METER: ("comm_loss_meter", PRIO_COMM),
    COMM_INVERTER: ("comm_loss_inverter", PRIO_COMM),
    COMM_RELAY: ("comm_loss_relay", PRIO_COMM),
    COMM_EV: ("comm_loss_ev", PRIO_COMM),
    COMM_EMS: ("comm_loss_ems", PRIO_COMM),
    INV_CMD_TIMEOUT: ("inverter_command_timeout", PRIO_COMM),
    INV_E2E: ("inverter_refuses_commands", PRIO_COMM),
    IMPLAUSIBLE: ("meter_inverter_implausible", PRIO_COMM),
    FRAME_INVALID: ("frame_invalid", PRIO_FRAME),
    FRAME_COUNTER: ("frame_alive_counter", PRIO_FRAME),
    FRAME_CRC: ("frame_crc", PRIO_FRAME),
}
SUPPORTED = tuple(sorted(DTCS))

# trip reason (events.TRIP detail) -> DTC. 16..27 are interface_protection's reason codes
# (UNDERVOLTAGE_2 .. ISLANDING); the firmware tests hold the two tables together.
TRIP_DTC = {
    events.T_INV_OVERCURRENT: INV_OVERCURRENT,
    events.T_INV_OVERTEMP: INV_OVERTEMPERATURE,
    events.T_INV_DC: INV_DC_FAULT,
    events.T_INV_AC_GRID: INV_AC_GRID_FAULT,
    events.T_AC_LOSS: TRIP_AC_LOSS,
    events.T_FREQ_DRIFT: TRIP_ANTI_ISLANDING,
    events.T_INV_NOT_FOLLOWING: INV_NOT_FOLLOWING,
    events.T_INV_UNCOMMANDED: INV_UNCOMMANDED,
    events.T_INV_CMD_TIMEOUT: INV_CMD_TIMEOUT,
    events.T_INV_FAULT_STATE: INV_FAULT_STATE,
    events.T_INV_E2E: INV_E2E,
    16: TRIP_UNDERVOLTAGE, 17: TRIP_UNDERVOLTAGE,
    18: TRIP_OVERVOLTAGE, 19: TRIP_OVERVOLTAGE, 20: TRIP_OVERVOLTAGE,
    21: TRIP_UNDERFREQUENCY, 22: TRIP_UNDERFREQUENCY,
    23: TRIP_OVERFREQUENCY, 24: TRIP_OVERFREQUENCY,
    25: TRIP_ROCOF,
    26: TRIP_VECTOR_SHIFT,
    27: TRIP_ANTI_ISLANDING,
}
_INPUT_DTC = {events.IN_METER: COMM_METER, events.IN_INVERTER: COMM_INVERTER, events.IN_RELAY: COMM_RELAY,
              events.IN_EV: COMM_EV, events.IN_PLAUSIBILITY: IMPLAUSIBLE, events.IN_EMS: COMM_EMS}
_REFUSE_DTC = {events.R_CRC: FRAME_CRC, events.R_COUNTER: FRAME_COUNTER, events.R_LENGTH: FRAME_INVALID,
               events.R_RANGE: FRAME_INVALID}


def for_event(code, detail):
    """The fault-memory action for a controller event: (dtc, failed) or None.

    failed True means record(dtc, ...), False means passed(dtc). Events that are not
    faults (mode changes, relay operations...) and unknown details give None.
    """
    if code == events.TRIP:
        d = TRIP_DTC.get(detail)
        return None if d is None else (d, True)
    if code == events.ISLAND_DETECTED:
        return (ISLANDING_EVENT, True)
    if code == events.GRID_FOLLOWING:
        return (ISLANDING_EVENT, False)
    if code == events.INPUT_TIMEOUT or code == events.INPUT_RESTORED or code == events.IMPLAUSIBLE:
        d = _INPUT_DTC.get(detail)
        return None if d is None else (d, code != events.INPUT_RESTORED)
    if code == events.FRAME_REFUSED:
        d = _REFUSE_DTC.get(detail)
        return None if d is None else (d, True)
    if code == events.BACKUP_OVERLOAD:
        return (BACKUP_OVERLOAD, True)
    if code == events.RELAY_FAULT:
        return (RELAY_FAULT, True)
    return None


def text(code):
    """The J2012 text of a 3-byte DTC: 0x1A1016 -> 'P1A10-16'."""
    hi = (code >> 16) & 0xFF
    return "%s%d%X%02X-%02X" % ("PCBU"[hi >> 6], (hi >> 4) & 3, hi & 0xF, (code >> 8) & 0xFF, code & 0xFF)


# --- scaled integer fields (shared with the UDS data identifiers) ---
# per struct format letter: (min, max, not-available value); the NA value is never a
# legal measurement (clamping stops one short of it)
_RANGE = {
    "B": (0, 0xFE, 0xFF),
    "H": (0, 0xFFFE, 0xFFFF),
    "h": (-0x7FFF, 0x7FFF, -0x8000),
    "I": (0, 0xFFFFFFFE, 0xFFFFFFFF),
    "i": (-0x7FFFFFFF, 0x7FFFFFFF, -0x80000000),
}


def scaled(letter, scale, value):
    """Raw integer for a field: round(value * scale) clamped to the type; None -> not available."""
    lo, hi, na = _RANGE[letter]
    if value is None:
        return na
    try:
        x = value * scale
        if x != x:  # NaN
            return na
        r = int(round(x))
    except (TypeError, ValueError, OverflowError):
        return na
    return lo if r < lo else hi if r > hi else r


def pack_scaled(fmt, scales, values):
    """struct.pack('>' + fmt) of values, each scaled and clamped by scaled()."""
    raw = []
    for i in range(len(fmt)):
        raw.append(scaled(fmt[i], scales[i], values[i]))
    return struct.pack(">" + fmt, *raw)


# --- snapshot data (one data identifier in each snapshot record) ---
SNAPSHOT_DID = 0xD0F0
# operation cycle, seconds into it, grid voltage 0.1 V, grid frequency 0.01 Hz,
# EV state of charge 0.5 %, grid active power 10 W (import +), inverter AC power 10 W
SNAPSHOT_FMT = "HIHHBhh"
SNAPSHOT_SCALES = (1, 1, 10, 100, 2, 0.1, 0.1)
SNAPSHOT_LEN = 15
SNAPSHOT_FIELDS = ("operation_cycle", "time_s", "grid_voltage_v", "grid_frequency_hz", "soc_pct",
                   "grid_power_w", "inverter_power_w")


def encode_snapshot(cycle, time_s, values):
    """15 bytes of snapshot data; values = (grid_v, freq_hz, soc_pct, grid_w, inverter_w), None = n/a."""
    if values is None:
        values = (None, None, None, None, None)
    return pack_scaled(SNAPSHOT_FMT, SNAPSHOT_SCALES, (cycle, time_s) + tuple(values))


def decode_snapshot(data):
    """The engineering values of a snapshot: a tuple in SNAPSHOT_FIELDS order (None = n/a)."""
    raw = struct.unpack(">" + SNAPSHOT_FMT, data)
    out = []
    for i in range(len(raw)):
        if raw[i] == _RANGE[SNAPSHOT_FMT[i]][2]:
            out.append(None)
        elif SNAPSHOT_SCALES[i] == 1:
            out.append(raw[i])
        else:
            out.append(raw[i] / SNAPSHOT_SCALES[i])
    return tuple(out)


def gateway_snapshot(gw):
    """Snapshot values from a controller.control.gateway.Gateway (duck-typed; None where not received)."""
    m = gw.mtr_grid.values
    soc = None if gw.timed_out[events.IN_EV] else gw.ev_status.values.get("Soc")
    p_grid = None if gw.timed_out[events.IN_METER] else gw.mtr_power.values.get("ActivePower")
    p_inv = None if gw.timed_out[events.IN_INVERTER] else gw.p_ac_avg.value
    return (m.get("GridVoltage"), m.get("GridFrequency"), soc, p_grid, p_inv)


class _Entry:
    __slots__ = ("code", "status", "count", "aging", "seq", "first", "last")

    def __init__(self, code, status, count, aging, seq, first, last):
        self.code = code
        self.status = status
        self.count = count
        self.aging = aging
        self.seq = seq
        self.first = first
        self.last = last


_MAGIC = b"DTM"
_VERSION = 1
_HEAD = ">3sBHIB"  # magic, version, operation cycle, sequence, entry count
_HEAD_LEN = 11
_ENTRY = ">BHBBBI"  # code high byte, code low 16, status, count, aging, sequence
_ENTRY_LEN = 10 + 2 * SNAPSHOT_LEN
_CHECK_LEN = 4


class DtcMemory:
    __slots__ = ("capacity", "entries", "seq", "cycle", "up_s", "up_us", "_last", "changed", "corrupt",
                 "dropped", "evicted", "unknown")

    def __init__(self, capacity=CAPACITY):
        self.capacity = capacity
        self.entries = []
        self.seq = 0  # occurrence sequence: orders entries without wall-clock time
        self.cycle = 0  # operation cycle (power-up) counter, 16 bit
        self.up_s = 0  # operating time in this cycle
        self.up_us = 0
        self._last = None
        self.changed = False  # set by every change; the storage owner clears it after saving
        self.corrupt = 0
        self.dropped = 0
        self.evicted = 0
        self.unknown = 0

    # ------------------------------------------------------------ monitors
    def tick(self, now):
        """Advance the operating time (call at least every few minutes; wrap-safe ticks)."""
        last = self._last
        self._last = now
        if last is None:
            return
        d = ticks_diff(now, last)
        if d > 0:
            us = self.up_us + d
            if us >= 1000000:
                self.up_s += us // 1000000
                us %= 1000000
            self.up_us = us

    def record(self, code, snapshot=None, now=None):
        """A failed test of `code`; snapshot = (grid_v, freq_hz, soc_pct, grid_w, inverter_w). True if stored."""
        if now is not None:
            self.tick(now)
        prio = DTCS.get(code)
        if prio is None:
            self.unknown += 1
            return False
        prio = prio[1]
        snap = encode_snapshot(self.cycle, self.up_s, snapshot)
        e = self._find(code)
        if e is None:
            if len(self.entries) >= self.capacity:
                victim = self._victim()
                if victim is None or ((victim.status & TF), DTCS[victim.code][1]) > (TF, prio):
                    self.dropped += 1
                    return False
                self.entries.remove(victim)
                self.evicted += 1
            e = _Entry(code, 0, 0, 0, 0, snap, snap)
            self.entries.append(e)
        e.last = snap
        if e.count < 255:
            e.count += 1
        e.status |= _ON_FAIL
        e.aging = 0
        self.seq += 1
        e.seq = self.seq
        self.changed = True
        return True

    def passed(self, code):
        """The test of `code` ran and passed: testFailed clears."""
        e = self._find(code)
        if e is not None and e.status & TF:
            e.status &= ~TF
            self.changed = True

    def new_operation_cycle(self):
        """Start of an operation cycle (power-up): pending and aging per ISO 14229-1 annex D."""
        self.cycle = (self.cycle + 1) & 0xFFFF
        self.up_s = 0
        self.up_us = 0
        self._last = None
        keep = []
        for e in self.entries:
            if not e.status & TFTOC:
                e.status &= ~PDTC
                if e.aging < 255:
                    e.aging += 1
                if e.aging >= AGING_CYCLES:
                    continue  # aged out: removed
            e.status &= ~(TF | TFTOC)
            keep.append(e)
        self.entries = keep
        self.changed = True

    def clear(self, group):
        """ClearDiagnosticInformation: GROUP_ALL or one supported DTC. False if the group is not supported."""
        if group == GROUP_ALL:
            self.entries = []
        elif group in DTCS:
            e = self._find(group)
            if e is not None:
                self.entries.remove(e)
        else:
            return False
        self.changed = True
        return True

    # ------------------------------------------------------------ queries
    def status(self, code):
        e = self._find(code)
        return 0 if e is None else e.status

    def by_mask(self, mask):
        """(code, status) of every DTC whose status matches mask, in code order."""
        mask &= AVAILABILITY_MASK
        out = []
        for e in self.entries:
            if e.status & mask:
                out.append((e.code, e.status & AVAILABILITY_MASK))
        out.sort()
        return out

    def count(self, mask):
        return len(self.by_mask(mask))

    def supported(self):
        """(code, status) of every supported DTC, in code order (status 0 when not stored)."""
        out = []
        for code in SUPPORTED:
            out.append((code, self.status(code) & AVAILABILITY_MASK))
        return out

    def snapshots(self, code):
        """[(record_number, snapshot bytes)]: 0x01 first occurrence, 0x02 most recent (when there were two or more)."""
        e = self._find(code)
        if e is None:
            return []
        if e.count > 1:
            return [(1, e.first), (2, e.last)]
        return [(1, e.first)]

    def occurrences(self, code):
        e = self._find(code)
        return 0 if e is None else e.count

    def _find(self, code):
        for e in self.entries:
            if e.code == code:
                return e
        return None

    def _victim(self):
        best = None
        best_key = None
        for e in self.entries:
            key = (e.status & TF, DTCS[e.code][1], e.seq)
            if best is None or key < best_key:
                best = e
                best_key = key
        return best

    # ------------------------------------------------------------ persistence
    def to_bytes(self):
        out = bytearray(struct.pack(_HEAD, _MAGIC, _VERSION, self.cycle, self.seq & 0xFFFFFFFF, len(self.entries)))
        for e in self.entries:
            out += struct.pack(_ENTRY, e.code >> 16, e.code & 0xFFFF, e.status, e.count, e.aging,
                               e.seq & 0xFFFFFFFF)
            out += e.first
            out += e.last
        out += hashlib.sha256(bytes(out)).digest()[:_CHECK_LEN]
        return bytes(out)

    @staticmethod
    def from_bytes(data, capacity=CAPACITY):
        """A memory from to_bytes() output; never raises: damage gives an empty memory with corrupt = 1."""
        mem = DtcMemory(capacity)
        try:
            mem._load(data)
        except Exception:  # any damage: start empty, say so
            mem.entries = []
            mem.seq = 0
            mem.cycle = 0
            mem.corrupt = 1
        return mem

    def _load(self, data):
        data = bytes(data)
        n = len(data)
        if n < _HEAD_LEN + _CHECK_LEN:
            raise ValueError("short")
        body = data[:n - _CHECK_LEN]
        if hashlib.sha256(body).digest()[:_CHECK_LEN] != data[n - _CHECK_LEN:]:
            raise ValueError("check")
        magic, version, cycle, seq, count = struct.unpack(_HEAD, body[:_HEAD_LEN])
        if magic != _MAGIC or version != _VERSION or len(body) != _HEAD_LEN + count * _ENTRY_LEN:
            raise ValueError("format")
        entries = []
        p = _HEAD_LEN
        for _ in range(count):
            hi, lo, status, cnt, aging, eseq = struct.unpack(_ENTRY, body[p:p + 10])
            code = (hi << 16) | lo
            first = body[p + 10:p + 10 + SNAPSHOT_LEN]
            last = body[p + 10 + SNAPSHOT_LEN:p + _ENTRY_LEN]
            p += _ENTRY_LEN
            if code not in DTCS:
                self.unknown += 1  # a code this firmware no longer knows
                continue
            entries.append(_Entry(code, status & AVAILABILITY_MASK, cnt, aging, eseq, first, last))
        self.entries = entries
        self.seq = seq
        self.cycle = cycle
        while len(self.entries) > self.capacity:  # a smaller capacity than the stored image
            self.entries.remove(self._victim())
            self.evicted += 1
