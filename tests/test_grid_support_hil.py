"""Grid support end to end: the controller in lockstep with the simulated site, the
functions acting through the inverter commands, measured at the plant's inverter
terminals (the run's --trace time series)."""

import csv
import json
import pathlib

import pytest

from hil import scenario
from hil.runner import run_lockstep

ROOT = pathlib.Path(__file__).resolve().parent.parent
RATED_W = 11000.0


def _run(sc, tmp_path):
    path = tmp_path / "trace.csv"
    report, _ = run_lockstep(scenario.validate(sc), trace_path=str(path))
    with open(path) as f:
        rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]
    return report, rows


def _at(rows, t_s):
    return min(rows, key=lambda r: abs(r["t_s"] - t_s))


def _export_w(row):
    return -row["inv_p_kw"] * 1000.0  # the trace's inv_p_kw is + when charging the EV


def test_en50549_slow_rise_to_50_7_hz_follows_the_droop_and_does_not_trip(tmp_path):
    sc = json.loads((ROOT / "scenarios" / "lfsm-o-slow-rise.json").read_text())
    report, rows = _run(sc, tmp_path)
    m = report["metrics"]
    assert m["trip_count"] == 0 and m["island_detection_s"] is None
    assert all(r["relay_closed"] == 1 and r["inverter_mode"] == 1 for r in rows if r["t_s"] > 0.5)
    p_m = _export_w(_at(rows, 1.9))  # P_M: the export when the threshold is crossed
    assert 9900.0 < p_m < 10100.0
    # EN 50549-1 4.6.1: P = P_M - (f - 50.2) / (50 * 0.05) * P_M; at 50.7 Hz 20 % less
    for t in (15.0, 19.0):
        assert abs(_export_w(_at(rows, t)) - 0.8 * p_m) < 0.01 * RATED_W
    # along the rise the response follows the droop line, never below it (a first-order
    # lag of 2 s open-loop response time behind a 0.1 Hz/s ramp: at most ~0.1 Hz late)
    for r in rows:
        if 2.0 < r["t_s"] < 10.0 and r["grid_f_hz"] > 50.2:
            line = p_m * (1.0 - (r["grid_f_hz"] - 50.2) / 2.5)
            assert line - 0.005 * RATED_W <= _export_w(r) <= line + 0.04 * p_m + 0.005 * RATED_W, r
    # back at 50 Hz: the schedule again
    assert abs(_export_w(_at(rows, 39.0)) - p_m) < 0.005 * RATED_W


def _ieee_site(f_step_hz, p_pu, q_mode="unity_pf"):
    return {
        "name": "ieee-p-of-f", "duration_s": 40.0,
        "site": {"grid_code": "IEEE1547-2018-CatII", "nominal_frequency_hz": 60.0},
        "ev": {"soc": 0.8, "max_charge_kw": 11.0, "max_discharge_kw": 11.5},
        "inverter": {"rating_kva": 11.0}, "load": {"p_kw": 1.0},
        "mode": {"kind": "v2g", "setpoint_kw": -p_pu * RATED_W / 1000.0 / 0.97},
        "controller": {"grid_support": {"q_mode": q_mode}},
        "events": [{"t_s": 2.0, "kind": "grid_frequency", "hz": f_step_hz}],
    }


def _opender_p_pu(p_dem, hz):
    opender = pytest.importorskip("opender", reason="opender not installed (pip install '.[test]')")
    opender.DER.t_s = 0.1
    der = opender.DER_BESS()
    der.update_der_input(v_pu=1.0, f=60.0, p_dem_pu=p_dem)
    for _ in range(30):
        der.run()
    der.update_der_input(f=hz)
    for _ in range(400):
        der.run()
    return der.p_out_pu


@pytest.mark.parametrize("hz", [60.5, 60.2, 59.8, 59.6])
def test_ieee_frequency_droop_end_to_end_matches_opender(tmp_path, hz):
    p_dem = 0.5
    _, rows = _run(_ieee_site(hz, p_dem), tmp_path)
    ours = _export_w(_at(rows, 39.0)) / RATED_W
    ref = _opender_p_pu(p_dem, hz)
    assert abs(ours - ref) < 0.01, (ours, ref)  # within 1 % of rating, through the whole loop


def _vv_site(grid_pu, q_mode):
    sc = _ieee_site(60.0, 0.5, q_mode)
    sc["site"]["grid_impedance"] = {"r_ohm": 0.24, "x_ohm": 0.15}  # IEC TR 60725 reference (docs/plant.md)
    sc["controller"]["anti_islanding"] = {"active_method": "off"}  # Q of the function alone
    sc["events"] = [{"t_s": 2.0, "kind": "grid_voltage", "pu": grid_pu, "ramp_s": 1.0}]
    return sc


