"""`v2xgw hil campaign`: many scenario files on an engine (in process, worker processes, Ray),
each report what `hil run` writes for the file (the metrics and every event identical; only
the run's own wall time and speed-up differ), written by the driver, a summary and a
pass/fail table, failures listed for replay; the campaign runner under `hil matrix` and
`hil soak`; engines that cannot be reached end the command with exit 1, never a hang."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from hil import campaign, matrix
from tools import cli
from tools.engine import Engine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENARIOS = ["ev-limit-drop.json", "meter-silence.json", "hard-outage-v2h.json"]


def _strip(report):
    report = dict(report)
    report["run"] = {k: v for k, v in report["run"].items() if k not in ("wall_s", "speedup")}
    return report


@pytest.fixture()
def folder(tmp_path):
    d = tmp_path / "sc"
    d.mkdir()
    for name in SCENARIOS:
        shutil.copy("scenarios/" + name, d / name)
    return d


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """Each scenario's report from `hil run --report` (the reference)."""
    d = tmp_path_factory.mktemp("single")
    out = {}
    for name in SCENARIOS:
        assert cli.main(["hil", "run", "scenarios/" + name, "--report", str(d / name), "--quiet"]) == 0
        out[name] = json.loads((d / name).read_text())
    return out


@pytest.mark.parametrize("engine", [["--workers", "1"], ["--workers", "2"], ["--ray", "auto"]],
                         ids=["in-process", "2-workers", "ray"])
