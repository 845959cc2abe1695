"""Grid protection, anti-islanding and backup against the simulated site (issue #3).

The shared scenarios with their targets, unseen variants (other loads, mismatches,
instants, grid codes, 50 and 60 Hz), and the matrix command.
"""

import json
import pathlib
import subprocess
import sys

import pytest

from hil import scenario
from hil.runner import run_lockstep

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCEN = ROOT / "scenarios"


def _run(sc, **kw):
    sc = scenario.load(SCEN / sc) if isinstance(sc, str) else scenario.validate(sc)
    return run_lockstep(sc, **kw)


def _kinds(report):
    return [e["kind"] for e in report["events"]]


def test_balanced_island_detected_within_limits():
    report, _ = _run("balanced-island-rlc.json")
    m = report["metrics"]
    assert m["island_detection_s"] is not None and m["island_detection_s"] <= 0.5
    assert m["dead_line_energized_ms"] <= 2000.0
    k = _kinds(report)
    # the sequence of issue #3 item 5, in order
    seq = [k.index(x) for x in ("island_detected", "relay_open_command", "relay_open", "grid_forming")]
    assert seq == sorted(seq)
    assert m["home_interruption_ms"] <= 20.0


def test_plant_holds_island_without_active_method():
    report, rec = _run("hold-island-without-active-method.json")
    m = report["metrics"]
    assert m["island_detection_s"] is None
    assert m["dead_line_energized_ms"] >= 10000.0  # the island persisted for 10 s and more
    # and it was a real island: the meter at the point of connection saw no flow from the grid
    assert all(abs(s[4]) < 1.0 for s in rec.samples if s[0] > 1.1)


@pytest.mark.parametrize("name", ["rocof-ride-through.json", "voltage-sag-ride-through.json"])
def test_ride_through_cases_do_not_trip(name):
    report, _ = _run(name)
    assert report["metrics"]["trip_count"] == 0
    assert "island_detected" not in _kinds(report)


def test_hard_outage_switches_within_the_interruption_target():
    report, _ = _run("hard-outage-v2h.json")
    m = report["metrics"]
    assert m["home_interruption_ms"] <= 40.0  # target; aim 20
    assert m["island_detection_s"] <= 0.05
    assert "grid_forming" in _kinds(report)
    assert m["max_over_limit_a"] == 0.0


def test_outage_and_return_reconnects_in_sync():
    report, _ = _run("outage-and-return.json")
    m = report["metrics"]
    assert m["reconnect_delay_s"] is not None and m["reconnect_delay_s"] >= 60.0  # EN 50549-1 observation time
    assert m["reconnect_phase_error_deg"] <= 10.0
    assert m["reconnect_frequency_error_hz"] <= 0.1
    assert m["reconnect_voltage_error_pu"] <= 0.05
    # the home only saw the outage's switchover, nothing at the reconnection
    assert m["home_interruption_ms"] <= 40.0
    k = _kinds(report)
    assert k.index("resync_start") < k.index("relay_close") < k.index("grid_following")


def _closed_at(report):
    return next(e["t_s"] for e in report["events"] if e["kind"] == "grid_following")


def test_after_return_v2h_resumes_under_the_enter_service_ramp():
    """EN 50549-1 4.10: after reconnection the output rises by at most 10 % of rated power
    per minute (the profile's ramp_time_s = 600 s); the V2H service resumes under it."""
    report, rec = _run("outage-and-return.json")
    t_c = _closed_at(report)
    after = [e for e in report["events"] if e["t_s"] >= t_c]
    assert any(e["kind"] == "limit_change" and e["by"] == "enter_service" for e in after)
    rated_w, ramp_s, eff = 11000.0, 600.0, 0.97
    out = [(t - t_c, -p_batt * eff) for t, _, _, _, _, p_batt, _, _ in rec.samples if t > t_c]
    assert max(w for _, w in out) > 0.5 * rated_w * (150.0 - t_c) / ramp_s  # it does resume
    assert all(w <= rated_w * dt / ramp_s + 25.0 for dt, w in out)  # and never above the ramp


