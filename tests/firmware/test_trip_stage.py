"""TripStage: threshold and clearing time (run under MicroPython and CPython)."""

from controller.clock import TICKS_MAX, ticks_add
from controller.protection.trip_stage import TripStage

STEP = 10000  # 10 ms meter period, in us


def _first_trip(stage, value, t0, seconds):
    """Feed a constant value every 10 ms from t0; the elapsed us at the first trip, or None."""
    k = 0
    while k * STEP <= seconds * 1000000:
        if stage.update(value, ticks_add(t0, k * STEP)):
            return k * STEP
        k += 1
    return None


def test_over_trips_exactly_at_clearing_time():
    s = TripStage("over", 1.10, 2.0, "OV1", "test")
    assert _first_trip(s, 1.1001, 0, 5.0) == 2000000


def test_under_trips_exactly_at_clearing_time():
    s = TripStage("under", 0.70, 10.0, "UV1", "test")
    assert _first_trip(s, 0.6999, 12345, 12.0) == 10000000


def test_not_before_clearing_time():
    s = TripStage("under", 0.45, 0.16, "UV2", "test")
    for k in range(16):  # 0 .. 150 ms
        assert not s.update(0.3, k * STEP)
    assert s.update(0.3, 16 * STEP)


def test_just_inside_never_trips():
    # the threshold itself is not beyond it: both standards' trip regions are strict
    s = TripStage("over", 1.10, 0.2, "OV", "test")
    assert _first_trip(s, 1.10, 0, 30.0) is None
    u = TripStage("under", 0.85, 0.2, "U<", "test")
    assert _first_trip(u, 0.85, 0, 30.0) is None
    assert _first_trip(u, 0.8501, 0, 30.0) is None


def test_dip_shorter_than_clearing_time_does_not_trip():
    s = TripStage("under", 0.70, 1.0, "UV1", "test")
    t = 0
    for _ in range(5):  # five dips of 0.99 s, each followed by one healthy sample
        for k in range(100):
            assert not s.update(0.5, t)
            t += STEP
        assert not s.update(1.0, t)  # dropout is instantaneous: the timer restarts
        t += STEP
    assert _first_trip(s, 0.5, t, 2.0) == 1000000


def test_trip_holds_while_beyond_and_drops_out():
    s = TripStage("over", 1.2, 0.16, "OV2", "test")
    assert _first_trip(s, 1.3, 0, 1.0) == 160000
    assert s.update(1.3, 200000) and s.tripped and s.picked_up
    assert not s.update(1.0, 210000)
    assert not s.tripped and not s.picked_up


def test_tick_wrap():
    t0 = TICKS_MAX - 1500000  # wraps 1.5 s into a 2 s clearing time
    s = TripStage("over", 1.10, 2.0, "OV1", "test")
    assert _first_trip(s, 1.2, t0, 3.0) == 2000000


def test_zero_clearing_time_trips_on_first_sample():
    s = TripStage("under", 47.5, 0.0, "f<", "test")
    assert s.update(47.4, 0)


def test_kind_is_checked():
    try:
        TripStage("sideways", 1.0, 1.0, "x", "test")
    except ValueError:
        pass
    else:
        assert False, "kind not checked"


def test_reset_and_attributes():
    s = TripStage("under", 0.85, 3.0, "U< (27<)", "EN 50549-1 test source")
    assert s.beyond(0.84) and not s.beyond(0.85)
    assert s.name == "U< (27<)" and s.source.startswith("EN")
    _first_trip(s, 0.5, 0, 3.0)
    assert s.tripped
    s.reset()
    assert not s.tripped and not s.update(0.5, 5000000)
