"""Vector shift (phase jump) criterion from the meter's PhaseAngle.

The meter reports the phase of L1 against a free-running reference at nominal
frequency (GridMeter.PhaseAngle, 0.1 deg steps, in [-180, 180)). Between two samples dt
apart that angle turns by 360 * (f - f_nom) * dt degrees: that is what the frequency
deviation explains. The phase jump over the interval is whatever is left:

    jump = wrap(angle_now - angle_prev - 360 * (f_prev - f_nom) * dt)

with wrap() into [-180, 180), so the crossing of +-180 deg is not a jump. f_prev, the
frequency reported with the previous sample, is used because a phase jump corrupts the
zero-crossing frequency measured across it; the frequency before the jump is the clean
one. A constant frequency offset is therefore explained exactly; a frequency ramp leaves
360 * ROCOF * lag * dt per sample (0.14 deg at 2 Hz/s, 20 ms meter lag, 10 ms samples).

span > 1 sums the residuals of the last span intervals, for meters whose angle
estimate spreads a jump over several samples. A gap between samples longer than
max_gap_s restarts the reference (several turns of slip could hide in a long gap).

This is the passive loss-of-mains function known as vector shift (the UK 9 August 2019
event tripped about 150 MW of such relays set at 6 deg). It also measures the phase
jumps that grid codes require riding through: IEEE 1547-2018 6.5.2.6 (20 deg positive
sequence, 60 deg per phase), Energinet TR 3.3.1 (20 deg).
"""

from controller.clock import ticks_diff


def wrap180(deg):
    """deg wrapped into [-180, 180)."""
    return (deg + 180.0) % 360.0 - 180.0


class VectorShift:
    """update(angle_deg, f_hz, now) -> True on a sample whose jump exceeds setting_deg.

    setting_deg None measures only (jump_deg is kept up to date, never trips).
    """

    __slots__ = ("setting_deg", "f_nom_hz", "name", "source", "max_gap_us", "_angle", "_f", "_t", "_res", "_i",
                 "jump_deg", "tripped")

    def __init__(self, setting_deg, f_nom_hz, name="vector_shift", source="", span=1, max_gap_s=0.05):
        if span < 1:
            raise ValueError("span must be at least 1")
        self.setting_deg = setting_deg
        self.f_nom_hz = f_nom_hz
        self.name = name
        self.source = source
        self.max_gap_us = int(max_gap_s * 1000000.0 + 0.5)
        self._res = [0.0] * span
        self._i = 0
        self._t = None
        self._angle = 0.0
        self._f = f_nom_hz
        self.jump_deg = 0.0
        self.tripped = False

    def reset(self):
        """Forget the reference (after loss of voltage): the next sample starts afresh."""
        self._t = None
        self.jump_deg = 0.0
        self.tripped = False
        r = self._res
        for i in range(len(r)):
            r[i] = 0.0

    def update(self, angle_deg, f_hz, now):
        t0 = self._t
        if t0 is None or ticks_diff(now, t0) > self.max_gap_us or ticks_diff(now, t0) <= 0:
            if t0 is not None:
                self.reset()
            self._t = now
            self._angle = angle_deg
            self._f = f_hz
            self.tripped = False
            return False
        if angle_deg == self._angle and self._f == self.f_nom_hz:
            res = 0.0  # nothing turned at nominal frequency: no arithmetic (no float allocated)
        else:
            dt_s = ticks_diff(now, t0) / 1000000.0
            res = wrap180(angle_deg - self._angle - 360.0 * (self._f - self.f_nom_hz) * dt_s)
        r = self._res
        r[self._i] = res
        self._i = (self._i + 1) % len(r)
        if len(r) == 1:
            jump = res
        else:
            jump = 0.0
            for x in r:
                jump += x
            jump = wrap180(jump)
        self.jump_deg = jump
        self._t = now
        self._angle = angle_deg
        self._f = f_hz
        s = self.setting_deg
        self.tripped = s is not None and (jump > s or jump < -s)
        return self.tripped
