"""controller/grid_support/reactive_power.py: the reactive power mode in force, bounded by
the caller's limits. Runs under MicroPython (mp_run.py) and CPython (pytest)."""

from controller.grid_support.constant_q import ConstantQ
from controller.grid_support.power_factor import PowerFactor
from controller.grid_support.reactive_power import ReactivePower, headroom
from controller.grid_support.volt_var import VoltVar
from controller.grid_support.watt_var import CosPhiP, WattVar
from unit_steps import near

S = 11000.0
QMAX = 0.44 * S
PERIOD = 10000


def test_unity_pf_is_zero():
    rp = ReactivePower("unity_pf")
    assert rp.update(1.08, 9000.0, -QMAX, QMAX, 0) == 0.0


def test_fixed_pf_follows_p_at_once():
    rp = ReactivePower("fixed_pf", PowerFactor(0.9, inject=False))
    q1 = rp.update(1.0, 4000.0, -QMAX, QMAX, 0)
    q2 = rp.update(1.0, 8000.0, -QMAX, QMAX, PERIOD)
    assert q1 < 0.0 and near(q2, 2 * q1)


def test_constant_q_and_cos_phi_p_and_watt_var():
    assert ReactivePower("constant_q", ConstantQ(1500.0)).update(0.9, 0.0, -QMAX, QMAX, 0) == 1500.0
    rp = ReactivePower("cos_phi_p", CosPhiP(S))
    assert rp.update(1.0, 0.4 * S, -QMAX, QMAX, 0) == 0.0
    assert rp.update(1.0, S, -QMAX, QMAX, PERIOD) < -1000.0
    rp = ReactivePower("watt_var", WattVar(S, S))
    assert near(rp.update(1.0, 0.75 * S, -QMAX, QMAX, 0), -0.22 * S)


def test_volt_var_runs_with_its_olrt():
    rp = ReactivePower("volt_var", VoltVar(S, olrt_s=5.0))
    t = 0
    q = rp.update(0.92, 0.0, -QMAX, QMAX, t)
    for _ in range(500):
        t += PERIOD
        q = rp.update(0.92, 0.0, -QMAX, QMAX, t)
    assert near(q, 0.9 * QMAX, 0.01 * QMAX)


def test_the_limit_always_wins():
    # the current limit leaves 1 kvar: every mode is held to it, both ways
    rp = ReactivePower("constant_q", ConstantQ(-4000.0))
    assert rp.update(1.0, 0.0, -1000.0, 1000.0, 0) == -1000.0
    rp = ReactivePower("fixed_pf", PowerFactor(0.9, inject=True))
    assert rp.update(1.0, S, -1000.0, 1000.0, 0) == 1000.0
    rp = ReactivePower("volt_var", VoltVar(S, olrt_s=0.0))
    assert rp.update(1.12, 0.0, -1000.0, 1000.0, 0) == -1000.0
    assert rp.output == -1000.0
    assert rp.update(1.0, 0.0, 500.0, 200.0, PERIOD) == 200.0  # crossed: the upper bound


def test_volt_var_filter_runs_on_while_bounded():
    rp = ReactivePower("volt_var", VoltVar(S, olrt_s=5.0))
    t = 0
    for _ in range(3000):
        t += PERIOD
        q = rp.update(0.9, 0.0, -QMAX, 0.0, t)  # no injection allowed for 30 s
    assert q == 0.0
    assert near(rp.update(0.9, 0.0, -QMAX, QMAX, t + PERIOD), QMAX, 1.0)


def test_unknown_mode_or_missing_unit_is_refused():
    for mode, unit in (("volt_watt", None), ("fixed_pf", None)):
        try:
            ReactivePower(mode, unit)
        except ValueError:
            continue
        assert False, mode


def test_headroom_under_either_priority():
    assert near(headroom(S, 0.44 * S), S * 0.8979977, 0.01)
    assert headroom(S, 0.0) == S
    assert headroom(S, 2 * S) == 0.0
