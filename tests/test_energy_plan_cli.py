"""`v2xgw energy plan` as a user runs it (python -m tools.cli): the plan out, and every bad
input refused with exit 2 and one line naming the file and the key."""

import concurrent.futures
import copy
import json
import os
import subprocess
import sys

import pytest

from energy import plan

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "tests", "data", "plans")


def cli(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "tools.cli", "energy", "plan", *args], cwd=ROOT, input=stdin,
                          capture_output=True, text=True, timeout=60)


def good(n=4):
    return {
        "slot_minutes": 15, "start_utc": "2024-03-01T00:00:00Z",
        "import_price_dkk_per_kwh": [2.10, 2.05, 1.20, 3.10][:n],
        "export_price_dkk_per_kwh": [0.52, 0.47, 0.40, 1.20][:n],
        "home_load_kw": [0.45, 0.40, 0.50, 0.80][:n],
        "ev": {"capacity_kwh": 94.0, "soc": 0.55, "max_charge_kw": 11.0, "max_discharge_kw": 11.0,
               "charge_efficiency": 0.92, "discharge_efficiency": 0.92, "min_soc": 0.10,
               "plugged": [True, True, True, True][:n], "drive_kwh": [0.0] * n,
               "departures": [{"slot": n, "min_soc": 0.56}]},
        "reserve_soc": 0.30, "wear_cost_dkk_per_kwh": 0.10, "grid_import_limit_kw": 17.0,
        "grid_export_limit_kw": 10.0, "allow_export": True,
    }


def test_plan_to_file_prints_a_summary_and_writes_the_spec_keys(tmp_path):
    src, out = tmp_path / "plan.json", tmp_path / "out.json"
    src.write_text(json.dumps(good()))
    r = cli("--input", str(src), "--json", str(out))
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert list(doc) == ["cost_dkk", "slots", "shortfall", "solve_ms"]
    assert all(set(s) == {"p_kw", "soc"} for s in doc["slots"]) and len(doc["slots"]) == 4
    ref = plan.solve(good())
    assert doc["cost_dkk"] == ref["cost_dkk"] and doc["slots"] == ref["slots"]
    assert "cost %.2f DKK" % ref["cost_dkk"] in r.stdout and "no shortfall" in r.stdout
    assert r.stderr == ""


def test_plan_stdin_to_stdout_is_pure_json():
    """`-` both ways: stdout holds the JSON document alone (not even HiGHS' banner)."""
    r = cli("--input", "-", "--json", "-", stdin=json.dumps(good()))
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["shortfall"] == [] and doc["slots"][0]["soc"] == 0.55


def test_shortfall_is_a_plan_not_an_error(tmp_path):
    inp = good()
    inp["ev"]["departures"] = [{"slot": 2, "min_soc": 0.95}]
    src = tmp_path / "p.json"
    src.write_text(json.dumps(inp))
    r = cli("--input", str(src), "--json", "-")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [(s["slot"], s["kind"]) for s in doc["shortfall"]] == [(2, "departure")]
    assert doc["shortfall"][0]["kwh"] == pytest.approx(0.95 * 94 - 0.55 * 94 - 2 * 11 * 0.25 * 0.92, abs=1e-5)


@pytest.mark.parametrize("name", sorted(os.listdir(EXAMPLES)) if os.path.isdir(EXAMPLES) else [])
def test_shipped_examples_plan(name, tmp_path):
    r = cli("--input", os.path.join(EXAMPLES, name), "--json", str(tmp_path / "o.json"))
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "o.json").read_text())
    assert len(doc["slots"]) == len(json.load(open(os.path.join(EXAMPLES, name)))["home_load_kw"])


def _set(path, value):
    """A mutation of good(): set the key at `path` (dots and [i]) to value, or delete it
    when value is DELETE."""
    def f(doc):
        keys = []
        for part in path.split("."):
            while "[" in part:
                head, _, rest = part.partition("[")
                if head:
                    keys.append(head)
                idx, _, part = rest.partition("]")
                keys.append(int(idx))
            if part:
                keys.append(part)
        obj = doc
        for k in keys[:-1]:
            obj = obj[k]
        if value is DELETE:
            del obj[keys[-1]]
        else:
            obj[keys[-1]] = value
        return doc
    return f


DELETE = object()
NAN = float("nan")

