"""controller/grid_support/power_factor.py and constant_q.py: constant power factor (IEEE
1547-2018 5.3.2, EN 50549-1 cos phi setpoint) and constant reactive power (IEEE 5.3.5, EN Q
setpoint). Runs under MicroPython (mp_run.py) and CPython (pytest)."""

from math import sqrt

from controller.grid_support.constant_q import ConstantQ
from controller.grid_support.power_factor import PowerFactor
from unit_steps import near


def _pf(p, q):
    return abs(p) / sqrt(p * p + q * q)


def test_unity_is_no_reactive_power():
    pf = PowerFactor(1.0)
    assert pf.q(8000.0) == 0.0 and pf.q(-8000.0) == 0.0 and pf.q(0.0) == 0.0


def test_injecting_is_positive_for_either_sign_of_p():
    pf = PowerFactor(0.9, inject=True)
    q_dis = pf.q(9000.0)
    q_chg = pf.q(-9000.0)
    assert near(q_dis, 9000.0 * sqrt(1 - 0.81) / 0.9)  # 4358.9 var
    assert near(q_chg, q_dis)
    assert abs(_pf(9000.0, q_dis) - 0.9) < 1e-9


def test_absorbing_is_negative_for_either_sign_of_p():
    pf = PowerFactor(0.95, inject=False)
    q_dis = pf.q(10000.0)
    q_chg = pf.q(-10000.0)
    assert q_dis < 0.0 and q_chg < 0.0
    assert near(q_dis, -10000.0 * sqrt(1 - 0.95 * 0.95) / 0.95)
    assert abs(_pf(-10000.0, q_chg) - 0.95) < 1e-9


def test_q_follows_p_and_bounds_win():
    pf = PowerFactor(0.9, inject=True)
    assert near(pf.q(4500.0), 0.5 * pf.q(9000.0))
    assert pf.q(9000.0, -3000.0, 3000.0) == 3000.0
    assert PowerFactor(0.9, inject=False).q(9000.0, -3000.0, 3000.0) == -3000.0


def test_p_max_holds_the_power_factor_at_the_rating():
    pf = PowerFactor(0.9, inject=True)
    p = pf.p_max(11000.0)
    q = pf.q(p)
    assert near(sqrt(p * p + q * q), 11000.0)


def test_a_power_factor_out_of_range_is_refused():
    for bad in (0.0, -0.9, 1.1):
        try:
            PowerFactor(bad)
        except ValueError:
            continue
        assert False, bad


def test_constant_q_whatever_p_and_bounded():
    cq = ConstantQ(-2500.0)
    assert cq.q(0.0) == -2500.0 and cq.q(11000.0) == -2500.0 and cq.q(-7000.0) == -2500.0
    assert cq.q(5000.0, -1000.0, 1000.0) == -1000.0
    assert ConstantQ(4000.0).q(0.0, -3000.0, 3000.0) == 3000.0
