"""HIL scenarios in lockstep: the example scenarios, unseen variants, bad input, determinism."""

import functools
import json
import pathlib
import subprocess
import sys

import can
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from hil import scenario
from hil.runner import run_lockstep

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCEN = ROOT / "scenarios"
METRICS = {"island_detection_s", "trip_count", "home_interruption_ms", "dead_line_energized_ms", "max_over_limit_a",
           "reconnect_delay_s", "reconnect_phase_error_deg", "reconnect_frequency_error_hz",
           "reconnect_voltage_error_pu", "ev_soc_end", "energy_to_home_kwh", "energy_to_grid_kwh",
           "energy_from_grid_kwh"}


def _run(name_or_dict, **kw):
    sc = scenario.load(SCEN / name_or_dict) if isinstance(name_or_dict, str) else scenario.validate(name_or_dict)
    return run_lockstep(sc, **kw)


def _p_batt(rec, t0, t1):
    return [s[5] for s in rec.samples if t0 <= s[0] <= t1]


def test_ev_limit_drop_never_over_limit():
    report, rec = _run("ev-limit-drop.json")
    m = report["metrics"]
    assert METRICS <= set(m)
    assert m["max_over_limit_a"] == 0.0
    assert m["trip_count"] == 0
    # before the drop the EV delivers 10 kW, after it no more than 3 kW, within one period
    assert min(_p_batt(rec, 0.8, 0.99)) < -9900.0
    assert all(p >= -3000.0 - 1e-6 for p in _p_batt(rec, 1.0 + 0.01, 4.0))
    assert min(_p_batt(rec, 1.5, 4.0)) < -2950.0  # and it still delivers what is allowed


def test_meter_silence_stops_export_then_recovers():
    report, rec = _run("meter-silence.json")
    kinds = [(e["kind"], e.get("input")) for e in report["events"]]
    assert ("input_timeout", "meter") in kinds and ("input_restored", "meter") in kinds
    t_out = next(e["t_s"] for e in report["events"] if e["kind"] == "input_timeout")
    assert 1.0 < t_out <= 1.0 + 0.05 + 0.011  # timeout (5 periods) plus one control period
    # blind export stops: zero battery power from one period after the timeout to the end of the silence
    assert all(abs(p) < 1.0 for p in _p_batt(rec, t_out + 0.011, 1.3))
    # and comes back after the meter returns
    assert min(_p_batt(rec, 2.0, 4.0)) < -5900.0
    assert report["metrics"]["trip_count"] == 0


@pytest.mark.parametrize("name", ["rocof-ride-through.json", "voltage-sag-ride-through.json"])
def test_ride_through_no_trip(name):
    report, rec = _run(name)
    m = report["metrics"]
    assert m["trip_count"] == 0
    assert m["max_over_limit_a"] == 0.0
    assert m["home_interruption_ms"] == 0.0
    assert min(_p_batt(rec, 3.5, 4.0)) < -5900.0  # still exporting after the disturbance


@functools.lru_cache(maxsize=None)
def _shipped(name):
    """The report of a shipped scenario (shared by the tests that only read it)."""
    return _run(name)[0]


@pytest.mark.parametrize("name", sorted(p.name for p in SCEN.glob("*.json")))
def test_every_example_runs_and_reports(name):
    report = _shipped(name)
    assert report["scenario"] == json.loads((SCEN / name).read_text())["name"]
    assert METRICS <= set(report["metrics"])
    for e in report["events"]:
        assert isinstance(e["t_s"], float) and isinstance(e["kind"], str)
    assert report["run"]["lost_controller_events"] == 0


# The site invariants (hil/invariants.py) over the shipped scenarios: none may be broken.
# hold-island-without-active-method switches the active anti-islanding method off on
# purpose (the IEEE 1547.1 check that the plant can hold an island): the island outlives
# the 2 s dead-line limit, and the oracle must say so.
BY_DESIGN = {"hold-island-without-active-method.json": {"dead_line": 1}}
@pytest.mark.parametrize("name", sorted(p.name for p in SCEN.glob("*.json")))
def test_shipped_scenarios_keep_the_site_invariants(name):
    report = _shipped(name)
    inv = report["invariants"]
    expected = BY_DESIGN.get(name, {})
    assert inv["by_rule"] == {r: expected.get(r, 0) for r in inv["by_rule"]}, inv["first"]
    assert report["metrics"]["invariant_violations"] == inv["violations"] == sum(expected.values())
    assert [v["rule"] for v in inv["first"]] == [r for r, n in expected.items() for _ in range(n)]


def test_clock_start_just_before_a_wrap_changes_nothing():
    """The controller's ticks wrap at 2**30 us (controller/clock.py): a run that starts
    1 ms, or 10 s, before a wrap gives the same report as one that starts at 0."""
    base = dict(_shipped("meter-silence.json"))
    base.pop("run")
    for start in ((1 << 30) - 1000, (1 << 30) - 10_000_000, 123456789):
        report, _ = _run("meter-silence.json", clock_start_us=start)
        assert report["run"]["clock_start_us"] == start
        report.pop("run")
        assert report == base