@pytest.mark.parametrize("grid_pu", [1.06, 1.04, 0.95, 0.93])
def test_ieee_volt_var_behind_a_source_impedance_matches_opender(tmp_path, grid_pu):
    """Volt-var acts on the voltage the meter measures at the point of connection (the
    source's plus the site's own drop through the feeder); its Q matches OpenDER's for that
    voltage, and it moves that voltage the way X * Q / (3 V^2) says."""
    _, rows = _run(_vv_site(grid_pu, "volt_var"), tmp_path)
    end = _at(rows, 39.0)
    q_pu = end["inv_q_kvar"] * 1000.0 / RATED_W
    v_poc = end["grid_v_pu"]
    opender = pytest.importorskip("opender", reason="opender not installed (pip install '.[test]')")
    opender.DER.t_s = 0.1
    der = opender.DER_BESS()
    f = der.der_file
    f.QV_MODE_ENABLE = True
    f.OV1_TRIP_T = f.UV1_TRIP_T = 1000
    der.update_der_input(v_pu=v_poc, f=60.0, p_dem_pu=0.5)
    for _ in range(600):
        der.run()
    ref = der.q_out_pu  # per unit of its own rating, as q_pu is of ours
    assert abs(q_pu - ref) < 0.01, (v_poc, q_pu, ref)  # within 1 % of rating
    # the same site at unity power factor: the difference in voltage is the reactive drop
    _, rows_u = _run(_vv_site(grid_pu, "unity_pf"), tmp_path)
    dv = v_poc - _at(rows_u, 39.0)["grid_v_pu"]
    expect = 0.15 * end["inv_q_kvar"] * 1000.0 / (3 * 230.0 ** 2)
    assert abs(q_pu) > 0.05 and dv * expect > 0 and abs(dv - expect) < 0.2 * abs(expect) + 2e-4, (dv, expect)


def _en_site(mode, setpoint_kw, hz, droop):
    return {
        "name": "en-p-of-f-bounds", "duration_s": 20.0,
        "site": {"grid_code": "EN50549-1"},
        "ev": {"soc": 0.8, "max_charge_kw": 11.0, "max_discharge_kw": 11.0},
        "inverter": {"rating_kva": 11.0}, "load": {"p_kw": 1.0},
        "mode": {"kind": mode, "setpoint_kw": setpoint_kw},
        "controller": {"grid_support": {"droop_of": droop, "droop_uf": droop}},
        "events": [{"t_s": 2.0, "kind": "grid_frequency", "hz": hz, "ramp_hz_per_s": 1.0}],
    }


def test_over_frequency_in_v2g_lowers_export_to_zero_and_never_charges(tmp_path):
    # 2 % droop from 50.2 Hz: at 51.4 Hz the line asks 120 % less than P_M, i.e. charging
    report, rows = _run(_en_site("v2g", -8.0, 51.4, 0.02), tmp_path)
    assert report["metrics"]["trip_count"] == 0 and report["metrics"]["invariant_violations"] == 0
    assert all(r["inv_p_kw"] <= 0.0 + 1e-3 for r in rows)  # never charging in v2g
    assert abs(_at(rows, 19.0)["inv_p_kw"]) < 0.05  # export lowered to zero
    ev = [e for e in report["events"] if e["kind"] == "grid_support"]
    assert ev and ev[0]["function"] == "p_of_f" and ev[0]["active"] is True


def test_under_frequency_in_charge_lowers_charging_to_zero_and_never_discharges(tmp_path):
    # LFSM-U with P_M: at 48.8 Hz and 2 % droop the charging of 5 kW is lowered by 100 %
    report, rows = _run(_en_site("charge", 5.0, 48.8, 0.02), tmp_path)
    assert report["metrics"]["trip_count"] == 0 and report["metrics"]["invariant_violations"] == 0
    assert all(r["inv_p_kw"] >= -1e-3 for r in rows)  # never discharging in charge
    mid = _at(rows, 2.6)  # 49.4 Hz on the way down: 40 % less charging, behind a 2 s response
    assert 0.0 < mid["inv_p_kw"] < 5.0
    assert _at(rows, 19.0)["inv_p_kw"] < 0.05


def test_idle_site_does_not_respond(tmp_path):
    _, rows = _run(_en_site("idle", 0.0, 49.2, 0.02), tmp_path)
    assert all(abs(r["inv_p_kw"]) < 1e-3 for r in rows)
