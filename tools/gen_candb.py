"""Generate ``controller/bus/candb.py`` (MicroPython-clean CAN codecs) from ``dbc/*.dbc``.

The DBC files are the single source of truth of the site bus; cantools parses them and
this generator turns every message into straight-line shift/mask code::

    python -m tools.gen_candb                 # regenerate the modules below and dbc/README.md
    python -m tools.gen_candb --check         # exit 1 if a committed file is stale

Three modules come out of the same DBC files.  ``controller/bus/candb.py`` is what the
firmware imports and holds only what the firmware node (``--node``, default GW) uses at
run time, shaped for MicroPython's heap (on a board every object in it is RAM): one
``Message`` class, no class per message; each message's codec as straight-line
functions made by a factory and held by the instance (a module global per function
would crowd the module's dict, whose misses MicroPython pays for on every builtin
lookup); ``signals`` built on access by code instead of tuples kept in RAM.
``controller/bus/candb_lazy.py`` gets the rest of the codec (encode of what the node
receives, decode and check_range of what it sends), ``signals`` of what it receives
and the metadata the firmware never reads (is_extended, cycle_time_ms, send_type, and
timeout_ms of what it sends; the receive timeout of what it receives stays, as request
validities default to it); ``Message.__getattr__`` attaches it to every message the first time one
asks for such an attribute, so the API is whole everywhere and the board never loads
it.  ``tools/candb_meta.py``
(``--meta-out``) gets what only tools, the HIL, docs and tests read: value tables,
units, senders, receivers, comments.  Without the node in the DBC files (``--node ''``
or the generator's own test DBCs) everything stays in the one module.

The generator also writes the generated parts of ``dbc/README.md`` (the ``--readme``
file; default ``<dbc-dir>/README.md`` when it exists): the per-message tables between
``<!-- BEGIN GENERATED: python -m tools.gen_candb -->`` and ``<!-- END GENERATED -->``
and the cyclic bus-load table between ``<!-- BEGIN GENERATED: python -m tools.gen_candb
(bus load) -->`` and ``<!-- END GENERATED -->``.  Both marker pairs are required; the
prose around them is never touched.

Like cantools' own C source generator (``cantools/database/can/c_source.py``), each
signal is split at generation time into per-byte segments (byte index, bit offset in
the byte, width, position in the value), so the generated code touches each payload
byte with one shift and one mask and never loops over bits at run time.  Unlike the C
generator, the output is Python that must run under MicroPython: no 64-bit payload
integer (it would allocate on MicroPython), one small int per payload byte instead.

Exactness with cantools is the contract (tests/test_candb.py proves it):

* decode: ``raw * scale + offset`` with the very same Python operands cantools uses
  (its conversion classes decide between int and float results: an identity or an
  integer scale/offset keeps ints, anything else gives floats);
* encode: the same physical -> raw rounding as cantools' ``numeric_scaled_to_raw``
  (``round()``, i.e. round half to even, after ``(value - offset) / scale``; the
  integer conversion first tries an exact ``divmod``), and ``OverflowError`` when the
  raw value does not fit the signal, as cantools (bitstruct) raises;
* every signal is required on encode (``KeyError`` naming the first missing one).

Refused with a clear :class:`GeneratorError`: multiplexed and container messages,
float signals that are not 32 or 64 bits, signals outside the payload, duplicate frame
ids or message names across files, and E2E-protected messages (``E2EDataID`` != 0)
whose ``AliveCounter``/``Crc`` layout the E2E layer (controller/bus/e2e.py) cannot use.
"""

import argparse
import glob
import hashlib
import os
import re
import sys

