"""ROCOF (df/dt) criterion and a df/dt estimator over a time window.

RocofStage is the loss-of-mains ROCOF function of EN 50549-1:2019 4.9 ("LoM" by ROCOF,
when the DSO requires one): it trips when |df/dt| has exceeded the setting
continuously for the delay. Its input is a ROCOF *measurement*; which measurement is
the caller's choice:
- the meter's Rocof signal (GridMeter: df/dt over the meter's 100 ms window, 0.05 Hz/s
  steps, saturating at +-5 Hz/s). InterfaceProtection uses this, averaged over the
  profile's window when that is longer than the meter's;
- RocofEstimator below, which computes df/dt over a configurable window from
  successive frequency samples (1 mHz resolution, so finer than the meter's signal).

The window matters: a phase jump disturbs a zero-crossing frequency measurement for one
window and so shows as a short ROCOF spike. A longer window divides that spike by the
window length; the delay makes the stage ignore spikes shorter than itself. The ROCOF
immunity of the grid codes (IEEE 1547-2018 6.5.2.5, EN 50549-1 4.5.2) is stated over a
window too (0.1 s and 0.5 s), so a stage's setting must exceed the immunity measured
over the same window.
"""

from controller.clock import ticks_diff
from controller.protection.trip_stage import OVER, TripStage


class RocofStage(TripStage):
    """update(rocof_hz_s, now) -> True once |rocof| > setting has held for delay_s.

    An over-stage (trip_stage.TripStage) on the magnitude of the ROCOF measurement."""

    __slots__ = ()

    def __init__(self, setting_hz_s, delay_s, name, source):
        if setting_hz_s <= 0:
            raise ValueError("ROCOF setting must be positive")
        TripStage.__init__(self, OVER, setting_hz_s, delay_s, name, source)

    @property
    def setting_hz_s(self):
        return self.threshold

    @property
    def delay_s(self):
        return self.clearing_time_s

    def update(self, rocof_hz_s, now):
        return TripStage.update(self, rocof_hz_s if rocof_hz_s >= 0 else -rocof_hz_s, now)


class RocofEstimator:
    """df/dt = (f_now - f_then) / (t_now - t_then) with t_then the newest sample at least
    window_s old. update() returns None until the window is covered.

    A preallocated ring of capacity samples; capacity must exceed window / sample period
    (if it does not, the window is never covered and update keeps returning None).
    A sample gap longer than max_gap_s restarts the estimate (no df/dt across a gap).
    """

    __slots__ = ("window_us", "max_gap_us", "_t", "_f", "_old", "_n", "value")

    def __init__(self, window_s, capacity=64, max_gap_s=0.2):
        if window_s <= 0:
            raise ValueError("window must be positive")
        self.window_us = int(window_s * 1000000.0 + 0.5)
        self.max_gap_us = int(max_gap_s * 1000000.0 + 0.5)
        self._t = [0] * capacity
        self._f = [0.0] * capacity
        self._old = 0  # index of the oldest sample kept
        self._n = 0
        self.value = None

    def reset(self):
        self._n = 0
        self.value = None

    def update(self, f_hz, now):
        t = self._t
        cap = len(t)
        n = self._n
        if n:
            # a gap restarts the window; so does time going back, which is what a gap
            # longer than half the ticks period looks like (all kept samples are within
            # max_gap_us of each other, so their differences never wrap)
            gap = ticks_diff(now, t[(self._old + n - 1) % cap])
            if gap > self.max_gap_us or gap < 0:
                n = 0
        if n == cap:  # full: the oldest makes room
            self._old = (self._old + 1) % cap
            n -= 1
        if n == 0:
            self._old = 0
        i = (self._old + n) % cap
        t[i] = now
        self._f[i] = f_hz
        n += 1
        # keep exactly one sample at least a window old: drop older ones (amortized O(1))
        w = self.window_us
        while n >= 2 and ticks_diff(now, t[(self._old + 1) % cap]) >= w:
            self._old = (self._old + 1) % cap
            n -= 1
        self._n = n
        age = ticks_diff(now, t[self._old])
        if age >= w:
            self.value = (f_hz - self._f[self._old]) * 1000000.0 / age
        else:
            self.value = None
        return self.value
