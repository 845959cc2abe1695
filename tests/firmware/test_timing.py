"""Timing primitives and wrap-safe ticks (run under MicroPython and CPython)."""

from controller.clock import ticks_add, ticks_diff, TICKS_MAX, TICKS_PERIOD, SimClock
from controller.timing import ConditionalDelay, RampLimiter, LowPass


def test_ticks_wrap():
    t = TICKS_MAX - 5
    u = ticks_add(t, 10)
    assert u == 4
    assert ticks_diff(u, t) == 10
    assert ticks_diff(t, u) == -10
    assert ticks_diff(ticks_add(0, -1), 0) == -1
    assert ticks_diff(TICKS_PERIOD // 2 - 1, 0) == TICKS_PERIOD // 2 - 1


def test_sim_clock_wraps():
    c = SimClock(TICKS_MAX)
    a = c.ticks_us()
    c.advance_us(3)
    assert ticks_diff(c.ticks_us(), a) == 3


def test_conditional_delay_pickup_and_reset():
    d = ConditionalDelay(1000)
    assert not d.update(True, 0)
    assert not d.update(True, 999)
    assert d.update(True, 1000)
    assert not d.update(False, 1001)  # instantaneous dropout
    assert not d.update(True, 1002)
    assert d.update(True, 2002)


def test_conditional_delay_across_wrap():
    d = ConditionalDelay(500)
    t0 = TICKS_MAX - 100
    assert not d.update(True, t0)
    assert not d.update(True, ticks_add(t0, 499))
    assert d.update(True, ticks_add(t0, 500))


def test_ramp_limits_growth_not_reduction():
    r = RampLimiter(1000.0)  # 1000 units per second
    assert r.update(0.0, 0) == 0.0
    v = r.update(500.0, 100000)  # 0.1 s -> at most 100
    assert abs(v - 100.0) < 1e-9 and r.limited
    v = r.update(500.0, 200000)
    assert abs(v - 200.0) < 1e-9
    assert r.update(50.0, 210000) == 50.0  # reduction passes at once
    assert not r.limited
    v = r.update(-500.0, 220000)  # sign change: through zero, then ramp
    assert -11.0 < v < 0.0


def test_ramp_disabled():
    r = RampLimiter(None)
    r.update(0.0, 0)
    assert r.update(7000.0, 1) == 7000.0


def test_low_pass_converges():
    f = LowPass(10000)
    f.update(0.0, 0)
    t = 0
    y = 0.0
    for _ in range(100):
        t += 1000
        y = f.update(1.0, t)
    assert 0.99 < y <= 1.0
