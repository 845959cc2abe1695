"""The meter's state on a medium: the register block (two copies) and the interval records.

One medium (a file, `meter.bin` under --data) holds both (docs/metering.md, "Storage"):

    [0, BLOCK_AREA)      the register block: storage.TwoSlot, a BLOCK_LEN-byte payload
    [BLOCK_AREA, size)   the interval records: storage.RecordLog in SEGMENT-byte segments

Guarantees (storage.TwoSlot, storage.RecordLog): a cut at any byte of store() keeps the
old or the new block; a cut at any byte of append() keeps every earlier record and the
new one whole or not at all. A block this firmware cannot read (another major format
version, or a two-copy record of another length: the older `storage.EnergyRegisters`
layout) raises ForeignFormat on open and is never overwritten.

Register block payload, little-endian, major version 1 (minor versions only append
fields, which an older reader skips):

    0   u8  major (1)          1  u8  minor (0)       2  u8  n registers    3  u8  0
    4   u32 wall time at the store (UTC s, the meter's estimate)
    8   u32 open interval start (UTC s)   12 u16 seconds it covered   14 u8 its flags  15 u8 0
    16  n x u64 register totals, Wh (NAMES order)
    16+8n   n x u32 the open interval's deltas, Wh
    16+12n  REC_LEN bytes: the last closed interval record (first byte 0: none)

Interval record payload (REC_LEN = 36 bytes; version 1):

    u8 version (1), u8 flags, u16 seconds covered, u32 interval start (UTC s),
    7 x u32 deltas, Wh (NAMES order)
"""

import struct

from controller.storage import AB_HDR, AB_MAGIC, Partition, RecordLog, TwoSlot

# register names, in their order on the media, in the UDS DIDs and in the CSV
NAMES = ("grid_import_wh", "grid_export_wh", "ev_charged_wh", "ev_discharged_wh", "v2h_wh", "v2g_wh", "backup_wh")
N = 7
MAJOR, MINOR = 1, 0
BLOCK_LEN = 192  # payload room: 136 bytes used by major 1 with 7 registers
BLOCK_AREA = 1024
SEGMENT = 4096  # one flash erase block
REC_VERSION = 1
REC_FMT = "<BBHI7I"
REC_LEN = 36
_BLK_HEAD = "<BBBBIIHBB"  # 16 bytes

# interval record flags (docs/metering.md)
NOT_SYNCED = 1  # the wall time was not synchronised (EMS_Time) for some of the interval
PARTIAL = 2  # the interval did not run its whole span: boot, power cut or a clock step inside it
NO_COUNTERS = 4  # grid energy from the integral of MTR_Power, not the meter's counters, for some of it
CLOCK_ADJUSTED = 8  # the wall time was stepped (synchronised, or corrected by more than the tolerance)
GRID_GAP = 16  # the meter's power was missing for some of it: grid energy not counted then
INVERTER_GAP = 32  # the inverter's power was missing for some of it: EV energy not counted then


class ForeignFormat(Exception):
    """The medium holds a register block this firmware must not read or overwrite."""


def pack_record(start, covered_s, flags, deltas):
    return struct.pack(REC_FMT, REC_VERSION, flags, covered_s, start, *deltas)


def unpack_record(raw):
    """(start, covered_s, flags, deltas tuple); ValueError for another version or length."""
    if len(raw) < REC_LEN or raw[0] != REC_VERSION:
        raise ValueError("not an interval record of version %d" % REC_VERSION)
    v = struct.unpack(REC_FMT, raw[:REC_LEN])
    return v[3], v[2], v[1], v[4:]


def records_for(interval_s, days):
    """Interval records in `days` days."""
    return (days * 86400 + interval_s - 1) // interval_s


def segments_for(interval_s, days):
    """Ring segments that keep at least `days` days of records (the ring drops a whole
    segment at a time, so one more than the history fills)."""
    per = (SEGMENT - 12) // (12 + REC_LEN)
    return (records_for(interval_s, days) + per - 1) // per + 1