def test_charge_with_a_negative_setpoint_holds_zero():
    sc = {"name": "charge-negative", "duration_s": 1.5, "mode": {"kind": "charge", "setpoint_kw": 5.0},
          "events": [{"t_s": 0.5, "kind": "mode", "mode": {"kind": "charge", "setpoint_kw": -4.0}}]}
    report, rec = _run(sc)
    assert max(_p_batt(rec, 0.3, 0.5)) > 4900.0
    assert all(abs(p) < 1.0 for p in _p_batt(rec, 0.52, 1.5))
    assert any(e["kind"] == "limit_change" and e["by"] == "mode_direction" for e in report["events"])
    assert report["invariants"]["violations"] == 0


def test_deterministic():
    a, _ = _run("meter-silence.json")
    b, _ = _run("meter-silence.json")
    a.pop("run"), b.pop("run")
    assert a == b


def test_can_corrupt_refused_and_safe():
    sc = {"name": "corrupt", "duration_s": 2.0, "mode": {"kind": "v2g", "setpoint_kw": -5.0},
          "events": [{"t_s": 0.8, "kind": "can_corrupt", "node": "meter", "duration_s": 0.4}]}
    report, rec = _run(sc)
    assert report["run"]["frames_refused_by_controller"] >= 40  # ~2 meter frames every 10 ms for 0.4 s
    kinds = [e["kind"] for e in report["events"]]
    assert "frame_refused" in kinds and "input_timeout" in kinds and "input_restored" in kinds
    assert report["metrics"]["max_over_limit_a"] == 0.0
    assert all(abs(p) < 1.0 for p in _p_batt(rec, 0.88, 1.2))


def test_charge_respects_ev_and_fuse():
    sc = {"name": "charge", "duration_s": 2.0, "load": {"p_kw": 3.0, "q_kvar": 0.0},
          "ev": {"max_charge_kw": 7.0}, "mode": {"kind": "charge", "setpoint_kw": 11.0},
          "events": [{"t_s": 1.0, "kind": "mode", "mode": {"kind": "charge", "setpoint_kw": 4.0}}]}
    report, rec = _run(sc)
    assert report["metrics"]["max_over_limit_a"] == 0.0
    assert 6900.0 < max(_p_batt(rec, 0.8, 0.99)) <= 7000.0
    assert all(p <= 4000.0 + 1e-6 for p in _p_batt(rec, 1.02, 2.0))
    assert report["metrics"]["energy_from_grid_kwh"] > 0.0


def test_v2h_covers_home_without_export():
    sc = {"name": "v2h", "duration_s": 3.0, "load": {"p_kw": 2.5, "q_kvar": 0.3}, "mode": {"kind": "v2h"},
          "events": [{"t_s": 1.5, "kind": "load_step", "p_kw": 4.0, "q_kvar": 0.0}]}
    report, rec = _run(sc)
    m = report["metrics"]
    grid = [s[4] for s in rec.samples if 1.2 <= s[0] < 1.5 or 2.5 <= s[0] <= 3.0]
    assert all(-1.0 < g < 200.0 for g in grid), (min(grid), max(grid))
    assert m["energy_to_home_kwh"] > 0.002
    assert m["energy_to_grid_kwh"] < 1e-5


def test_can_log_readable(tmp_path):
    log = tmp_path / "run.asc"
    report, _ = _run("ev-limit-drop.json", log_path=str(log))
    frames = list(can.ASCReader(str(log)))
    ids = {f.arbitration_id for f in frames}
    assert {0x100, 0x0A0, 0x0A1, 0x180, 0x200, 0x301} <= ids
    assert len(frames) > 1500
    assert frames[-1].timestamp <= 4.0 + 1e-6


# -- unseen scenarios: random valid files in the same format ---------------------------------

