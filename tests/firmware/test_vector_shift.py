"""Vector shift / phase jump from the meter's PhaseAngle (run under MicroPython and CPython)."""

from controller.clock import TICKS_MAX, ticks_add
from controller.protection.vector_shift import VectorShift, wrap180

STEP = 10000


def test_wrap180():
    assert wrap180(0.0) == 0.0
    assert wrap180(190.0) == -170.0
    assert wrap180(-190.0) == 170.0
    assert wrap180(180.0) == -180.0
    assert abs(wrap180(725.5) - 5.5) < 1e-9


def _run(vs, f_hz, steps, angle0=0.0, t0=0, jump_at=None, jump_deg=0.0):
    """Angle of a grid at constant f_hz against a 50 Hz reference, 0.1 deg steps; returns
    the largest |jump| seen and the step at which the stage tripped (or None)."""
    worst = 0.0
    tripped_at = None
    angle = angle0
    for k in range(steps):
        if k:
            angle += 360.0 * (f_hz - 50.0) * 0.01
        if jump_at is not None and k == jump_at:
            angle += jump_deg
        meas = round(wrap180(angle) * 10.0) / 10.0
        if vs.update(meas, f_hz, ticks_add(t0, k * STEP)) and tripped_at is None:
            tripped_at = k
        if abs(vs.jump_deg) > worst:
            worst = abs(vs.jump_deg)
    return worst, tripped_at


def test_constant_offset_is_no_jump_across_the_wrap():
    vs = VectorShift(6.0, 50.0)
    worst, tripped = _run(vs, 50.5, 1000, angle0=170.0)  # 1.8 deg per sample, wraps every 2 s
    assert tripped is None and worst < 0.11  # only the 0.1 deg quantisation is left
    vs = VectorShift(6.0, 50.0)
    worst, tripped = _run(vs, 49.2, 1000, angle0=-175.0)
    assert tripped is None and worst < 0.11


def test_jump_is_measured_and_trips():
    vs = VectorShift(6.0, 50.0)
    worst, tripped = _run(vs, 50.0, 100, jump_at=40, jump_deg=8.0)
    assert tripped == 40 and abs(worst - 8.0) < 0.11
    vs = VectorShift(10.0, 50.0)
    worst, tripped = _run(vs, 50.0, 100, jump_at=40, jump_deg=8.0)
    assert tripped is None and abs(worst - 8.0) < 0.11


def test_jump_across_plus_minus_180():
    vs = VectorShift(None, 50.0)  # measuring only
    vs.update(175.0, 50.0, 0)
    assert not vs.update(-165.0, 50.0, STEP)  # +20 deg through the wrap
    assert abs(vs.jump_deg - 20.0) < 1e-9
    vs.update(-170.0, 50.0, 2 * STEP)
    vs.update(170.0, 50.0, 3 * STEP)  # -20 deg the other way
    assert abs(vs.jump_deg + 20.0) < 1e-9


def test_jump_with_frequency_offset_and_tick_wrap():
    vs = VectorShift(12.0, 60.0)
    t0 = TICKS_MAX - 5 * STEP
    angle = 100.0
    vs.update(angle, 60.3, t0)
    for k in range(1, 10):
        angle = wrap180(angle + 360.0 * 0.3 * 0.01 + (-15.0 if k == 7 else 0.0))
        tripped = vs.update(angle, 60.3, ticks_add(t0, k * STEP))
        assert tripped == (k == 7)
    assert abs(wrap180(angle - 100.0 - 9 * 1.08 + 15.0)) < 1e-9


def test_frequency_ramp_with_lagging_meter_is_no_jump():
    # 2 Hz/s ramp down, meter frequency 20 ms late: residual 0.14 deg per sample
    vs = VectorShift(6.0, 50.0)
    angle, f = 0.0, 50.0
    worst = 0.0
    hist = [50.0, 50.0, 50.0]
    for k in range(200):
        f_true = 50.0 - 2.0 * max(0.0, (k - 20) * 0.01) if k < 70 else 49.0
        angle += 360.0 * (f_true - 50.0) * 0.01
        hist.append(f_true)
        f_meter = hist[-3]  # 20 ms lag
        assert not vs.update(wrap180(angle), f_meter, k * STEP)
        worst = max(worst, abs(vs.jump_deg))
    assert worst < 0.3


def test_gap_restarts_reference():
    vs = VectorShift(6.0, 50.0)
    vs.update(0.0, 51.0, 0)
    # after 1 s at 51 Hz the angle has turned 360 deg: ambiguous, so no judgement
    assert not vs.update(90.0, 51.0, 1000000)
    assert vs.jump_deg == 0.0


def test_span_sums_a_jump_spread_over_two_samples():
    vs = VectorShift(15.0, 50.0, span=2)
    t = 0
    for a in (0.0, 0.0, 10.0, 20.0, 20.0, 20.0):
        tripped = vs.update(a, 50.0, t)
        t += STEP
        if a == 20.0 and t == 4 * STEP:
            assert tripped and abs(vs.jump_deg - 20.0) < 1e-9
    single = VectorShift(15.0, 50.0)
    t = 0
    for a in (0.0, 0.0, 10.0, 20.0, 20.0):
        assert not single.update(a, 50.0, t)
        t += STEP
