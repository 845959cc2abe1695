"""controller/grid_support/watt_var.py: IEEE 1547-2018 5.3.4 watt-var and EN 50549-1 cos
phi(P). Runs under MicroPython (mp_run.py) and CPython (pytest)."""

from math import sqrt

from controller.grid_support.watt_var import CosPhiP, WattVar
from unit_steps import near

P = 11000.0
S = 11000.0


def test_category_b_points():
    wv = WattVar(P, S)
    assert near(wv.q(0.2 * P), 0.0)
    assert near(wv.q(0.5 * P), 0.0)
    assert near(wv.q(0.75 * P), -0.22 * S)
    assert near(wv.q(P), -0.44 * S)
    assert near(wv.q(2 * P), -0.44 * S)  # flat beyond P3
    assert near(wv.q(0.0), 0.0)


def test_absorbing_side_uses_the_p_prime_curve_and_the_charging_rating():
    wv = WattVar(P, S, p_abs_rated_w=7000.0)
    assert near(wv.q(-0.5 * 7000.0), 0.0)
    assert near(wv.q(-0.75 * 7000.0), 0.22 * S)  # injecting while charging hard
    assert near(wv.q(-7000.0), 0.44 * S)
    assert near(wv.q(-20000.0), 0.44 * S)


def test_without_a_p_prime_curve_the_first_point_holds_below_p1():
    wv = WattVar(P, S, p_pu=(0.2, 0.5, 1.0), q_pu=(0.1, 0.0, -0.44), p_load_pu=None)
    assert near(wv.q(-P), 0.1 * S)


def test_bounded_by_the_capability_passed_in():
    wv = WattVar(P, S)
    assert wv.q(P, -3000.0, 3000.0) == -3000.0
    assert wv.q(-P, -3000.0, 3000.0) == 3000.0


def test_p_max_is_where_the_curve_leaves_the_rating_circle():
    wv = WattVar(P, S)
    p = wv.p_max(S)
    q = wv.q(p)
    assert 0.5 * P < p < P
    assert near(sqrt(p * p + q * q), S, 0.01)
    pn = wv.p_min(S)
    qn = wv.q(pn)
    assert -P < pn < -0.5 * P and qn > 0.0
    assert near(sqrt(pn * pn + qn * qn), S, 0.01)
    assert wv.p_max(2 * S) >= P  # fits everywhere: the flat end meets the circle beyond P3


def test_cos_phi_p_default_characteristic():
    cp = CosPhiP(P)
    assert cp.q(0.3 * P) == 0.0 and cp.q(0.5 * P) == 0.0
    assert abs(cp.cos_phi(0.75 * P) - (-0.95)) < 1e-9  # linear in cos phi, under-excited
    q = cp.q(P)
    assert q < 0.0 and abs(P / sqrt(P * P + q * q) - 0.9) < 1e-9
    assert near(cp.q(0.75 * P), -0.75 * P * sqrt(1 - 0.95 ** 2) / 0.95)


def test_cos_phi_p_through_unity_between_excitations():
    cp = CosPhiP(P, p_pu=(0.0, 1.0), cos_phi=(0.95, -0.95))
    assert abs(cp.cos_phi(0.25 * P) - 0.975) < 1e-9
    assert abs(cp.cos_phi(0.5 * P) - 1.0) < 1e-9 and cp.q(0.5 * P) == 0.0
    assert abs(cp.cos_phi(0.75 * P) - (-0.975)) < 1e-9
    assert cp.q(0.25 * P) > 0.0 and cp.q(0.75 * P) < 0.0


def test_cos_phi_p_keeps_the_excitation_when_charging():
    cp = CosPhiP(P, p_pu=(-1.0, 1.0), cos_phi=(-0.9, -0.9))
    assert cp.q(-P) < 0.0 and cp.q(P) < 0.0
    assert near(cp.q(-P), cp.q(P))
    assert cp.q(P, -1000.0, 1000.0) == -1000.0


def test_cos_phi_out_of_range_is_refused():
    try:
        CosPhiP(P, cos_phi=(1.0, 0.0))
    except ValueError:
        return
    assert False
