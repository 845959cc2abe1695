"""10-minute mean overvoltage protection (EN 50549-1:2019 4.9.3.4).

Reading implemented (the common one; the standard refers to EN 61000-4-30 style
10-min values): the 10-minute value is the square root of the mean of the squared
voltage over the last 600 s, built from fixed aggregation intervals of 3 s. Each
interval's mean square is time-weighted (v^2 * dt over the interval); a preallocated
ring keeps the last window/interval of them; at the close of each interval the 10-min
value is recomputed from the ring (so a new value at least every 3 s, and no running
sum to drift) and compared with the setting. It trips when the 10-min value exceeds
the setting at trip_delay_s after it first did (0 = at that evaluation), so the
operate time is at most one interval plus the delay.

Until the ring holds a full window (the first 10 minutes after start or reset) the
value is the mean over the intervals so far: a plant switched onto a high voltage is
judged on what it has seen rather than not at all.
"""

from array import array

from controller.clock import ticks_diff
from controller.timing import ConditionalDelay


class Mean10Min:
    """update(v_pu, now) -> True while the 10-min mean calls for a trip; .value is the
    latest 10-min RMS in pu (None before the first interval closes)."""

    __slots__ = ("setting_pu", "name", "source", "interval_us", "_ms", "_i", "_n", "_acc", "_acc_us", "_last",
                 "_delay", "value", "tripped")

    def __init__(self, setting_pu, trip_delay_s=0.0, window_s=600.0, interval_s=3.0, name="ov_10min", source=""):
        n = int(window_s / interval_s + 0.5)
        if n < 1:
            raise ValueError("window must hold at least one interval")
        self.setting_pu = setting_pu
        self.name = name
        self.source = source
        self.interval_us = int(interval_s * 1000000.0 + 0.5)
        # mean square of each closed interval: a typed array (8 bytes an entry, where a
        # list of floats holds a heap object per entry: 4.8 KB for 200 on a 64-bit port)
        self._ms = array("d", [0.0] * n)
        self._delay = ConditionalDelay(int(trip_delay_s * 1000000.0 + 0.5))
        self.reset()

    def reset(self):
        self._i = 0
        self._n = 0
        self._acc = 0.0
        self._acc_us = 0
        self._last = None
        self._delay.reset()
        self.value = None
        self.tripped = False

    def update(self, v_pu, now):
        last = self._last
        self._last = now
        if last is not None:
            dt = ticks_diff(now, last)
            if dt > 0:
                if dt > self.interval_us:  # a long gap counts as one interval at this voltage
                    dt = self.interval_us
                self._acc += v_pu * v_pu * dt
                self._acc_us += dt
                if self._acc_us >= self.interval_us:
                    self._close()
        if self.value is not None:
            self.tripped = self._delay.update(self.value > self.setting_pu, now)
        return self.tripped

    def _close(self):
        ms = self._ms
        ms[self._i] = self._acc / self._acc_us
        self._i = (self._i + 1) % len(ms)
        if self._n < len(ms):
            self._n += 1
        self._acc = 0.0
        self._acc_us = 0
        # until the ring wraps, the filled slots are 0.._n-1; afterwards all of them
        s = 0.0
        for k in range(self._n):
            s += ms[k]
        self.value = (s / self._n) ** 0.5
