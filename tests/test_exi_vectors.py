"""EXI codec against the EXIficient vectors (Josev's codec), unseen variants, and table staleness.

- every vector of tests/data/iso15118-20-vectors.jsonl (a copy of
  ../shared/iso15118-20/vectors.jsonl) encodes to exactly its bytes and decodes to
  exactly its JSON;
- unseen vectors: numbers, strings, booleans, enumerations and binaries of each
  vector are replaced by other values of the same schema type (seeded generator that
  walks the generated grammar tables) and must survive decode(encode(x)) == x;
- tools/gen_exi.py --check against the XSDs (skipped when ../shared is absent).
"""
import binascii
import json
import pathlib
import random
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from controller.iso15118 import exi  # noqa: E402

VECTORS_FILE = ROOT / "tests" / "data" / "iso15118-20-vectors.jsonl"
XSD_DIR = ROOT.parent / "shared" / "iso15118-20" / "xsd"
VECTORS = [json.loads(line) for line in VECTORS_FILE.read_text().splitlines() if line.strip()]
NAMESPACES = sorted({v["ns"] for v in VECTORS})


def _id(i):
    return "%03d-%s" % (i, VECTORS[i]["msg"])


@pytest.mark.parametrize("i", range(len(VECTORS)), ids=_id)
def test_vector_encode(i):
    v = VECTORS[i]
    assert exi.encode(v["ns"], v["json"]).hex() == v["exi"]


@pytest.mark.parametrize("i", range(len(VECTORS)), ids=_id)
def test_vector_decode(i):
    v = VECTORS[i]
    assert exi.decode(v["ns"], bytes.fromhex(v["exi"])) == v["json"]


def test_vectors_cover_all_namespaces():
    assert len(VECTORS) == 486
    assert NAMESPACES == sorted(exi.MODULES)


# ------------------------------------------------------------------ unseen vectors
def _child_grammars(t, gi):
    """local name -> child grammar index for the SE productions of grammar gi."""
    out = {}
    for counted, prods in t.grammars[gi]:
        for p in prods:
            if p[0] == exi.P_SE:
                out[t.local[p[1]]] = p[2]
            elif p[0] == exi.P_AT:
                out[t.local[p[1]]] = ("attribute", t.simple[p[2]])
    return out


def _mutate_value(rng, st, old):
    k = st[0]
    if k == exi.ST_BOOL:
        return rng.choice([True, False])
    if k == exi.ST_ENUM:
        return rng.choice(st[1])
    if k == exi.ST_NBIT:
        # mostly in range; sometimes outside (written as untyped characters, as EXIficient does)
        if rng.random() < 0.1:
            return rng.choice([st[1] - 1, st[3] + 1, st[3] + 5000])
        return st[1] + rng.randrange(st[3] - st[1] + 1)
    if k == exi.ST_UINT:
        return rng.choice([0, 1, 127, 128, 16383, 16384, rng.randrange(1 << 32), rng.randrange(1 << 64)])
    if k == exi.ST_INT:
        return rng.choice([0, -1, 1, -64, 63, -65, 64, rng.randrange(-(1 << 31), 1 << 31),
                           rng.randrange(-(1 << 63), 1 << 63)])
    if k == exi.ST_STRING:
        alphabet = "abcXYZ0129 _-:/." + "\u00e9\u00fc\u20ac\U0001F50C"
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 24)))
    if k == exi.ST_HEX:
        n = len(old) // 2 if isinstance(old, str) else 8
        return binascii.hexlify(bytes(rng.randrange(256) for _ in range(n))).decode().upper()
    if k == exi.ST_B64:
        b = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
        return binascii.b2a_base64(b).decode().strip()
    return old


def _mutate(rng, t, gi, value):
    if t.simple_gram[gi]:
        st = t.simple[t.grammars[gi][0][1][0][1]]
        return _mutate_value(rng, st, value) if rng.random() < 0.7 else value
    if not isinstance(value, dict):
        return value
    kids = _child_grammars(t, gi)
    out = {}
    for key, v in value.items():
        cg = kids[key]
        if isinstance(cg, tuple):
            # attributes: within the type only (no untyped fallback for attributes)
            nv = _mutate_value(rng, cg[1], v)
            out[key] = nv if cg[1][0] != exi.ST_NBIT or cg[1][1] <= nv <= cg[1][3] else v
        elif isinstance(v, list):
            out[key] = [_mutate(rng, t, cg, x) for x in v]
        else:
            out[key] = _mutate(rng, t, cg, v)
    return out


