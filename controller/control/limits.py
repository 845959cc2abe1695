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
- backup reserve: while grid-connected (the caller passes reserve_pct, None in backup
  operation, which is what the reserve is kept for), no discharge once the SoC has come
  down to the reserve, until it is RESERVE_HYST_PCT above it again (docs/plan-execution.md).
  Whatever asks for the discharge (the mode, a request, a plan, grid support) meets it here.
- external limit: while grid-connected, the most AC power the EV may be charged with and
  may discharge that the charging platform (OCPP 2.1 ExternalLimits: a charging-schedule
  period's limit and dischargeLimit) or the energy manager imposes (EMS_PowerLimit; the
  caller passes None for no limit, and in backup operation, where the EV carries the
  home). Like every limit here it can only narrow the bounds, never widen them.
- input supervision: without fresh inputs both bounds are 0.
"""

# The load estimate (grid minus inverter) rests on two measurements sent in 1 W steps and
# is taken to whole watts here: the point-of-connection bounds keep that much margin, so
# rounding cannot cross them.
RESOLUTION_W = 3

NONE, EV_CHARGE, EV_DISCHARGE, INV_RATING, EXPORT, FUSE, MIN_SOC, RAMP, INPUT_TIMEOUT, ENTER_SERVICE = \
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9
MODE_DIRECTION = 10  # the mode forbids the setpoint's sign (charge < 0, v2g > 0): target 0
GRID_SUPPORT = 11  # a grid-support function (P(f), volt-watt, a frequency service) sets the power
RESERVE = 12  # grid-connected at or below the backup reserve: no discharge
EXTERNAL = 13  # an external power limit (EMS_PowerLimit: the charging platform or the energy manager)
RESERVE_HYST_PCT = 1  # discharge again only from reserve + 1 % SoC: no chatter on the SoC signal's 0.1 % steps


def ac_to_batt(p_ac, eff):
    """Battery power for a given AC power through a converter of efficiency eff."""
    return p_ac * eff if p_ac > 0 else p_ac / eff


def batt_to_ac(p_b, eff):
    return p_b / eff if p_b > 0 else p_b * eff


def isqrt(n):
    """floor(sqrt(n)) of a non-negative int, in ints (Newton's method)."""
    if n <= 0:
        return 0
    x = n
    y = (x + 1) >> 1
    while y < x:
        x = y
        y = (x + n // x) >> 1
    return x


class Arbiter:
    """Holds the bounds computed by update() and clamps commands into them.

    The arithmetic is in whole watts, volts and per-mille (small ints: no heap allocation
    per period under MicroPython), and every rounding goes the conservative way: a bound
    is never wider than its exact value, by at most a few watts narrower.
    """

    __slots__ = ("rating_va", "eff", "v_nom", "fuse_a", "phases", "export_w", "hi_w", "lo_w", "hi_by", "lo_by",
                 "by", "_eff_dn", "_eff_up", "_v_nom_up", "_fuse_ma", "_s", "_q", "_p_ac_max", "reserve_hold",
                 "_reserve", "_release")

    def __init__(self, cfg):
        self.rating_va = int(cfg["inverter"]["rating_kva"] * 1000.0)
        self.eff = cfg["inverter"]["efficiency"]
        # efficiency in per-mille, rounded down for power into the battery and up for power
        # out of it: the battery-side bound is never beyond the exact one
        e = self.eff * 1000.0
        self._eff_dn = int(e)
        self._eff_up = self._eff_dn if self._eff_dn == e else self._eff_dn + 1
        self.v_nom = cfg["site"]["nominal_voltage_v"]
        v = int(self.v_nom)
        self._v_nom_up = v if v == self.v_nom else v + 1
        self.phases = cfg["site"]["phases"]
        self.fuse_a = cfg["site"]["main_fuse_a"]
        self._fuse_ma = int(self.fuse_a * 1000.0)
        e = cfg["site"]["export_limit_kw"]
        self.export_w = None if e is None else int(e * 1000.0)
        self.hi_w = 0
        self.lo_w = 0
        self.hi_by = INPUT_TIMEOUT
        self.lo_by = INPUT_TIMEOUT
        self.by = INPUT_TIMEOUT
        self._s = -1  # the last (S_max, |Q|) and the P_max it gives: the square root is cached
        self._q = -1
        self._p_ac_max = 0
        self.reserve_hold = False  # discharge held at the reserve (hysteresis state)
        self._reserve = None  # the reserve the release threshold below was computed for
        self._release = 0.0

    def _charge(self, p_ac):
        """Battery power for AC power p_ac >= 0 into the battery, rounded down."""
        return p_ac * self._eff_dn // 1000

    def _discharge(self, p_ac):
        """Battery power (<= 0) for AC power -p_ac <= 0 out of the battery, its magnitude rounded down."""
        return -(p_ac * 1000 // self._eff_up)

    def _batt(self, p_ac):
        """ac_to_batt() in ints, rounded toward zero battery power."""
        return self._charge(p_ac) if p_ac > 0 else self._discharge(-p_ac)

    def update(self, inputs_ok, ev_charge_w, ev_discharge_w, soc, min_soc, v_meas, p_load_w, q_var=0,
               output_cap_w=None, reserve_pct=None, ext_charge_w=None, ext_discharge_w=None):
        """Recompute the bounds from the limits in force now (output_cap_w: AC output cap or
        None; reserve_pct: the backup reserve in % SoC while grid-connected, or None;
        ext_charge_w, ext_discharge_w: the external limit's most AC charging and discharging
        power (magnitudes, W; below 0 counts as 0), or None for no external limit).

        An external limit is named (EXTERNAL) only where it is strictly tighter than every
        other limit: where it equals one, the gateway's own limit keeps the name."""
        if not inputs_ok:
            self.hi_w = self.lo_w = 0
            self.hi_by = self.lo_by = INPUT_TIMEOUT
            return
        hi = int(ev_charge_w) if ev_charge_w > 0 else 0
        hi_by = EV_CHARGE
        lo = -int(ev_discharge_w) if ev_discharge_w > 0 else 0
        lo_by = EV_DISCHARGE
        if reserve_pct is not None:
            self.hold_reserve(soc, reserve_pct)
        if soc <= min_soc and lo < 0:
            lo = 0
            lo_by = MIN_SOC
        elif self.reserve_hold and reserve_pct is not None and lo < 0:
            lo = 0
            lo_by = RESERVE
        # inverter rated current, kept in a sag: S_max scales with min(1, V/Vn) (V rounded
        # down, Vn up); the reactive power in force takes its share of S_max (|Q| rounded up)
        v = int(v_meas) if v_meas > 0 else 0
        s = self.rating_va
        if v_meas < self.v_nom:
            s = s * v // self._v_nom_up
        if q_var != q_var or not -1e9 < q_var < 1e9:
            q = s  # no sane reactive power: no room for active power either
        else:
            q = int(q_var)
            exact = q == q_var
            if q < 0:
                q = -q
            if not exact:
                q += 1
        if s != self._s or q != self._q:
            self._s = s
            self._q = q
            self._p_ac_max = isqrt(s * s - q * q) if s > q else 0
        p_ac_max = self._p_ac_max
        b = self._charge(p_ac_max)
        if b < hi:
            hi = b
            hi_by = INV_RATING
        b = self._discharge(p_ac_max)
        if b > lo:
            lo = b
            lo_by = INV_RATING
        # point of connection: grid = load + inverter AC, within the fuse and export limit
        load = int(p_load_w)
        p_fuse = self.phases * v * self._fuse_ma // 1000 - RESOLUTION_W
        b = self._batt(p_fuse - load)
        if b < hi:
            hi = b
            hi_by = FUSE
        b = self._batt(-p_fuse - load)
        if b > lo:
            lo = b
            lo_by = FUSE
        if self.export_w is not None:
            b = self._batt(-self.export_w + RESOLUTION_W - load)
            if b > lo:
                lo = b
                lo_by = EXPORT
        if output_cap_w is not None:
            b = self._discharge(int(output_cap_w))
            if b > lo:
                lo = b
                lo_by = ENTER_SERVICE
        if ext_charge_w is not None:
            b = int(ext_charge_w)
            b = self._charge(b) if b > 0 else 0
            if b < hi:
                hi = b
                hi_by = EXTERNAL
        if ext_discharge_w is not None:
            b = int(ext_discharge_w)
            b = self._discharge(b) if b > 0 else 0
            if b > lo:
                lo = b
                lo_by = EXTERNAL
        if hi < 0:
            hi = 0
        if lo > 0:
            lo = 0
        self.hi_w = hi
        self.lo_w = lo
        self.hi_by = hi_by
        self.lo_by = lo_by

    def hold_reserve(self, soc, reserve_pct):
        """The reserve's hysteresis at this SoC (%): True (held) once soc <= reserve_pct, False
        again from reserve_pct + RESERVE_HYST_PCT; `reserve_hold` keeps it."""
        if reserve_pct != self._reserve:  # a float made only when the reserve changes
            self._reserve = reserve_pct
            self._release = reserve_pct + RESERVE_HYST_PCT
        if soc <= reserve_pct:
            self.reserve_hold = True
        elif soc >= self._release:
            self.reserve_hold = False
        return self.reserve_hold

    def limit(self, p_w):
        """p_w clamped into the bounds; `by` names the limit that bound it (NONE if none)."""
        if p_w > self.hi_w:
            self.by = self.hi_by
            return self.hi_w
        if p_w < self.lo_w:
            self.by = self.lo_by
            return self.lo_w
        self.by = NONE
        return p_w

    def clamp(self, p_w):
        """(clamped power, limiting factor) with the factor NONE when nothing binds."""
        p = self.limit(p_w)
        return p, self.by
