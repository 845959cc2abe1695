"""The reactive-power mode in force: one of the reactive power control modes, as the gateway
calls it every control period.

IEEE 1547-2018 5.3 asks for one mode at a time (constant power factor 5.3.2, volt-var 5.3.3,
watt-var 5.3.4, constant reactive power 5.3.5); EN 50549-1:2019 4.7.2.3 likewise (Q
setpoint, cos phi setpoint, Q(U), cos phi(P)). Modes and their units:

  "unity_pf"   no unit                               Q = 0
  "fixed_pf"   power_factor.PowerFactor              follows P at once
  "constant_q" constant_q.ConstantQ                  steps at once
  "volt_var"   volt_var.VoltVar                      first order, its open-loop response time
  "cos_phi_p"  watt_var.CosPhiP (EN cos phi(P))      follows P at once
  "watt_var"   watt_var.WattVar (IEEE watt-var)      follows P at once

Response times: the P-following modes are static functions of the P passed in, so Q moves
exactly as P does (P itself ramps or follows its own response); volt-var filters with its
OLRT. A mode change is a new ReactivePower (the 15 s smooth transition OpenDER models is not
here). Var, generator convention.
"""

from math import sqrt

from controller.grid_support.curve import bound

UNITY_PF = "unity_pf"
FIXED_PF = "fixed_pf"
CONSTANT_Q = "constant_q"
VOLT_VAR = "volt_var"
COS_PHI_P = "cos_phi_p"
WATT_VAR = "watt_var"
MODES = (UNITY_PF, FIXED_PF, CONSTANT_Q, VOLT_VAR, COS_PHI_P, WATT_VAR)


def headroom(s_va, x):
    """The largest magnitude of one component (P or Q) that fits in the apparent power s_va
    beside the other, x: sqrt(s^2 - x^2), 0 if x alone fills it. With x = Q this gives the
    P left under reactive priority (what OpenDER does by default, NP_PRIO_OUTSIDE_MIN_Q_REQ
    = REACTIVE); with x = P, the Q left under active priority."""
    r = s_va * s_va - x * x
    return sqrt(r) if r > 0.0 else 0.0


class ReactivePower:
    """update(v_pu, p_w, q_min_var, q_max_var, now) -> the reactive power to command (var).

    Guarantees: the result is the mode's value for this voltage and active power, limited
    to [q_min_var, q_max_var] (the capability and the current limit, reactive current
    included, that the caller computes: the limit always wins, the upper one if they
    cross). Volt-var's filter runs on; its output, not the bounded value, is its state.
    """

    __slots__ = ("mode", "unit", "_kind", "output")

    def __init__(self, mode, unit=None):
        if mode not in MODES:
            raise ValueError("unknown reactive power mode %s" % mode)
        if unit is None and mode != UNITY_PF:
            raise ValueError("mode %s needs its unit" % mode)
        self.mode = mode
        self.unit = unit
        self._kind = MODES.index(mode)  # a small int: no string compare per update
        self.output = 0.0

    def update(self, v_pu, p_w, q_min_var, q_max_var, now):
        k = self._kind
        if k == 0:
            q = 0.0
        elif k == 3:
            q = self.unit.update(v_pu, now)
        else:
            q = self.unit.q(p_w)
        q = bound(q, q_min_var, q_max_var)
        self.output = q
        return q