import cantools
from cantools.database.conversion import (
    BaseConversion,
    IdentityConversion,
    LinearConversion,
    LinearIntegerConversion,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DBC_DIR = os.path.join(ROOT, "dbc")
DEFAULT_OUT = os.path.join(ROOT, "controller", "bus", "candb.py")
DEFAULT_README = os.path.join(DEFAULT_DBC_DIR, "README.md")
DEFAULT_META = os.path.join(ROOT, "tools", "candb_meta.py")
DEFAULT_NODE = "GW"  # the node the firmware is: what it does not use goes to the lazy companion

E2E_COUNTER = "AliveCounter"
E2E_CRC = "Crc"
E2E_CRC_BYTE = 7

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED = {"Message", "MESSAGES", "BY_NAME", "SOURCE_SHA256", "DBC_FILES"}


class GeneratorError(Exception):
    """The DBC input cannot be turned into a codec module (the message says why)."""


# ----------------------------------------------------------------------------------
# input


def dbc_files(dbc_dir):
    """The ``*.dbc`` files of ``dbc_dir``, sorted by name."""
    files = sorted(glob.glob(os.path.join(dbc_dir, "*.dbc")))
    if not files:
        raise GeneratorError("no *.dbc files in %s" % dbc_dir)
    return files


def inputs_sha256(files):
    """sha256 over (base name, content) of every input file, in order."""
    h = hashlib.sha256()
    for path in files:
        h.update(os.path.basename(path).encode("utf-8") + b"\0")
        with open(path, "rb") as f:
            data = f.read()
        h.update(str(len(data)).encode("ascii") + b"\0" + data)
    return h.hexdigest()


def _attr(db, msg, name):
    """Integer value of message attribute ``name``, falling back to its default, else 0."""
    a = msg.dbc.attributes.get(name) if msg.dbc is not None else None
    if a is not None:
        return int(a.value)
    defs = db.dbc.attribute_definitions if db.dbc is not None else {}
    d = defs.get(name)
    if d is not None and d.default_value is not None:
        try:
            return int(d.default_value)
        except (TypeError, ValueError):
            return 0
    return 0


def load(dbc_dir):
    """Parse every DBC file; return a list of (file name, database, message) by frame id.

    Raises GeneratorError for duplicate frame ids or message names across files.
    """
    entries = []
    seen_id = {}
    seen_name = {}
    for path in dbc_files(dbc_dir):
        base = os.path.basename(path)
        try:
            db = cantools.database.load_file(path, database_format="dbc", strict=True)
        except Exception as e:
            raise GeneratorError("%s: cantools cannot parse it: %s" % (base, e)) from e
        for msg in db.messages:
            other = seen_id.get(msg.frame_id)
            if other is not None:
                raise GeneratorError(
                    "duplicate frame id 0x%X: %s in %s and %s in %s"
                    % (msg.frame_id, other[1], other[0], msg.name, base)
                )
            if msg.name in seen_name:
                raise GeneratorError(
                    "duplicate message name %s in %s and %s" % (msg.name, seen_name[msg.name], base)
                )
            seen_id[msg.frame_id] = (base, msg.name)
            seen_name[msg.name] = base
            entries.append((base, db, msg))
    entries.sort(key=lambda e: e[2].frame_id)
    return entries


# ----------------------------------------------------------------------------------
# model


class Sig:
    """One signal, resolved for code generation."""

    def __init__(self, msg, signal, where):
        self.name = signal.name
        self.length = signal.length
        self.signed = bool(signal.is_signed)
        self.is_float = bool(signal.conversion.is_float)
        self.byte_order = signal.byte_order
        self.start = signal.start
        self.minimum = signal.minimum
        self.maximum = signal.maximum
        self.unit = signal.unit or ""
        self.comment = signal.comment or ""
        self.scale = signal.conversion.scale
        self.offset = signal.conversion.offset
        self.choices = {}
        if signal.choices:
            for k, v in signal.choices.items():
                self.choices[int(k)] = str(v)
        if signal.multiplexer_ids is not None or signal.is_multiplexer:
            raise GeneratorError(
                "%s: message %s is multiplexed (signal %s): multiplexing is not supported"
                % (where, msg.name, signal.name)
            )
        if self.length < 1 or self.length > 64:
            raise GeneratorError("%s: %s.%s: length %d not in 1..64" % (where, msg.name, self.name, self.length))
        if self.is_float and self.length not in (32, 64):
            raise GeneratorError(
                "%s: %s.%s: float signal of %d bits (only IEEE float32/float64)"
                % (where, msg.name, self.name, self.length)
            )
        # the conversion cantools itself uses when it does not decode choices
        conv = BaseConversion.factory(scale=self.scale, offset=self.offset, choices=None, is_float=self.is_float)
        if isinstance(conv, IdentityConversion):
            self.kind = "identity"
        elif isinstance(conv, LinearIntegerConversion):
            self.kind = "linint"
            self.scale = conv.scale
            self.offset = conv.offset
        elif isinstance(conv, LinearConversion):
            self.kind = "linear"
        else:
            raise GeneratorError("%s: %s.%s: unsupported conversion %r" % (where, msg.name, self.name, conv))
        self.positions = self._positions(msg, where)
        self.segments = self._segments(msg, where)

    def _positions(self, msg, where):
        """(byte, bit) of value bit k = 0 (LSB) .. length-1, bit 0 = LSB of the byte."""
        out = []
        n = self.length
        if self.byte_order == "little_endian":
            for k in range(n):
                p = self.start + k
                out.append((p >> 3, p & 7))
        else:
            # Motorola: start is the MSB in sawtooth numbering; walk network order
            msb = 8 * (self.start // 8) + (7 - self.start % 8)
            for k in range(n):
                p = msb + (n - 1 - k)
                out.append((p >> 3, 7 - (p & 7)))
        for byte, _bit in out:
            if byte < 0 or byte >= msg.length:
                raise GeneratorError(
                    "%s: %s.%s: bits outside the %d-byte payload" % (where, msg.name, self.name, msg.length)
                )
        return out

    def _segments(self, msg, where):
        """[(byte, lo_bit, width, k0)]: value bits k0..k0+width-1 sit at bits lo.. of byte."""
        segs = []
        for k, (byte, bit) in enumerate(self.positions):
            if segs:
                b, lo, w, k0 = segs[-1]
                if b == byte and bit == lo + w and k == k0 + w:
                    segs[-1] = (b, lo, w + 1, k0)
                    continue
            segs.append((byte, bit, 1, k))
        return segs

    def layout(self):
        order = "LE" if self.byte_order == "little_endian" else "BE"
        t = ("float%d" % self.length) if self.is_float else ("%s%d" % ("s" if self.signed else "u", self.length))
        return "start %d %s %s" % (self.start, order, t)


class Msg:
    """One message, resolved for code generation."""

    def __init__(self, base, db, msg):
        where = base
        self.file = base
        self.name = msg.name
        if not _IDENT.match(self.name) or self.name in _RESERVED or self.name.startswith("_"):
            raise GeneratorError("%s: message name %r cannot be a Python identifier here" % (where, self.name))
        if msg.is_container:
            raise GeneratorError("%s: %s is a container message: not supported" % (where, self.name))
        if msg.is_multiplexed():
            raise GeneratorError("%s: message %s is multiplexed: multiplexing is not supported" % (where, self.name))
        self.frame_id = msg.frame_id
        self.length = msg.length
        self.is_extended = bool(msg.is_extended_frame)
        self.comment = msg.comment or ""
        self.cycle_time_ms = _attr(db, msg, "GenMsgCycleTime")
        self.send_type = msg.send_type or ""
        self.timeout_ms = _attr(db, msg, "RxTimeoutTime")
        self.e2e_data_id = _attr(db, msg, "E2EDataID")
        self.senders = tuple(s for s in msg.senders if s != "Vector__XXX")
        rx = set()
        for s in msg.signals:
            rx.update(r for r in s.receivers if r != "Vector__XXX")
        self.receivers = tuple(sorted(rx))
        self.signals = [Sig(msg, s, where) for s in msg.signals]
        names = [s.name for s in self.signals]
        if len(set(names)) != len(names):
            raise GeneratorError("%s: %s: duplicate signal names" % (where, self.name))
        self._check_overlap(where)
        self.counter_start, self.counter_len = -1, 0
        cnt = self.sig(E2E_COUNTER)
        if cnt is not None and len({b for b, _ in cnt.positions}) == 1 and not cnt.signed and not cnt.is_float:
            b, bit = cnt.positions[0]
            self.counter_start, self.counter_len = b * 8 + bit, cnt.length
        self.crc_byte = -1
        if self.e2e_data_id:
            self._check_e2e(where, cnt)
            self.crc_byte = E2E_CRC_BYTE

    def sig(self, name):
        for s in self.signals:
            if s.name == name:
                return s
        return None

    def _check_overlap(self, where):
        used = {}
        for s in self.signals:
            for pos in s.positions:
                if pos in used:
                    raise GeneratorError(
                        "%s: %s: signals %s and %s overlap" % (where, self.name, used[pos], s.name)
                    )
                used[pos] = s.name

    def _check_e2e(self, where, cnt):
        e = "%s: %s: E2EDataID %d but " % (where, self.name, self.e2e_data_id)
        if not 0 < self.e2e_data_id <= 0xFFFF:
            raise GeneratorError(e + "the data id must be 1..65535")
        if self.length != 8:
            raise GeneratorError(e + "the payload is not 8 bytes")
        if cnt is None or cnt.length != 4 or self.counter_len != 4 or cnt.kind != "identity":
            raise GeneratorError(e + "no unsigned 4-bit %s signal within one byte" % E2E_COUNTER)
        if cnt.positions[0][0] == E2E_CRC_BYTE:
            raise GeneratorError(e + "the %s shares byte %d with the CRC" % (E2E_COUNTER, E2E_CRC_BYTE))
        crc = self.sig(E2E_CRC)
        if (
            crc is None
            or crc.length != 8
            or crc.signed
            or crc.is_float
            or crc.kind != "identity"
            or crc.segments != [(E2E_CRC_BYTE, 0, 8, 0)]
        ):
            raise GeneratorError(e + "no unsigned 8-bit %s signal filling byte %d" % (E2E_CRC, E2E_CRC_BYTE))


# ----------------------------------------------------------------------------------
# code emission


def _num(v):
    """Python literal of an int or float, keeping its type (cantools' int/float matters)."""
    if isinstance(v, bool):
        v = int(v)
    if isinstance(v, int):
        return str(v)
    r = repr(float(v))
    if r in ("inf", "-inf", "nan"):
        raise GeneratorError("non-finite number %s in the DBC" % r)
    return r


def _hex(v):
    return "0x%X" % v


def _raw_expr(sig):
    """Expression of the unsigned raw bit field, one term per payload byte."""
    terms = []
    for byte, lo, w, k0 in sig.segments:
        t = "data[%d]" % byte
        if lo:
            t = "%s >> %d" % (t, lo)
        if lo + w < 8:
            t = "%s & %s" % (t, _hex((1 << w) - 1))
        if k0:
            t = "(%s) << %d" % (t, k0) if (lo or lo + w < 8) else "%s << %d" % (t, k0)
        terms.append(t)
    if len(terms) == 1:
        return terms[0]
    return " | ".join(("(%s)" % t) if (" " in t and not t.startswith("(")) else t for t in terms)


def _decode_expr(sig):
    raw = _raw_expr(sig)
    if sig.is_float:
        value = "_f%d(%s)" % (sig.length, raw)
    elif sig.signed:
        sign = 1 << (sig.length - 1)
        value = "(%s ^ %s) - %s" % (("(%s)" % raw) if " " in raw else raw, _hex(sign), _hex(sign))
    else:
        value = raw
    if sig.kind == "identity":
        return value
    # raw * scale + offset, the operands as cantools has them
    expr = "(%s)" % value if (" " in value and not value.startswith("_f")) else value
    if not (sig.kind == "linint" and sig.scale == 1):
        expr = "%s * %s" % (expr, _num(sig.scale))
    zero_ok = sig.kind == "linint" or (not sig.is_float and sig.scale > 0)
    if sig.offset != 0 or not zero_ok:
        off = _num(sig.offset)
        if off.startswith("-"):
            expr = "%s - %s" % (expr, off[1:])
        else:
            expr = "%s + %s" % (expr, off)
    return expr


def _encode_raw_expr(sig, v):
    """Physical value -> raw, exactly as cantools' numeric_scaled_to_raw."""
    if sig.kind == "identity":
        return v if sig.is_float else "round(%s)" % v
    if sig.kind == "linint":
        if sig.scale == 1:
            if sig.offset < 0:
                return "round(%s + %s)" % (v, _num(-sig.offset))
            return "round(%s - %s)" % (v, _num(sig.offset))
        return "_lin_int(%s, %s, %s)" % (v, _num(sig.scale), _num(sig.offset))
    # LinearConversion
    if sig.offset == 0:
        num = v
    elif sig.offset < 0:  # v - (-c) is v + c exactly, in IEEE arithmetic as for ints
        num = "(%s + %s)" % (v, _num(-sig.offset))
    else:
        num = "(%s - %s)" % (v, _num(sig.offset))
    e = "%s / %s" % (num, _num(sig.scale))
    return e if sig.is_float else "round(%s)" % e


def _encode_lines(m):
    """Straight-line encode with one local ``r``: signal by signal, physical -> raw ->
    range check -> its bits into the bytes it touches (``=`` for the first writer of a
    byte, ``|=`` after).

    The range check is one shift: an unsigned raw value of n bits fits iff ``r >> n`` is
    0 (a negative value shifts to -1), a signed one iff ``(r + 2**(n-1)) >> n`` is 0;
    a signed value in range then becomes its two's complement with ``r &= 2**n - 1``.
    Few locals matter on MicroPython: a function whose arguments, locals and value
    stack exceed 11 machine words gets its frame from the heap on every call
    (VM_MAX_STATE_ON_STACK in py/objfun.c)."""
    lines = []
    written = set()
    covered = set(b for s in m.signals for b, _, _, _ in s.segments)
    for byte in range(m.length):
        if byte not in covered:
            lines.append("buf[%d] = 0" % byte)
    for s in m.signals:
        lines.append("r = %s" % _encode_raw_expr(s, "d[%r]" % s.name))
        if s.is_float:
            lines.append("r = _f%d_bits(r)" % s.length)
        elif s.signed:
            lines.append("if (r + %s) >> %d:" % (_hex(1 << (s.length - 1)), s.length))
            lines.append("    _overflow(%r, %r, r)" % (m.name, s.name))
            lines.append("r &= %s" % _hex((1 << s.length) - 1))
        else:
            lines.append("if r >> %d:" % s.length)
            lines.append("    _overflow(%r, %r, r)" % (m.name, s.name))
        for byte, lo, w, k0 in s.segments:
            t = "r"
            if k0:
                t = "r >> %d" % k0
            if k0 + w < s.length:  # higher value bits follow: mask them off
                t = "%s & %s" % (t, _hex((1 << w) - 1))
            if lo:
                t = "(%s) << %d" % (t, lo) if t != "r" else "r << %d" % lo
            op = "|=" if byte in written else "="
            written.add(byte)
            lines.append("buf[%d] %s %s" % (byte, op, t))
    return lines


def _range_lines(m):
    lines = []
    for s in m.signals:
        if s.minimum is None and s.maximum is None:
            continue
        integer = s.kind in ("identity", "linint") and not s.is_float
        eps = abs(s.scale) * 1e-6
        conds = []
        if s.minimum is not None:
            lo = s.minimum if integer and float(s.minimum).is_integer() else s.minimum - eps
            if integer and isinstance(lo, float) and lo.is_integer():
                lo = int(lo)
            conds.append("v < %s" % _num(lo))
        if s.maximum is not None:
            hi = s.maximum if integer and float(s.maximum).is_integer() else s.maximum + eps
            if integer and isinstance(hi, float) and hi.is_integer():
                hi = int(hi)
            conds.append("v > %s" % _num(hi))
        # cantools accepts a raw value listed in the value table even out of range
        exempt = []
        for raw in sorted(s.choices):
            phys = raw * s.scale + s.offset
            if (s.minimum is not None and phys < s.minimum) or (s.maximum is not None and phys > s.maximum):
                exempt.append("v != %s" % _num(phys))
        lines.append("v = d[%r]" % s.name)
        cond = " or ".join(conds)
        if exempt:
            cond = "(%s) and %s" % (cond, " and ".join(exempt))
        lines.append("if %s:" % cond)
        lines.append("    return %r" % s.name)
    lines.append("return None")
    return lines


def _pyrepr(v):
    """repr() for the simple literals we emit (tuples, dicts, str, numbers, None)."""
    if v is None or isinstance(v, str):
        return repr(v)
    if isinstance(v, (int, float)):
        return _num(v)
    if isinstance(v, tuple):
        inner = ", ".join(_pyrepr(x) for x in v)
        return "(%s,)" % inner if len(v) == 1 else "(%s)" % inner
    if isinstance(v, dict):
        return "{%s}" % ", ".join("%s: %s" % (_pyrepr(k), _pyrepr(x)) for k, x in v.items())
    raise TypeError(type(v))


_PRELUDE = '''
class Message:
    """One CAN message of the site bus: the metadata the firmware uses, and its codec.

    decode(data) -> dict / decode_into(data, out) -> out: physical values (cantools'
    signal names; ints where cantools gives ints, floats where it gives floats;
    enumerations as raw ints).  No CRC or alive-counter check here (controller/bus/e2e.py).
    Raises ValueError if data is shorter than ``length`` (extra bytes are ignored).

    encode(d) -> bytes / encode_into(d, buf) -> buf: every signal is required
    (KeyError names the first missing one); values are rounded to the raw grid like
    cantools; OverflowError names a signal whose raw value does not fit its bits.

    check_range(decoded) -> None or the name of the first signal outside its DBC
    [minimum, maximum] (tolerance |scale| * 1e-6, as cantools' strict encode).

    Attributes: name, frame_id, length, is_extended, cycle_time_ms, send_type,
    timeout_ms, e2e_data_id, counter_start, counter_len, crc_byte, signals
    (``((name, minimum, maximum), ...)`` in DBC order, built on each access).

    RAM on MicroPython decides the layout: no class per message; decode_into,
    encode_into and check_range are the message's own generated functions, held by
    the instance.  What the firmware never uses (encode of what it receives, decode
    and check_range of what it sends, signals of what it receives, is_extended,
    cycle_time_ms, send_type, timeout_ms of what it sends) may be left out of this module: it is then
    generated into the module's ``_lazy`` companion and attached to every message on
    first use.  Choices, units, senders, receivers and comments: tools/candb_meta.py
    (same generator).
    """

    __slots__ = (
        "name", "frame_id", "length", "is_extended", "cycle_time_ms", "send_type",
        "timeout_ms", "e2e_data_id", "counter_start", "counter_len", "crc_byte",
        "decode_into", "encode_into", "check_range", "_signals",
    )

    def __init__(self, name, frame_id, length, e2e_data_id, counter_start, counter_len, crc_byte, **more):
        self.name = name
        self.frame_id = frame_id
        self.length = length
        self.e2e_data_id = e2e_data_id
        self.counter_start = counter_start
        self.counter_len = counter_len
        self.crc_byte = crc_byte
        for k in more:
            setattr(self, k, more[k])

    def __getattr__(self, name):
        # only for an attribute this instance does not hold: load the companion once
        if (name[0] != "_" or name == "_signals") and _lazy():
            return getattr(self, name)
        raise AttributeError(name)

    @property
    def signals(self):
        return self._signals()

    def decode(self, data):
        return self.decode_into(data, {})

    def encode(self, d):
        buf = bytearray(self.length)
        self.encode_into(d, buf)
        return bytes(buf)

    def __repr__(self):
        return "<Message %s 0x%X>" % (self.name, self.frame_id)


def _short(name, data, length):
    raise ValueError("%s: %d data bytes, need %d" % (name, len(data), length))


def _overflow(name, signal, raw):
    raise OverflowError("%s.%s: raw value %s out of range" % (name, signal, raw))


def _sig(*a):
    # (name, minimum, maximum) triples from a flat argument list: a tuple display of
    # constants would be a constant kept in RAM for good on MicroPython
    return tuple(a[i:i + 3] for i in range(0, len(a), 3))


def _lin_int(v, scale, offset):
    # cantools LinearIntegerConversion.numeric_scaled_to_raw: (q, r) = divmod(v - offset,
    # scale); round(q) if r == 0 else round((v - offset) / scale).  // and % are divmod's
    # two halves, without the tuple divmod would allocate.
    v = v - offset
    if v % scale == 0:
        return round(v // scale)
    return round(v / scale)
'''

_LAZY_NONE = '''

def _lazy():
    return False  # everything is in this module
'''

_LAZY_LOAD = '''

_lazy_done = False


def _lazy():
    # Attach what %(lazy)s.py holds to every message, once; True if it did.  Idempotent,
    # so two threads racing here only attach the same functions twice.
    global _lazy_done
    if _lazy_done:
        return False
    from . import %(lazy)s

    %(lazy)s.attach(BY_NAME)
    _lazy_done = True
    return True
'''

_FLOAT_HELPERS = '''

def _f32(raw):
    return struct.unpack("<f", raw.to_bytes(4, "little"))[0]


def _f64(raw):
    return struct.unpack("<d", raw.to_bytes(8, "little"))[0]


def _f32_bits(x):
    return int.from_bytes(struct.pack("<f", x), "little")


def _f64_bits(x):
    return int.from_bytes(struct.pack("<d", x), "little")
'''

# what the firmware may leave to the lazy companion: the metadata it never reads
_COLD = ("is_extended", "cycle_time_ms", "send_type", "timeout_ms")


def _comment(text, indent=""):
    out = []
    for line in text.replace("\r", "").split("\n"):
        line = line.strip()
        if line:
            out.append("%s# %s" % (indent, line))
    return out


def _header(dbc_dir, files, digest):
    src = os.path.basename(os.path.normpath(dbc_dir))
    return [
        "# GENERATED by tools/gen_candb.py from %s/*.dbc \u2014 do not edit" % src,
        "# inputs sha256 %s (%s)" % (digest, ", ".join(os.path.basename(f) for f in files)),
        "# regenerate: python -m tools.gen_candb   (check: python -m tools.gen_candb --check)",
    ]


def _cold(m, node=None):
    """The metadata the firmware never reads, except the receive timeout of what it
    receives (a request's validity may default to it: EMS_ModeRequest)."""
    out = [
        ("is_extended", "True" if m.is_extended else "False"),
        ("cycle_time_ms", str(m.cycle_time_ms)),
        ("send_type", repr(m.send_type)),
    ]
    if node is None or node not in m.receivers:
        out.append(("timeout_ms", str(m.timeout_ms)))
    return out


def _hot_timeout(m, node):
    """The receive timeout, kept in the firmware module for what the node receives."""
    return node is not None and node in m.receivers


def firmware_node(msgs, node=DEFAULT_NODE):
    """``node`` if some message names it as sender or receiver, else None (then every
    message keeps its whole codec in the firmware module and there is no companion)."""
    if node and any(node in m.senders or node in m.receivers for m in msgs):
        return node
    return None


def split(m, node):
    """(decode here, encode here, signals here, cold metadata here) for message ``m``
    when the firmware is ``node``: it decodes and range-checks what it receives, encodes
    what it sends (its frames start from the signal names), and never reads the cold
    metadata.  node None keeps everything here."""
    if node is None:
        return True, True, True, True
    return node in m.receivers, node in m.senders, node in m.senders, False


def _signals_lines(m, indent):
    p = " " * indent
    args = ["%r, %s, %s" % (s.name, _pyrepr(s.minimum), _pyrepr(s.maximum)) for s in m.signals]
    return [p + "def signals():", p + "    return _sig(%s)" % ", ".join(args), ""]


def _codec_lines(m, dec, enc, indent):
    """The nested definitions of ``m``'s decode_into/check_range (dec) and encode_into (enc)."""
    p = " " * indent
    L = []
    if dec:
        L.append(p + "def decode_into(data, out):")
        L.append(p + "    if len(data) < %d:" % m.length)
        L.append(p + "        _short(%r, data, %d)" % (m.name, m.length))
        for s in m.signals:
            L.append(p + "    out[%r] = %s" % (s.name, _decode_expr(s)))
        L.append(p + "    return out")
        L.append("")
        L.append(p + "def check_range(d):")
        for line in _range_lines(m):
            L.append(p + "    " + line)
        L.append("")
    if enc:
        L.append(p + "def encode_into(d, buf):")
        for line in _encode_lines(m):
            L.append(p + "    " + line)
        L.append(p + "    return buf")
        L.append("")
    return L


def _lazy_name(out):
    return os.path.splitext(os.path.basename(out))[0] + "_lazy"


def generate(dbc_dir=DEFAULT_DBC_DIR, node=DEFAULT_NODE, out=DEFAULT_OUT):
    """Return the text of the generated firmware module for the DBC files in ``dbc_dir``
    (``out`` names its lazy companion; see split() for what goes there)."""
    files = dbc_files(dbc_dir)
    digest = inputs_sha256(files)
    msgs = [Msg(base, db, m) for base, db, m in load(dbc_dir)]
    node = firmware_node(msgs, node)
    has_float = any(s.is_float for m in msgs for s in m.signals)

    L = _header(dbc_dir, files, digest)
    L.append('"""CAN codecs of the site bus, generated from the DBC files (MicroPython-clean).')
    L.append("")
    L.append("MESSAGES: frame id -> Message; BY_NAME: name -> Message; ID_<name>: frame ids.")
    L.append("See class Message for the codec API.  What only tools and the HIL need (choices,")
    L.append("units, senders, receivers, comments) is in tools/candb_meta.py, not in RAM here.")
    if node:
        L.append("This module holds what the %s node uses at run time; %s.py the rest." % (node, _lazy_name(out)))
    L.append('"""')
    L.append("")
    if has_float:
        L.append("import struct")
        L.append("")
    L.append('SOURCE_SHA256 = "%s"' % digest)
    L.append("DBC_FILES = %s" % _pyrepr(tuple(os.path.basename(f) for f in files)))
    L.append("")
    L.append("# The codecs call len() once per frame and round() once per signal.  As globals of this")
    L.append("# module MicroPython finds them through its lookup cache; as builtins only after a")
    L.append("# miss in this module's globals, which probes every slot when the table is full.")
    L.append("len = len")
    L.append("round = round")
    L.append("")
    L.extend(_PRELUDE.rstrip("\n").split("\n"))
    lazy = _LAZY_LOAD % {"lazy": _lazy_name(out)} if node else _LAZY_NONE
    L.extend(lazy.rstrip("\n").split("\n"))
    if has_float:
        L.extend(_FLOAT_HELPERS.rstrip("\n").split("\n"))

    for m in msgs:
        dec, enc, sig, cold = split(m, node)
        L.append("")
        L.append("")
        L.append("# %s 0x%X (%s), %d bytes, from %s" % (m.name, m.frame_id, m.file, m.length, ", ".join(m.senders) or "-"))
        L.extend(_comment(m.comment))
        for s in m.signals:
            desc = "%s: %s, scale %s offset %s, [%s|%s] %s" % (
                s.name, s.layout(), _num(s.scale), _num(s.offset), s.minimum, s.maximum, s.unit)
            L.append("#   " + desc.rstrip())
        L.append("def _m():")
        L.extend(_codec_lines(m, dec, enc, 4))
        if sig:
            L.extend(_signals_lines(m, 4))
        fields = [
            ("name", repr(m.name)),
            ("frame_id", "ID_%s" % m.name),
            ("length", str(m.length)),
            ("e2e_data_id", _hex(m.e2e_data_id) if m.e2e_data_id else "0"),
            ("counter_start", str(m.counter_start)),
            ("counter_len", str(m.counter_len)),
            ("crc_byte", str(m.crc_byte)),
        ]
        if sig:
            fields.append(("_signals", "signals"))
        if dec:
            fields += [("decode_into", "decode_into"), ("check_range", "check_range")]
        if enc:
            fields.append(("encode_into", "encode_into"))
        if cold:
            fields += _cold(m)
        elif _hot_timeout(m, node):
            fields.append(("timeout_ms", str(m.timeout_ms)))
        L.append("    return Message(")
        for key, text in fields:
            L.append("        %s=%s," % (key, text))
        L.append("    )")
        L.append("")
        L.append("")
        L.append("ID_%s = %s" % (m.name, _hex(m.frame_id)))
        L.append("%s = _m()" % m.name)

    L.append("del _m")
    L.append("")
    L.append("MESSAGES = {")
    for m in msgs:
        L.append("    ID_%s: %s," % (m.name, m.name))
    L.append("}")
    L.append("")
    L.append("BY_NAME = {")
    for m in msgs:
        L.append("    %r: %s," % (m.name, m.name))
    L.append("}")
    text = "\n".join(L) + "\n"
    compile(text, "candb.py", "exec")  # a generator bug must not produce a broken file
    return text


def generate_lazy(dbc_dir=DEFAULT_DBC_DIR, node=DEFAULT_NODE, out=DEFAULT_OUT):
    """Return the text of the lazy companion of ``out`` (``<out>_lazy.py``), or None when
    the firmware module keeps everything (no ``node`` in the DBC files)."""
    files = dbc_files(dbc_dir)
    digest = inputs_sha256(files)
    msgs = [Msg(base, db, m) for base, db, m in load(dbc_dir)]
    node = firmware_node(msgs, node)
    if node is None:
        return None
    base = os.path.splitext(os.path.basename(out))[0]
    has_float = any(s.is_float for m in msgs for s in m.signals)
    L = _header(dbc_dir, files, digest)
    L.append('"""What %s.py leaves out because the %s node never uses it at run time:' % (base, node))
    L.append("encode_into and signals of the messages it receives, decode_into and check_range")
    L.append("of those it sends, and is_extended, cycle_time_ms, send_type, timeout_ms of all.  Message")
    L.append("attaches it to every message the first time one asks for such an attribute (the")
    L.append("HIL, the tools and the tests do; the firmware does not, so on a board this module")
    L.append("takes no RAM).")
    L.append('"""')
    L.append("")
    helpers = ["_lin_int", "_overflow", "_short"]
    if has_float:
        helpers += ["_f32", "_f32_bits", "_f64", "_f64_bits"]
    helpers.append("_sig")
    L.append("from .%s import %s  # noqa: F401" % (base, ", ".join(sorted(helpers))))
    L.append("")
    L.append("len = len  # as in %s.py: module globals, found through MicroPython's lookup cache" % base)
    L.append("round = round")
    L.append("")
    L.append("")
    L.append("def attach(messages):")
    L.append('    """Give every message of ``messages`` (name -> Message) what it lacks."""')
    for m in msgs:
        dec, enc, sig, cold = split(m, node)
        L.append("    m = messages[%r]" % m.name)
        L.append("")
        L.extend(_codec_lines(m, not dec, not enc, 4))
        if not sig:
            L.extend(_signals_lines(m, 4))
            L.append("    m._signals = signals")
        if not dec:
            L.append("    m.decode_into = decode_into")
            L.append("    m.check_range = check_range")
        if not enc:
            L.append("    m.encode_into = encode_into")
        if not cold:
            for key, text in _cold(m, node):
                L.append("    m.%s = %s" % (key, text))
        L.append("")
    while L[-1] == "":
        L.pop()
    text = "\n".join(L) + "\n"
    compile(text, "candb_lazy.py", "exec")
    return text


def generate_meta(dbc_dir=DEFAULT_DBC_DIR):
    """Return the text of the metadata companion (tools/candb_meta.py): what tools, the
    HIL, docs and tests may want but the firmware never reads at run time."""
    files = dbc_files(dbc_dir)
    digest = inputs_sha256(files)
    msgs = [Msg(base, db, m) for base, db, m in load(dbc_dir)]
    L = _header(dbc_dir, files, digest)
    L.append('"""Metadata of the site-bus messages that the firmware does not need at run time.')
    L.append("")
    L.append("Generated beside the firmware codecs (controller/bus/candb.py, same SOURCE_SHA256) and")
    L.append("kept out of them so that it costs the board no RAM.  Keyed by message name:")
    L.append("")
    L.append("FILES[msg]: the DBC file; SENDERS[msg], RECEIVERS[msg]: node name tuples;")
    L.append("COMMENTS[msg]: the message comment ('' if none);")
    L.append("CHOICES[(msg, signal)]: {raw: label}; UNITS[(msg, signal)]: unit (signals with one);")
    L.append("SIGNAL_COMMENTS[(msg, signal)]: signal comment (signals with one).")
    L.append("choices(msg) -> {signal: {raw: label}} and units(msg) -> {signal: unit}, per message.")
    L.append('"""')
    L.append("")
    L.append('SOURCE_SHA256 = "%s"' % digest)
    L.append("")

    def table(name, rows):
        L.append("%s = {" % name)
        for k, v in rows:
            L.append("    %s: %s," % (_pyrepr(k), _pyrepr(v)))
        L.append("}")
        L.append("")

    table("FILES", [(m.name, m.file) for m in msgs])
    table("SENDERS", [(m.name, m.senders) for m in msgs])
    table("RECEIVERS", [(m.name, m.receivers) for m in msgs])
    table("COMMENTS", [(m.name, " ".join(m.comment.split())) for m in msgs])
    table("CHOICES", [((m.name, s.name), dict(sorted(s.choices.items()))) for m in msgs for s in m.signals
                      if s.choices])
    table("UNITS", [((m.name, s.name), s.unit) for m in msgs for s in m.signals if s.unit])
    table("SIGNAL_COMMENTS", [((m.name, s.name), " ".join(s.comment.split())) for m in msgs for s in m.signals
                              if s.comment.strip()])
    L.append("")
    L.append("def choices(msg):")
    L.append('    """{signal: {raw: label}} of message ``msg`` (its signals with a value table)."""')
    L.append("    return {s: c for (m, s), c in CHOICES.items() if m == msg}")
    L.append("")
    L.append("")
    L.append("def units(msg):")
    L.append('    """{signal: unit} of message ``msg`` (its signals with a unit)."""')
    L.append("    return {s: u for (m, s), u in UNITS.items() if m == msg}")
    text = "\n".join(L) + "\n"
    compile(text, "candb_meta.py", "exec")
    return text


# ----------------------------------------------------------------------------------
# dbc/README.md: the generated sections

README_BEGIN_MESSAGES = "<!-- BEGIN GENERATED: python -m tools.gen_candb -->"
README_BEGIN_BUS_LOAD = "<!-- BEGIN GENERATED: python -m tools.gen_candb (bus load) -->"
README_END = "<!-- END GENERATED -->"

_SIGNAL_HEADER = [
    "| signal | bits: start\\|length, order, sign (bytes) | scale | offset | unit | range | meaning |",
    "| --- | --- | --- | --- | --- | --- | --- |",
]
_MESSAGE_HEADER = [
    "| id | sender | receivers | send type | cycle | RxTimeoutTime | E2EDataID | DLC |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
]


def default_readme(dbc_dir=DEFAULT_DBC_DIR):
    """``<dbc_dir>/README.md`` if it exists, else None (then only the module is made)."""
    path = os.path.join(dbc_dir, "README.md")
    return path if os.path.exists(path) else None


def _dnum(v):
    """A number as the README shows it: 0.1, 409.5, 10, -40 (no trailing .0)."""
    if isinstance(v, bool):
        v = int(v)
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return _num(v)


def _cell(text):
    """Free text for one Markdown table cell: one line, ``|`` escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _ms(v):
    return "%d ms" % v if v else "-"


def _frame_id(m):
    return "0x%03X" % m.frame_id + (" (extended)" if m.is_extended else "")


def _signal_row(s):
    order = "LE" if s.byte_order == "little_endian" else "BE"
    sign = "float" if s.is_float else ("signed" if s.signed else "unsigned")
    nbytes = sorted({b for b, _ in s.positions})
    where = "byte %d" % nbytes[0] if len(nbytes) == 1 else "bytes %d..%d" % (nbytes[0], nbytes[-1])
    bits = "%d\\|%d %s %s (%s)" % (s.start, s.length, order, sign, where)
    if s.minimum is None and s.maximum is None:
        rng = "-"
    else:
        rng = "%s .. %s" % ("" if s.minimum is None else _dnum(s.minimum),
                            "" if s.maximum is None else _dnum(s.maximum))
    meaning = " ".join(s.comment.split())
    if s.choices:
        table = ", ".join("%d = %s" % (k, s.choices[k]) for k in sorted(s.choices))
        meaning = (meaning + " " + table) if meaning else table
    cells = [s.name, bits, _dnum(s.scale), _dnum(s.offset), _cell(s.unit), rng, _cell(meaning)]
    return "| %s |" % " | ".join(cells)


def readme_messages(msgs):
    """Lines of the Messages section: one ``### 0x<id> <name> (<file>)`` per message."""
    L = []
    for m in msgs:
        if L:
            L.append("")
        L.append("### 0x%03X %s (%s)" % (m.frame_id, m.name, m.file))
        L.append("")
        if m.comment.strip():
            L.append(" ".join(m.comment.split()))
            L.append("")
        L.extend(_MESSAGE_HEADER)
        L.append("| %s |" % " | ".join([
            _frame_id(m),
            _cell(", ".join(m.senders) or "-"),
            _cell(", ".join(m.receivers) or "-"),
            _cell(m.send_type or "-"),
            _ms(m.cycle_time_ms),
            _ms(m.timeout_ms),
            "0x%04X" % m.e2e_data_id if m.e2e_data_id else "-",
            str(m.length),
        ]))
        L.append("")
        L.extend(_SIGNAL_HEADER)
        L.extend(_signal_row(s) for s in m.signals)
    return L


def frame_bits(m):
    """(bits without stuffing, bits with worst-case stuffing) of one classic CAN data
    frame of ``m``, interframe space (3 bits) included.

    11-bit id: 44 bits of overhead, stuff bits possible in the 34 + 8 * DLC bits from
    start of frame to the end of the CRC; 29-bit id: 64 and 54 + 8 * DLC.  At most
    one stuff bit per 4 bits after the first: floor((n - 1) / 4).
    """
    overhead, head = (64, 54) if m.is_extended else (44, 34)
    data = 8 * m.length
    nominal = overhead + data + 3
    return nominal, nominal + (head + data - 1) // 4


def _bitrate(entries):
    rates = {}
    for base, db, _ in entries:
        a = db.dbc.attributes.get("Baudrate") if db.dbc is not None else None
        if a is not None:
            rates.setdefault(int(a.value), base)
    if len(rates) != 1:
        raise GeneratorError(
            "the bus load needs one Baudrate attribute for all DBC files, found %s"
            % (", ".join("%d (%s)" % kv for kv in sorted(rates.items())) or "none"))
    return next(iter(rates))


def _rate(x):
    return _dnum(x) if float(x).is_integer() else "%.1f" % x


def readme_bus_load(msgs, bitrate):
    """Lines of the cyclic bus-load table and the load it gives at ``bitrate``."""
    cyclic = [m for m in msgs if m.cycle_time_ms > 0 and m.send_type != "Event"]
    L = ["| cycle | messages | frames/s |", "| --- | --- | --- |"]
    total = nominal = worst = 0.0
    for cycle in sorted({m.cycle_time_ms for m in cyclic}):
        group = [m for m in cyclic if m.cycle_time_ms == cycle]
        per_s = 1000.0 / cycle
        total += len(group) * per_s
        for m in group:
            n, w = frame_bits(m)
            nominal += n * per_s
            worst += w * per_s
        L.append("| %d ms | %s | %d x %s = %s |" % (
            cycle, ", ".join("`%s`" % m.name for m in group), len(group), _rate(per_s), _rate(len(group) * per_s)))
    L.append("| total | | **%s** |" % _rate(total))
    L.append("")
    kbit = "%s kbit/s" % _dnum(bitrate / 1000)
    sizes = {frame_bits(m) for m in cyclic}
    if len(sizes) == 1:
        n, w = next(iter(sizes))
        L.append("%s frames/s x %d bits = %.1f kbit/s = **%d %%** of %s; with worst-case stuffing "
                 "%s x %d = %.1f kbit/s = **%d %%**." % (
                     _rate(total), n, nominal / 1000, round(100 * nominal / bitrate), kbit,
                     _rate(total), w, worst / 1000, round(100 * worst / bitrate)))
    else:
        L.append("%s frames/s: %.1f kbit/s = **%d %%** of %s; with worst-case stuffing "
                 "%.1f kbit/s = **%d %%**." % (
                     _rate(total), nominal / 1000, round(100 * nominal / bitrate), kbit,
                     worst / 1000, round(100 * worst / bitrate)))
    return L


def readme_sections(dbc_dir=DEFAULT_DBC_DIR):
    """{begin marker: generated lines} for the README, from the DBC files in ``dbc_dir``."""
    entries = load(dbc_dir)
    msgs = [Msg(base, db, m) for base, db, m in entries]
    return {
        README_BEGIN_MESSAGES: readme_messages(msgs),
        README_BEGIN_BUS_LOAD: readme_bus_load(msgs, _bitrate(entries)),
    }


def render_readme(text, sections, name="README.md"):
    """``text`` with the lines between each begin marker and the next end marker replaced
    by its generated section (one blank line either side); everything else as it was.

    Raises GeneratorError if a begin marker is missing or repeated, or has no end marker.
    """
    lines = text.split("\n")
    for begin, body in sections.items():
        where = [i for i, line in enumerate(lines) if line.strip() == begin]
        if len(where) != 1:
            raise GeneratorError(
                "%s: %s the marker line %r: put it (and %r after the generated part) "
                "where the generated section belongs" % (
                    name, "has no" if not where else "repeats", begin, README_END))
        start = where[0]
        end = None
        for i in range(start + 1, len(lines)):
            stripped = lines[i].strip()
            if stripped == README_END:
                end = i
                break
            if stripped.startswith("<!-- BEGIN GENERATED"):
                break
        if end is None:
            raise GeneratorError("%s: no %r line after %r" % (name, README_END, begin))
        lines[start + 1:end] = [""] + list(body) + [""]
    return "\n".join(lines)


def _read(path):
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


def _replace(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    os.replace(tmp, path)


def generate_readme(dbc_dir=DEFAULT_DBC_DIR, readme=None):
    """The text ``readme`` (default ``<dbc_dir>/README.md``) should have now."""
    readme = readme or os.path.join(dbc_dir, "README.md")
    try:
        text = _read(readme)
    except OSError as e:
        raise GeneratorError("cannot read %s: %s" % (readme, e)) from e
    return render_readme(text, readme_sections(dbc_dir), os.path.basename(readme))


def write_readme(dbc_dir=DEFAULT_DBC_DIR, readme=None):
    """Regenerate the generated sections of ``readme``; return True if it changed."""
    readme = readme or os.path.join(dbc_dir, "README.md")
    text = generate_readme(dbc_dir, readme)
    if text == _read(readme):
        return False
    _replace(readme, text)
    return True


def check_readme(dbc_dir=DEFAULT_DBC_DIR, readme=None):
    """(True, message) if the generated sections of ``readme`` are current, else (False, message).

    Raises GeneratorError if the markers are missing (see render_readme)."""
    readme = readme or os.path.join(dbc_dir, "README.md")
    text = generate_readme(dbc_dir, readme)
    if _read(readme) != text:
        return False, "%s is stale (its generated sections differ from %s/*.dbc): run python -m tools.gen_candb" % (
            readme, os.path.basename(os.path.normpath(dbc_dir)))
    return True, "%s is up to date" % readme


# ----------------------------------------------------------------------------------
# files and command line


def default_meta(out):
    """Where the metadata companion of ``out`` goes: tools/candb_meta.py for the default
    module, else ``<out without .py>_meta.py`` beside it."""
    if os.path.abspath(out) == os.path.abspath(DEFAULT_OUT):
        return DEFAULT_META
    return os.path.splitext(out)[0] + "_meta.py"


def lazy_path(out):
    """Where the lazy companion of ``out`` goes: ``<out without .py>_lazy.py`` beside it
    (the firmware module imports it relatively, so both must sit in one package)."""
    return os.path.join(os.path.dirname(out), _lazy_name(out) + ".py")


def outputs(dbc_dir=DEFAULT_DBC_DIR, out=DEFAULT_OUT, meta=None, node=DEFAULT_NODE):
    """[(path, text)] of the generated modules: the firmware module, its lazy companion
    (when there is a ``node``) and the metadata module."""
    texts = [(out, generate(dbc_dir, node, out))]
    lazy = generate_lazy(dbc_dir, node, out)
    if lazy is not None:
        texts.append((lazy_path(out), lazy))
    texts.append((meta or default_meta(out), generate_meta(dbc_dir)))
    return texts


def write_all(dbc_dir=DEFAULT_DBC_DIR, out=DEFAULT_OUT, readme=None, meta=None, node=DEFAULT_NODE):
    """Generate ``out``, its lazy companion, its metadata companion ``meta`` (default:
    default_meta(out)) and the generated sections of ``readme`` if given; write the
    files whose content changed and return their paths.  All texts are made before
    anything is written, so an error leaves every file as it was."""
    texts = outputs(dbc_dir, out, meta, node)
    if readme:
        texts.append((readme, generate_readme(dbc_dir, readme)))
    changed = []
    for path, text in texts:
        if not os.path.exists(path) or _read(path) != text:
            _replace(path, text)
            changed.append(path)
    return changed


def write(dbc_dir=DEFAULT_DBC_DIR, out=DEFAULT_OUT, readme=None, meta=None, node=DEFAULT_NODE):
    """Generate and write ``out`` and its companions (and the generated sections of
    ``readme`` if given); return True if a file changed."""
    return bool(write_all(dbc_dir, out, readme, meta, node))


def _stale(path, text, dbc_dir):
    try:
        old = _read(path)
    except OSError:
        return "%s is missing: run python -m tools.gen_candb" % path
    if old != text:
        return "%s is stale (differs from %s/*.dbc): run python -m tools.gen_candb" % (
            path, os.path.basename(os.path.normpath(dbc_dir)))
    return None


def check(dbc_dir=DEFAULT_DBC_DIR, out=DEFAULT_OUT, readme=None, meta=None, node=DEFAULT_NODE):
    """(True, message) if ``out``, its companions (and ``readme``'s generated sections,
    if given) are what the generator makes now, else (False, message naming the stale
    file)."""
    texts = outputs(dbc_dir, out, meta, node)
    readme_ok = check_readme(dbc_dir, readme) if readme else None  # marker errors first
    for path, t in texts:
        msg = _stale(path, t, dbc_dir)
        if msg:
            return False, msg
    names = ", ".join(p for p, _ in texts)
    if readme:
        ok, msg = readme_ok
        if not ok:
            return ok, msg
        return True, "%s and %s are up to date" % (names, readme)
    return True, "%s are up to date" % names


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.gen_candb", description=__doc__.split("\n")[0])
    ap.add_argument("--dbc-dir", default=DEFAULT_DBC_DIR, help="directory of *.dbc files (default: dbc/)")
    ap.add_argument("--out", default=DEFAULT_OUT, help="generated module (default: controller/bus/candb.py)")
    ap.add_argument("--meta-out", default=None,
                    help="generated metadata module (default: tools/candb_meta.py for the default --out, "
                         "else <out>_meta.py beside it)")
    ap.add_argument("--node", default=DEFAULT_NODE,
                    help="the node the firmware is (default %(default)s): what it does not use at run time "
                         "goes to <out>_lazy.py; '' or a node the DBC files do not name keeps everything in --out")
    ap.add_argument("--readme", default=None,
                    help="Markdown file with generated sections (default: <dbc-dir>/README.md if it exists)")
    ap.add_argument("--no-readme", action="store_true", help="leave the README alone")
    ap.add_argument("--check", action="store_true", help="exit 1 if a file differs from what would be generated")
    args = ap.parse_args(argv)
    readme = None if args.no_readme else (args.readme or default_readme(args.dbc_dir))
    meta = args.meta_out or default_meta(args.out)
    try:
        if args.check:
            ok, msg = check(args.dbc_dir, args.out, readme, meta, args.node)
            print(msg, file=sys.stdout if ok else sys.stderr)
            return 0 if ok else 1
        paths = [p for p, _ in outputs(args.dbc_dir, args.out, meta, args.node)]
        changed = write_all(args.dbc_dir, args.out, readme, meta, args.node)
    except (GeneratorError, OSError) as e:
        print("gen_candb: error: %s" % e, file=sys.stderr)
        return 2
    for path in paths + ([readme] if readme else []):
        print("%s %s" % ("wrote" if path in changed else "unchanged:", path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
