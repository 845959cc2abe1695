"""Power-loss-safe storage: media, an append-only record ring and two-slot registers.

Guarantees (the fault model is in docs/storage-and-update.md):
- RecordLog.append: a power cut at any byte of the write loses at most the record being
  written; every record appended before it reads back unchanged. Recovery on open scans
  each segment and stops at the first invalid record (magic, length, sequence number,
  CRC-32). The log is a ring of >= 2 segments; a segment is erased (0xFF) before it is
  reused, which drops its records (the oldest ones): the log keeps at least the last
  `segments - 1` full segments of history and never grows.
- TwoSlot.store / EnergyRegisters.update: a cut at any byte keeps either the old or the
  new value, never a mixture: the new value goes to the slot that does not hold the
  newest valid copy; load() takes the valid slot with the newer sequence number.

A medium is anything with `size`, `read(offset, n) -> bytes`, `write(offset, data)`,
`erase(offset, n)` (sets bytes to 0xFF) and `sync()`. Writes may overwrite (a file, a
file on a board's flash file system, FRAM/EEPROM). CuttingMedium cuts power after N
bytes for the fault-injection tests.
"""

import struct
from binascii import crc32

from controller.steps import run_to_end

try:
    from os import fsync as _fsync
except ImportError:  # MicroPython: no fsync; flush() hands the data to the VFS driver
    _fsync = None

ERASED = 0xFF
_CHUNK = 256
_FF = b"\xff" * _CHUNK


class PowerCut(Exception):
    """Raised by CuttingMedium when the simulated supply dies; the 'process' is over."""


class MemoryMedium:
    """A medium in RAM (a bytearray), erased (0xFF) when created without content."""

    __slots__ = ("buf", "size")

    def __init__(self, size=0, data=None):
        if data is not None:
            self.buf = bytearray(data)
        else:
            self.buf = bytearray(b"\xff" * size)
        self.size = len(self.buf)

    def read(self, offset, n):
        _check(self, offset, n)
        return bytes(self.buf[offset:offset + n])

    def write(self, offset, data):
        n = len(data)
        _check(self, offset, n)
        self.buf[offset:offset + n] = data

    def erase(self, offset, n):
        _check(self, offset, n)
        buf = self.buf
        while n > 0:
            k = n if n < _CHUNK else _CHUNK
            buf[offset:offset + k] = _FF if k == _CHUNK else _FF[:k]
            offset += k
            n -= k

    def sync(self):
        pass

    def image(self):
        """A copy of the content (to restart a 'device' from it after a cut)."""
        return bytes(self.buf)


class FileMedium:
    """A medium in a file of fixed size, created erased (0xFF) when missing or short."""

    __slots__ = ("path", "size", "_f")

    def __init__(self, path, size):
        self.path = path
        self.size = size
        try:
            f = open(path, "r+b")
        except OSError:
            f = open(path, "w+b")
        f.seek(0, 2)
        have = f.tell()
        while have < size:
            n = size - have
            if n > _CHUNK:
                n = _CHUNK
            f.write(_FF[:n])
            have += n
        f.flush()
        self._f = f

    def read(self, offset, n):
        _check(self, offset, n)
        self._f.seek(offset)
        return self._f.read(n)

    def write(self, offset, data):
        _check(self, offset, len(data))
        self._f.seek(offset)
        self._f.write(data)

    def erase(self, offset, n):
        _check(self, offset, n)
        f = self._f
        f.seek(offset)
        while n > 0:
            k = n if n < _CHUNK else _CHUNK
            f.write(_FF[:k])
            n -= k

    def sync(self):
        self._f.flush()
        if _fsync is not None:
            _fsync(self._f.fileno())

    def close(self):
        self._f.close()


class Partition:
    """A window [offset, offset+size) of another medium, itself a medium."""

    __slots__ = ("base", "offset", "size")

    def __init__(self, base, offset, size):
        if offset < 0 or size < 0 or offset + size > base.size:
            raise ValueError("partition outside the medium")
        self.base = base
        self.offset = offset
        self.size = size

    def read(self, offset, n):
        _check(self, offset, n)
        return self.base.read(self.offset + offset, n)

    def write(self, offset, data):
        _check(self, offset, len(data))
        self.base.write(self.offset + offset, data)

    def erase(self, offset, n):
        _check(self, offset, n)
        self.base.erase(self.offset + offset, n)

    def sync(self):
        self.base.sync()


