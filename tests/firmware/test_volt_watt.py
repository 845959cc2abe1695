"""controller/grid_support/volt_watt.py: P(U), IEEE 1547-2018 5.4.2 volt-watt and EN 50549-1
4.7.3. Runs under MicroPython (mp_run.py) and CPython (pytest)."""

from controller.grid_support.volt_watt import VoltWatt
from unit_steps import near, steps

P = 11000.0


def _run(vw, v, seconds, t0=0):
    return steps(lambda t: vw.update(v, t), seconds, t0)


def test_category_b_static_cap():
    vw = VoltWatt(P)
    assert near(vw.target(1.0), P)
    assert near(vw.target(1.06), P)
    assert near(vw.target(1.08), 0.6 * P)
    assert near(vw.target(1.10), 0.2 * P)
    assert near(vw.target(1.2), 0.2 * P)


def test_storage_cap_goes_negative_and_scales_by_the_charging_rating():
    # an EV that can absorb: P2 = P'min = -1.0 of its 7 kW charging rating
    vw = VoltWatt(P, p_pu=(1.0, -1.0), p_abs_rated_w=7000.0)
    assert near(vw.target(1.10), -7000.0)
    assert near(vw.target(1.08), (P - 7000.0) / 2)
    assert vw.target(1.09) < 0.0  # the unit must charge here
    assert near(vw.target(1.07), P - (P + 7000.0) / 4)


def test_cap_starts_unrestricted_and_reaches_90_percent_at_the_olrt():
    vw = VoltWatt(P, olrt_s=10.0)
    p, t = _run(vw, 1.0, 1.0)
    assert near(p, P)
    p_half, t = _run(vw, 1.10, 5.0, t)
    p_olrt, t = _run(vw, 1.10, 5.0, t)
    target = 0.2 * P
    assert P > p_half > p_olrt > target  # a first-order response, not a step
    assert abs(p_olrt - (P - 0.9 * (P - target))) <= 0.01 * P
    p, t = _run(vw, 1.10, 60.0, t)
    assert near(p, target, 1.0)


def test_cap_recovers_when_the_voltage_falls():
    vw = VoltWatt(P, olrt_s=10.0)
    _, t = _run(vw, 1.10, 60.0)
    p, t = _run(vw, 1.0, 60.0, t)
    assert near(p, P, 1.0)


def test_reset():
    vw = VoltWatt(P)
    vw.reset(0.0, 0)
    assert vw.output == 0.0
    p = vw.update(1.0, 1000000)
    assert 0.0 < p < P
