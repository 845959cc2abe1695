"""The smallest scenarios that reproduce what the soak found (tests/data/soak-repro/,
docs/soak.md): a broken site invariant, or an exception that stopped the run ("error").
Every finding is fixed; each scenario stays as a regression test and must break no
invariant at all. A new finding is added here with pytest.mark.xfail(strict=True) and
its cause until the fix lands."""

import json
import pathlib

import pytest

from hil import scenario
from hil.runner import run_lockstep

REPRO = pathlib.Path(__file__).resolve().parent / "data" / "soak-repro"
# file -> (rule it broke, what fixed it)
FIXED = {
    "forming-after-reclose.json": ("forming", "controller: on the relay's closed feedback the inverter is "
                                              "commanded grid-following or off at once, and grid-forming never "
                                              "goes out with the contact closed (Gateway._command_now, gfm_refused)"),
    "resync-voltage-windup.json": ("error", "controller: the resynchronisation's voltage trim is bounded "
                                            "(Backup.update, STEER_RANGE_PU) and Commands clamps every signal "
                                            "to its DBC range instead of raising"),
    "gfm-start-over-current.json": ("current", "plant: the grid-forming build-up stays within the current limit "
                                               "and stalls below a constant-power load's peak current "
                                               "(hil/plant.py Site._gfm_island, docs/plant.md 3b)"),
    "island-surplus-dc-over-current.json": ("current", "plant: the grid-following stage's DC current limit holds "
                                                        "within the island step (hil/plant.py Site._island_v, "
                                                        "docs/plant.md 3a)"),
}


def test_every_repro_file_is_listed():
    assert sorted(p.name for p in REPRO.glob("*.json")) == sorted(FIXED)


@pytest.mark.parametrize("name", sorted(FIXED))
def test_fixed_finding(name):
    rule, fix = FIXED[name]
    sc = scenario.load(REPRO / name)
    assert rule in json.loads((REPRO / name).read_text())["description"]
    report, _ = run_lockstep(sc, errors="report")
    inv = report["invariants"]
    error = report["run"].get("error")
    assert error is None, (error, fix)
    assert inv["violations"] == 0, (inv["first"], fix)