class CuttingMedium:
    """Test double: passes writes and erases through until `budget` bytes have gone to the
    medium, then persists only the bytes before the cut and raises PowerCut (every later
    write raises too). Erases count like writes of 0xFF bytes, in address order.
    With `tear`, the byte at the cut is written with a wrong value (a torn write).
    budget=None never cuts and just counts `written`."""

    __slots__ = ("inner", "size", "budget", "written", "tear", "dead")

    def __init__(self, inner, budget=None, tear=False):
        self.inner = inner
        self.size = inner.size
        self.budget = budget
        self.written = 0
        self.tear = tear
        self.dead = False

    def read(self, offset, n):
        return self.inner.read(offset, n)

    def _room(self, n):
        if self.dead:
            raise PowerCut("dead")
        if self.budget is None:
            return n
        left = self.budget - self.written
        return n if n <= left else left

    def write(self, offset, data):
        n = len(data)
        k = self._room(n)
        if k == n:
            self.inner.write(offset, data)
            self.written += n
            return
        if k:
            self.inner.write(offset, data[:k])
        if self.tear:
            self.inner.write(offset + k, bytes(((data[k] ^ 0xA5) & 0xFF,)))
        self.written += k
        self.dead = True
        raise PowerCut("cut at byte %d" % self.written)

    def erase(self, offset, n):
        k = self._room(n)
        if k == n:
            self.inner.erase(offset, n)
            self.written += n
            return
        if k:
            self.inner.erase(offset, k)
        if self.tear:
            self.inner.write(offset + k, b"\x5a")
        self.written += k
        self.dead = True
        raise PowerCut("cut at byte %d" % self.written)

    def sync(self):
        if self.dead:
            raise PowerCut("dead")
        self.inner.sync()


def _check(m, offset, n):
    if offset < 0 or n < 0 or offset + n > m.size:
        raise ValueError("outside the medium")


def _newer(a, b):
    """Sequence number a is newer than b (32-bit serial number arithmetic)."""
    return 0 < ((a - b) & 0xFFFFFFFF) < 0x80000000


# --- append-only record ring ---------------------------------------------------------

SEG_MAGIC = b"V2LG"
SEG_HDR = 12  # magic 4s, segment sequence u32, CRC-32 u32 of the first 8 bytes
REC_MAGIC = 0x4C52  # b"RL" little-endian; no 0xFF byte, so erased flash is never a record
REC_HDR = 12  # magic u16, payload length u16, sequence u32, CRC-32 u32 of hdr[0:8]+payload


