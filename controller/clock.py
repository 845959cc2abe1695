"""Time for the firmware: ticks in microseconds with MicroPython's wrap-safe semantics.

Control decisions never use wall-clock time. Every unit takes `now` (ticks_us) from
an injected clock, so lockstep simulation (SimClock) and real-time runs (RealClock)
execute the same code. Ticks wrap at TICKS_PERIOD (2**30 like MicroPython's
small-int ticks); compare them only through ticks_diff/ticks_add.
"""

TICKS_PERIOD = 1 << 30
TICKS_MAX = TICKS_PERIOD - 1
_HALF = TICKS_PERIOD // 2


def ticks_add(t, delta):
    """t + delta, wrapped into the ticks range."""
    return (t + delta) & TICKS_MAX


def ticks_diff(t1, t2):
    """Signed t1 - t2, correct across one wrap (|difference| < TICKS_PERIOD/2)."""
    d = (t1 - t2) & TICKS_MAX
    if d >= _HALF:
        d -= TICKS_PERIOD
    return d


class SimClock:
    """Plant-driven clock for lockstep runs: time moves only when the simulator says."""

    __slots__ = ("_us",)

    def __init__(self, start_us=0):
        self._us = start_us

    def ticks_us(self):
        return self._us & TICKS_MAX

    def set_us(self, us):
        """Set absolute simulated time in microseconds (not wrapped)."""
        self._us = us

    def advance_us(self, delta):
        self._us += delta


class RealClock:
    """The platform's monotonic microsecond ticks (time.ticks_us on MicroPython)."""

    __slots__ = ("ticks_us", "sleep_us")

    def __init__(self):
        import time

        if hasattr(time, "ticks_us"):
            self.ticks_us = time.ticks_us
            self.sleep_us = time.sleep_us
        else:  # CPython: build the same semantics from perf_counter_ns
            pc = time.perf_counter_ns
            sl = time.sleep

            def ticks_us():
                return (pc() // 1000) & TICKS_MAX

            def sleep_us(us):
                if us > 0:
                    sl(us / 1e6)

            self.ticks_us = ticks_us
            self.sleep_us = sleep_us
