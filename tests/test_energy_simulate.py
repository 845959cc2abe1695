"""`v2xgw energy simulate`: the output's keys, the strategies' ordering and capture ratio on a
real year, energy balance and SoC bounds slot by slot, and bad input refused with exit 2."""

import calendar
import json
import pathlib

import pytest

from energy import prices, simulate, site as site_mod, tariffs
from tools import cli

ROOT = pathlib.Path(__file__).resolve().parent.parent
PRICES = ROOT / "energy" / "data" / "prices"
KEYS = ("cost_dkk", "grid_import_kwh", "grid_export_kwh", "ev_charged_kwh", "ev_discharged_kwh",
        "equivalent_full_cycles", "departure_misses", "reserve_violation_slots")


def _world(name, area, days=None, start_day=0):
    ser = prices.load(str(PRICES / name), area)
    st = site_mod.load_site(None)
    t0 = ser.start_s + start_day * 86400
    t1 = ser.end_s if days is None else t0 + days * 86400
    return simulate.build_world(ser, st, tariffs.load_tariff(tariffs.default_tariff(area)), t0, t1)


@pytest.fixture(scope="module")
def weeks():
    """Three winter weeks of DK2 2025 (hourly prices) simulated for every strategy."""
    w = _world("dk2-2025.csv", "DK2", days=21, start_day=20)
    res, runs = simulate.simulate(w)
    return w, res, runs


def test_energy_balance_and_soc_bounds_every_slot(weeks):
    w, res, runs = weeks
    ev = w.site["ev"]
    for kind, r in runs.items():
        for t in range(w.n):
            lhs = r.import_kw[t] - r.export_kw[t]
            rhs = w.load_kw[t] + r.charge_kw[t] - r.discharge_kw[t]
            assert abs(lhs - rhs) < 1e-9, (kind, t)
            assert r.charge_kw[t] * r.discharge_kw[t] == 0, (kind, t)
            assert r.import_kw[t] <= w.site["grid_import_limit_kw"] + 1e-9
            assert r.export_kw[t] <= w.site["grid_export_limit_kw"] + 1e-9
            assert ev["min_soc"] - 1e-9 <= r.soc[t] <= 1 + 1e-9, (kind, t)
            if w.plugged[t]:
                assert r.soc[t] >= w.site["reserve_soc"] - 1e-6, (kind, t)
            else:
                assert r.charge_kw[t] == r.discharge_kw[t] == 0
        s = res[kind]
        assert abs(s["grid_import_kwh"] - s["grid_export_kwh"]
                   - (sum(w.load_kw) / 4 + s["ev_charged_kwh"] - s["ev_discharged_kwh"])) < 0.01
    assert res["v2h"]["grid_export_kwh"] == 0
    assert res["smart_charge"]["ev_discharged_kwh"] == 0 and res["dumb"]["ev_discharged_kwh"] == 0


def test_cost_is_the_spec_formula_of_the_flows(weeks):
    w, res, runs = weeks
    r = runs["v2x"]
    cost = sum(0.25 * (w.import_dkk[t] * r.import_kw[t] - w.export_dkk[t] * r.export_kw[t])
               + w.site["wear_cost_dkk_per_kwh"] * 0.25 * r.discharge_kw[t] / w.site["ev"]["discharge_efficiency"]
               for t in range(w.n))
    assert abs(cost - res["v2x"]["cost_dkk"]) < 0.01
    # perfect foresight executes exactly what it planned
    assert abs(runs["perfect_foresight"].planned_cost_dkk - res["perfect_foresight"]["cost_dkk"]) < 0.05


def test_weeks_ordering_and_no_misses(weeks):
    w, res, runs = weeks
    c = {k: v["cost_dkk"] for k, v in res.items()}
    assert c["perfect_foresight"] <= c["v2x"] <= c["smart_charge"] <= c["dumb"], c
    assert c["perfect_foresight"] <= c["v2h"]
    for k, v in res.items():
        assert v["departure_misses"] == 0 and v["reserve_violation_slots"] == 0, k
        assert v["soc_end"] >= w.end_soc - 1e-6, k


