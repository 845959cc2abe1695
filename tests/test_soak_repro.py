"""The smallest scenarios that reproduce what the soak found (tests/data/soak-repro/,
docs/soak.md): a broken site invariant, or an exception that stopped the run ("error").
Each must break nothing but its own finding; while the finding stands the test is an
expected failure, and it passes once the cause is fixed. A fixed finding (FIXED) stays
as a regression test: its scenario must break no invariant at all."""

import json
import pathlib

import pytest

from hil import scenario
from hil.runner import run_lockstep

REPRO = pathlib.Path(__file__).resolve().parent / "data" / "soak-repro"
# file -> (rule, where the cause is)
FINDINGS = {
    "forming-after-reclose.json": ("forming", "controller: Gateway._command_now keeps grid-forming after the relay "
                                              "reports closed, until the next tick"),
    "resync-voltage-windup.json": ("error", "controller: the resynchronisation's voltage trim winds up without "
                                            "bound (Backup.update) until GW_InverterForming.VoltageSetpoint "
                                            "overflows and Gateway.tick raises"),
}

# file -> (rule it broke, what fixed it)
FIXED = {
    "gfm-start-over-current.json": ("current", "plant: the grid-forming build-up stays within the current limit "
                                               "and stalls below a constant-power load's peak current "
                                               "(hil/plant.py Site._gfm_island, docs/plant.md 3b)"),
    "island-surplus-dc-over-current.json": ("current", "plant: the grid-following stage's DC current limit holds "
                                                        "within the island step (hil/plant.py Site._island_v, "
                                                        "docs/plant.md 3a)"),
}


def test_every_repro_file_is_listed():
    assert not set(FINDINGS) & set(FIXED)
    assert sorted(p.name for p in REPRO.glob("*.json")) == sorted([*FINDINGS, *FIXED])


@pytest.mark.parametrize("name", sorted(FINDINGS))
def test_soak_finding(name):
    rule, cause = FINDINGS[name]
    sc = scenario.load(REPRO / name)
    assert rule in json.loads((REPRO / name).read_text())["description"]
    report, _ = run_lockstep(sc, errors="report")
    inv = report["invariants"]
    error = report["run"].get("error")
    broken = {r for r, n in inv["by_rule"].items() if n} | ({"error"} if error else set())
    assert broken <= {rule}, (inv["first"], error)
    if broken:
        t = error["t_s"] if error else inv["first"][0]["t_s"]
        pytest.xfail(f"{rule} at {t} s: {cause}")


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
