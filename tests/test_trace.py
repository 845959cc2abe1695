"""`--trace`: a run's time series, one row per meter period (hil/trace.py)."""

import csv
import itertools
import pathlib
import subprocess
import sys

import can

from hil import scenario
from hil.runner import run_lockstep, run_realtime
from hil.trace import COLUMNS

ROOT = pathlib.Path(__file__).resolve().parent.parent
REQUIRED = ("t_s", "grid_v_pu", "grid_f_hz", "inv_p_kw", "inv_q_kvar", "ev_soc")
_channels = itertools.count()


def _read(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], [dict(zip(rows[0], (float(x) for x in r))) for r in rows[1:]]


def test_a_hard_outage_in_v2h_as_a_time_series(tmp_path):
    sc = scenario.load(ROOT / "scenarios" / "hard-outage-v2h.json")
    path = tmp_path / "trace.csv"
    report, _ = run_lockstep(sc, trace_path=path)
    header, rows = _read(path)
    assert tuple(header[:6]) == REQUIRED and tuple(header) == COLUMNS
    period = sc["site"]["meter_period_ms"] / 1000.0
    assert len(rows) == round(sc["duration_s"] / period) + 1
    assert all(abs(b["t_s"] - a["t_s"] - period) < 1e-9 for a, b in zip(rows, rows[1:]))
    outage = next(e["t_s"] for e in sc["events"] if e["kind"] == "grid_disconnect")
    before = [r for r in rows if outage - 0.5 <= r["t_s"] < outage]
    after = [r for r in rows if r["t_s"] > outage + 0.5]
    # V2H on the grid: the EV discharges (inv_p_kw < 0) and carries the home
    assert all(r["inv_p_kw"] < -1.0 and r["breaker_closed"] == 1 for r in before)
    # the outage: the utility side dead, the home islanded on the EV, still supplied
    assert all(r["breaker_closed"] == 0 and r["relay_closed"] == 0 and r["grid_v_pu"] < 0.1 for r in after)
    assert all(r["home_v_pu"] > 0.9 and r["inv_p_kw"] < -1.0 for r in after)
    assert rows[-1]["ev_soc"] < rows[0]["ev_soc"]
    # the trace's energy to the home agrees with the report's (which integrates every 0.5 ms step)
    to_home = sum(min(r["p_load_kw"], max(0.0, -r["inv_p_kw"])) for r in rows[1:]) * period / 3600.0
    assert abs(to_home - report["metrics"]["energy_to_home_kwh"]) <= 0.03 * report["metrics"]["energy_to_home_kwh"]


def test_charging_is_positive_inverter_power(tmp_path):
    sc = scenario.validate({"name": "charge", "duration_s": 4.0, "mode": {"kind": "charge", "setpoint_kw": 5.0}})
    path = tmp_path / "t.csv"
    run_lockstep(sc, trace_path=path)
    _, rows = _read(path)
    assert rows[-1]["inv_p_kw"] > 1.0  # + = the EV charges
    assert rows[-1]["p_grid_kw"] > rows[0]["p_grid_kw"]  # drawn from the grid


def test_a_real_time_run_writes_its_trace(tmp_path):
    sc = scenario.load(ROOT / "scenarios" / "ev-limit-drop.json")
    sc["duration_s"] = 1.0
    channel = "test-trace-%d" % next(_channels)
    path = tmp_path / "rt.csv"
    run_realtime(sc, lambda: can.Bus(interface="virtual", channel=channel), trace_path=path)
    header, rows = _read(path)
    assert tuple(header[:6]) == REQUIRED
    assert len(rows) >= 20  # 100 due; a starved host still writes one per step it plays
    assert all(b["t_s"] > a["t_s"] for a, b in zip(rows, rows[1:]))


def test_cli_trace_to_an_unwritable_place_exits_2_naming_the_option(tmp_path):
    bad = tmp_path / "missing" / "trace.csv"
    r = subprocess.run([sys.executable, "-m", "tools.cli", "hil", "run", str(ROOT / "scenarios" / "ev-limit-drop.json"),
                        "--quiet", "--trace", str(bad)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "--trace" in r.stderr and str(bad) in r.stderr