def test_dumb_charges_on_arrival(weeks):
    w, res, runs = weeks
    r = runs["dumb"]
    arrivals = [t for t in range(1, w.n) if w.plugged[t] and not w.plugged[t - 1]]
    assert arrivals
    for t in arrivals:
        assert r.charge_kw[t] == pytest.approx(w.site["ev"]["max_charge_kw"])


def test_full_year_dk1_2024_ordering_capture_and_zero_misses():
    w = _world("dk1-2024.csv", "DK1")
    res, _ = simulate.simulate(w)
    c = {k: v["cost_dkk"] for k, v in res.items()}
    assert c["perfect_foresight"] <= c["v2x"] <= c["smart_charge"] <= c["dumb"], c
    assert simulate.capture_ratio(res) >= 0.90
    for k, v in res.items():
        assert v["departure_misses"] == 0 and v["reserve_violation_slots"] == 0, k
    assert res["v2x"]["plans"] >= 366


def _run(args):
    return cli.main(["energy", "simulate"] + args)


def test_cli_json_keys_and_table(tmp_path, capsys):
    out = tmp_path / "o.json"
    rc = _run(["--prices", str(PRICES / "dk1-2025.csv"), "--area", "DK1", "--from", "2025-10-01",
               "--to", "2025-10-08", "--json", str(out), "--plot", str(tmp_path), "--week", "2025-10-01"])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert set(doc["strategies"]) == set(simulate.STRATEGIES)
    for k, v in doc["strategies"].items():
        assert all(key in v for key in KEYS), k
    assert "plan_ms_p50" in doc["strategies"]["v2x"] and "plan_ms_p99" in doc["strategies"]["v2x"]
    assert doc["period"]["slots"] == 7 * 96 and doc["site"]["ev"]["capacity_kwh"] == 94.0
    assert "capture_ratio" in doc
    text = capsys.readouterr().out
    assert "perfect_foresight" in text and "capture ratio" in text
    assert (tmp_path / "energy-dk1-2025-monthly.png").stat().st_size > 1000
    assert (tmp_path / "energy-dk1-2025-week.png").stat().st_size > 1000


def test_bad_input_exit_2_naming_the_place(tmp_path, capsys):
    out = str(tmp_path / "o.json")
    p = str(PRICES / "dk1-2024.csv")
    assert _run(["--prices", p, "--area", "DK9", "--json", out]) == 2
    assert "DK9" in capsys.readouterr().err
    broken = tmp_path / "broken.csv"
    broken.write_text("time_utc,price_area,price_eur_mwh\n2024-01-01T00:00:00Z,DK1,1.0\n2024-01-01T00:00:00Z,DK1,x\n")
    assert _run(["--prices", str(broken), "--area", "DK1", "--json", out]) == 2
    assert "broken.csv" in capsys.readouterr().err
    bad_site = tmp_path / "site.json"
    bad_site.write_text(json.dumps({"ev": {"capacity_kwh": 94, "battery_colour": "red"}}))
    assert _run(["--prices", p, "--area", "DK1", "--site", str(bad_site), "--json", out]) == 2
    err = capsys.readouterr().err
    assert "site.json" in err and "ev.battery_colour" in err
    bad_site.write_text(json.dumps({"reserve_soc": 1.5}))
    assert _run(["--prices", p, "--area", "DK1", "--site", str(bad_site), "--json", out]) == 2
    assert "reserve_soc" in capsys.readouterr().err
    bad_site.write_text(json.dumps({"tariff": "no-such-grid-company"}))
    assert _run(["--prices", p, "--area", "DK1", "--site", str(bad_site), "--json", out]) == 2
    err = capsys.readouterr().err
    assert "site.json: tariff" in err and "no-such-grid-company" in err
    assert _run(["--prices", p, "--area", "DK1", "--from", "2024-02-30", "--json", out]) == 2
    assert "--from" in capsys.readouterr().err
    assert not (tmp_path / "o.json").exists()


