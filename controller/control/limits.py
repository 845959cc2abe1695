"""Current-limit arbitration: every power command is clamped to the tightest limit in force.

Power is battery-side, seen from the EV battery (positive = charging). Each limit is
turned into a battery-power bound [lo_w, hi_w]; the command is clamped into it and
the binding limit is named (GW_Status.LimitingFactor). Guarantee, for any inputs:
lo_w <= 0 <= hi_w, and clamp(p) lies in [lo_w, hi_w], so a command never exceeds a
limit in force. A tighter limit applies to the very next clamp (no ramp on decrease).

Limits in force:
- EV: announced maximum charge and discharge power; no discharge at or below the
  EV's minimum state of charge.
- inverter rating: AC apparent power <= rating * min(1, V/Vn) so that the AC current
  stays within the rated current even in a voltage sag.
- main fuse: grid current at the point of connection <= main_fuse_a.
- export limit: power exported at the point of connection <= export_limit_kw.
- enter service: while the unit enters service, its AC output (discharging) stays under
  the cap of the enter-service ramp (controller.protection.interface_protection.EnterService).
- input supervision: without fresh inputs both bounds are 0.
"""

# The load estimate (grid minus inverter) rests on two measurements sent in 1 W steps;
# the point-of-connection bounds keep that much margin so rounding cannot cross them.
RESOLUTION_W = 2.0

NONE, EV_CHARGE, EV_DISCHARGE, INV_RATING, EXPORT, FUSE, MIN_SOC, RAMP, INPUT_TIMEOUT, ENTER_SERVICE = \
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9
MODE_DIRECTION = 10  # the mode forbids the setpoint's sign (charge < 0, v2g > 0): target 0


def ac_to_batt(p_ac, eff):
    """Battery power for a given AC power through a converter of efficiency eff."""
    return p_ac * eff if p_ac > 0 else p_ac / eff


def batt_to_ac(p_b, eff):
    return p_b / eff if p_b > 0 else p_b * eff


class Arbiter:
    """Holds the bounds computed by update() and clamps commands into them."""

    __slots__ = ("rating_va", "eff", "v_nom", "fuse_a", "phases", "export_w", "hi_w", "lo_w", "hi_by", "lo_by")

    def __init__(self, cfg):
        self.rating_va = cfg["inverter"]["rating_kva"] * 1000.0
        self.eff = cfg["inverter"]["efficiency"]
        self.v_nom = cfg["site"]["nominal_voltage_v"]
        self.phases = cfg["site"]["phases"]
        self.fuse_a = cfg["site"]["main_fuse_a"]
        e = cfg["site"]["export_limit_kw"]
        self.export_w = None if e is None else e * 1000.0
        self.hi_w = 0.0
        self.lo_w = 0.0
        self.hi_by = INPUT_TIMEOUT
        self.lo_by = INPUT_TIMEOUT

    def update(self, inputs_ok, ev_charge_w, ev_discharge_w, soc, min_soc, v_meas, p_load_w, q_var=0.0,
               output_cap_w=None):
        """Recompute the bounds from the limits in force now (output_cap_w: AC output cap or None)."""
        if not inputs_ok:
            self.hi_w = self.lo_w = 0.0
            self.hi_by = self.lo_by = INPUT_TIMEOUT
            return
        eff = self.eff
        hi = ev_charge_w if ev_charge_w > 0 else 0.0
        hi_by = EV_CHARGE
        lo = -ev_discharge_w if ev_discharge_w > 0 else 0.0
        lo_by = EV_DISCHARGE
        if soc <= min_soc and lo < 0:
            lo = 0.0
            lo_by = MIN_SOC
        # inverter rated current, kept in a sag: S_max scales with min(1, V/Vn)
        vr = v_meas / self.v_nom
        if vr > 1.0:
            vr = 1.0
        if vr < 0.0:
            vr = 0.0
        s_max = self.rating_va * vr
        p2 = s_max * s_max - q_var * q_var
        p_ac_max = p2 ** 0.5 if p2 > 0 else 0.0
        if p_ac_max * eff < hi:
            hi = p_ac_max * eff
            hi_by = INV_RATING
        if -p_ac_max / eff > lo:
            lo = -p_ac_max / eff
            lo_by = INV_RATING
        # point of connection: grid = load + inverter AC, within the fuse and export limit
        v = v_meas if v_meas > 0 else 0.0
        p_fuse = self.phases * v * self.fuse_a - RESOLUTION_W
        b = ac_to_batt(p_fuse - p_load_w, eff)
        if b < hi:
            hi = b
            hi_by = FUSE
        b = ac_to_batt(-p_fuse - p_load_w, eff)
        if b > lo:
            lo = b
            lo_by = FUSE
        if self.export_w is not None:
            b = ac_to_batt(-self.export_w + RESOLUTION_W - p_load_w, eff)
            if b > lo:
                lo = b
                lo_by = EXPORT
        if output_cap_w is not None:
            b = ac_to_batt(-output_cap_w, eff)
            if b > lo:
                lo = b
                lo_by = ENTER_SERVICE
        if hi < 0.0:
            hi = 0.0
        if lo > 0.0:
            lo = 0.0
        self.hi_w = hi
        self.lo_w = lo
        self.hi_by = hi_by
        self.lo_by = lo_by

    def clamp(self, p_w):
        """(clamped power, limiting factor) with the factor NONE when nothing binds."""
        if p_w > self.hi_w:
            return self.hi_w, self.hi_by
        if p_w < self.lo_w:
            return self.lo_w, self.lo_by
        return p_w, NONE
