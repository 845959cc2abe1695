"""Backup autonomy: the run-down follows its energy balance, the "several days" figures are
consistent with it, the household model's seasons order the results, bad input is refused."""

import json
import math

import pytest

from energy import autonomy
from energy.autonomy import AutonomyError
from tools.cli import main


def test_constant_load_runs_down_by_the_energy_balance():
    # 100 kWh from 60 % to 10 %: 50 kWh; 1 kW at 80 % efficiency plus 100 W standby
    r = autonomy.run_down(100, 0.6, 0.1, [1.0], 3600, discharge_efficiency=0.8, standby_w=100)
    per_hour = 1.0 / 0.8 + 0.1
    assert r["complete"] and r["hours"] == pytest.approx(50 / per_hour)
    assert r["battery_kwh"] == pytest.approx(50)
    assert r["home_kwh"] == pytest.approx(50 / per_hour * 1.0)


def test_the_last_slot_counts_in_proportion_and_the_profile_repeats():
    # 15-min slots alternating 1.6 kW and 0 kW, no losses: 1 kWh available; each 1.6 kW slot
    # takes 0.4 kWh, so slots 0 and 2 take 0.8 and slot 4 (the profile's 3rd repeat) half of its 0.4
    r = autonomy.run_down(10, 0.2, 0.1, [1.6, 0.0], 900, discharge_efficiency=1.0, standby_w=0)
    assert r["hours"] == pytest.approx(4 * 0.25 + 0.5 * 0.25)
    assert r["home_kwh"] == pytest.approx(1.0)
    r = autonomy.run_down(10, 0.2, 0.1, [4.0], 900, discharge_efficiency=1.0, standby_w=0)
    assert r["hours"] == pytest.approx(0.25)  # 1 kWh at 4 kW: one quarter-hour


def test_nothing_to_give_and_nothing_to_carry():
    assert autonomy.run_down(100, 0.1, 0.2, [1.0], 3600)["hours"] == 0.0
    r = autonomy.run_down(100, 0.8, 0.1, [0.0], 3600, standby_w=0)
    assert math.isinf(r["hours"]) and not r["complete"]


def test_several_days_figures_agree_with_the_run_down():
    load = [0.3] * 6 + [0.5] * 11 + [1.2] * 4 + [0.5] * 3
    rep = autonomy.autonomy(94, 0.8, 0.1, load, 3600, target_days=3)
    back = autonomy.autonomy(94, rep["soc_for_target_days"], 0.1, load, 3600)
    assert back["hours"] == pytest.approx(72.0, abs=1e-6)
    assert rep["days_per_10_kwh"] == pytest.approx(rep["days"] * 10 / rep["battery_kwh"])
    assert rep["mean_load_kw"] == pytest.approx(rep["home_kwh"] / rep["hours"])


def test_household_model_winter_is_shorter_than_summer_and_heat_pump_shortest():
    pytest.importorskip("energy.household")
    from energy.autonomy_cmd import _local_midnight_utc

    def days(date, hp):
        load = autonomy.household_profile(_local_midnight_utc(date), 30, 4000, hp)
        return autonomy.autonomy(94, 0.8, 0.1, load, 3600)["days"]

    winter, summer, winter_hp = days("2025-01-15", False), days("2025-07-15", False), days("2025-01-15", True)
    assert winter_hp < winter < summer


@pytest.mark.parametrize("case, kwargs, where", [
    ("soc_above_1", dict(soc=1.2), "soc"),
    ("capacity_zero", dict(capacity_kwh=0), "capacity_kwh"),
    ("efficiency_zero", dict(discharge_efficiency=0), "discharge_efficiency"),
    ("negative_load", dict(load_kw=[0.5, -0.1]), "load[1]"),
    ("nan_load", dict(load_kw=[float("nan")]), "load[0]"),
    ("empty_load", dict(load_kw=[]), "load"),
    ("negative_standby", dict(standby_w=-5), "inverter_standby_w"),
])
def test_bad_numbers_are_refused_by_name(case, kwargs, where):
    args = dict(capacity_kwh=94, soc=0.8, floor_soc=0.1, load_kw=[0.5], slot_s=3600)
    args.update(kwargs)
    with pytest.raises(AutonomyError) as e:
        autonomy.run_down(**args)
    assert e.value.where == where, case


def _profile(tmp_path, body, name="load.csv"):
    p = tmp_path / name
    p.write_text("time_utc,load_kw\n" + body)
    return str(p)


def test_load_profile_csv(tmp_path):
    start, slot, kw = autonomy.read_load_profile(_profile(
        tmp_path, "2025-01-15T00:00:00Z,0.5\n2025-01-15T00:15:00Z,0.7\n2025-01-15T00:30:00Z,0.2\n"))
    assert (slot, kw) == (900, [0.5, 0.7, 0.2])


@pytest.mark.parametrize("case, body, where, match", [
    ("bad_header", None, "load.csv:1", "header"),
    ("bad_time", "2025-01-15 00:00,0.5\n2025-01-15T25:00:00Z,1\n", "load.csv:3", "bad time_utc"),
    ("not_number", "2025-01-15T00:00:00Z,abc\n", "load.csv:2", "not a number"),
    ("negative", "2025-01-15T00:00:00Z,-1\n", "load.csv:2", ">= 0"),
    ("unequal_steps", "2025-01-15T00:00:00Z,1\n2025-01-15T00:15:00Z,1\n2025-01-15T01:15:00Z,1\n",
     "load.csv:4", "equal"),
    ("field_count", "2025-01-15T00:00:00Z,1,2\n", "load.csv:2", "2 fields"),
])
def test_bad_load_profile_is_refused_by_line(tmp_path, case, body, where, match):
    if body is None:
        p = tmp_path / "load.csv"
        p.write_text("time,kw\n2025-01-15T00:00:00Z,1\n")
        path = str(p)
    else:
        path = _profile(tmp_path, body)
    with pytest.raises(AutonomyError, match=match) as e:
        autonomy.read_load_profile(path)
    assert e.value.where == where, case


def test_cli_with_a_profile_writes_json(tmp_path, capsys):
    path = _profile(tmp_path, "".join(f"2025-01-15T{h:02d}:00:00Z,0.5\n" for h in range(24)))
    out = tmp_path / "a.json"
    assert main(["energy", "autonomy", "--capacity-kwh", "50", "--soc", "0.5", "--floor-soc", "0.1",
                 "--load-profile", path, "--discharge-efficiency", "1", "--inverter-standby-w", "0",
                 "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["hours"] == pytest.approx(20 / 0.5) and rep["soc_for_target_days"] == pytest.approx(0.1 + 36 / 50)
    assert "40.0 h" in capsys.readouterr().out


def test_cli_household_default_runs(capsys):
    pytest.importorskip("energy.household")
    assert main(["energy", "autonomy", "--capacity-kwh", "94", "--soc", "0.8"]) == 0
    assert "average Danish household 4000 kWh/year" in capsys.readouterr().out


def test_cli_bad_input_exits_2(tmp_path, capsys):
    path = _profile(tmp_path, "2025-01-15T00:00:00Z,x\n")
    assert main(["energy", "autonomy", "--capacity-kwh", "94", "--soc", "0.8", "--load-profile", path]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: load.csv:2:") and err.count("\n") == 1
    assert main(["energy", "autonomy", "--capacity-kwh", "94", "--soc", "0.8", "--start", "2025-02-30"]) == 2
    assert "--start" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # argparse refuses a SoC above 1 (exit 2)
        main(["energy", "autonomy", "--capacity-kwh", "94", "--soc", "1.5"])
    assert e.value.code == 2
