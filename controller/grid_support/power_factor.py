"""Constant power factor: reactive power in proportion to active power.

Implements
- IEEE 1547-2018 5.3.2 (constant power factor mode): a power factor setting and an
  excitation, injecting or absorbing reactive power; unity (pf 1.0) is the default mode
  (as recalled); settable down to 0.90 either way (as recalled).
- EN 50549-1:2019 4.7.2.3 "cos phi setpoint" (setpoint control mode, set by the DSO;
  over-excited = injecting, under-excited = absorbing).

The excitation says which way the reactive power flows, whatever the sign of P: injecting
gives Q >= 0 while the EV discharges and while it charges. (OpenDER instead takes
Q = +-P tan(phi), so its "INJ" absorbs while a battery charges: see the report of the
comparison in tests/test_grid_support_opender.py.) Powers in W and var, generator
convention.
"""

from math import sqrt

from controller.grid_support.curve import bound


class PowerFactor:
    """Constant power factor: q(p_w) -> var.

    Guarantees: |q| / sqrt(p^2 + q^2) = pf for any p_w != 0 (before bounds), q >= 0 when
    injecting and q <= 0 when absorbing for either sign of p_w, q = 0 at pf 1.0; with
    bounds, q is limited to [q_min_var, q_max_var] (the pf is then not held: the caller
    limits P first with p_max() if the pf must be held).
    """

    __slots__ = ("pf", "inject", "_k")

    def __init__(self, pf=1.0, inject=True):
        if not 0.0 < pf <= 1.0:
            raise ValueError("power factor must be in (0, 1]")
        self.pf = pf
        self.inject = inject
        k = sqrt(1.0 - pf * pf) / pf  # tan(phi), once
        self._k = k if inject else -k

    def q(self, p_w, q_min_var=None, q_max_var=None):
        return bound(abs(p_w) * self._k, q_min_var, q_max_var)

    def p_max(self, s_va):
        """The largest |P| (W) at which this power factor fits in an apparent power of
        s_va: limiting P to it first holds the pf at the rating (what OpenDER does)."""
        return s_va * self.pf
