"""Small reusable timing primitives for protection and control.

In the manner of EPRI OpenDER's building blocks: a rule is a comparator plus one of
these. All take `now` in ticks_us (see clock.py) and are wrap-safe; none allocates
after construction, except the float results of FirstOrder (and of a float
MovingAverage) on ports that box floats.
"""

from math import exp as _exp

from controller.clock import ticks_diff


_MAX_S = (1 << 29) - 1  # Elapsed saturates here (17 years): a small int on every port


def split_us(duration_us):
    """(whole seconds, microseconds) of a duration: the form Elapsed.reached() takes, so
    that durations beyond the small-int range of a board stay exact."""
    s = int(duration_us // 1000000)
    return s, int(duration_us - s * 1000000)


class Elapsed:
    """Time since restart(), right for any duration and any starting value of the clock.

    A raw ticks_diff(now, start) is only right while the difference stays below half the
    ticks period (about 9 minutes for ticks_us); Elapsed instead adds up the time between
    successive update() calls in whole seconds plus microseconds, saturating at _MAX_S
    seconds. Guarantee: exact as long as update() is called at least once per half ticks
    period (every control period in practice); it never goes back and never wraps.
    No allocation on update() (small ints only).
    """

    __slots__ = ("_last", "s", "us")

    def __init__(self):
        self._last = None
        self.s = 0
        self.us = 0

    def restart(self, now):
        self._last = now
        self.s = 0
        self.us = 0

    def update(self, now):
        last = self._last
        self._last = now
        if last is None:
            return
        d = ticks_diff(now, last)
        if d <= 0:
            return
        us = self.us + d
        if us >= 1000000:
            k = us // 1000000
            us -= k * 1000000
            s = self.s + k
            self.s = s if s < _MAX_S else _MAX_S
        self.us = us

    def reached(self, s, us):
        """At least s seconds and us microseconds (us < 1000000) since restart()."""
        return self.s > s or (self.s == s and self.us >= us)


class ConditionalDelay:
    """True once `condition` has held continuously for `delay_us`.

    update(cond, now) returns the delayed output. A False input resets the timer
    at once (a "pickup" delay with instantaneous dropout, as protection stages use).
    Right for any delay (Elapsed): an IEEE 1547 enter-service delay of up to 600 s
    is longer than the 9 minutes a raw ticks difference can span.
    """

    __slots__ = ("delay_us", "_s", "_us", "_t", "_on", "output")

    def __init__(self, delay_us):
        self.delay_us = delay_us
        self._s, self._us = split_us(delay_us if delay_us > 0 else 0)
        self._t = Elapsed()
        self._on = False
        self.output = False

    def update(self, cond, now):
        if not cond:
            self._on = False
            self.output = False
        elif not self._on:
            self._on = True
            self._t.restart(now)
            self.output = self.delay_us <= 0
        elif not self.output:
            t = self._t
            t.update(now)
            if t.reached(self._s, self._us):
                self.output = True
        return self.output

    def reset(self):
        self._on = False
        self.output = False


class RampLimiter:
    """Rate limit on magnitude increases; decreases toward zero pass at once.

    A limit that tightens must take effect within one control period, so only
    growth of |x| (and a change of sign, which goes through zero first) is ramped.
    `rate_per_s` None disables the ramp.
    """

    __slots__ = ("rate_per_s", "value", "_last", "limited")

    def __init__(self, rate_per_s, value=0):
        # an integral rate is kept as an int: the ramp then steps in whole units
        self.rate_per_s = int(rate_per_s) if rate_per_s is not None and rate_per_s == int(rate_per_s) else rate_per_s
        self.value = value
        self._last = None
        self.limited = False

    def update(self, target, now):
        last = self._last
        self._last = now
        self.limited = False
        v = self.value
        if self.rate_per_s is None or last is None:
            self.value = target
            return target
        dt = ticks_diff(now, last)
        if dt < 0:
            dt = 0
        # whole watts (an int rate): no float, so no heap allocation under MicroPython
        step = self.rate_per_s * dt // 1000000
        if (v >= 0 and target >= 0) or (v <= 0 and target <= 0):
            if abs(target) <= abs(v):
                out = target
            elif target > 0:
                out = v + step if v + step < target else target
            else:
                out = v - step if v - step > target else target
        else:
            # sign change: drop to zero at once, then ramp up the other way
            out = step if target > 0 else -step
            if abs(out) > abs(target):
                out = target
        self.limited = out != target
        self.value = out
        return out

    def reset(self, value=0.0, now=None):
        """Restart from `value`; with `now`, the next update ramps from this instant."""
        self.value = value
        self._last = now


class FirstOrder:
    """A first-order response given by its open-loop response time (IEEE 1547-2018 3.1:
    the time to reach 90 % of a step): y moves towards x by 1 - exp(-dt / tau) per update,
    tau = olrt / ln 10, so 90 % is reached at olrt exactly whatever the update interval.
    reset(value, now) holds it at value as of now (without now: the next update only takes
    the time)."""

    __slots__ = ("tau_us", "value", "_last")

    def __init__(self, olrt_us, value=0.0):
        self.tau_us = olrt_us / 2.302585092994046
        self.value = value
        self._last = None

    def update(self, x, now):
        last = self._last
        self._last = now
        if last is None or self.tau_us <= 0:
            if self.tau_us <= 0:
                self.value = x
            return self.value
        dt = ticks_diff(now, last)
        if dt > 0:
            self.value = x + (self.value - x) * _exp(-dt / self.tau_us)
        return self.value

    def reset(self, value, now=None):
        self.value = value
        self._last = now


class MovingAverage:
    """Mean of the last n samples (a fixed ring: no allocation after construction).

    `value` is the mean after the last update (0 before the first). With integer=True
    the samples are ints and the mean is floor(sum / count): no heap allocation at all
    under MicroPython (a float mean allocates one float per update).
    """

    __slots__ = ("_buf", "_i", "_n", "_sum", "_int", "value")

    def __init__(self, n, integer=False):
        self._int = integer
        zero = 0 if integer else 0.0
        self._buf = [zero] * (n if n > 0 else 1)
        self._i = 0
        self._n = 0
        self._sum = zero
        self.value = zero

    def update(self, x):
        buf = self._buf
        if self._n == len(buf):
            self._sum -= buf[self._i]
        else:
            self._n += 1
        buf[self._i] = x
        self._sum += x
        i = self._i + 1
        self._i = i if i < len(buf) else 0
        self.value = self._sum // self._n if self._int else self._sum / self._n
        return self.value
