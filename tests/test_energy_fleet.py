"""energy fleet (energy/fleet.py, energy/fleet_cmd.py): the homes, the flexibility held against
a brute-force replay written here, the bids, the command on every engine, and bad input."""

import calendar
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from energy import fleet, prices, simulate, tariffs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DK2 = os.path.join(ROOT, "energy", "data", "prices", "dk2-2025.csv")
V2XGW = [sys.executable, "-m", "tools.cli"]


def _cli(*args, env=None, timeout=300):
    e = dict(os.environ, **(env or {}))
    return subprocess.run(V2XGW + list(args), capture_output=True, text=True, cwd=ROOT, env=e, timeout=timeout)


# ------------------------------------------------------------------ the homes
def test_a_home_is_the_same_home_whatever_else_runs():
    at = fleet.area_tariffs("DK2")
    a = fleet.draw_home(7, 3, at)
    assert fleet.draw_home(7, 3, at) == a
    assert fleet.draw_home(7, 4, at) != a
    assert fleet.draw_home(8, 3, at) != a
    # in another process (string seeds do not depend on PYTHONHASHSEED)
    code = "import json; from energy import fleet; print(json.dumps(fleet.draw_home(7, 3, fleet.area_tariffs('DK2'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env=dict(os.environ, PYTHONHASHSEED="123"), check=True).stdout
    assert json.loads(out) == json.loads(json.dumps(a))