def _mutated(i, seed):
    v = VECTORS[i]
    t = exi._load(v["ns"])
    rng = random.Random(seed * 1000 + i)
    (name, body), = v["json"].items()
    gi = t.roots[t.root_by_name[name]][1]
    return v["ns"], {name: _mutate(rng, t, gi, body)}


@pytest.mark.parametrize("seed", range(3))
def test_unseen_vectors_roundtrip(seed):
    failures = []
    for i in range(len(VECTORS)):
        ns, obj = _mutated(i, seed)
        data = exi.encode(ns, obj)
        back = exi.decode(ns, data)
        if back != obj:
            failures.append((i, obj, back))
        assert exi.encode(ns, back) == data
    assert not failures, "%d round-trip failures, first: %r" % (len(failures), failures[0])


def test_out_of_range_value_uses_untyped_characters():
    # EXIficient writes 2509 for a 12..1024 type as CH[untyped]; we must read it back too
    ns = "urn:iso:15118:2:2010:AppProtocol"
    obj = {"supportedAppProtocolRes": {"ResponseCode": "OK_SuccessfulNegotiation", "SchemaID": 1}}
    assert exi.decode(ns, exi.encode(ns, obj)) == obj


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("ns,obj,msg", [
    ("urn:nope", {"x": {}}, "unknown namespace"),
    ("urn:iso:15118:2:2010:AppProtocol", {"Nope": {}}, "not a global element"),
    ("urn:iso:15118:2:2010:AppProtocol", {"supportedAppProtocolRes": {}}, "missing content"),
    ("urn:iso:15118:2:2010:AppProtocol",
     {"supportedAppProtocolRes": {"ResponseCode": "OK_SuccessfulNegotiation", "Bogus": 1}}, "unexpected"),
    ("urn:iso:15118:2:2010:AppProtocol",
     {"supportedAppProtocolReq": {"AppProtocol": {"Priority": 1}}}, "expected a list"),
    ("urn:iso:std:iso:15118:-20:CommonMessages",
     {"SessionSetupReq": {"EVCCID": "x", "Header": {"SessionID": "XYZ", "TimeStamp": 1}}}, "bad value"),
    ("urn:iso:std:iso:15118:-20:CommonMessages",
     {"SessionSetupReq": {"EVCCID": 5, "Header": {"SessionID": "00", "TimeStamp": 1}}}, "expected a string"),
])
def test_encode_errors(ns, obj, msg):
    with pytest.raises(exi.ExiError) as e:
        exi.encode(ns, obj)
    assert msg in str(e.value)


def test_decode_errors():
    ns = "urn:iso:std:iso:15118:-20:DC"
    with pytest.raises(exi.ExiError, match="header"):
        exi.decode(ns, b"$EXI\x80")
    with pytest.raises(exi.ExiError, match="truncated|beyond end"):
        exi.decode(ns, bytes.fromhex(VECTORS[63]["exi"])[:10])
    with pytest.raises(exi.ExiError):
        exi.decode(ns, b"")


def test_list_bounded_by_schema():
    ns = "urn:iso:15118:2:2010:AppProtocol"
    ap = {"Priority": 1, "ProtocolNamespace": "urn:x", "SchemaID": 1, "VersionNumberMajor": 1,
          "VersionNumberMinor": 0}
    exi.encode(ns, {"supportedAppProtocolReq": {"AppProtocol": [ap] * 20}})
    with pytest.raises(exi.ExiError):
        exi.encode(ns, {"supportedAppProtocolReq": {"AppProtocol": [ap] * 21}})


# ------------------------------------------------------------------ generator
def test_generated_tables_up_to_date():
    if not XSD_DIR.is_dir():
        pytest.skip("XSDs not found at %s (they are not committed; ../shared/iso15118-20/xsd)" % XSD_DIR)
    import gen_exi
    assert gen_exi.main(["--xsd-dir", str(XSD_DIR), "--check"]) == 0


def test_generator_detects_stale_tables(tmp_path):
    if not XSD_DIR.is_dir():
        pytest.skip("XSDs not found at %s (they are not committed; ../shared/iso15118-20/xsd)" % XSD_DIR)
    import gen_exi
    assert gen_exi.main(["--xsd-dir", str(XSD_DIR), "--out", str(tmp_path), "--check"]) == 1
    assert gen_exi.main(["--xsd-dir", str(XSD_DIR), "--out", str(tmp_path)]) == 0
    assert gen_exi.main(["--xsd-dir", str(XSD_DIR), "--out", str(tmp_path), "--check"]) == 0
    for f in tmp_path.iterdir():
        assert f.read_text() == (ROOT / "controller" / "iso15118" / f.name).read_text()