@st.composite
def scenarios(draw):
    dur = draw(st.floats(0.5, 2.0))
    mode = draw(st.sampled_from([{"kind": "v2h"}, {"kind": "idle"},
                                 {"kind": "v2g", "setpoint_kw": draw(st.floats(-11.0, 0.0))},
                                 {"kind": "charge", "setpoint_kw": draw(st.floats(0.0, 11.0))}]))
    evs = []
    for _ in range(draw(st.integers(0, 4))):
        t = draw(st.floats(0.0, dur))
        kind = draw(st.sampled_from(["load_step", "ev_limits", "can_silence", "can_corrupt", "grid_voltage",
                                     "grid_frequency"]))
        if kind == "load_step":
            evs.append({"t_s": t, "kind": kind, "p_kw": draw(st.floats(0.0, 9.0)), "q_kvar": draw(st.floats(-1, 1))})
        elif kind == "ev_limits":
            evs.append({"t_s": t, "kind": kind, "max_discharge_kw": draw(st.floats(0.0, 11.0)),
                        "max_charge_kw": draw(st.floats(0.0, 11.0))})
        elif kind in ("can_silence", "can_corrupt"):
            evs.append({"t_s": t, "kind": kind, "node": draw(st.sampled_from(["meter", "inverter"])),
                        "duration_s": draw(st.floats(0.0, 0.5))})
        elif kind == "grid_voltage":
            evs.append({"t_s": t, "kind": kind, "pu": draw(st.floats(0.9, 1.08))})
        else:
            evs.append({"t_s": t, "kind": kind, "hz": draw(st.floats(49.8, 50.2)), "ramp_hz_per_s": 1.0})
    return {"name": "random", "duration_s": dur, "seed": draw(st.integers(0, 1000)),
            "site": {"meter_period_ms": draw(st.sampled_from([10, 20, 50, 100]))},
            "ev": {"soc": draw(st.floats(0.1, 0.95)), "min_soc": draw(st.floats(0.0, 0.5))},
            "load": {"p_kw": draw(st.floats(0.0, 8.0)), "q_kvar": 0.0}, "mode": mode, "events": evs}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_unseen_scenarios_hold_every_limit(sc):
    report, rec = _run(sc)
    m = report["metrics"]
    assert METRICS <= set(m)
    assert m["max_over_limit_a"] == 0.0
    assert m["trip_count"] == 0
    assert 0.0 <= m["ev_soc_end"] <= 1.0
    assert all(v is None or v >= 0 for k, v in m.items() if k.startswith("energy"))


# -- bad input ------------------------------------------------------------------------------

BAD = [
    ({"name": "x", "duration_s": 1, "sitee": {}}, "sitee"),
    ({"name": "x", "duration_s": 1, "site": {"grid_code": "MARS"}}, "site.grid_code"),
    ({"name": "x", "duration_s": 1, "site": {"start_utc": "2025-01-01 00:00"}}, "site.start_utc"),
    ({"name": "x", "duration_s": 1, "events": [{"t_s": 0.5, "kind": "grid_voltage"}]}, "events[0].pu"),
    ({"name": "x", "duration_s": 1, "events": [{"t_s": 2.0, "kind": "grid_disconnect"}]}, "events[0].t_s"),
    ({"name": "x", "duration_s": 1, "events": [{"t_s": 0.1, "kind": "meteor"}]}, "events[0].kind"),
    ({"name": "x", "duration_s": 1, "controller": {"anti_islanding": {"active_method": "maybe"}}},
     "controller.anti_islanding.active_method"),
    ({"name": "x", "duration_s": 1, "controller": {"limits": {"nope": 1}}}, "controller.limits.nope"),
    ({"name": "x", "duration_s": 1, "load": {"rlc": {"p_kw": 1.0}}}, "load.rlc.q_factor"),
    ({"name": "x", "duration_s": 1, "mode": {"kind": "v2g"}}, "mode.setpoint_kw"),
    ({"name": "x", "duration_s": "long"}, "duration_s"),
    ({"duration_s": 1}, "name"),
    ({"name": "x", "duration_s": 1, "ev": {"soc": 1.5}}, "ev.soc"),
    ({"name": "x", "duration_s": 1, "events": [{"t_s": 0.1, "kind": "can_silence", "node": "charger",
                                                "duration_s": 1}]}, "events[0].node"),
]


@pytest.mark.parametrize("sc,key", BAD, ids=[k for _, k in BAD])
def test_invalid_scenario_names_the_key(sc, key):
    with pytest.raises(scenario.ScenarioError) as e:
        scenario.validate(sc)
    assert e.value.key == key


def test_cli_exit_2_on_invalid_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "duration_s": 1, "load": {"p_kw": 1, "qq": 2}}))
    r = subprocess.run([sys.executable, "-m", "tools.cli", "hil", "run", str(bad)], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 2
    assert "load.qq" in r.stderr and "unknown key" in r.stderr
    notjson = tmp_path / "nj.json"
    notjson.write_text("{not json")
    r = subprocess.run([sys.executable, "-m", "tools.cli", "hil", "run", str(notjson)], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 2 and "not valid JSON" in r.stderr


def test_cli_report_plot_log(tmp_path):
    r = subprocess.run([sys.executable, "-m", "tools.cli", "hil", "run", str(SCEN / "ev-limit-drop.json"), "--report",
                        str(tmp_path / "r.json"), "--plot", str(tmp_path / "r.png"), "--log", str(tmp_path / "r.asc")],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "max_over_limit_a" in r.stdout and "mode_change" in r.stdout
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["metrics"]["max_over_limit_a"] == 0.0
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "r.asc").stat().st_size > 10000


def test_export_limit_holds():
    sc = {"name": "export-limit", "duration_s": 2.0, "load": {"p_kw": 1.0, "q_kvar": 0.0},
          "mode": {"kind": "v2g", "setpoint_kw": -10.0}, "controller": {"site": {"export_limit_kw": 4.0}}}
    report, rec = _run(sc)
    assert report["metrics"]["max_over_limit_a"] == 0.0
    grid = [s[4] for s in rec.samples if s[0] >= 1.0]
    assert min(grid) >= -4000.0 - 1e-6 and min(grid) < -3900.0
