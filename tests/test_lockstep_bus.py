"""Lockstep on either bus, with either device codec, gives the same run.

run_lockstep(bus="memory") uses controller.bus.ports.memory.MemoryBus (the fast default);
bus="virtual" the python-can virtual channel of the real-time mode. The devices encode
with the firmware's generated codec (codec="candb", the default) or with cantools
(codec="cantools"), which keeps the HIL's independence from the firmware codec
exercised: the controller refuses any frame the two codecs would encode differently
(CRC, range), and the reports must be identical.
"""

import json
import pathlib

import can
import pytest

from hil import scenario
from hil.runner import run_lockstep

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCEN = ROOT / "scenarios"


def _run(name, **kw):
    sc = scenario.load(SCEN / name) if isinstance(name, str) else scenario.validate(name)
    report, rec = run_lockstep(sc, **kw)
    run = report.pop("run")
    return report, rec, run


@pytest.mark.parametrize("name", ["ev-limit-drop.json", "hard-outage-v2h.json"])
def test_memory_and_virtual_bus_give_the_same_report(name):
    a, ra, run_a = _run(name, bus="memory")
    b, rb, run_b = _run(name, bus="virtual")
    assert run_a["bus"] == "memory" and run_b["bus"] == "virtual"
    assert a["metrics"] == b["metrics"]
    assert a["events"] == b["events"]
    assert a == b
    assert ra.samples == rb.samples  # the plant's timeline too
    assert run_a["frames_refused_by_controller"] == run_b["frames_refused_by_controller"] == 0


def test_cantools_encoded_devices_give_the_same_report():
    # meter corruption included: implausible values and broken frames go through both codecs
    sc = {"name": "codec", "duration_s": 2.0, "mode": {"kind": "v2g", "setpoint_kw": -5.0},
          "events": [{"t_s": 0.5, "kind": "can_corrupt", "node": "meter", "duration_s": 0.3},
                     {"t_s": 1.0, "kind": "ev_limits", "max_discharge_kw": 3.0},
                     {"t_s": 1.4, "kind": "grid_disconnect"}]}
    for bus in ("memory", "virtual"):
        a, ra, run_a = _run(sc, bus=bus, codec="candb")
        b, rb, run_b = _run(sc, bus=bus, codec="cantools")
        assert (run_a["codec"], run_b["codec"]) == ("candb", "cantools")
        assert a == b and ra.samples == rb.samples
        assert run_a["frames_refused_by_controller"] == run_b["frames_refused_by_controller"] > 0
    rep, _, _ = _run("hard-outage-v2h.json", codec="cantools")
    assert rep == _run("hard-outage-v2h.json", codec="candb")[0]


def test_same_frames_on_both_buses(tmp_path):
    logs = {}
    for bus in ("memory", "virtual"):
        path = tmp_path / ("%s.asc" % bus)
        _run("ev-limit-drop.json", bus=bus, log_path=str(path))
        logs[bus] = [(round(f.timestamp, 6), f.arbitration_id, bytes(f.data)) for f in can.ASCReader(str(path))]
    assert len(logs["memory"]) > 1500
    assert logs["memory"] == logs["virtual"]


def test_unknown_bus_or_codec_is_an_error():
    sc = scenario.validate({"name": "x", "duration_s": 0.1})
    with pytest.raises(ValueError):
        run_lockstep(sc, bus="socketcan")
    with pytest.raises(ValueError):
        run_lockstep(sc, codec="bitstruct")


def test_report_names_bus_and_codec():
    _, _, run = _run("meter-silence.json")
    assert run["bus"] == "memory" and run["codec"] == "candb"
    assert json.dumps(run)  # plain data