class RecordLog:
    """Append-only log of byte records in a ring of `medium.size // segment_size` segments.

    Segment: [magic "V2LG", segment seq u32, crc u32][record][record]...[0xFF ...]
    Record:  [magic 0x4C52 u16, length u16, seq u32, crc u32][payload]
    Records in a segment carry consecutive sequence numbers. A record longer than
    `max_payload` (segment_size - 24) is refused.
    """

    __slots__ = ("medium", "seg_size", "nseg", "max_payload", "_segs", "_cur", "_pos", "_next_seq",
                 "_hdr")

    def __init__(self, medium, segment_size=4096):
        nseg = medium.size // segment_size
        if nseg < 2:
            raise ValueError("the log needs at least two segments")
        if segment_size < SEG_HDR + REC_HDR + 1 or segment_size - SEG_HDR - REC_HDR > 0xFFFF:
            raise ValueError("bad segment size")
        self.medium = medium
        self.seg_size = segment_size
        self.nseg = nseg
        self.max_payload = segment_size - SEG_HDR - REC_HDR
        self._hdr = bytearray(REC_HDR)
        self._recover()

    # segment table entries: [index, segment seq, first record seq, record count, end offset]
    def _recover(self):
        m = self.medium
        found = []
        for i in range(self.nseg):
            h = m.read(i * self.seg_size, SEG_HDR)
            if h[:4] != SEG_MAGIC:
                continue
            sseq, c = struct.unpack("<II", h[4:12])
            if crc32(h[:8]) != c:
                continue
            found.append([i, sseq, 0, 0, SEG_HDR])
        # order by segment sequence (serial arithmetic; at most nseg entries)
        segs = []
        for e in found:
            k = 0
            while k < len(segs) and _newer(e[1], segs[k][1]):
                k += 1
            segs.insert(k, e)
        for e in segs:
            self._scan(e)
        self._segs = segs
        nxt = 1
        for e in segs:
            if e[3]:
                nxt = (e[2] + e[3]) & 0xFFFFFFFF
        self._next_seq = nxt
        if segs:
            cur = segs[-1]
            self._cur = cur
            self._pos = cur[4]
            self._clean_tail(cur)
        else:
            self._cur = None
            self._pos = 0

    def _scan(self, e):
        """Walk the records of segment entry e; fill first seq, count and end offset."""
        m = self.medium
        base = e[0] * self.seg_size
        pos = SEG_HDR
        n = 0
        first = 0
        expect = None
        while pos + REC_HDR <= self.seg_size:
            h = m.read(base + pos, REC_HDR)
            magic, ln, seq, c = struct.unpack("<HHII", h)
            if magic != REC_MAGIC or pos + REC_HDR + ln > self.seg_size:
                break
            if expect is not None and seq != expect:
                break
            if crc32(m.read(base + pos + REC_HDR, ln), crc32(h[:8])) != c:
                break
            if expect is None:
                first = seq
            expect = (seq + 1) & 0xFFFFFFFF
            n += 1
            pos += REC_HDR + ln
        e[2] = first
        e[3] = n
        e[4] = pos

    def _clean_tail(self, e):
        """Erase what a cut append may have left after the last valid record."""
        base = e[0] * self.seg_size
        pos = e[4]
        end = self.seg_size
        while pos < end:
            n = end - pos
            if n > _CHUNK:
                n = _CHUNK
            if self.medium.read(base + pos, n) != _FF[:n]:
                self.medium.erase(base + pos, end - pos)
                self.medium.sync()
                return
            pos += n

    def _rotate(self):
        """Start the next segment in ring order: erase it (dropping the oldest records
        if it held any), then write its header."""
        m = self.medium
        if self._cur is None:
            idx = 0
            sseq = 1
        else:
            idx = (self._cur[0] + 1) % self.nseg
            sseq = (self._cur[1] + 1) & 0xFFFFFFFF
        segs = self._segs
        for k in range(len(segs)):
            if segs[k][0] == idx:
                segs.pop(k)
                break
        base = idx * self.seg_size
        m.erase(base, self.seg_size)  # header first: a cut mid-erase leaves no valid header
        m.sync()
        h = bytearray(SEG_HDR)
        h[:4] = SEG_MAGIC
        struct.pack_into("<I", h, 4, sseq)
        struct.pack_into("<I", h, 8, crc32(h[:8]))
        m.write(base, h)
        m.sync()
        e = [idx, sseq, 0, 0, SEG_HDR]
        segs.append(e)
        self._cur = e
        self._pos = SEG_HDR

    def append(self, payload):
        """Append one record; returns its sequence number (durable when this returns)."""
        n = len(payload)
        if n > self.max_payload:
            raise ValueError("record too long")
        if self._cur is None or self._pos + REC_HDR + n > self.seg_size:
            self._rotate()
        seq = self._next_seq
        h = self._hdr
        struct.pack_into("<HHI", h, 0, REC_MAGIC, n, seq)
        struct.pack_into("<I", h, 8, crc32(payload, crc32(h[:8])))
        buf = bytearray(REC_HDR + n)
        buf[:REC_HDR] = h
        buf[REC_HDR:] = payload
        cur = self._cur
        self.medium.write(cur[0] * self.seg_size + self._pos, buf)
        self.medium.sync()
        if not cur[3]:
            cur[2] = seq
        cur[3] += 1
        self._pos += REC_HDR + n
        cur[4] = self._pos
        self._next_seq = (seq + 1) & 0xFFFFFFFF
        return seq

    @property
    def count(self):
        n = 0
        for e in self._segs:
            n += e[3]
        return n

    @property
    def last_seq(self):
        """Sequence number of the newest record, or None when the log is empty."""
        if not self.count:
            return None
        return (self._next_seq - 1) & 0xFFFFFFFF

    def _offsets(self, e):
        base = e[0] * self.seg_size
        pos = SEG_HDR
        out = []
        for _ in range(e[3]):
            ln = struct.unpack("<H", self.medium.read(base + pos + 2, 2))[0]
            out.append((base + pos, ln))
            pos += REC_HDR + ln
        return out

    def records(self, newest_first=False):
        """Yield (seq, payload) oldest first (or newest first)."""
        segs = self._segs
        order = range(len(segs) - 1, -1, -1) if newest_first else range(len(segs))
        for k in order:
            e = segs[k]
            offs = self._offsets(e)
            if newest_first:
                offs.reverse()
            for off, ln in offs:
                seq = struct.unpack("<I", self.medium.read(off + 4, 4))[0]
                yield seq, self.medium.read(off + REC_HDR, ln)

    def records_from(self, seq, limit):
        """Up to `limit` (seq, payload) whose sequence number is `seq` or newer, oldest
        first; segments wholly older than `seq` are skipped without reading a record."""
        out = []
        for e in self._segs:
            if not e[3] or _newer(seq, (e[2] + e[3] - 1) & 0xFFFFFFFF):
                continue
            k = 0
            for off, ln in self._offsets(e):
                r = (e[2] + k) & 0xFFFFFFFF
                k += 1
                if _newer(seq, r):
                    continue
                out.append((r, self.medium.read(off + REC_HDR, ln)))
                if len(out) >= limit:
                    return out
        return out

    def __iter__(self):
        return self.records()

    def clear(self):
        """Erase every segment, oldest first (a cut leaves a suffix of the history);
        sequence numbers go on from where they were."""
        nxt = self._next_seq
        for e in self._segs:
            self.medium.erase(e[0] * self.seg_size, self.seg_size)
            self.medium.sync()
        self._segs = []
        self._cur = None
        self._pos = 0
        self._next_seq = nxt


