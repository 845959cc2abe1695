"""10-minute mean overvoltage (run under MicroPython and CPython)."""

from controller.clock import TICKS_MAX, ticks_add
from controller.protection.mean_10min import Mean10Min

SEC = 1000000


def test_value_every_interval_and_steady_voltage_never_trips():
    m = Mean10Min(1.10)
    assert m.value is None
    for k in range(0, 1300):  # 1 s samples for 21 min at 1.09 pu
        assert not m.update(1.09, k * SEC)
        if k == 2:
            assert m.value is None
        if k == 3:
            assert abs(m.value - 1.09) < 1e-9  # the first 3 s interval closed
    assert abs(m.value - 1.09) < 1e-9


def test_rising_above_the_setting_trips_when_the_mean_crosses():
    m = Mean10Min(1.10)
    t = 0
    for _ in range(600):  # 10 min at nominal voltage
        assert not m.update(1.0, t)
        t += SEC
    start = t
    tripped_at = None
    while tripped_at is None and t - start < 900 * SEC:
        if m.update(1.14, t):
            tripped_at = t - start
        t += SEC
    # mean square crosses 1.21 once x/600 * (1.14^2 - 1) > 0.21: x = 420.6 s, then the next 3 s boundary
    assert tripped_at is not None and 420 * SEC <= tripped_at <= 424 * SEC
    assert m.value > 1.10


def test_short_swell_does_not_trip_and_the_window_slides():
    m = Mean10Min(1.10)
    t = 0
    for k in range(1200):  # 20 min, of which 60 s at 1.3 pu
        v = 1.3 if 300 <= k < 360 else 1.0
        assert not m.update(v, t)
        t += SEC
    assert abs(m.value - 1.0) < 1e-9  # the swell has left the 10-min window


def test_samples_every_10ms_and_tick_wrap():
    m = Mean10Min(1.05, window_s=30.0, interval_s=3.0)
    t0 = TICKS_MAX - 2 * SEC
    tripped_at = None
    for k in range(0, 1000):  # 10 s at 1.06 pu
        if m.update(1.06, ticks_add(t0, k * 10000)) and tripped_at is None:
            tripped_at = k * 10000
    assert tripped_at == 3 * SEC  # judged at the first interval close


def test_trip_delay():
    m = Mean10Min(1.05, trip_delay_s=2.0, window_s=30.0, interval_s=3.0)
    tripped_at = None
    for k in range(0, 100):
        if m.update(1.2, k * 100000) and tripped_at is None:
            tripped_at = k * 100000
    assert tripped_at == 5 * SEC


def test_reset():
    m = Mean10Min(1.05, window_s=30.0)
    for k in range(10):
        m.update(1.2, k * SEC)
    assert m.tripped
    m.reset()
    assert not m.tripped and m.value is None
