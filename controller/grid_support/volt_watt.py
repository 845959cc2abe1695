"""P(U), volt-watt: an active-power cap against voltage.

Implements
- IEEE 1547-2018 5.4.2 (voltage-active power mode), Table 11 Category B defaults: V1 1.06
  pu with P1 = P_rated, V2 1.10 pu with P2 = the lesser of 0.2 P_rated and P'min (for a unit
  that can absorb active power, such as storage and an EV, P'min is negative: the cap then
  goes below zero and the unit must absorb), open-loop response time 10 s (settable
  0.5-60 s, as OpenDER checks it).
- EN 50549-1:2019 4.7.3 (voltage related active power reduction): optional, points and
  dynamics set by the DSO; no defaults there, so the IEEE Category B points serve as this
  module's defaults for EN too (labelled as chosen here, not the standard's).

Powers in W, generator convention: the unit's P must stay <= the cap; a negative cap means
it must absorb at least that much. Points in pu: a positive one of p_rated_w, a negative one
of p_abs_rated_w (the charging rating, IEEE's P'rated; OpenDER scales PV_CURVE_P2 < 0 by its
charge rating the same way).
"""

from controller.grid_support.curve import interpolate
from controller.timing import FirstOrder


class VoltWatt:
    """P(U) as a unit: update(v_pu, now) -> the active-power cap (W).

    Guarantees: target(v) is the static cap: p_pu[0] (in W) at and below v_pu[0], linear
    between the points, p_pu[-1] at and above v_pu[-1]; update() follows it as a
    first-order response reaching 90 % of a step at olrt_s, starting from the cap at
    p_pu[0] (no restriction) or from reset().
    """

    __slots__ = ("v_pts", "p_pts", "lpf")

    def __init__(self, p_rated_w, v_pu=(1.06, 1.10), p_pu=(1.0, 0.2), olrt_s=10.0, p_abs_rated_w=None):
        p_abs = p_rated_w if p_abs_rated_w is None else p_abs_rated_w
        self.v_pts = tuple(v_pu)
        self.p_pts = tuple(p * (p_rated_w if p >= 0 else p_abs) for p in p_pu)
        self.lpf = FirstOrder(olrt_s * 1000000, self.p_pts[0])

    def target(self, v_pu):
        """The static cap (W) at v_pu."""
        return interpolate(v_pu, self.v_pts, self.p_pts)

    def update(self, v_pu, now):
        return self.lpf.update(self.target(v_pu), now)

    def reset(self, p_w, now=None):
        """Hold the cap at p_w as of now."""
        self.lpf.reset(p_w, now)

    @property
    def output(self):
        return self.lpf.value