# --- two-slot (A/B) record ---------------------------------------------------------------

AB_MAGIC = b"V2AB"
AB_HDR = 12  # magic 4s, sequence u32, payload length u16, reserved u16; then payload, CRC-32 u32


class TwoSlot:
    """A small value kept in two copies (A at `offset`, B at `offset + stride`); each copy
    is [magic "V2AB", seq u32, length u16, 0 u16][payload][crc32 u32 of all before].
    store() erases, then writes the copy that is not the newest valid one; so a cut at
    any byte leaves the other copy intact and load() returns the old or the new value.
    store_steps() does the same in bounded pieces (controller.steps), for values too
    large to write inside one poll of the control loop.
    `stride` defaults to the copy size; give the flash erase-block size on raw flash."""

    __slots__ = ("medium", "offset", "length", "stride", "seq", "slot")

    def __init__(self, medium, length, offset=0, stride=None):
        self.medium = medium
        self.offset = offset
        self.length = length
        size = AB_HDR + length + 4
        if stride is None:
            stride = size
        if stride < size or offset + stride + size > medium.size:
            raise ValueError("two-slot record does not fit")
        self.stride = stride
        self.seq = 0
        self.slot = -1
        self.load()

    def _read_slot(self, k):
        raw = self.medium.read(self.offset + k * self.stride, AB_HDR + self.length + 4)
        if raw[:4] != AB_MAGIC:
            return None
        seq, ln = struct.unpack("<IH", raw[4:10])
        if ln != self.length:
            return None
        end = AB_HDR + ln
        if crc32(raw[:end]) != struct.unpack("<I", raw[end:end + 4])[0]:
            return None
        return seq, raw[AB_HDR:end]

    def load(self):
        """The newest valid payload (bytes), or None when neither copy is valid."""
        a = self._read_slot(0)
        b = self._read_slot(1)
        pick = -1
        if a is not None and (b is None or not _newer(b[0], a[0])):
            pick = 0
        elif b is not None:
            pick = 1
        if pick < 0:
            self.seq, self.slot = 0, -1
            return None
        got = a if pick == 0 else b
        self.seq, self.slot = got[0], pick
        return got[1]

    def store(self, payload):
        """Write a new value; durable when this returns. Returns its sequence number."""
        if len(payload) != self.length:
            raise ValueError("payload length")
        return run_to_end(self.store_steps(payload))

    def store_steps(self, payload, step=None):
        """store() as a generator of bounded work: erase the copy `step` bytes at a time,
        program it `step` bytes at a time (the CRC last), sync; returns the sequence
        number. A payload shorter than `length` is padded with zero bytes (never held in
        RAM padded). The medium sees the same bytes in the same order as with store(), so
        a cut between two steps is a cut like any other: the old value stays. Abandoning
        the generator half way is safe too: the next store goes to the same copy again."""
        n = len(payload)
        if n > self.length:
            raise ValueError("payload length")
        k = 1 if self.slot == 0 else 0
        seq = (self.seq + 1) & 0xFFFFFFFF
        hdr = bytearray(AB_HDR)
        hdr[:4] = AB_MAGIC
        struct.pack_into("<IHH", hdr, 4, seq, self.length, 0)
        at = self.offset + k * self.stride
        body = AB_HDR + self.length
        total = body + 4
        if step is None or step > total:
            step = total
        m = self.medium
        off = 0
        while off < total:  # erase-before-program, as raw flash needs it
            c = step if off + step <= total else total - off
            m.erase(at + off, c)
            off += c
            yield
        crc = 0
        off = 0
        while off < body:
            c = step if off + step <= body else body - off
            piece = _body_piece(hdr, payload, off, c)
            crc = crc32(piece, crc)
            m.write(at + off, piece)
            off += c
            yield
        m.write(at + body, struct.pack("<I", crc))
        m.sync()
        self.seq, self.slot = seq, k
        return seq


