"""`v2xgw hil campaign`: many scenario files over worker processes, each report what `hil run`
writes for the file (the metrics and every event identical; only the run's own wall time and
speed-up differ), a summary and a pass/fail table, failures listed for replay."""

import json
import shutil

import pytest

from hil import campaign
from tools import cli

SCENARIOS = ["ev-limit-drop.json", "meter-silence.json", "hard-outage-v2h.json", "outage-and-return.json"]


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


def test_campaign_reproduces_hil_run_for_every_scenario(folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["hil", "campaign", str(folder), "--out", str(out), "--workers", "2"]) == 0
    summ = json.loads((out / "summary.json").read_text())
    assert summ["scenarios"] == len(SCENARIOS) and summ["passed"] == len(SCENARIOS) and summ["failed"] == []
    for name in SCENARIOS:
        stem = name[:-5]
        single = tmp_path / ("single-" + name)
        assert cli.main(["hil", "run", str(folder / name), "--report", str(single), "--quiet"]) == 0
        assert _strip(json.loads((out / name).read_text())) == _strip(json.loads(single.read_text())), stem
    table = (out / "campaign.md").read_text()
    assert table.count("| pass |") == len(SCENARIOS)
    assert "passed on 2 worker(s)" in capsys.readouterr().out


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
    assert cli.main(["hil", "campaign", str(folder / "ev-limit-drop.json"), "--workers", "0", "--out", str(out)]) == 2
    capsys.readouterr()
    twin = tmp_path / "twin.json"
    shutil.copy(folder / "ev-limit-drop.json", twin)
    assert cli.main(["hil", "campaign", str(folder / "ev-limit-drop.json"), str(twin), "--out", str(out)]) == 2
    assert "share the name" in capsys.readouterr().err
