"""Benchmark: the planner (energy/plan.py) on realistic 48-hour plans at 15-minute slots.

    pytest tests/test_bench_energy_plan.py --benchmark-enable

Instances from tools/bench_plan.py (DK1 15-minute prices, a commuter, 192 slots),
cycled so each round plans a different day. With the default ``--benchmark-disable`` it
runs once as a test and checks the plan's shape and self-consistency; never its speed (the
p50/p99 figures: `python tools/bench_plan.py`, `v2xgw bench`, docs/planner.md).
"""

import itertools

from energy import plan
from tools.bench_plan import SLOTS, instances


def test_bench_plan_192_slots(benchmark):
    cases = instances(20, seed=3)
    it = itertools.cycle(cases)
    res = benchmark(lambda: plan.solve(next(it)))
    assert len(res["slots"]) == SLOTS and res["optimal"]
    # the output is the plan it claims: soc recomputed from p_kw by the spec's formula
    inp = cases[0] if benchmark.disabled else None
    if inp is not None:
        ev = inp["ev"]
        e = ev["soc"] * ev["capacity_kwh"]
        for t, s in enumerate(res["slots"]):
            assert abs(s["soc"] - e / ev["capacity_kwh"]) < 2e-6
            c, d = max(s["p_kw"], 0.0), max(-s["p_kw"], 0.0)
            e += (ev["charge_efficiency"] * c - d / ev["discharge_efficiency"]) * 0.25 - ev["drive_kwh"][t]
