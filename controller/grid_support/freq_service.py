"""Frequency-response services: a frequency-to-power curve supplied at run time.

An energy manager or aggregator sells the site's EV power as a frequency-containment or
fast-frequency product (FCR-N, FCR-D up/down, FFR, or a custom curve) and sends the
curve over the bus (EMS_FreqServiceHdr and EMS_FreqServicePoint, dbc/gateway.dbc;
CurveAssembler below). FrequencyService then sets the unit's power on every grid sample
to baseline + dP(f), with dP piecewise linear between the curve's points and flat beyond
its ends, bounded by the caller's limits, the EV's state of charge and the backup
reserve. There is no filter of its own: the products' activation times are seconds and
the inverter's own slew is milliseconds, so following the curve at once is what meets
them (the HIL measures the time at the inverter, hil/metrics.py).

Powers in W in the generator convention of this package (+ = the unit delivers to the
grid, the EV discharges); the bus carries the battery convention (+ = charging), and
CurveAssembler converts. Times: `now` in ticks_us (controller/clock.py).

Kinds (EMS_FreqServiceHdr.Kind) and what the products ask, as data. Sources: Nordic FCR
technical requirements, 2023 (ENTSO-E Nordic TSOs: Energinet, Fingrid, Statnett,
Svenska kraftnaet) and the Nordic FFR technical requirements; values marked (recalled)
are quoted from memory and were not checked against the documents here.

| kind | code | activation band | activation time | full-activation endurance of a limited energy reservoir |
| --- | --- | --- | --- | --- |
| none / cancel | 0 | - | - | - |
| FCR-N | 1 | 49.9-50.1 Hz, linear, symmetric | 63 % within 60 s, 95 % within 3 min (recalled; the 2023 rules judge the dynamics by sine tests instead) | 1 h (recalled) |
| FCR-D up | 2 | 49.9 -> 49.5 Hz, linear | 50 % within 5 s, 100 % within 30 s; 2023 rule: 86 % of the steady-state response within 7.5 s (recalled) | 20 min (recalled) |
| FCR-D down | 3 | 50.1 -> 50.5 Hz, linear | as FCR-D up (recalled) | 20 min (recalled) |
| FFR | 4 | trigger 49.7 / 49.6 / 49.5 Hz | full activation within 1.30 / 1.00 / 0.70 s of the trigger; support for 5 s or 30 s (recalled) | the support duration (recalled) |
| custom | 5 | the curve's | none checked | none |

ACTIVATION and ENDURANCE_S hold these numbers for the platform's checks; the unit itself
does not enforce them (it follows the curve at once, the fastest it can).
"""

from controller.clock import ticks_diff
from controller.timing import Elapsed

KIND_NONE = 0
KIND_FCR_N = 1
KIND_FCR_D_UP = 2
KIND_FCR_D_DOWN = 3
KIND_FFR = 4
KIND_CUSTOM = 5
N_KINDS = 6

MAX_POINTS = 8

# kind -> ((fraction of the requested change, within s), ...) (module docstring; recalled)
ACTIVATION = {
    KIND_FCR_N: ((0.63, 60.0), (0.95, 180.0)),
    KIND_FCR_D_UP: ((0.5, 5.0), (1.0, 30.0)),
    KIND_FCR_D_DOWN: ((0.5, 5.0), (1.0, 30.0)),
    KIND_FFR: ((1.0, 0.7),),  # at a 49.5 Hz trigger; 1.0 s at 49.6 Hz, 1.3 s at 49.7 Hz
}
# kind -> the endurance at full activation a limited energy reservoir must have (s; recalled)
ENDURANCE_S = {KIND_FCR_N: 3600, KIND_FCR_D_UP: 1200, KIND_FCR_D_DOWN: 1200}

_WMS_PER_WH = 3600000  # W*ms in one Wh