def test_the_drawn_homes_follow_the_documented_shares():
    at = fleet.area_tariffs("DK1")
    homes = [fleet.draw_home(1, i, at) for i in range(600)]
    share = lambda f: sum(1 for h in homes if f(h)) / len(homes)  # noqa: E731
    assert 0.25 < share(lambda h: h["household"]["heat_pump"]) < 0.35
    assert 0.70 < share(lambda h: h["habits"]["commute"]) < 0.80
    assert 0.25 < share(lambda h: h["habits"]["late_plug_in"]) < 0.35
    assert 0.35 < share(lambda h: h["ev"]["capacity_kwh"] == 77.0) < 0.45
    kwh = sorted(h["household"]["annual_kwh"] for h in homes)
    assert 3600 < kwh[len(kwh) // 2] < 4400 and kwh[0] >= 1500 and kwh[-1] <= 9000
    # the grid company by its customers: Konstant 220 000 of N1's and Konstant's 1 020 000
    assert 0.17 < share(lambda h: h["tariff"] == "dk1-konstant") < 0.27
    for h in homes:
        assert h["use"]["departure_soc"] >= h["reserve_soc"]
        assert tariffs.load_tariff(h["tariff"]).area == "DK1"
    # a late plug-in keeps the car off the grid until 20:00 or 21:00 on its trip days
    late = next(h for h in homes if h["habits"]["late_plug_in"] and h["habits"]["commute"])
    assert any(tr["km"] == 0.0 and tr["return"] in ("20:00", "21:00") for tr in late["use"]["trips"])


# ------------------------------------------------------------------ flexibility
def _world_run(seed, i, days=10):
    series = prices.load(DK2, "DK2")
    t0 = calendar.timegm((2025, 2, 3, 0, 0, 0))
    spot = prices.slots(series, simulate.SLOT_S, t0, t0 + days * 86400)
    s = fleet.draw_home(seed, i, fleet.area_tariffs("DK2"))
    site = {k: v for k, v in s.items() if k not in ("id", "habits")}
    tariff = tariffs.load_tariff(site["tariff"])
    imp, exp = tariffs.price_arrays(tariff, t0, simulate.SLOT_S, spot)
    w = simulate.World(t0, len(spot), spot, imp, exp, site, tariff)
    return w, simulate.run_strategy(w, "v2x")


def _replay_up(w, r, t, u):
    """Brute force: u kW less over the hour from t, then charge flat out until back on the
    baseline's energy; True when every departure target and the reserve hold (where the
    baseline held them) and no power limit is passed."""
    site, ev = w.site, w.site["ev"]
    cap, dt = ev["capacity_kwh"], w.dt_h
    floor = max(ev["min_soc"], site["reserve_soc"]) * cap
    base = [s * cap for s in r.soc]
    deps = dict(w.departures)

    def holds(k, e):
        if k == w.n:
            return not w.plugged[w.n - 1] or e >= min(base[k], max(floor, w.end_soc * cap)) - 1e-6
        if k in deps and e < min(base[k], deps[k] * cap) - 1e-6:
            return False
        return not w.plugged[k] or e >= min(base[k], floor) - 1e-6

    e = base[t]
    for k in range(t, t + fleet.FLEX_SLOTS):
        if not w.plugged[k]:
            return False
        p = r.charge_kw[k] - r.discharge_kw[k] - u
        if p < -ev["max_discharge_kw"] - 1e-9 or w.load_kw[k] + p < -site["grid_export_limit_kw"] - 1e-9:
            return False
        e += ev["charge_efficiency"] * p * dt if p >= 0 else p * dt / ev["discharge_efficiency"]
        if not holds(k + 1, e):
            return False
    for k in range(t + fleet.FLEX_SLOTS, w.n):
        if e >= base[k] - 1e-9:
            return True  # back on the baseline, which holds by itself
        if w.plugged[k]:
            most = min(ev["max_charge_kw"], max(0.0, site["grid_import_limit_kw"] - w.load_kw[k]))
            e = min(base[k + 1], e + ev["charge_efficiency"] * most * dt)
        else:
            e -= w.drive_kwh[k]
        if not holds(k + 1, e):
            return False
    return True


def _replay_down(w, r, t, u):
    site, ev = w.site, w.site["ev"]
    cap, dt = ev["capacity_kwh"], w.dt_h
    e = r.soc[t] * cap
    for k in range(t, t + fleet.FLEX_SLOTS):
        if not w.plugged[k]:
            return False
        p = r.charge_kw[k] - r.discharge_kw[k] + u
        if p > min(ev["max_charge_kw"], max(0.0, site["grid_import_limit_kw"] - w.load_kw[k])) + 1e-9:
            return False
        e += ev["charge_efficiency"] * p * dt if p >= 0 else p * dt / ev["discharge_efficiency"]
        if e > cap + 1e-6:
            return False
    return True


@pytest.mark.parametrize("home", [0, 5, 11])
def test_the_flexibility_is_the_most_a_replay_allows(home):
    w, r = _world_run(3, home)
    up, down = fleet.flexibility(w, r)
    assert len(up) == w.n and up.min() >= 0 and down.min() >= 0
    tight_up = tight_down = 0
    for t in range(0, w.n - fleet.FLEX_SLOTS, 3):
        if not all(w.plugged[t:t + fleet.FLEX_SLOTS]):
            continue  # none there (the next test)
        fu, fd = up[t] / 1000.0, down[t] / 1000.0
        assert _replay_up(w, r, t, fu), (t, fu)
        assert _replay_down(w, r, t, fd), (t, fd)
        # 20 W more is refused by the replay: the figure is the largest, not just a safe one
        assert not _replay_up(w, r, t, fu + 0.02), (t, fu)
        assert not _replay_down(w, r, t, fd + 0.02), (t, fd)
        tight_up += fu > 0
        tight_down += fd > 0
    assert tight_up > 50 and tight_down > 50  # the check saw real flexibility, not only zeros


def test_no_flexibility_while_the_car_is_away_for_any_part_of_the_hour():
    w, r = _world_run(3, 0)
    up, down = fleet.flexibility(w, r)
    for t in range(w.n - fleet.FLEX_SLOTS + 1):
        if not all(w.plugged[t:t + fleet.FLEX_SLOTS]):
            assert up[t] == 0 and down[t] == 0
    assert all(up[w.n - fleet.FLEX_SLOTS + 1:] == 0)


def test_bids_round_down_to_the_step_and_drop_below_the_minimum():
    w = [99_999, 0, 0, 0, 250_000, 1, 1, 1, 1_000_000, 0, 0, 0, 2_345_678, 0, 0, 0, 5]
    assert fleet.bids(w, 4) == [0.0, 0.2, 1.0, 2.3]


# ------------------------------------------------------------------ the command
ARGS = ["energy", "fleet", "--homes", "3", "--seed", "2", "--prices", DK2, "--area", "DK2",
        "--from", "2025-03-03", "--to", "2025-03-06"]


def _numbers(path):
    doc = json.load(open(path))
    for k in ("homes_per_s", "wall_s", "engine"):
        doc.pop(k)
    return doc


def test_the_same_numbers_on_one_worker_two_workers_and_ray(tmp_path):
    outs = {}
    for name, eng in (("w1", ["--workers", "1"]), ("w2", ["--workers", "2"]), ("ray", ["--ray", "auto"])):
        p = _cli(*ARGS, *eng, "--json", str(tmp_path / (name + ".json")),
                 *(["--plot", str(tmp_path / "plots")] if name == "w2" else []))
        assert p.returncode == 0, p.stderr
        outs[name] = _numbers(tmp_path / (name + ".json"))
    assert outs["w1"] == outs["w2"] == outs["ray"]
    doc = outs["w1"]
    assert doc["homes"] == 3 and [h["id"] for h in doc["per_home"]] == [0, 1, 2]
    n = doc["period"]["slots"]
    assert n == 3 * 96 and doc["fleet"]["slot_minutes"] == 15
    assert len(doc["fleet"]["flex_up_mw"]) == len(doc["fleet"]["flex_down_mw"]) == n
    assert len(doc["fleet"]["bids"]["up_mw"]) == n // 4
    assert set(doc["per_home"][0]["cost_dkk"]) == set(simulate.STRATEGIES)
    # the fleet is the sum of its homes: the fleet cost and the per-home rows agree
    for k in simulate.STRATEGIES:
        assert doc["fleet"]["cost_dkk"][k] == pytest.approx(sum(h["cost_dkk"][k] for h in doc["per_home"]), abs=0.02)
    assert max(doc["fleet"]["flex_up_mw"]) > 0 and max(doc["fleet"]["flex_down_mw"]) > 0
    _docs_keys_are_in(json.load(open(tmp_path / "w1.json")))
    full = json.load(open(tmp_path / "ray.json"))
    assert full["engine"]["engine"] == "ray" and full["homes_per_s"] > 0
    assert os.path.getsize(tmp_path / "plots" / "fleet-dk2-2025-flex.png") > 10_000
    assert os.path.getsize(tmp_path / "plots" / "fleet-dk2-2025-bids.png") > 10_000


def _docs_keys_are_in(doc):
    """Every key docs/fleet.md's output table names is in the output."""
    import re
    text = open(os.path.join(ROOT, "docs", "fleet.md"), encoding="utf-8").read()
    table = text[text.index("| key | what |"):].split("\n\n")[0].splitlines()[2:]
    seen = 0
    for row in table:
        keys = re.findall(r"`([a-z_.\[\]]+)`", row.split("|")[1])
        under = doc["fleet"] if keys and keys[0].startswith("fleet.") else doc
        for k in keys:
            k = k.replace("fleet.", "").replace("[]", "")
            assert k in under, k
            seen += 1
    assert seen >= 15


def test_one_home_alone_is_the_same_home_as_in_the_fleet(tmp_path):
    p = _cli(*ARGS[:2], "--homes", "1", *ARGS[4:], "--workers", "1", "--json", str(tmp_path / "one.json"))
    assert p.returncode == 0, p.stderr
    one = json.load(open(tmp_path / "one.json"))
    item = {"seed": 2, "id": 0, "area_tariffs": fleet.area_tariffs("DK2"),
            "start_s": calendar.timegm((2025, 3, 3, 0, 0, 0)),
            "spot": prices.slots(prices.load(DK2, "DK2"), simulate.SLOT_S, calendar.timegm((2025, 3, 3, 0, 0, 0)),
                                 calendar.timegm((2025, 3, 6, 0, 0, 0))),
            "strategies": simulate.STRATEGIES}
    res = fleet.run_home(item)
    assert one["per_home"][0] == json.loads(json.dumps(res["per_home"]))
    assert one["fleet"]["flex_up_mw"] == [x / 1e6 for x in res["flex_up_w"]]


@pytest.mark.parametrize("args, needle", [
    (["--homes", "0"], "--homes must be at least 1"),
    (["--homes", "x"], "--homes"),
    (["--area", "SE3"], "--area: no tariff for area 'SE3'"),
    (["--workers", "0"], "--workers"),
    (["--from", "2025-02-30"], "--from"),
    (["--from", "2025-03-03", "--to", "2025-03-03"], "--from/--to"),
    (["--workers", "2", "--ray", "auto"], "not allowed with"),
    (["--ray", "nonsense"], "--ray"),
])
def test_bad_arguments_exit_2_naming_the_option(tmp_path, args, needle):
    base = {"--homes": "2", "--area": "DK2", "--prices": DK2, "--from": "2025-03-03", "--to": "2025-03-05"}
    given = dict(zip(args[::2], args[1::2]))
    argv = ["energy", "fleet"]
    for k, v in base.items():
        argv += [k, given.pop(k, v)]
    for k, v in given.items():
        argv += [k, v]
    p = _cli(*argv, "--json", str(tmp_path / "o.json"))
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert needle in p.stderr
    assert not (tmp_path / "o.json").exists()


@pytest.mark.parametrize("content, needle", [
    ("", "empty.csv"),
    ("time_utc,price_area,price_eur_mwh\n2025-03-03T00:00:00Z,DK2,abc\n", "broken.csv"),
    ("\x00\x01\x02", "binary.csv"),
])
def test_broken_price_files_exit_2_naming_the_file(tmp_path, content, needle):
    f = tmp_path / needle
    f.write_bytes(content.encode())
    p = _cli("energy", "fleet", "--homes", "1", "--prices", str(f), "--area", "DK2", "--json", str(tmp_path / "o.json"))
    assert p.returncode == 2, p.stderr
    assert needle in p.stderr and p.stderr.count("\n") == 1


def test_a_price_file_without_the_period_exits_2(tmp_path):
    p = _cli(*ARGS[:10], "--from", "2030-01-01", "--to", "2030-01-03", "--json", str(tmp_path / "o.json"))
    assert p.returncode == 2 and "dk2-2025.csv" in p.stderr


def test_an_unreachable_ray_address_exits_1_at_once(tmp_path):
    t = time.monotonic()
    p = _cli(*ARGS, "--ray", "127.0.0.1:1", "--json", str(tmp_path / "o.json"), timeout=60)
    assert p.returncode == 1, p.stderr
    assert "cannot reach 127.0.0.1:1" in p.stderr
    assert time.monotonic() - t < 50  # not ray.init's minutes-long wait (a hang guard, not a timing)


def test_an_address_that_is_not_ray_exits_1_after_the_timeout(tmp_path):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    try:
        p = _cli(*ARGS, "--ray", "127.0.0.1:%d" % port, "--json", str(tmp_path / "o.json"),
                 env={"V2XGW_RAY_TIMEOUT_S": "4"}, timeout=90)
    finally:
        srv.close()
    assert p.returncode == 1, p.stderr
    assert "no Ray cluster answered within 4 s" in p.stderr
    assert not (tmp_path / "o.json").exists()


def test_ray_not_installed_is_one_line_and_exit_1(tmp_path):
    """A gateway installed without the [ray] extra: --ray says what to install."""
    code = ("import sys; sys.modules['ray'] = None\n"  # import ray now raises ImportError
            "from tools.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    p = subprocess.run([sys.executable, "-c", code] + ARGS + ["--ray", "auto", "--json", str(tmp_path / "o.json")],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 1, p.stderr
    assert p.stderr.strip() == "error: --ray: Ray is not installed (pip install 'v2x-gateway[ray]')"
    assert not (tmp_path / "o.json").exists()