# name: (mutation of good() or raw text, the key the one-line error must name)
BAD = {
    "invalid_json": ('{"slot_minutes": 15,', "invalid JSON at line 1"),
    "duplicate_key": ('{"slot_minutes": 15, "slot_minutes": 30}', "duplicate key 'slot_minutes'"),
    "top_level_list": ("[1, 2]", "(top level): must be an object"),
    "unknown_top_key": (_set("price_area", "DK1"), "price_area: unknown key"),
    "unknown_ev_key": (_set("ev.battery_kwh", 60), "ev.battery_kwh: unknown key"),
    "unknown_departure_key": (_set("ev.departures[0].time", "07:00"), "ev.departures[0].time: unknown key"),
    "missing_top_key": (_set("reserve_soc", DELETE), "reserve_soc: missing"),
    "missing_ev_key": (_set("ev.capacity_kwh", DELETE), "ev.capacity_kwh: missing"),
    "missing_departure_key": (_set("ev.departures[0].min_soc", DELETE), "ev.departures[0].min_soc: missing"),
    "ev_not_object": (_set("ev", [1]), "ev: must be an object"),
    "bool_as_number": (_set("slot_minutes", True), "slot_minutes: must be a number"),
    "string_as_number": (_set("ev.soc", "0.5"), "ev.soc: must be a number"),
    "null_number": (_set("wear_cost_dkk_per_kwh", None), "wear_cost_dkk_per_kwh: must be a number"),
    "nan_price": (_set("import_price_dkk_per_kwh[3]", NAN), "import_price_dkk_per_kwh[3]: must be a finite"),
    "infinite_load": (_set("home_load_kw[2]", float("inf")), "home_load_kw[2]: must be a finite"),
    "array_not_list": (_set("home_load_kw", 0.5), "home_load_kw: must be a list"),
    "export_length_differs": (_set("export_price_dkk_per_kwh", [0.5, 0.5, 0.5]),
                              "export_price_dkk_per_kwh: has 3 slots"),
    "load_length_differs": (_set("home_load_kw", [0.5] * 5), "home_load_kw: has 5 slots"),
    "plugged_length_differs": (_set("ev.plugged", [True] * 3), "ev.plugged: has 3 slots"),
    "drive_length_differs": (_set("ev.drive_kwh", [0.0] * 6), "ev.drive_kwh: has 6 slots"),
    "empty_horizon": (lambda d: {**d, "import_price_dkk_per_kwh": [], "export_price_dkk_per_kwh": [],
                                 "home_load_kw": [], "ev": {**d["ev"], "plugged": [], "drive_kwh": [],
                                                            "departures": []}},
                      "import_price_dkk_per_kwh: must hold at least one slot"),
    "slot_minutes_zero": (_set("slot_minutes", 0), "slot_minutes: must be > 0"),
    "slot_minutes_odd": (_set("slot_minutes", 7), "slot_minutes: must divide a day"),
    "start_not_iso": (_set("start_utc", "yesterday"), "start_utc: 'yesterday' is not an ISO 8601"),
    "start_not_a_string": (_set("start_utc", 1709251200), "start_utc: must be an ISO 8601 time string"),
    "capacity_zero": (_set("ev.capacity_kwh", 0), "ev.capacity_kwh: must be > 0"),
    "soc_above_one": (_set("ev.soc", 1.2), "ev.soc: must be <= 1"),
    "min_soc_negative": (_set("ev.min_soc", -0.1), "ev.min_soc: must be >= 0"),
    "reserve_above_one": (_set("reserve_soc", 1.5), "reserve_soc: must be <= 1"),
    "departure_soc_above_one": (_set("ev.departures[0].min_soc", 2), "ev.departures[0].min_soc: must be <= 1"),
    "charge_efficiency_zero": (_set("ev.charge_efficiency", 0), "ev.charge_efficiency: must be > 0"),
    "discharge_efficiency_above_one": (_set("ev.discharge_efficiency", 1.1), "ev.discharge_efficiency: must be <= 1"),
    "max_charge_negative": (_set("ev.max_charge_kw", -1), "ev.max_charge_kw: must be >= 0"),
    "import_limit_negative": (_set("grid_import_limit_kw", -5), "grid_import_limit_kw: must be >= 0"),
    "export_limit_negative": (_set("grid_export_limit_kw", -5), "grid_export_limit_kw: must be >= 0"),
    "wear_negative": (_set("wear_cost_dkk_per_kwh", -0.1), "wear_cost_dkk_per_kwh: must be >= 0"),
    "allow_export_string": (_set("allow_export", "yes"), "allow_export: must be true or false"),
    "plugged_number": (_set("ev.plugged[2]", 1), "ev.plugged[2]: must be true or false"),
    "drive_negative": (_set("ev.drive_kwh[1]", -2.0), "ev.drive_kwh[1]: must be >= 0"),
    "departures_not_list": (_set("ev.departures", {"slot": 1}), "ev.departures: must be a list"),
    "departure_not_object": (_set("ev.departures[0]", 3), "ev.departures[0]: must be an object"),
    "departure_after_horizon": (_set("ev.departures[0].slot", 5), "ev.departures[0].slot: 5 is outside the horizon"),
    "departure_negative_slot": (_set("ev.departures[0].slot", -1), "ev.departures[0].slot: -1 is outside"),
    "departure_fractional_slot": (_set("ev.departures[0].slot", 1.5), "ev.departures[0].slot: must be an integer"),
    "export_above_import": (_set("export_price_dkk_per_kwh[2]", 1.25), "export_price_dkk_per_kwh[2]: 1.25 is above"),
    "soc_below_min_soc": (_set("ev.soc", 0.05), "ev.soc: 0.05 is below ev.min_soc"),
    "load_above_import_limit_unplugged": (
        lambda d: _set("ev.plugged[1]", False)(_set("home_load_kw[1]", 18.0)(d)),
        "home_load_kw[1]: 18 kW exceeds grid_import_limit_kw 17 and the EV is not plugged in"),
    "load_above_import_limit_plus_discharge": (_set("home_load_kw[3]", 30.0),
                                               "home_load_kw[3]: 30 kW exceeds grid_import_limit_kw 17 plus"),
    "surplus_with_export_off_unplugged": (
        lambda d: _set("allow_export", False)(_set("ev.plugged[0]", False)(_set("home_load_kw[0]", -2.0)(d))),
        "home_load_kw[0]: -2 kW (a surplus) exceeds what the grid may take"),
    "surplus_on_a_full_battery": (
        lambda d: _set("ev.soc", 0.995)(_set("allow_export", False)(_set("home_load_kw", [0.45, -3.0, -3.0, -3.0])(d))),
        "home_load_kw[1]: a surplus of 3 kW above what the grid may take (0 kW, allow_export is false): the EV "
        "must store it and is full by the end of slot 1"),
    "trip_beyond_the_battery": (
        lambda d: _set("ev.drive_kwh[2]", 90.0)(_set("ev.plugged[2]", False)(d)),
        "ev.drive_kwh[2]: the driving takes the EV below ev.min_soc"),
    "load_above_limit_longer_than_the_ev_lasts": (
        lambda d: _set("ev.soc", 0.2)(_set("reserve_soc", 0.0)(_set("home_load_kw", [27.0] * 4)(d))),
        "home_load_kw[3]: above grid_import_limit_kw 17: the EV must carry the rest and falls below ev.min_soc "
        "by 1.47 kWh at the end of slot 3"),
}


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory):
    """Every BAD case through the CLI, four processes at a time (each is a fresh interpreter:
    ~0.4 s of imports and HiGHS); {name: (input path, output path, CompletedProcess)}."""
    tmp = tmp_path_factory.mktemp("bad")

    def one(name):
        mutate = BAD[name][0]
        src = tmp / ("%s.json" % name)
        if isinstance(mutate, str):
            src.write_text(mutate)
        else:
            src.write_text(json.dumps(mutate(copy.deepcopy(good()))))  # NaN/Infinity as JSON's NaN literals
        out = tmp / ("%s.out.json" % name)
        return name, (src, out, cli("--input", str(src), "--json", str(out)))

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        return dict(pool.map(one, sorted(BAD)))


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_exits_2_naming_the_key(name, bad_runs):
    src, out, r = bad_runs[name]
    expect = BAD[name][1]
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: %s: " % src), r.stderr
    assert expect in lines[0], lines[0]
    assert r.stdout == "" and not out.exists()


def test_missing_input_file_exits_2(tmp_path):
    r = cli("--input", str(tmp_path / "nope.json"), "--json", "-")
    assert r.returncode == 2 and r.stderr.startswith("error: %s: cannot read" % (tmp_path / "nope.json"))


def test_unwritable_output_exits_1(tmp_path):
    src = tmp_path / "p.json"
    src.write_text(json.dumps(good()))
    r = cli("--input", str(src), "--json", str(tmp_path / "no" / "dir" / "o.json"))
    assert r.returncode == 1 and "cannot write" in r.stderr