def curve_delta(f_mhz, f_pts, dp_pts, n):
    """dP (W, int) of the curve's first n points at f_mhz (int mHz): piecewise linear,
    rounded to the watt, the end values beyond the ends. Small ints only."""
    if f_mhz <= f_pts[0]:
        return dp_pts[0]
    last = n - 1
    if f_mhz >= f_pts[last]:
        return dp_pts[last]
    i = 1
    while f_pts[i] < f_mhz:
        i += 1
    f0 = f_pts[i - 1]
    d0 = dp_pts[i - 1]
    den = f_pts[i] - f0
    return d0 + ((dp_pts[i] - d0) * (f_mhz - f0) * 2 + den) // (den * 2)


class FrequencyService:
    """One frequency-response service: load() a curve, update() on every grid sample.

    Guarantees of update(f_hz, soc_pct, reserve_soc_pct, capacity_kwh, p_min_w, p_max_w, now):
    - None while no curve is in force: none loaded, cancel()led, or valid_s passed since
      the last load() (a new load renews the validity);
    - otherwise baseline + dP(f) (W, generator convention, whole watts), where dP is the
      curve at f (piecewise linear, flat beyond its ends), then
      - no discharge (result <= 0) unless soc_pct > reserve_soc_pct,
      - no charging (result >= 0) at soc_pct >= 100,
      - and last, always, within [p_min_w, p_max_w] (the caller's limits: EV, inverter
        rating; they win over the two rules above if they contradict them).
    Accounting, while a curve is in force, of the commanded power (each command held until
    the next update): energy_up_wh / energy_down_wh, the energy above / below the baseline
    (both >= 0, over the unit's life); activations, the departures of the frequency from
    the curve's zero band (dP(f) == 0); last_activation_s, from the latest departure to the
    first update that commanded at least 90 % of the dP the curve asks at that frequency
    (None until one did).
    Endurance, from the last update's SoC, reserve and capacity: energy_above_reserve_kwh,
    endurance_s (how long the battery can hold the curve's full discharge activation,
    bounded by the last p_max; None when the curve never discharges) and endurance_down_s
    (the same for full charging activation up to 100 % SoC).
    update() allocates nothing beyond the float of f_hz * 1000 on ports that box floats;
    the endurance properties compute when read.
    """

    __slots__ = ("kind", "curve_id", "n", "f_mhz", "dp_w", "baseline_w", "dp_max_w", "dp_min_w", "valid_s",
                 "in_force", "_age", "_last", "_dp_cmd", "_wms_up", "_wms_down", "_wh_up", "_wh_down", "_us_rem",
                 "acting", "_t_out", "_armed", "activations", "last_activation_us", "output",
                 "_soc", "_reserve", "_cap", "_p_max", "_p_min")

    def __init__(self):
        self.kind = KIND_NONE
        self.curve_id = None
        self.n = 0
        self.f_mhz = [0] * MAX_POINTS
        self.dp_w = [0] * MAX_POINTS
        self.baseline_w = 0
        self.dp_max_w = 0
        self.dp_min_w = 0
        self.valid_s = 0
        self.in_force = False
        self._age = Elapsed()
        self._last = None
        self._dp_cmd = 0  # dP commanded at the last update (held until the next)
        self._wms_up = 0  # W*ms below one Wh, carried into _wh_up
        self._wms_down = 0
        self._wh_up = 0
        self._wh_down = 0
        self._us_rem = 0  # microseconds below one ms, carried into the next interval
        self.acting = False  # the curve asks a dP now: the frequency is outside its zero band (last update)
        self._t_out = 0
        self._armed = False  # a departure whose 90 % is not reached yet
        self.activations = 0
        self.last_activation_us = None
        self.output = None
        self._soc = None
        self._reserve = None
        self._cap = None
        self._p_max = None
        self._p_min = None

    def load(self, f_pts_hz, dp_pts_w, baseline_w, valid_s, kind, now, n=None, curve_id=None):
        """Install a curve: the first n (default: all) points of f_pts_hz (Hz, strictly
        increasing) and dp_pts_w (W, generator convention, relative to baseline_w), in
        force for valid_s (>= 1) from now. ValueError (nothing changed) for a bad curve."""
        if n is None:
            n = len(f_pts_hz)
        if n < 2 or n > MAX_POINTS or len(f_pts_hz) < n or len(dp_pts_w) < n:
            raise ValueError("curve: 2..%d points, not %d" % (MAX_POINTS, n))
        if kind <= KIND_NONE or kind >= N_KINDS:
            raise ValueError("kind: 1..%d, not %r" % (N_KINDS - 1, kind))
        if valid_s < 1:
            raise ValueError("valid_s: at least 1, not %r" % (valid_s,))
        prev = None
        for i in range(n):
            f = round(f_pts_hz[i] * 1000)
            if prev is not None and f <= prev:
                raise ValueError("curve: frequencies must increase strictly (point %d)" % i)
            prev = f
        fs, ds = self.f_mhz, self.dp_w
        hi = lo = 0
        for i in range(n):
            fs[i] = round(f_pts_hz[i] * 1000)
            d = int(round(dp_pts_w[i]))
            ds[i] = d
            if d > hi:
                hi = d
            if d < lo:
                lo = d
        self.n = n
        self.dp_max_w = hi
        self.dp_min_w = lo
        self.baseline_w = int(round(baseline_w))
        self.valid_s = int(valid_s)
        self.kind = kind
        self.curve_id = curve_id
        if not self.in_force:
            self._last = None  # no interval to account before this load
        self.in_force = True
        self._age.restart(now)

    def cancel(self):
        """End the service now: update() returns None until the next load()."""
        self.in_force = False
        self.kind = KIND_NONE
        self._armed = False
        self.acting = False
        self.output = None

    def delta_at(self, f_hz):
        """The curve's dP (W) at f_hz, or 0 without a curve."""
        if self.n < 2:
            return 0
        return curve_delta(round(f_hz * 1000), self.f_mhz, self.dp_w, self.n)

    def update(self, f_hz, soc_pct, reserve_soc_pct, capacity_kwh, p_min_w, p_max_w, now):
        self._soc = soc_pct
        self._reserve = reserve_soc_pct
        self._cap = capacity_kwh
        self._p_max = p_max_w
        self._p_min = p_min_w
        if not self.in_force:
            return None
        self._account(now)
        age = self._age
        age.update(now)
        if age.reached(self.valid_s, 0):
            self.cancel()
            return None
        dp_req = curve_delta(round(f_hz * 1000), self.f_mhz, self.dp_w, self.n)
        base = self.baseline_w
        p = base + dp_req
        if p > 0 and not soc_pct > reserve_soc_pct:
            p = 0  # the backup reserve is not sold
        elif p < 0 and soc_pct >= 100:
            p = 0
        if p > p_max_w:
            p = p_max_w
        if p < p_min_w:
            p = p_min_w
        dp = p - base
        self._dp_cmd = dp
        # activation: from leaving the zero band to 90 % of what the curve asks there
        if dp_req != 0:
            if not self.acting:
                self.acting = True
                self._t_out = now
                self._armed = True
                self.activations += 1
            if self._armed and ((dp_req > 0 and dp * 10 >= dp_req * 9) or (dp_req < 0 and dp * 10 <= dp_req * 9)):
                self._armed = False
                self.last_activation_us = ticks_diff(now, self._t_out)
        else:
            self.acting = False
            self._armed = False
        self.output = p
        return p

    def _account(self, now):
        """The last command's dP over the time since the last update, in small ints."""
        last = self._last
        self._last = now
        if last is None:
            return
        us = ticks_diff(now, last) + self._us_rem
        if us <= 0:
            return
        ms = us // 1000
        self._us_rem = us - ms * 1000
        dp = self._dp_cmd
        if dp == 0:
            return
        a = dp if dp > 0 else -dp
        acc = 0
        while ms > 1000:  # keeps a * ms a small int on a 32-bit board for any gap
            acc += a * 1000
            ms -= 1000
            if acc >= _WMS_PER_WH:
                self._carry(dp, acc)
                acc = 0
        acc += a * ms
        self._carry(dp, acc)

    def _carry(self, dp, wms):
        if dp > 0:
            wms += self._wms_up
            k = wms // _WMS_PER_WH
            self._wh_up += k
            self._wms_up = wms - k * _WMS_PER_WH
        else:
            wms += self._wms_down
            k = wms // _WMS_PER_WH
            self._wh_down += k
            self._wms_down = wms - k * _WMS_PER_WH

    # ---------------------------------------------------------------- read when needed
    @property
    def energy_up_wh(self):
        return self._wh_up + self._wms_up / _WMS_PER_WH

    @property
    def energy_down_wh(self):
        return self._wh_down + self._wms_down / _WMS_PER_WH

    @property
    def last_activation_s(self):
        us = self.last_activation_us
        return None if us is None else us / 1000000

    @property
    def energy_above_reserve_kwh(self):
        """Energy (kWh) between the last SoC and the reserve (0 at or below it; None before an update)."""
        if self._soc is None:
            return None
        x = (self._soc - self._reserve) * self._cap / 100.0
        return x if x > 0.0 else 0.0

    def _full_power(self, up):
        p = self.baseline_w + (self.dp_max_w if up else self.dp_min_w)
        if up:
            if self._p_max is not None and p > self._p_max:
                p = self._p_max
            return p if p > 0 else None
        if self._p_min is not None and p < self._p_min:
            p = self._p_min
        return -p if p < 0 else None

    @property
    def endurance_s(self):
        """Seconds the energy above the reserve lasts at the curve's full discharge
        activation (baseline + largest dP, bounded by the last p_max); None without a
        curve, before an update, or when full activation does not discharge."""
        if self.n < 2 or self._soc is None:
            return None
        p = self._full_power(True)
        if p is None:
            return None
        return self.energy_above_reserve_kwh * 3600000.0 / p

    @property
    def endurance_down_s(self):
        """Seconds the room up to 100 % SoC lasts at the curve's full charging activation
        (baseline + smallest dP, bounded by the last p_min); None as for endurance_s."""
        if self.n < 2 or self._soc is None:
            return None
        p = self._full_power(False)
        if p is None:
            return None
        room = (100.0 - self._soc) * self._cap / 100.0
        return (room if room > 0.0 else 0.0) * 3600000.0 / p

    def endurance_ok(self):
        """True when endurance_s meets the product's ENDURANCE_S (True for kinds without one,
        and when the curve does not discharge; False without a curve)."""
        if not self.in_force:
            return False
        need = ENDURANCE_S.get(self.kind)
        if need is None:
            return True
        if self.kind == KIND_FCR_D_DOWN:
            e = self.endurance_down_s
        else:
            e = self.endurance_s
        return e is None or e >= need