def test_ramp_off_resumes_at_once_and_a_second_outage_is_caught_again():
    sc = json.loads((SCEN / "outage-and-return.json").read_text())
    sc["controller"] = {"limits": {"enter_service_ramp": "off"}}
    sc["duration_s"] = 100.0
    sc["events"].append({"t_s": 95.0, "kind": "grid_disconnect"})
    report, rec = _run(sc)
    t_c = _closed_at(report)
    assert t_c < 95.0
    # V2H at full home load again within a second of the reconnection
    assert any(-p_batt * 0.97 > 2500.0 for t, _, _, _, _, p_batt, _, _ in rec.samples if t_c < t < t_c + 1.0)
    # protection re-armed: the second outage is detected and the home carried again
    k = _kinds(report)
    assert k.count("island_detected") == 2 and k.count("grid_forming") == 2
    assert report["metrics"]["home_interruption_ms"] <= 2 * 40.0


def test_island_overload_holds_every_limit_and_says_so():
    report, _ = _run("island-overload.json")
    assert report["metrics"]["max_over_limit_a"] == 0.0
    assert "backup_overload" in _kinds(report)


def test_no_backup_when_disabled_dead_line_still_cleared():
    sc = json.loads((SCEN / "hard-outage-v2h.json").read_text())
    sc["controller"] = {"backup": {"enabled": False}}
    report, _ = _run(sc)
    k = _kinds(report)
    assert "relay_open" in k and "grid_forming" not in k and "backup_end" in k
    assert report["metrics"]["dead_line_energized_ms"] <= 40.0


def test_min_soc_ends_backup():
    sc = json.loads((SCEN / "hard-outage-v2h.json").read_text())
    sc["ev"]["soc"] = 0.2006  # 94 kWh: 0.06 % is 56 Wh, about 100 s at 2 kW; the EV allows down to 20 %
    sc["duration_s"] = 6.0
    sc["events"].append({"t_s": 3.0, "kind": "ev_limits", "min_soc": 0.25})
    report, _ = _run(sc)
    k = _kinds(report)
    assert "grid_forming" in k and "backup_end" in k
    assert report["metrics"]["max_over_limit_a"] == 0.0


def test_ramp_always_also_holds_the_start_up():
    sc = {"name": "v2g-start-ramp", "duration_s": 20.0, "site": {"grid_code": "IEEE1547-2018-CatII",
                                                                 "nominal_frequency_hz": 60.0},
          "inverter": {"rating_kva": 11.0}, "load": {"p_kw": 1.0}, "mode": {"kind": "v2g", "setpoint_kw": -8.0},
          "controller": {"limits": {"enter_service_ramp": "always"}}}
    report, rec = _run(sc)
    t0 = next(e["t_s"] for e in report["events"] if e["kind"] == "safe_state_cleared")
    out = [(t - t0, -p_batt * 0.97) for t, _, _, _, _, p_batt, _, _ in rec.samples if t > t0]
    assert all(w <= 11000.0 * dt / 300.0 + 25.0 for dt, w in out)  # IEEE 1547: rated over 300 s
    assert out[-1][1] > 0.9 * 11000.0 * out[-1][0] / 300.0
    assert any(e["kind"] == "limit_change" and e["by"] == "enter_service" for e in report["events"])
    sc["controller"] = {}  # default after_trip: no ramp at start-up, the setpoint within a second
    report, rec = _run(sc)
    assert any(-p * 0.97 > 7500.0 for t, _, _, _, _, p, _, _ in rec.samples if t < 1.5)


# -- unseen scenarios: other loads, mismatches, instants, grid codes, 50 and 60 Hz ---------------

GRID_CODES = ["EN50549-1", "IEEE1547-2018-CatII", "IEEE1547-2018-CatIII", "DK-EN50549-1"]


@pytest.mark.parametrize("grid_code", GRID_CODES)
@pytest.mark.parametrize("f_nom", [50.0, 60.0])
def test_unseen_islands_detected(grid_code, f_nom):
    for p_kw, mismatch, t in ((5.0, 3.0, 0.77), (9.5, -2.0, 1.31)):
        sc = {"name": "unseen-island", "duration_s": t + 2.5,
              "site": {"grid_code": grid_code, "nominal_frequency_hz": f_nom},
              "load": {"rlc": {"p_kw": p_kw, "q_factor": 1.0, "reactive_mismatch_pct": mismatch}},
              "mode": {"kind": "v2g", "setpoint_kw": -p_kw / 0.97},
              "controller": {"limits": {"ramp_up_kw_per_s": None}},
              "events": [{"t_s": t, "kind": "grid_disconnect"}]}
        report, _ = _run(sc)
        m = report["metrics"]
        assert m["island_detection_s"] is not None and m["island_detection_s"] <= 0.5, (grid_code, f_nom, p_kw)
        assert m["home_interruption_ms"] <= 40.0


