"""Constant reactive power.

Implements IEEE 1547-2018 5.3.5 (constant reactive power mode: a setpoint between the
absorption and injection ratings) and EN 50549-1:2019 4.7.2.3 "Q setpoint" (setpoint control
mode). Var, generator convention (+ = injecting, over-excited).
"""

from controller.grid_support.curve import bound


class ConstantQ:
    """Constant reactive power: q(p_w) -> q_var, whatever p_w, limited to
    [q_min_var, q_max_var] when they are given."""

    __slots__ = ("q_var",)

    def __init__(self, q_var=0.0):
        self.q_var = q_var

    def q(self, p_w, q_min_var=None, q_max_var=None):
        return bound(self.q_var, q_min_var, q_max_var)
