"""Benchmarks: generated codecs (controller/bus/candb.py) against cantools on the same message.

    pytest tests/test_bench_codec.py --benchmark-enable

With the default ``--benchmark-disable`` (pyproject addopts) every benchmark still runs
once as a test, and each asserts that both sides give the same result.  No assertion
on time: these machines are shared and noisy.
"""

import os
import sys

import cantools
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from controller.bus import candb  # noqa: E402

CASES = {
    "MTR_Grid": {"GridVoltage": 231.45, "GridFrequency": 49.987, "PhaseAngle": -12.3, "AliveCounter": 7,
                 "Rocof": -0.15, "Crc": 0x5A},
    "GW_InverterCmd": {"InvModeReq": 1, "ClearFaults": 0, "PSetpoint": -7400, "QSetpoint": 250,
                       "AliveCounter": 9, "Crc": 0xA5},
}


@pytest.fixture(scope="module")
def db():
    d = cantools.database.Database()
    for name in sorted(os.listdir(os.path.join(ROOT, "dbc"))):
        if name.endswith(".dbc"):
            d.add_dbc_file(os.path.join(ROOT, "dbc", name))
    return d


def _case(db, name):
    m = candb.BY_NAME[name]
    values = CASES[name]
    data = db.encode_message(m.frame_id, values, strict=False)
    return m, values, data


@pytest.mark.parametrize("name", sorted(CASES))
def test_decode_ours(benchmark, db, name):
    benchmark.group = "decode " + name
    m, _, data = _case(db, name)
    got = benchmark(m.decode, data)
    assert got == db.decode_message(m.frame_id, data, decode_choices=False)


@pytest.mark.parametrize("name", sorted(CASES))
def test_decode_into_ours(benchmark, db, name):
    benchmark.group = "decode " + name
    m, _, data = _case(db, name)
    out = {}
    got = benchmark(m.decode_into, data, out)
    assert got is out and got == db.decode_message(m.frame_id, data, decode_choices=False)


@pytest.mark.parametrize("name", sorted(CASES))
def test_decode_cantools(benchmark, db, name):
    benchmark.group = "decode " + name
    m, _, data = _case(db, name)
    got = benchmark(db.decode_message, m.frame_id, data, decode_choices=False)
    assert got == m.decode(data)


@pytest.mark.parametrize("name", sorted(CASES))
def test_encode_ours(benchmark, db, name):
    benchmark.group = "encode " + name
    m, values, data = _case(db, name)
    assert benchmark(m.encode, values) == data


@pytest.mark.parametrize("name", sorted(CASES))
def test_encode_into_ours(benchmark, db, name):
    benchmark.group = "encode " + name
    m, values, data = _case(db, name)
    buf = bytearray(m.length)
    assert benchmark(m.encode_into, values, buf) is buf
    assert bytes(buf) == data


@pytest.mark.parametrize("name", sorted(CASES))
def test_encode_cantools(benchmark, db, name):
    benchmark.group = "encode " + name
    m, values, data = _case(db, name)
    assert benchmark(db.encode_message, m.frame_id, values, scaling=True, strict=False) == data
