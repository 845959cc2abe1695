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

    Q = -gain * (f - f_nom), clamped to +-q_max

Loop gain in an island with a resonant RLC load of quality factor Qf absorbing P:
gain * f_nom / (2 * Qf * P). With the defaults (gain = S_rated per Hz, q_max = 30 % of
S_rated) it exceeds 30 for a 11 kVA inverter at full power into Qf = 1, the
IEEE 1547.1 / IEC 62116 test load, and the clamp allows a shift of several Hz.
Guarantee: |Q| <= q_max; off (method "off") gives Q = 0.
"""


class SandiaFrequencyShift:
    __slots__ = ("gain", "q_max", "f_nom", "enabled", "q")

    def __init__(self, s_rated_va, f_nom, enabled=True, gain_pu_per_hz=1.0, q_max_pu=0.3):
        self.gain = gain_pu_per_hz * s_rated_va
        self.q_max = q_max_pu * s_rated_va
        self.f_nom = f_nom
        self.enabled = enabled
        self.q = 0.0

    def update(self, f_hz):
        """Reactive power setpoint (var, positive = supplied) for the measured frequency."""
        if not self.enabled or f_hz <= 0.0:  # 0 Hz = no voltage: nothing to push against
            self.q = 0.0
            return 0.0
        q = -self.gain * (f_hz - self.f_nom)
        if q > self.q_max:
            q = self.q_max
        elif q < -self.q_max:
            q = -self.q_max
        self.q = q
        return q

    def reset(self):
        self.q = 0.0