def _body_piece(hdr, payload, off, n):
    """Bytes [off, off + n) of a copy's header + payload + zero padding."""
    out = bytearray(n)
    end = off + n
    if off < AB_HDR:
        k = AB_HDR if end > AB_HDR else end
        out[0:k - off] = hdr[off:k]
    a = off if off > AB_HDR else AB_HDR
    b = AB_HDR + len(payload)
    if end < b:
        b = end
    if a < b:
        out[a - off:b - off] = payload[a - AB_HDR:b - AB_HDR]
    return out


class BlobStore:
    """A byte string of up to `max_len` bytes on a TwoSlot (a length prefix plus padding):
    `load() -> bytes or None`, `save(data)`, and `save_steps(data, step)` to write it a
    bounded piece per poll. For state saved as a whole image, such as the DTC memory; a
    cut at any byte of a save leaves the old or the new image."""

    __slots__ = ("max_len", "_ab")

    def __init__(self, medium, max_len, offset=0, stride=None):
        if not 0 < max_len <= 0xFFFF - 2:
            raise ValueError("max_len")
        self.max_len = max_len
        self._ab = TwoSlot(medium, 2 + max_len, offset, stride)

    def load(self):
        raw = self._ab.load()
        if raw is None:
            return None
        n = struct.unpack("<H", raw[:2])[0]
        if n > self.max_len:
            return None
        return raw[2:2 + n]

    def save(self, data):
        return run_to_end(self.save_steps(data))

    def save_steps(self, data, step=None):
        """save() in bounded steps (controller.steps): `step` bytes erased or written per
        step (None: all at once); returns the sequence number of the stored copy."""
        n = len(data)
        if n > self.max_len:
            raise ValueError("too long for this store")
        return (yield from self._ab.store_steps(struct.pack("<H", n) + bytes(data), step))

    @staticmethod
    def copy_size(max_len):
        """Bytes one copy takes (two copies need 2x this, or offset + stride + this)."""
        return AB_HDR + 2 + max_len + 4


# --- configuration written over UDS -----------------------------------------------------

CONFIG_MAX = 1024  # bytes of JSON: every configuration DID written takes about 40


