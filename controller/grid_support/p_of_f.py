"""P(f): active power against frequency.

Implements the frequency response of
- EN 50549-1:2019 4.6.1 (LFSM-O, over-frequency: threshold f1 50.2 Hz, droop s 5 %) and
  4.6.2 (LFSM-U, under-frequency, for units that can raise their output or lower their
  consumption, such as storage and an EV: threshold 49.8 Hz, droop 5 %);
- IEEE 1547-2018 6.5.2.3-6.5.2.5 (frequency droop: deadbands dbOF = dbUF = 0.036 Hz,
  slopes kOF = kUF = 0.05, open-loop response time 5 s; Table 24 defaults).

Both are one curve: outside the deadband [f_nom - db_uf, f_nom + db_of] the power moves
from the pre-disturbance power p_pre by (deviation beyond the deadband) / (f_nom * k) times
the reference power, where k is the droop as a fraction (EN's s, IEEE's kOF/kUF). The
reference is the rating (IEEE 1547; EN 50549-1 with "P_max") or the power at the moment
the deadband was left (EN 50549-1 with "P_M"). p_pre is latched while the frequency stays
outside the deadband and released when it returns, so the response does not chase the
schedule it overrides. The output is bounded by [p_min, p_max]: for a storage unit p_min
is its largest charging power (negative), so an over-frequency turns export into charging.

Dynamics: an optional intentional delay before the response starts (EN 50549-1: 0-2 s,
default 0), then a first-order response reaching 90 % of a step within the open-loop
response time (IEEE 1547 Tresponse; controller.timing.FirstOrder). Powers in W, generator
convention (controller/grid_support/__init__.py).
"""

from controller.timing import ConditionalDelay, FirstOrder

REF_RATED = 0  # the droop's reference power: the rating
REF_MOMENTARY = 1  # ... the power when the deadband was left (EN 50549-1 "P_M")


def static_power(f_hz, p_pre_w, f_nom, db_of_hz, db_uf_hz, k_of, k_uf, p_ref_w, p_min_w, p_max_w):
    """The steady-state P(f) curve: the power (W) the unit settles at for frequency f_hz
    given the pre-disturbance power p_pre_w; p_pre_w itself (bounded) inside the deadband."""
    f_hi = f_nom + db_of_hz
    f_lo = f_nom - db_uf_hz
    if f_hz > f_hi:
        p = p_pre_w - (f_hz - f_hi) / (f_nom * k_of) * p_ref_w
    elif f_hz < f_lo:
        p = p_pre_w + (f_lo - f_hz) / (f_nom * k_uf) * p_ref_w
    else:
        p = p_pre_w
    if p < p_min_w:
        return p_min_w
    if p > p_max_w:
        return p_max_w
    return p


class FrequencyWatt:
    """P(f) as a unit: update(f, p_sched, p_min, p_max, now) -> the power to command (W).

    Guarantees: inside the deadband (and before the intentional delay has run out) the
    output is p_sched, bounded by [p_min, p_max]; outside it the output moves towards
    static_power() of the latched p_pre with the open-loop response time, and never
    leaves [p_min, p_max] (limits passed in every period: the EV's and the inverter's).
    `active` says whether the response is in force (it stays so while the output returns
    to the schedule after the frequency came back: until within `settle_w`).
    """

    __slots__ = ("f_nom", "db_of", "db_uf", "k_of", "k_uf", "p_rated", "reference", "enabled", "delay", "lpf",
                 "p_pre", "p_ref", "side", "active", "settle_w", "output", "_f_hi", "_f_lo", "t_prev")

    def __init__(self, f_nom, p_rated_w, db_of_hz=0.036, db_uf_hz=0.036, k_of=0.05, k_uf=0.05, olrt_s=5.0,
                 delay_s=0.0, reference=REF_RATED, enabled=True, settle_w=10.0):
        self.f_nom = f_nom
        self.db_of = db_of_hz
        self.db_uf = db_uf_hz
        self.k_of = k_of
        self.k_uf = k_uf
        self.p_rated = p_rated_w
        self.reference = reference
        self.enabled = enabled
        self.delay = ConditionalDelay(int(delay_s * 1000000))
        self.lpf = FirstOrder(olrt_s * 1000000)
        self.p_pre = None
        self.p_ref = p_rated_w
        self.side = 0  # +1 above the deadband, -1 below, 0 inside
        self.active = False
        self.settle_w = settle_w
        self.output = 0.0
        # the deadband's edges, computed once (no float allocated per update on the way in)
        self._f_hi = f_nom + db_of_hz
        self._f_lo = f_nom - db_uf_hz
        self.t_prev = None  # the last sample's time (update(), or a caller that skipped it as quiet)

    def update(self, f_hz, p_sched_w, p_min_w, p_max_w, now):
        p_sched = p_min_w if p_sched_w < p_min_w else p_max_w if p_sched_w > p_max_w else p_sched_w
        side = 0
        if self.enabled and f_hz > 0.0:
            if f_hz > self._f_hi:
                side = 1
            elif f_hz < self._f_lo:
                side = -1
        outside = side != 0
        if outside and side != self.side:
            # the deadband is left (or crossed in one step): latch what the unit was doing
            # (EN 50549-1 P_M, IEEE 1547 p_pre)
            self.p_pre = self.output if self.active else p_sched
            self.p_ref = abs(self.p_pre) if self.reference == REF_MOMENTARY else self.p_rated
        elif not outside:
            self.p_pre = None
        self.side = side
        if self.delay.update(outside, now):
            if not self.active:
                self.active = True
                # the response starts from the schedule at the last sample inside the band
                self.lpf.reset(p_sched, now if self.t_prev is None else self.t_prev)
            target = static_power(f_hz, self.p_pre, self.f_nom, self.db_of, self.db_uf, self.k_of, self.k_uf,
                                  self.p_ref, p_min_w, p_max_w)
        else:
            target = p_sched
        self.t_prev = now
        if not self.active:
            self.output = p_sched
            return p_sched
        p = self.lpf.update(target, now)
        if not outside and abs(p - p_sched) <= self.settle_w:
            self.active = False  # back on the schedule
            p = p_sched
        p = p_min_w if p < p_min_w else p_max_w if p > p_max_w else p
        self.output = p
        return p

    def idle(self, f_hz, now):
        """True when update() would return the schedule untouched for f_hz: inside the
        deadband, nothing in force or latched, no delay running. Notes the sample's time
        (the response starts from there), so a caller may skip update() while it is True
        (no arithmetic, no float allocated per period in the common case)."""
        if not self.active and self.side == 0 and not self.delay.output and self._f_lo <= f_hz <= self._f_hi:
            self.t_prev = now
            return True
        return False

    def reset(self, now):
        """Out of grid-following operation: no response in force, nothing latched."""
        self.delay.update(False, now)
        self.active = False
        self.p_pre = None
        self.side = 0
