"""The soak (hil/soak.py, `v2xgw hil soak`): a short one end to end through the command
line, and the shards' determinism and validity."""

import json
import pathlib
import subprocess
import sys

from hil import scenario, soak
from hil.invariants import RULES

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _injected(sc):
    """The fault kinds (soak.FAULTS names) present in a shard's scenario events."""
    f_n = sc["site"]["nominal_frequency_hz"]
    kinds = set()
    for e in sc["events"]:
        k = e["kind"]
        if k in ("can_silence", "can_corrupt"):
            kinds.add(k + ":" + e["node"])
        elif k == "grid_disconnect":
            kinds.add("grid_outage")
        elif k == "grid_voltage" and e["pu"] != 1.0:
            kinds.add("voltage_sag" if e["pu"] < 1.0 else "voltage_swell")
        elif k == "grid_frequency" and e["hz"] != f_n:
            kinds.add("frequency_ramp" if "ramp_hz_per_s" in e else "frequency_step")
        elif k in ("grid_phase_jump", "mode", "ev_limits", "load_step"):
            kinds.add({"grid_phase_jump": "phase_jump"}.get(k, k))
    return kinds


def test_short_soak_from_the_command_line(tmp_path):
    """Three minutes of plant time in two shards, two workers: the report, the table, the
    plot, replayable shard files, and every kind of fault on the bus and the grid."""
    out = tmp_path / "shards"
    r = subprocess.run([sys.executable, "-m", "tools.cli", "hil", "soak", "--hours", "0.05", "--shard-hours", "0.025",
                        "--mean-gap", "3", "--seed", "3", "--workers", "2", "--out", str(out),
                        "--report", str(tmp_path / "soak.json"), "--plot", str(tmp_path / "soak.png")],
                       capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "soak.json").read_text())
    s = rep["soak"]
    assert (s["seed"], s["shards"], s["hours"], s["workers"]) == (3, 2, 0.05, 2)
    assert s["plant_hours"] == round(sum(x["played_s"] for x in rep["shards"]) / 3600, 4)
    assert set(rep["violations"]) == set(RULES)
    assert set(rep["faults"]) == set(soak.FAULTS) and all(n > 0 for n in rep["faults"].values()), rep["faults"]
    assert [x["index"] for x in rep["shards"]] == [0, 1]
    injected = set()
    for x in rep["shards"]:
        assert x["plant_s"] == 90.0 and x["wall_s"] > 0 and x["speedup"] > 0
        assert x["played_s"] == (x["error"]["t_s"] if x["error"] else 90.0)
        assert set(x["violations"]) == set(RULES)
        assert sum(x["violations"].values()) >= len(x["first"])
        path = out / (x["name"] + ".json")
        assert x["replay"].startswith(f"v2xgw hil run {path}")
        sc = scenario.load(path)  # a valid scenario in the public format
        injected |= _injected(sc)
        # and the controller met them: lost inputs, refused frames, a separation from the grid
        assert x["controller_events"].get("input_timeout", 0) > 0 and x["frames_refused"] > 0
        assert x["controller_events"].get("island_detected", 0) > 0
    assert injected == set(soak.FAULTS)  # every fault really is in the files that were run
    failing = {f["name"] for f in rep["failing"]}
    assert failing == {x["name"] for x in rep["shards"] if any(x["violations"].values())}
    # not a terminal: no progress lines, only the closing table
    lines = r.stdout.splitlines()
    assert lines[0].split()[:2] == ["shard", "hours"] and not any(ln.startswith("[") for ln in lines)
    assert any(ln.startswith("total") for ln in lines) and "faults scheduled:" in r.stdout
    assert (tmp_path / "soak.png").read_bytes()[:4] == b"\x89PNG"


def test_same_seed_same_shards():
    a = soak.make_shards(5.0, seed=11)
    b = soak.make_shards(5.0, seed=11)
    assert a == b
    assert [sh["scenario"]["duration_s"] for sh in a] == [3600.0] * 5
    # a shard does not depend on how long the soak is: shard 2 of 3 h is shard 2 of 5 h
    assert soak.make_shards(3.0, seed=11)[2] == a[2]
    assert soak.make_shards(5.0, seed=12)[0]["scenario"] != a[0]["scenario"]
    assert json.loads(json.dumps(a)) == a  # written out, read back: the same


def test_shards_cover_the_fault_model():
    shards = soak.make_shards(6.5, seed=5)
    assert [sh["scenario"]["duration_s"] for sh in shards] == [3600.0] * 6 + [1800.0]
    longest = {}
    for sh in shards:
        sc = scenario.validate(sh["scenario"])  # every shard is a valid scenario
        assert [e["t_s"] for e in sc["events"]] == [e["t_s"] for e in sh["scenario"]["events"]]  # in time order
        assert _injected(sc) == set(soak.FAULTS)
        assert sum(sh["faults"].values()) > sh["scenario"]["duration_s"] / soak.MEAN_GAP_S / 2  # ~120 an hour
        for e in sc["events"]:
            if e["kind"] in ("can_silence", "can_corrupt"):
                longest[e["node"]] = max(longest.get(e["node"], 0.0), e["duration_s"])
        assert sc["controller"] == {} or set(sc["controller"]) == {"site"}
    # some silences or corruptions outlast half the ticks period (537 s), some are milliseconds
    assert sum(d > 537.0 for d in longest.values()) >= 1
    assert any(e["duration_s"] < 0.01 for sh in shards for e in sh["scenario"]["events"]
               if e["kind"] == "can_silence")
    # mode changes with setpoints of both signs, charge with a negative one among them
    modes = [e["mode"] for sh in shards for e in sh["scenario"]["events"] if e["kind"] == "mode"]
    assert any(m["kind"] == "charge" and m["setpoint_kw"] < 0 for m in modes)
    assert any(m["kind"] == "v2g" and m["setpoint_kw"] > 0 for m in modes)
    # some shards start the controller clock just before a ticks wrap, the others at 0
    starts = [sh["clock_start_us"] for sh in shards]
    assert 0 in starts and any((1 << 30) - 30_000_000 <= c < (1 << 30) for c in starts)


def test_the_soak_runs_through_the_campaign_runner_the_same_on_any_engine(tmp_path):
    """Three shards (the last one shorter) in process and on two workers: the same shard
    results in shard order, each streamed to results.jsonl as it ended."""
    def play(workers):
        rep = soak.run_soak(0.025, seed=5, workers=workers, shard_s=36.0, mean_gap_s=3.0,
                            out_dir=str(tmp_path / str(workers)))
        lines = (tmp_path / str(workers) / "results.jsonl").read_text().splitlines()
        streamed = sorted((json.loads(ln) for ln in lines), key=lambda r: r["index"])
        for r in rep["shards"]:
            assert {k: v for k, v in r.items() if k != "replay"} == streamed[r["index"]]
        assert rep["soak"]["workers"] == workers and "ray" not in rep["soak"]
        return [{k: v for k, v in r.items() if k not in ("wall_s", "speedup", "replay")} for r in rep["shards"]]

    one = play(1)
    assert [r["index"] for r in one] == [0, 1, 2] and [r["plant_s"] for r in one] == [36.0, 36.0, 18.0]
    assert play(2) == one