class ConfigStore:
    """The configuration written over UDS: the overrides {section: {key: value}} as UTF-8
    JSON on a BlobStore, so a cut at any byte of save() leaves the old or the new set.
    apply() puts them on top of the configuration file at start, each key validated by
    controller.config on its own: a corrupt store or an invalid key is reported and
    ignored, never a failed start."""

    __slots__ = ("_blob",)

    def __init__(self, medium, max_len=CONFIG_MAX, offset=0, stride=None):
        self._blob = BlobStore(medium, max_len, offset, stride)

    def load(self):
        """The stored overrides ({} when nothing was ever stored); ValueError when what
        is stored cannot be read as overrides."""
        raw = self._blob.load()
        if raw is None:
            ab = self._blob._ab
            for k in (0, 1):
                if ab.medium.read(ab.offset + k * ab.stride, 4) != b"\xff\xff\xff\xff":
                    raise ValueError("no valid copy")  # written, but neither copy checks out
            return {}
        try:
            import json

            ov = json.loads(raw)
        except ValueError:
            raise ValueError("not JSON")
        if not isinstance(ov, dict):
            raise ValueError("not an object")
        for sec in ov:
            if not isinstance(ov[sec], dict):
                raise ValueError("%s: not an object" % sec)
        return ov

    def save(self, overrides):
        """Store the overrides; durable when this returns. ValueError if too long."""
        import json

        self._blob.save(json.dumps(overrides).encode())

    def apply(self, cfg, report=None):
        """(configuration, overrides in force): `cfg` with every stored override that is
        valid on top of it. report(text) is told about each one left out and a store
        that cannot be read."""
        from controller.config import ConfigError, validate

        try:
            ov = self.load()
        except (ValueError, OSError) as e:
            if report is not None:
                report("stored configuration ignored: %s" % e)
            return cfg, {}
        keep = {}
        for sec in ov:
            for key in ov[sec]:
                try:
                    cfg = validate({sec: {key: ov[sec][key]}}, cfg)
                except ConfigError as e:
                    if report is not None:
                        report("stored configuration ignored: %s" % e)
                    continue
                if sec not in keep:
                    keep[sec] = {}
                keep[sec][key] = cfg[sec][key]
        return cfg, keep


# --- energy registers --------------------------------------------------------------------

USES = ("charge", "v2h", "v2g", "backup")
# import: energy into the EV battery; export: energy out of it; per use (operating mode)
REGISTERS = ("charge_import_wh", "charge_export_wh", "v2h_import_wh", "v2h_export_wh",
             "v2g_import_wh", "v2g_export_wh", "backup_import_wh", "backup_export_wh")
_MAX_WH = 0xFFFFFFFFFFFFFFFF


class EnergyRegisters:
    """Energy counters in Wh (unsigned 64-bit integers) on a TwoSlot record.

    update(values) takes a dict (name -> Wh, names left out keep their value) or a full
    sequence in REGISTERS order; load() returns a dict name -> Wh (zeros when nothing was
    ever stored). A cut at any byte of update() leaves exactly the old or the new set."""

    __slots__ = ("names", "_ab", "_vals", "_fmt")

    def __init__(self, medium, offset=0, stride=None, names=REGISTERS):
        self.names = tuple(names)
        self._fmt = "<%dQ" % len(self.names)
        self._ab = TwoSlot(medium, 8 * len(self.names), offset, stride)
        self._vals = [0] * len(self.names)
        self.load()

    def load(self):
        raw = self._ab.load()
        if raw is None:
            self._vals = [0] * len(self.names)
        else:
            self._vals = list(struct.unpack(self._fmt, raw))
        return self.as_dict()

    def as_dict(self):
        d = {}
        for i in range(len(self.names)):
            d[self.names[i]] = self._vals[i]
        return d

    def update(self, values):
        vals = list(self._vals)
        if isinstance(values, dict):
            for k in values:
                if k not in self.names:
                    raise KeyError(k)
                vals[self.names.index(k)] = values[k]
        else:
            if len(values) != len(self.names):
                raise ValueError("need %d values" % len(self.names))
            vals = list(values)
        for v in vals:
            if not isinstance(v, int) or v < 0 or v > _MAX_WH:
                raise ValueError("register values are integers 0..2**64-1 (Wh)")
        seq = self._ab.store(struct.pack(self._fmt, *vals))
        self._vals = vals
        return seq

    def add(self, name, wh):
        """Count `wh` more on register `name` and store."""
        i = self.names.index(name)
        vals = list(self._vals)
        vals[i] += wh
        return self.update(vals)

    @property
    def seq(self):
        return self._ab.seq

    @staticmethod
    def copy_size(n=len(REGISTERS)):
        """Bytes one copy takes (two copies need 2x this, or offset + stride + this)."""
        return AB_HDR + 8 * n + 4
