"""Fuzz the EXI decoder: random, truncated and bit-flipped streams give a result or ExiError.

Fixed budget (max_examples=300 per strategy, no deadline): anything other than
ExiError (a crash), a hang or a huge result fails the test. Every event consumes at
least one bit and string/binary lengths are checked against the remaining input, so
the work is bounded by the input size.
"""
import json
import pathlib
import sys

from hypothesis import HealthCheck, given, settings, strategies as st

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from controller.iso15118 import exi  # noqa: E402

VECTORS = [json.loads(line) for line in
           (ROOT / "tests" / "data" / "iso15118-20-vectors.jsonl").read_text().splitlines() if line.strip()]
NAMESPACES = sorted(exi.MODULES)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _size(obj):
    if isinstance(obj, dict):
        return 1 + sum(_size(v) for v in obj.values())
    if isinstance(obj, list):
        return 1 + sum(_size(v) for v in obj)
    if isinstance(obj, str):
        return 1 + len(obj) // 8
    return 1


def _check(ns, data):
    try:
        out = exi.decode(ns, data)
    except exi.ExiError as e:
        assert str(e)
        return
    # a successful decode is a message of bounded size that encodes again
    assert isinstance(out, dict) and len(out) == 1
    assert _size(out) <= 16 * len(data) + 16
    try:
        exi.encode(ns, out)
    except exi.ExiError:
        pass  # e.g. string-table hits decode to values the encoder writes differently


@FUZZ
@given(st.sampled_from(NAMESPACES), st.binary(max_size=200))
def test_random_bytes(ns, data):
    _check(ns, data)


@FUZZ
@given(st.sampled_from(NAMESPACES), st.binary(max_size=200))
def test_random_body_after_valid_header(ns, body):
    _check(ns, b"\x80" + body)


@FUZZ
@given(st.integers(0, len(VECTORS) - 1), st.data())
def test_truncated_vectors(i, data):
    v = VECTORS[i]
    raw = bytes.fromhex(v["exi"])
    n = data.draw(st.integers(0, len(raw) - 1))
    _check(v["ns"], raw[:n])


@FUZZ
@given(st.integers(0, len(VECTORS) - 1), st.data())
def test_bit_flipped_vectors(i, data):
    v = VECTORS[i]
    raw = bytearray(bytes.fromhex(v["exi"]))
    flips = data.draw(st.lists(st.integers(0, len(raw) * 8 - 1), min_size=1, max_size=4))
    for bit in flips:
        raw[bit >> 3] ^= 0x80 >> (bit & 7)
    _check(v["ns"], bytes(raw))


@FUZZ
@given(st.integers(0, len(VECTORS) - 1), st.sampled_from(NAMESPACES))
def test_vector_decoded_with_wrong_namespace(i, ns):
    _check(ns, bytes.fromhex(VECTORS[i]["exi"]))