def medium_size(interval_s, days):
    """Bytes of the medium for `days` days of records at `interval_s`."""
    return BLOCK_AREA + SEGMENT * segments_for(interval_s, days)


class Block:
    """The register block's content (what load() returns and store() writes)."""

    __slots__ = ("utc", "start", "covered", "flags", "totals", "deltas", "pending")

    def __init__(self):
        self.utc = 0
        self.start = 0
        self.covered = 0
        self.flags = 0
        self.totals = [0] * N
        self.deltas = [0] * N
        self.pending = None  # the last closed record (bytes), or None


def encode_block(b):
    out = bytearray(BLOCK_LEN)  # zeros after the fields: room a newer minor version fills
    struct.pack_into(_BLK_HEAD, out, 0, MAJOR, MINOR, N, 0, b.utc, b.start, b.covered, b.flags, 0)
    struct.pack_into("<7Q", out, 16, *b.totals)
    struct.pack_into("<7I", out, 16 + 8 * N, *b.deltas)
    if b.pending is not None:
        out[16 + 12 * N:16 + 12 * N + REC_LEN] = b.pending
    return out


def decode_block(raw):
    """A Block from a payload; ForeignFormat for another major version."""
    if raw[0] != MAJOR:
        raise ForeignFormat("register block major version %d, this firmware reads %d" % (raw[0], MAJOR))
    n = raw[2]
    h = struct.unpack(_BLK_HEAD, raw[:16])
    b = Block()
    b.utc, b.start, b.covered, b.flags = h[4], h[5], h[6], h[7]
    k = n if n < N else N  # registers a newer minor version added are left out
    for i in range(k):
        b.totals[i] = struct.unpack_from("<Q", raw, 16 + 8 * i)[0]
        b.deltas[i] = struct.unpack_from("<I", raw, 16 + 8 * n + 4 * i)[0]
    p = 16 + 12 * n
    if raw[p] == REC_VERSION:
        b.pending = bytes(raw[p:p + REC_LEN])
    return b


class MeterStore:
    """The register block and the interval-record ring on one medium."""

    __slots__ = ("block", "log", "_medium")

    def __init__(self, medium, segment=SEGMENT):
        if medium.size < BLOCK_AREA + 2 * segment:
            raise ValueError("meter medium: at least %d bytes" % (BLOCK_AREA + 2 * segment))
        area = Partition(medium, 0, BLOCK_AREA)
        self._medium = area
        self.block = TwoSlot(area, BLOCK_LEN)
        self.log = RecordLog(Partition(medium, BLOCK_AREA, medium.size - BLOCK_AREA), segment)

    def load(self):
        """The stored Block, or None when none was ever stored; ForeignFormat."""
        _refuse_foreign(self._medium)
        raw = self.block.load()
        if raw is None:
            return None
        return decode_block(raw)

    def store(self, b):
        """Write the block; durable when this returns."""
        return self.block.store(encode_block(b))

    def append(self, rec):
        return self.log.append(rec)

    def newest(self):
        """The newest record's payload, or None."""
        for _seq, payload in self.log.records(newest_first=True):
            return payload
        return None


def _refuse_foreign(m):
    """ForeignFormat if a copy position holds a valid two-copy record of another length."""
    from binascii import crc32

    stride = AB_HDR + BLOCK_LEN + 4
    for k in (0, 1):
        h = m.read(k * stride, AB_HDR)
        if h[:4] != AB_MAGIC:
            continue
        ln = struct.unpack("<H", h[8:10])[0]
        if ln == BLOCK_LEN or AB_HDR + ln + 4 > m.size - k * stride:
            continue
        raw = m.read(k * stride, AB_HDR + ln + 4)
        if crc32(raw[:AB_HDR + ln]) == struct.unpack("<I", raw[AB_HDR + ln:])[0]:
            raise ForeignFormat("a %d-byte two-copy record (not this firmware's register block)" % ln)
