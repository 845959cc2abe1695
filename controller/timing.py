"""Small reusable timing primitives for protection and control.

In the manner of EPRI OpenDER's building blocks: a rule is a comparator plus one of
these. All take `now` in ticks_us (see clock.py) and are wrap-safe; none allocates
after construction.
"""

from controller.clock import ticks_diff


class ConditionalDelay:
    """True once `condition` has held continuously for `delay_us`.

    update(cond, now) returns the delayed output. A False input resets the timer
    at once (a "pickup" delay with instantaneous dropout, as protection stages use).
    """

    __slots__ = ("delay_us", "_since", "output")

    def __init__(self, delay_us):
        self.delay_us = delay_us
        self._since = None
        self.output = False

    def update(self, cond, now):
        if not cond:
            self._since = None
            self.output = False
        elif self._since is None:
            self._since = now
            self.output = self.delay_us <= 0
        elif not self.output and ticks_diff(now, self._since) >= self.delay_us:
            self.output = True
        return self.output

    def reset(self):
        self._since = None
        self.output = False


class RampLimiter:
    """Rate limit on magnitude increases; decreases toward zero pass at once.

    A limit that tightens must take effect within one control period, so only
    growth of |x| (and a change of sign, which goes through zero first) is ramped.
    `rate_per_s` None disables the ramp.
    """

    __slots__ = ("rate_per_s", "value", "_last", "limited")

    def __init__(self, rate_per_s, value=0.0):
        self.rate_per_s = rate_per_s
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
        step = self.rate_per_s * dt / 1000000.0
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


class LowPass:
    """First-order low-pass filter y += (x - y) * dt / (tau + dt), time-step aware."""

    __slots__ = ("tau_us", "value", "_last")

    def __init__(self, tau_us, value=None):
        self.tau_us = tau_us
        self.value = value
        self._last = None

    def update(self, x, now):
        if self.value is None or self._last is None:
            self.value = x
        else:
            dt = ticks_diff(now, self._last)
            if dt > 0:
                self.value += (x - self.value) * dt / (self.tau_us + dt)
        self._last = now
        return self.value


class MovingAverage:
    """Mean of the last n samples (a fixed ring: no allocation after construction)."""

    __slots__ = ("_buf", "_i", "_n", "_sum")

    def __init__(self, n):
        self._buf = [0.0] * (n if n > 0 else 1)
        self._i = 0
        self._n = 0
        self._sum = 0.0

    def update(self, x):
        buf = self._buf
        if self._n == len(buf):
            self._sum -= buf[self._i]
        else:
            self._n += 1
        buf[self._i] = x
        self._sum += x
        self._i = (self._i + 1) % len(buf)
        return self._sum / self._n

    @property
    def value(self):
        return self._sum / self._n if self._n else 0.0