def test_campaign_reproduces_hil_run_for_every_scenario(engine, folder, single, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["hil", "campaign", str(folder), "--out", str(out)] + engine
    if engine[0] == "--ray":
        # Ray in a child process: a Ray driver left in the test process (its core worker keeps
        # a GCS client after shutdown) can end that process a minute later with exit 1
        p = subprocess.run([sys.executable, "-m", "tools.cli"] + argv, capture_output=True, text=True,
                           cwd=ROOT, timeout=300)
        assert p.returncode == 0, p.stderr
        said_ray = p.stdout
    else:
        assert cli.main(argv) == 0
    summ = json.loads((out / "summary.json").read_text())
    assert summ["scenarios"] == len(SCENARIOS) and summ["passed"] == len(SCENARIOS) and summ["failed"] == []
    assert [r["name"] for r in summ["rows"]] == sorted(n[:-5] for n in SCENARIOS)  # the folder's order
    for name in SCENARIOS:
        text = (out / name).read_text()
        # written by the driver, formatted as hil run formats it
        assert text == json.dumps(json.loads(text), indent=2) + "\n"
        assert _strip(json.loads(text)) == _strip(single[name]), name
    table = (out / "campaign.md").read_text()
    assert table.count("| pass |") == len(SCENARIOS)
    said = said_ray if engine[0] == "--ray" else capsys.readouterr().out
    if engine[0] == "--ray":
        assert summ["engine"]["engine"] == "ray" and summ["engine"]["address"] == "auto"
        assert summ["workers"] >= 1 and "passed on Ray at auto (" in said
    else:
        n = int(engine[1])
        assert summ["engine"] == {"engine": "in-process" if n == 1 else "processes", "workers": n}
        assert "passed on %d worker(s)" % n in said


def test_run_scenarios_hands_out_the_costliest_first_and_keeps_the_input_order():
    seen = []

    def keep(i, result):
        seen.append(i)
        return result * 10

    items = ["a", "ccc", "bb", "dddd"]
    assert campaign.run_scenarios(items, len, Engine(workers=1), keep, cost=len) == [10, 30, 20, 40]
    assert seen == [3, 1, 2, 0]
    assert campaign.run_scenarios(items, len, Engine(workers=2)) == [1, 3, 2, 4]


def test_matrix_rows_do_not_depend_on_the_engine():
    """A part of the islanding matrix in process, on two worker processes and on Ray: the same
    rows in the same order (the full matrix: tests/test_bench_campaign.py)."""
    items = [matrix.cases()[i] for i in (0, 7, 15, 30, 44)]
    serial = campaign.run_scenarios(items, matrix._run_case, Engine(workers=1))
    assert [r["level_pct"] for r in serial] == [100, 100, 66, 33, 33]
    assert campaign.run_scenarios(items, matrix._run_case, Engine(workers=2)) == serial
    # on Ray, in a child process (see above), the rows as JSON
    code = ("import json, sys; from hil import campaign, matrix; from tools.engine import Engine\n"
            "items = [matrix.cases()[i] for i in (0, 7, 15, 30, 44)]\n"
            "with Engine(ray='auto') as eng:\n"
            "    print(json.dumps(campaign.run_scenarios(items, matrix._run_case, eng)))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.strip().splitlines()[-1]) == json.loads(json.dumps(serial))


def test_the_verdict_and_the_replay_list():
    ok = {"error": None, "metrics": {"invariant_violations": 0, "island_detection_s": 0.4}}
    assert campaign.verdict(ok) == (True, "")
    assert campaign.verdict({"error": None, "metrics": {"invariant_violations": 2}})[0] is False
    slow = campaign.verdict({"error": None, "metrics": {"invariant_violations": 0, "island_detection_s": 2.5}})
    assert slow[0] is False and "2.500" in slow[1]
    assert campaign.verdict({"error": "RuntimeError: x", "metrics": None}) == (False, "RuntimeError: x")


def test_a_failing_scenario_is_a_row_listed_for_replay(folder, tmp_path, capsys, monkeypatch):
    real = campaign.verdict

    def strict(row):  # a stricter target than the shipped one, so that a real run fails it
        if row["name"] == "meter-silence":
            return False, "made to fail"
        return real(row)

    monkeypatch.setattr(campaign, "verdict", strict)
    out = tmp_path / "out"
    assert cli.main(["hil", "campaign", str(folder / "meter-silence.json"), str(folder / "ev-limit-drop.json"),
                     "--out", str(out), "--workers", "1"]) == 3
    text = capsys.readouterr().out
    assert "| meter-silence | FAIL |" in text
    assert "replay: v2xgw hil run %s" % (folder / "meter-silence.json") in text
    assert json.loads((out / "summary.json").read_text())["failed"] == [str(folder / "meter-silence.json")]


def test_bad_input_exits_2_before_anything_runs(folder, tmp_path, capsys):
    out = tmp_path / "out"
    (folder / "broken.json").write_text('{"name": "broken", "duration_s": -1}')
    assert cli.main(["hil", "campaign", str(folder), "--out", str(out)]) == 2
    assert "broken.json" in capsys.readouterr().err
    assert not out.exists()
    assert cli.main(["hil", "campaign", str(tmp_path / "nothing-here"), "--out", str(out)]) == 2
    one = str(folder / "ev-limit-drop.json")
    for bad in (["--workers", "0"], ["--workers", "two"], ["--workers", "2", "--ray", "auto"]):
        with pytest.raises(SystemExit) as e:
            cli.main(["hil", "campaign", one, "--out", str(out)] + bad)
        assert e.value.code == 2
        assert "--workers" in capsys.readouterr().err
    assert cli.main(["hil", "campaign", one, "--ray", "no-port-here", "--out", str(out)]) == 2
    assert "--ray" in capsys.readouterr().err
    twin = tmp_path / "twin.json"
    shutil.copy(folder / "ev-limit-drop.json", twin)
    assert cli.main(["hil", "campaign", one, str(twin), "--out", str(out)]) == 2
    assert "share the name" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("command", [["campaign", "scenarios/ev-limit-drop.json"], ["matrix"],
                                     ["soak", "--hours", "0.01"]])
def test_a_closed_ray_port_is_exit_1_at_once(command, tmp_path, capsys):
    out = tmp_path / "out"
    t0 = time.monotonic()
    assert cli.main(["hil"] + command + ["--out", str(out), "--ray", "127.0.0.1:1"]) == 1
    assert time.monotonic() - t0 < 30  # a generous bound against a hang, not a timing claim
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --ray 127.0.0.1:1: cannot reach"), err
    assert not out.exists()  # nothing ran, nothing written


def test_an_open_port_that_is_not_ray_is_exit_1_after_the_timeout(folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("V2XGW_RAY_TIMEOUT_S", "5")
    with socket.socket() as listener:  # accepts TCP, never answers as Ray would
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        addr = "127.0.0.1:%d" % listener.getsockname()[1]
        assert cli.main(["hil", "campaign", str(folder), "--out", str(tmp_path / "out"), "--ray", addr]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --ray %s: " % addr), err
    assert not (tmp_path / "out").exists()