def test_site_tariff_names_a_non_default_grid_company(tmp_path, capsys):
    # the site file's "tariff" picks any shipped tariff by name, e.g. Cerius in DK2
    site = tmp_path / "site.json"
    site.write_text(json.dumps({"tariff": "dk2-cerius"}))
    out = tmp_path / "o.json"
    assert _run(["--prices", str(PRICES / "dk2-2025.csv"), "--area", "DK2", "--site", str(site),
                 "--from", "2025-11-03", "--to", "2025-11-05", "--json", str(out)]) == 0
    assert "tariff dk2-cerius" in capsys.readouterr().out
    assert json.loads(out.read_text())["tariff"] == "dk2-cerius"


def test_long_trip_arrives_below_reserve_and_recovers_without_violation(tmp_path):
    site = tmp_path / "long.json"
    site.write_text(json.dumps({"use": {"trips": [{"days": ["saturday"], "depart": "08:00", "return": "20:00",
                                                   "km": 400}]}}))
    ser = prices.load(str(PRICES / "dk2-2024.csv"), "DK2")
    w = simulate.build_world(ser, site_mod.load_site(str(site)), tariffs.load_tariff("dk2-radius"),
                             ser.start_s, ser.start_s + 14 * 86400)
    res, runs = simulate.simulate(w, strategies=("dumb", "v2x"))
    below = [t for t in range(w.n) if w.plugged[t] and runs["v2x"].soc[t] < w.site["reserve_soc"] - 1e-3]
    assert below, "the 400 km trip must bring the EV home below the reserve for this test to mean anything"
    assert res["v2x"]["reserve_violation_slots"] == 0 and res["dumb"]["reserve_violation_slots"] == 0
    assert res["v2x"]["departure_misses"] == 0


def test_violation_counter_counts_a_slot_left_below_the_reserve(weeks):
    w, res, runs = weeks
    r = simulate.Run(w.n)
    cap = w.site["ev"]["capacity_kwh"]
    t = next(t for t in range(w.n) if w.plugged[t] and t not in w.dep_soc)
    low = (w.site["reserve_soc"] - 0.05) * cap
    simulate._check_slot(w, r, t, low, low)  # idle below the reserve while home
    assert r.reserve_violation_slots == 1
    r.charge_kw[t] = w.site["ev"]["max_charge_kw"]
    simulate._check_slot(w, r, t, low, low + 2.0)  # charging flat out: recovering
    assert r.reserve_violation_slots == 1
    d = w.departures[0][0]
    simulate._check_slot(w, r, d, 0.5 * cap, 0.5 * cap)
    assert r.departure_misses == 1


def test_publication_and_horizon_follow_danish_time():
    # 2024-03-31 is the spring DST change: 13:00 local is 12:00Z before it and 11:00Z from it
    w = _world("dk1-2024.csv", "DK1", days=4, start_day=88)  # 2024-03-29 .. 04-02 UTC
    pub_utc = [time_of(w, p) for p in w.publications if 0 <= p < w.n]
    assert pub_utc[0].endswith("12:00") and pub_utc[-1].endswith("11:00")
    p = w.publications[1]
    # before 13:00 the prices end with the local day, after it with the next local day
    assert w.known_until(p - 1) == w.midnights[2] and w.known_until(p) == w.midnights[3]


def time_of(w, slot):
    import time
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(w.start_s + slot * w.slot_s))


def test_default_site_is_the_documented_one():
    s = site_mod.load_site(None)
    doc = (ROOT / "docs" / "energy.md").read_text()
    assert s["ev"]["capacity_kwh"] == 94.0 and s["grid_import_limit_kw"] == 17.25
    for key in ("household.annual_kwh", "ev.capacity_kwh", "use.trips", "reserve_soc", "wear_cost_dkk_per_kwh",
                "grid_import_limit_kw", "grid_export_limit_kw"):
        assert "`%s`" % key in doc, key
