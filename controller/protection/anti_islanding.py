"""Active anti-islanding: Sandia frequency shift (SFS), driven over CAN as reactive power.

SFS (Stevens et al., "Development and Testing of an Approach to Anti-Islanding in
Utility-Interconnected Photovoltaic Systems", Sandia report SAND2000-1939) is positive
feedback on the frequency: the inverter pushes its output so as to move the frequency
further the way it already deviates. On a stiff grid nothing moves; in an island the
load's resonance turns the push into a frequency run-away that the under/over-
frequency stages then clear. The original acts on the current waveform's chopping
fraction; the gateway commands the inverter by P and Q over CAN, so it applies the
same feedback through the reactive power setpoint (a load with L and C settles where
it absorbs the inverter's Q, so supplying Q lowers the island's frequency):

    Q = q_0 - gain * (f - f_nom), clamped to +-q_max

q_0 plays the part of SFS's initial chopping fraction cf0: at the instant of islanding
a resonant load sits exactly at nominal frequency, where the feedback term is zero;
the small constant push moves the island off that point so the feedback can take hold.

Loop gain in an island with a resonant RLC load of quality factor Qf absorbing P:
gain * f_nom / (2 * Qf * P). With the defaults (gain = S_rated per Hz, q_max = 30 % of
S_rated) it exceeds 30 for a 11 kVA inverter at full power into Qf = 1, the
IEEE 1547.1 / IEC 62116 test load, and the clamp allows a shift of several Hz.
Guarantee: |Q| <= q_max; off (method "off") gives Q = 0.
The defaults (q_0 = 2 % of S_rated, 220 var for 11 kVA) are a design choice of this
project, not a standard's value.

Washout (coexistence with grid support, docs/grid-support.md): the feedback acts on the
frequency's deviation from its own slow average (a first-order filter of open-loop
response time washout_s), not from nominal. An island's run-away takes a fraction of a
second, far inside the washout, so the feedback is as strong as without it; a grid that
stays off nominal (50.7 Hz for minutes, where P(f) is acting) no longer makes SFS absorb
or supply its full q_max for as long, which would eat the reactive capability and fight
the Q mode the grid operator set. In steady state only q_0 remains.
"""

from controller.timing import FirstOrder


class SandiaFrequencyShift:
    __slots__ = ("gain", "q_max", "q_0", "f_nom", "enabled", "q", "_f", "ref")

    def __init__(self, s_rated_va, f_nom, enabled=True, gain_pu_per_hz=1.0, q_max_pu=0.3, q_0_pu=0.02,
                 washout_s=3.0):
        self.gain = gain_pu_per_hz * s_rated_va
        self.q_0 = q_0_pu * s_rated_va
        self.q_max = q_max_pu * s_rated_va
        self.f_nom = f_nom
        self.enabled = enabled
        self.q = 0.0
        self._f = 0.0
        self.ref = FirstOrder(washout_s * 1000000.0, f_nom) if washout_s else None

    def update(self, f_hz, now=None):
        """Reactive power setpoint (var, positive = supplied) for the measured frequency;
        with `now` (ticks_us) the deviation is taken from the washout's slow average,
        without it from nominal."""
        if not self.enabled or f_hz <= 0.0:  # 0 Hz = no voltage: nothing to push against
            self.q = 0.0
            self._f = 0.0
            if self.ref is not None:
                self.ref.reset(self.f_nom)
            return 0.0
        ref = self.f_nom
        if now is not None and self.ref is not None:
            ref = self.ref.update(f_hz, now)
        elif f_hz == self._f:
            return self.q  # the same sample again: no arithmetic (no float allocated)
        self._f = f_hz
        q = self.q_0 - self.gain * (f_hz - ref)
        if q > self.q_max:
            q = self.q_max
        elif q < -self.q_max:
            q = -self.q_max
        self.q = q
        return q

    def reset(self):
        self.q = 0.0
        self._f = 0.0
        if self.ref is not None:
            self.ref.reset(self.f_nom)


class FrequencyDrift:
    """Loss-of-mains criterion: the frequency runs away from nominal, steadily and fast.

    An island's frequency, pushed by SFS (or by a real reactive mismatch), diverges
    monotonically; a grid disturbance that must be ridden through does not look like
    that: a ROCOF event of the grid stays at or below the profile's ROCOF immunity, and
    a phase jump or a frequency step makes the PLL frequency spike and come back.
    Trip when, for `samples` consecutive frequency samples, |f - f_nom| >= df_min_hz and
    the frequency moved further from nominal at more than rocof_hz_s (set to twice the
    profile's ROCOF immunity, so the criterion is blind to every ride-through ROCOF).
    Guarantee: a frequency ramp at or below rocof_hz_s, and any excursion that turns
    back toward nominal within `samples` samples, never trips it.

    samples = 8 (80 ms at the inverter's 10 ms period): a step of the grid's frequency
    itself (IEEE 1547.1-2020 steps the grid simulator's frequency in its frequency-droop
    tests, and grid support must respond, not trip) moves the inverter's PLL frequency
    monotonically away for up to ~70 ms (20 Hz bandwidth, damping 0.707) before it
    settles; with 4 samples a 0.5 Hz step tripped. An island's run-away does not settle,
    and the islanding matrix is still detected within 0.13 s (docs/islanding-matrix.md).
    """

    __slots__ = ("f_nom", "df_min", "rocof", "samples", "_n", "_last_f", "_last_t")

    def __init__(self, f_nom, rocof_hz_s, df_min_hz=0.2, samples=8):
        self.f_nom = f_nom
        self.rocof = rocof_hz_s
        self.df_min = df_min_hz
        self.samples = samples
        self.reset()

    def reset(self):
        self._n = 0
        self._last_f = None
        self._last_t = 0

    def update(self, f_hz, now):
        from controller.clock import ticks_diff

        last = self._last_f
        last_t = self._last_t
        self._last_f = f_hz
        self._last_t = now
        if f_hz <= 0.0 or last is None or last <= 0.0:
            self._n = 0
            return False
        dt = ticks_diff(now, last_t)
        if dt <= 0:
            return self._n >= self.samples
        if f_hz == last:  # not moving away: no arithmetic (no float allocated)
            self._n = 0
            return False
        dev = f_hz - self.f_nom
        away = (dev - (last - self.f_nom)) if dev >= 0 else ((last - self.f_nom) - dev)
        if abs(dev) >= self.df_min and away * 1000000.0 >= self.rocof * dt:
            self._n += 1
        else:
            self._n = 0
        return self._n >= self.samples