@pytest.mark.parametrize("grid_code", GRID_CODES)
@pytest.mark.parametrize("f_nom", [50.0, 60.0])
def test_unseen_ride_through_no_trip(grid_code, f_nom):
    f = f_nom
    sc = {"name": "unseen-ride-through", "duration_s": 5.0,
          "site": {"grid_code": grid_code, "nominal_frequency_hz": f_nom},
          "load": {"p_kw": 1.5, "q_kvar": 0.3}, "mode": {"kind": "v2g", "setpoint_kw": -5.0},
          "events": [{"t_s": 1.2, "kind": "grid_voltage", "pu": 0.88},
                     {"t_s": 1.6, "kind": "grid_voltage", "pu": 1.0, "ramp_s": 0.2},
                     {"t_s": 2.0, "kind": "grid_frequency", "hz": f * 0.985, "ramp_hz_per_s": f / 50.0 * 1.5},
                     {"t_s": 3.0, "kind": "grid_frequency", "hz": f, "ramp_hz_per_s": f / 50.0 * 1.5},
                     {"t_s": 4.0, "kind": "grid_phase_jump", "deg": 10.0}]}
    report, _ = _run(sc)
    assert report["metrics"]["trip_count"] == 0, report["events"]


def test_hard_outage_60hz_ieee():
    sc = json.loads((SCEN / "hard-outage-v2h.json").read_text())
    sc["site"].update({"grid_code": "IEEE1547-2018-CatIII", "nominal_frequency_hz": 60.0, "nominal_voltage_v": 120.0,
                       "phases": 1})
    sc["inverter"] = {"rating_kva": 7.6}
    sc["load"] = {"p_kw": 1.2, "q_kvar": 0.1}
    report, _ = _run(sc)
    m = report["metrics"]
    assert m["home_interruption_ms"] <= 40.0 and m["max_over_limit_a"] == 0.0


def test_matrix_command(tmp_path):
    r = subprocess.run([sys.executable, "-m", "tools.cli", "hil", "matrix", "--out", str(tmp_path), "--workers", "2"],
                       capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr
    data = json.loads((tmp_path / "matrix.json").read_text())
    rows = data["rows"]
    assert len(rows) == 45
    assert {r["level_pct"] for r in rows} == {100, 66, 33}
    assert all(r["detection_s"] is not None and r["detection_s"] <= 2.0 for r in rows)
    assert (tmp_path / "matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert "45 of 45 islands detected" in (tmp_path / "matrix.md").read_text()


@pytest.mark.parametrize("grid_code,f_nom", [("EN50549-1", 50.0), ("IEEE1547-2018-CatII", 60.0)])
def test_matrix_with_grid_support_on_detects_every_island(tmp_path, grid_code, f_nom):
    """IEEE 1547.1-2020 runs its islanding tests with the grid-support functions on: P(f),
    volt-var and volt-watt here. Every island is still detected within 2 s (aim 0.5 s)."""
    r = subprocess.run([sys.executable, "-m", "tools.cli", "hil", "matrix", "--out", str(tmp_path), "--workers", "2",
                        "--grid-support", "on", "--grid-code", grid_code, "--frequency", str(f_nom)],
                       capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr
    data = json.loads((tmp_path / "matrix.json").read_text())
    assert data["grid_support"] == "on" and data["settings"]["q_mode"] == "volt_var"
    rows = data["rows"]
    assert len(rows) == 45
    assert all(r["detection_s"] is not None and r["detection_s"] <= 0.5 for r in rows), \
        [r for r in rows if r["detection_s"] is None or r["detection_s"] > 0.5]
    assert "grid support on" in (tmp_path / "matrix.md").read_text()
