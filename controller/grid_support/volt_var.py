"""Q(U), volt-var: reactive power against voltage.

Implements
- IEEE 1547-2018 5.3.3 (voltage-reactive power mode), Table 8 Category B defaults:
  V1..V4 = 0.92, 0.98, 1.02, 1.08 pu, Q1..Q4 = +0.44, 0, 0, -0.44 of the nameplate apparent
  power (+ = injecting), open-loop response time 5 s; the points move with V_ref
  (V_n + V_ref - 1), V_ref settable 0.95-1.05 pu. The autonomous V_ref adjustment of 5.3.3
  (OpenDER's QV_VREF_AUTO_MODE, time constant 300-5000 s) is left out: V_ref is a setting
  here, so the caller can move it.
- EN 50549-1:2019 4.7.2.3 Q(U) (voltage related control mode): a characteristic set by the
  DSO, whose dynamics are a first-order filter with a settable time constant (3-60 s, as
  recalled). A time constant tau is an open-loop response time of tau * ln 10 (90 % of a
  step): olrt_of_time_constant().

Powers in var, generator convention (+ = the unit injects reactive power, over-excited).
"""

from controller.grid_support.curve import interpolate
from controller.timing import FirstOrder

LN10 = 2.302585092994046


def olrt_of_time_constant(tau_s):
    """The open-loop response time (s, 90 % of a step) of a first-order filter of time
    constant tau_s (s): how an EN 50549-1 time constant maps onto VoltVar(olrt_s=...)."""
    return tau_s * LN10


class VoltVar:
    """Q(U) as a unit: update(v_pu, now) -> the reactive power to command (var).

    Guarantees: target(v) is the static curve through (v_pu[i] + v_ref - 1, q_pu[i] *
    s_rated), flat beyond the end points; update() moves towards target() as a first-order
    response that reaches 90 % of a step at olrt_s (controller.timing.FirstOrder), starting
    from 0 var (or from reset()). It does not bound Q: the caller's capability and current
    limit do (reactive_power.ReactivePower).
    """

    __slots__ = ("s_rated", "v_pts", "q_pts", "v_shift", "lpf")

    def __init__(self, s_rated_va, v_pu=(0.92, 0.98, 1.02, 1.08), q_pu=(0.44, 0.0, 0.0, -0.44), olrt_s=5.0,
                 v_ref_pu=1.0):
        self.s_rated = s_rated_va
        self.v_pts = tuple(v_pu)
        self.q_pts = tuple(q * s_rated_va for q in q_pu)  # var, once: no scaling per update
        self.v_shift = v_ref_pu - 1.0
        self.lpf = FirstOrder(olrt_s * 1000000)

    def set_v_ref(self, v_ref_pu):
        """Move the curve's points to V_ref (IEEE 1547-2018 5.3.3: V1..V4 shift with V_ref)."""
        self.v_shift = v_ref_pu - 1.0

    def target(self, v_pu):
        """The static Q(U) curve: var at v_pu."""
        # shifting the measurement instead of the points: the same curve, no new tuple
        return interpolate(v_pu - self.v_shift, self.v_pts, self.q_pts)

    def update(self, v_pu, now):
        return self.lpf.update(self.target(v_pu), now)

    def reset(self, q_var, now=None):
        """Hold the response at q_var as of now (the next update moves on from there)."""
        self.lpf.reset(q_var, now)

    @property
    def output(self):
        return self.lpf.value
