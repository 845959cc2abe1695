"""controller/grid_support/volt_var.py: Q(U), IEEE 1547-2018 5.3.3 volt-var and EN 50549-1
Q(U). Runs under MicroPython (mp_run.py) and CPython (pytest)."""

from controller.grid_support.volt_var import VoltVar, olrt_of_time_constant
from unit_steps import near, steps

S = 11000.0


def _run(vv, v, seconds, t0=0):
    return steps(lambda t: vv.update(v, t), seconds, t0)


def test_category_b_curve_points():
    vv = VoltVar(S)
    assert near(vv.target(0.92), 0.44 * S)
    assert near(vv.target(0.98), 0.0)
    assert near(vv.target(1.0), 0.0)
    assert near(vv.target(1.02), 0.0)
    assert near(vv.target(1.08), -0.44 * S)
    assert near(vv.target(0.95), 0.22 * S)
    assert near(vv.target(1.05), -0.22 * S)


def test_flat_beyond_v1_and_v4():
    vv = VoltVar(S)
    assert near(vv.target(0.85), 0.44 * S)
    assert near(vv.target(1.15), -0.44 * S)


def test_v_ref_shifts_every_point():
    vv = VoltVar(S, v_ref_pu=1.02)
    assert near(vv.target(1.0), 0.0)  # 1.0 sits at the old 0.98: V2
    assert near(vv.target(1.10), -0.44 * S)  # V4 moved to 1.10
    assert near(vv.target(0.97), 0.22 * S)
    vv.set_v_ref(0.98)
    assert near(vv.target(1.03), -0.22 * S)


def test_custom_en_characteristic():
    # an EN 50549-1 Q(U) a DSO might set: +-0.33 S between 0.93/0.97 and 1.03/1.07 pu
    vv = VoltVar(S, v_pu=(0.93, 0.97, 1.03, 1.07), q_pu=(0.33, 0.0, 0.0, -0.33))
    assert near(vv.target(0.95), 0.165 * S)
    assert near(vv.target(1.1), -0.33 * S)


def test_starts_from_zero_and_reaches_90_percent_at_the_olrt():
    vv = VoltVar(S, olrt_s=5.0)
    _, t = _run(vv, 1.0, 1.0)
    assert vv.output == 0.0
    q_half, t = _run(vv, 1.08, 2.5, t)
    q_olrt, t = _run(vv, 1.08, 2.5, t)
    target = -0.44 * S
    assert 0.0 > q_half > q_olrt > target  # moving, not a step
    assert abs(q_olrt - 0.9 * target) <= 0.01 * abs(target)  # 90 % at 5 s
    assert abs(q_olrt - target) >= 0.05 * abs(target)
    q, t = _run(vv, 1.08, 30.0, t)
    assert near(q, target, 1.0)


def test_the_same_olrt_whatever_the_update_interval():
    coarse = VoltVar(S, olrt_s=5.0)
    fine = VoltVar(S, olrt_s=5.0)
    coarse.update(1.0, 0)
    fine.update(1.0, 0)
    for i in range(1, 51):
        q_c = coarse.update(0.92, i * 100000)
    for i in range(1, 501):
        q_f = fine.update(0.92, i * 10000)
    assert near(q_c, q_f, 1e-6 * S)
    assert near(q_c, 0.9 * 0.44 * S, 0.001 * S)


def test_reset_holds_and_moves_on_from_there():
    vv = VoltVar(S)
    vv.reset(2000.0, 0)
    assert vv.output == 2000.0
    q = vv.update(1.0, 10000)
    assert 0.0 < q < 2000.0


def test_en_time_constant_maps_onto_the_olrt():
    # 90 % of a first-order step at tau * ln 10
    assert abs(olrt_of_time_constant(3.0) - 6.9078) < 1e-3
    vv = VoltVar(S, olrt_s=olrt_of_time_constant(10.0))
    vv.update(0.92, 0)
    vv.reset(0.0, 0)
    q, _ = _run(vv, 0.92, 10.0)
    assert abs(q - 0.632 * 0.44 * S) <= 0.002 * S  # 1 - 1/e after one time constant
