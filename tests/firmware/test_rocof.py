"""ROCOF stage and df/dt estimator (run under MicroPython and CPython)."""

from controller.clock import TICKS_MAX, ticks_add
from controller.protection.rocof import RocofEstimator, RocofStage

STEP = 10000


def test_stage_trips_on_magnitude_after_delay():
    for sign in (1.0, -1.0):
        s = RocofStage(1.0, 0.5, "rocof", "test")
        for k in range(50):
            assert not s.update(sign * 1.1, k * STEP)
        assert s.update(sign * 1.1, 50 * STEP)


def test_stage_ignores_setting_and_short_bursts():
    s = RocofStage(2.5, 0.1, "rocof", "test")
    t = 0
    for _ in range(20):
        assert not s.update(2.5, t)  # at the setting: not beyond it
        t += STEP
    for _ in range(3):  # a 90 ms burst (a phase jump seen by the meter) is shorter than the delay
        for k in range(9):
            assert not s.update(4.0, t)
            t += STEP
        assert not s.update(0.0, t)
        t += STEP


def test_estimator_needs_a_full_window():
    e = RocofEstimator(0.5)
    for k in range(50):
        assert e.update(50.0, k * STEP) is None
    assert e.update(50.0, 50 * STEP) == 0.0


def test_estimator_follows_a_ramp_exactly():
    e = RocofEstimator(0.5)
    t0 = TICKS_MAX - 300000  # across the tick wrap
    r = None
    for k in range(120):
        r = e.update(50.0 - 2.0 * k * 0.01, ticks_add(t0, k * STEP))
    assert abs(r + 2.0) < 1e-6


def test_window_divides_a_spike():
    # one sample 1 Hz off (a zero-crossing frequency disturbed by a phase jump)
    e100 = RocofEstimator(0.1)
    e500 = RocofEstimator(0.5)
    worst100 = worst500 = 0.0
    for k in range(200):
        f = 51.0 if k == 120 else 50.0
        for e in (e100, e500):
            r = e.update(f, k * STEP)
            if r is not None:
                if e is e100:
                    worst100 = max(worst100, abs(r))
                else:
                    worst500 = max(worst500, abs(r))
    assert abs(worst100 - 10.0) < 1e-6  # 1 Hz / 0.1 s
    assert abs(worst500 - 2.0) < 1e-6  # 1 Hz / 0.5 s
    assert e500.value == 0.0  # and gone once the spike left the window


def test_gap_restarts_the_estimate():
    e = RocofEstimator(0.1, max_gap_s=0.05)
    for k in range(20):
        e.update(50.0, k * STEP)
    assert e.value == 0.0
    assert e.update(49.0, 19 * STEP + 500000) is None  # 0.5 s gap: no df/dt across it


def test_too_small_a_ring_never_pretends():
    e = RocofEstimator(1.0, capacity=8)  # 8 samples cannot span 1 s at 10 ms
    for k in range(300):
        assert e.update(50.0 + 0.01 * k, k * STEP) is None
    big = RocofEstimator(1.0, capacity=128)
    for k in range(300):
        r = big.update(50.0 + 0.01 * k, k * STEP)
    assert abs(r - 1.0) < 1e-6