# CurveAssembler reasons for refusing a set (counted in refused_by[reason])
R_OK = 0
R_COUNT = 1  # NumPoints 1 or above MAX_POINTS
R_KIND = 2  # Kind beyond the known kinds
R_VALIDITY = 3  # ValidFor 0
R_NO_HEADER = 4  # a point without a header before it
R_CURVE_ID = 5  # a point of another CurveId than the header's
R_INDEX = 6  # a point's Index at or beyond the header's NumPoints
R_DUPLICATE = 7  # an Index twice in one set
R_ORDER = 8  # frequencies not strictly increasing by Index
R_INCOMPLETE = 9  # a new header (or the set's time) came before every point of the last set
N_REASONS = 10

SET_TIMEOUT_US = 500000  # a set goes out back to back (9 frames, < 3 ms): half a second is plenty


class CurveAssembler:
    """Builds curves from EMS_FreqServiceHdr / EMS_FreqServicePoint frames for a FrequencyService.

    on_header(kind, curve_id, num_points, baseline_w, valid_s, now) and on_point(curve_id,
    index, f_hz, delta_w, now) take the decoded signals (battery convention, as on the bus)
    and return R_OK or the reason the set was refused. Guarantees: the service gets load()
    only for a complete, consistent set (one header, then each of its NumPoints indices
    exactly once, in any order, with its CurveId, within SET_TIMEOUT_US, frequencies strictly
    increasing by index), its powers turned into the generator convention; a header with
    NumPoints 0 or Kind 0 cancels the service at once; every refused set counts once in
    `refused` and `refused_by[reason]`, and nothing of it reaches the service. `loaded`
    counts the sets handed over. Frames are kept in arrays made at construction (the
    decoded values themselves are the codec's).
    """

    __slots__ = ("svc", "pending", "kind", "curve_id", "n", "baseline_w", "valid_s", "t_hdr", "have",
                 "f", "dp", "refused", "refused_by", "last_reason", "loaded", "cancels")

    def __init__(self, service):
        self.svc = service
        self.pending = False
        self.kind = 0
        self.curve_id = 0
        self.n = 0
        self.baseline_w = 0
        self.valid_s = 0
        self.t_hdr = 0
        self.have = 0  # bit i: point i received
        self.f = [0.0] * MAX_POINTS
        self.dp = [0] * MAX_POINTS
        self.refused = 0
        self.refused_by = [0] * N_REASONS
        self.last_reason = R_OK
        self.loaded = 0
        self.cancels = 0

    def _refuse(self, reason):
        self.pending = False
        self.refused += 1
        self.refused_by[reason] += 1
        self.last_reason = reason
        return reason

    def on_header(self, kind, curve_id, num_points, baseline_w, valid_s, now):
        if self.pending and self.have != (1 << self.n) - 1:
            self._refuse(R_INCOMPLETE)  # the last set never completed: it is dropped
        self.pending = False
        if num_points == 0 or kind == KIND_NONE:
            self.svc.cancel()
            self.cancels += 1
            return R_OK
        if num_points < 2 or num_points > MAX_POINTS:
            return self._refuse(R_COUNT)
        if kind >= N_KINDS:
            return self._refuse(R_KIND)
        if valid_s < 1:
            return self._refuse(R_VALIDITY)
        self.kind = kind
        self.curve_id = curve_id
        self.n = num_points
        self.baseline_w = -baseline_w  # battery convention on the bus
        self.valid_s = valid_s
        self.t_hdr = now
        self.have = 0
        self.pending = True
        return R_OK

    def on_point(self, curve_id, index, f_hz, delta_w, now):
        if not self.pending:
            return self._refuse(R_NO_HEADER)
        if ticks_diff(now, self.t_hdr) > SET_TIMEOUT_US:
            return self._refuse(R_INCOMPLETE)
        if curve_id != self.curve_id:
            return self._refuse(R_CURVE_ID)
        if index >= self.n:
            return self._refuse(R_INDEX)
        bit = 1 << index
        if self.have & bit:
            return self._refuse(R_DUPLICATE)
        self.have |= bit
        self.f[index] = f_hz
        self.dp[index] = -delta_w  # battery convention on the bus
        if self.have != (1 << self.n) - 1:
            return R_OK
        self.pending = False
        f = self.f
        for i in range(1, self.n):
            if not f[i] > f[i - 1]:
                return self._refuse(R_ORDER)
        try:
            self.svc.load(f, self.dp, self.baseline_w, self.valid_s, self.kind, now, self.n, curve_id)
        except ValueError:  # frequencies that meet only below the mHz the unit resolves
            return self._refuse(R_ORDER)
        self.loaded += 1
        self.last_reason = R_OK
        return R_OK
