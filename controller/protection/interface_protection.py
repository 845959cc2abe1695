"""Interface protection: the trip stages of a grid-code profile and the ride-through
arbitration of IEEE 1547-2018 clause 6, fed with every accepted meter sample.

    ip = InterfaceProtection(grid_codes.profile("EN50549-1", 50.0))
    reason = ip.update(v_pu, f_hz, rocof_hz_s, phase_deg, now)   # every ~10 ms

update() returns 0 while no trip is called for, else the trip reason (a code in
16..63, named in REASON_NAMES). The trip latches: must_trip stays True and update()
keeps returning the first reason until reset() (after the enter-service conditions
are met again, see EnterService).

Units, one per criterion (each cites its clause in its own module):
- voltage stages UV1/UV2/OV1/OV2 (IEEE 1547-2018 6.4.1; EN 50549-1 4.9.3 U<, U<<, U>, U>>)
  and frequency stages UF1/UF2/OF1/OF2 (6.5.1; f<, f>): trip_stage.TripStage;
- 10-minute mean overvoltage (EN 50549-1 4.9.3.4): mean_10min.Mean10Min;
- ROCOF loss-of-mains, when the profile has a setting: rocof.RocofStage, fed with the
  meter's Rocof signal (averaged to the profile's window if longer than the meter's);
- vector shift, when the profile has a setting: vector_shift.VectorShift on PhaseAngle.
  It always runs (for jump_deg) even without a setting.

No voltage. The meter reports 0 Hz when it finds no voltage. A frequency reading counts
only if f_hz > 0 and v_pu >= FREQ_VALID_MIN_PU; otherwise the frequency, ROCOF and
vector-shift units are reset (a 0 Hz reading is not an underfrequency) and the voltage
stages see the voltage as measured, so v = 0 trips as undervoltage.

Ride-through and its arbitration with trips (IEEE 1547-2018 6.4.2, 6.5.2):
- the profile's continuous-operation region and ride-through bands (mandatory,
  permissive, momentary cessation, each with a minimum duration that may depend
  linearly on the level) are tracked per quantity and side: the time since the voltage
  (frequency) left the continuous region on that side is compared with the duration the
  band at the present level requires;
- ride_through is True while that time is shorter than the required duration for voltage
  or frequency, and while a ROCOF or phase jump within the profile's immunity is being
  held: the rest of the controller must not trip on its own account meanwhile;
- within a ride-through band with time left, no stage trips, whatever its clearing time
  (a stage that times out there is held until the band's duration has passed); likewise
  a ROCOF or vector-shift stage never trips on a value within the profile's immunity.
  The shipped profiles need no holding: ride_through_check.conflicts(profile) lists any
  stage whose clearing time is shorter than a ride-through duration at a level it covers,
  and the tests assert there is none;
- unintentional-islanding detection (IEEE 1547-2018 8.1) is NOT subject to ride-through
  (6.1: ride-through shall not inhibit it). The controller's island detection runs
  independently and may call island_trip(method_code), which latches at once whatever
  the ride-through state. Conversely, the island detector should consult ride_through
  so that a ride-through event alone does not make it trip (6.1).
- consecutive-disturbance rules (6.4.2.x) are not modelled: each return to the
  continuous region restarts the ride-through clock.
"""

from controller.clock import ticks_diff
from controller.timing import ConditionalDelay, MovingAverage
from controller.protection.trip_stage import TripStage, UNDER, OVER
from controller.protection.rocof import RocofStage
from controller.protection.vector_shift import VectorShift
from controller.protection.mean_10min import Mean10Min
# names, not the module: once the units are built the profile machinery can be freed
from controller.protection.grid_codes import (MANDATORY, MOMENTARY_CESSATION, PERMISSIVE, STAGE_KEYS,
                                              V_STAGES)

# Trip reasons (16..63; 1..15 are the inverter-reported faults in events.py)
UNDERVOLTAGE_2 = 16
UNDERVOLTAGE_1 = 17
OVERVOLTAGE_2 = 18
OVERVOLTAGE_1 = 19
OVERVOLTAGE_10MIN = 20
UNDERFREQUENCY_2 = 21
UNDERFREQUENCY_1 = 22
OVERFREQUENCY_2 = 23
OVERFREQUENCY_1 = 24
ROCOF = 25
VECTOR_SHIFT = 26
ISLANDING = 27

REASON_NAMES = {
    UNDERVOLTAGE_2: "undervoltage_stage2",
    UNDERVOLTAGE_1: "undervoltage_stage1",
    OVERVOLTAGE_2: "overvoltage_stage2",
    OVERVOLTAGE_1: "overvoltage_stage1",
    OVERVOLTAGE_10MIN: "overvoltage_10min_mean",
    UNDERFREQUENCY_2: "underfrequency_stage2",
    UNDERFREQUENCY_1: "underfrequency_stage1",
    OVERFREQUENCY_2: "overfrequency_stage2",
    OVERFREQUENCY_1: "overfrequency_stage1",
    ROCOF: "rocof",
    VECTOR_SHIFT: "vector_shift",
    ISLANDING: "islanding",
}

_STAGE_REASON = {"uv2": UNDERVOLTAGE_2, "uv1": UNDERVOLTAGE_1, "ov2": OVERVOLTAGE_2, "ov1": OVERVOLTAGE_1,
                 "uf2": UNDERFREQUENCY_2, "uf1": UNDERFREQUENCY_1, "of2": OVERFREQUENCY_2, "of1": OVERFREQUENCY_1}

# Ride-through modes (voltage_mode / frequency_mode)
RT_CONTINUOUS = 0
RT_MANDATORY = 1
RT_PERMISSIVE = 2
RT_MOMENTARY_CESSATION = 3
RT_NOT_REQUIRED = 4  # outside the continuous region with no (more) ride-through required
MODE_NAMES = ("continuous", "mandatory", "permissive", "momentary_cessation", "not_required")
_MODE_CODE = {MANDATORY: RT_MANDATORY, PERMISSIVE: RT_PERMISSIVE, MOMENTARY_CESSATION: RT_MOMENTARY_CESSATION}

# Below this voltage a frequency reading is not taken as a measurement.
FREQ_VALID_MIN_PU = 0.05
# Window of the meter's Rocof signal (GridMeter.Rocof, dbc/meter.dbc).
METER_ROCOF_WINDOW_S = 0.1

def _val(entry):
    """The number of a profile's (value, source) pair, None for an absent entry (as
    grid_codes.value; kept here so that nothing holds the grid_codes module at run time)."""
    return entry[0] if isinstance(entry, tuple) else None



def _bands(bands, lo_key, hi_key):
    """Profile bands as tuples (is_over, lo, hi, mode, t_lo_s, t_hi_s)."""
    out = []
    for b in bands:
        lo, hi = _val(b[lo_key]), _val(b[hi_key])
        t_lo, t_hi = _val(b["t_at_low_s"]), _val(b["t_at_high_s"])
        if lo is None or hi is None or t_lo is None or t_hi is None:
            continue
        out.append((b["side"] == OVER, lo, hi, _MODE_CODE[b["mode"]], t_lo, t_hi))
    return tuple(out)


def _t_at(band, x):
    lo, hi, t_lo, t_hi = band[1], band[2], band[4], band[5]
    if hi <= lo:
        return t_lo
    return t_lo + (x - lo) * (t_hi - t_lo) / (hi - lo)


class _Side:
    """Ride-through clock of one quantity: time since it left the continuous region."""

    __slots__ = ("lo", "hi", "bands", "under_ms", "over_ms", "mode", "required_ms", "active", "over")

    def __init__(self, lo, hi, bands):
        self.lo = lo
        self.hi = hi
        self.bands = bands
        self.clear()

    def clear(self):
        self.under_ms = 0
        self.over_ms = 0
        self.mode = RT_CONTINUOUS
        self.required_ms = 0
        self.active = False
        self.over = False

    def update(self, x, dt_ms):
        if self.lo is None or self.hi is None or (self.lo <= x <= self.hi):
            self.clear()
            return False
        over = x > self.hi
        if self.mode == RT_CONTINUOUS or over != self.over:
            dt_ms = 0  # counted from the first sample outside, like the stages' timers
        self.over = over
        if over:
            self.under_ms = 0
            self.over_ms = e = min(self.over_ms + dt_ms, 1 << 29)
        else:
            self.over_ms = 0
            self.under_ms = e = min(self.under_ms + dt_ms, 1 << 29)
        # the band containing x on this side: (is_over, lo, hi, mode, t_lo, t_hi)
        mode = RT_NOT_REQUIRED
        req = 0
        for b in self.bands:
            if b[0] == over and ((over and b[1] < x <= b[2]) or (not over and b[1] <= x < b[2])):
                mode = b[3]
                req = int(_t_at(b, x) * 1000.0 + 0.5)
                break
        self.required_ms = req
        self.active = mode != RT_NOT_REQUIRED and e < req
        self.mode = mode if self.active else RT_NOT_REQUIRED
        return self.active


class InterfaceProtection:
    """The protection stages of one grid-code profile with ride-through arbitration."""

    __slots__ = ("v_stages", "f_stages", "ov_10min", "rocof_stage", "_rocof_avg", "_rocof_n", "vector_shift",
                 "rocof_immunity_hz_s", "phase_jump_immunity_deg", "_v", "_f", "_last", "_rem_us",
                 "ride_through", "must_trip", "reason", "island_method", "frequency_valid", "rocof_hz_s")

    def __init__(self, profile, meter_period_s=0.01):
        # the profile is read here and not kept: its dicts would hold RAM for nothing
        trip = profile["trip"]
        vs, fs = [], []
        for key in STAGE_KEYS:
            st = trip[key]
            if not isinstance(st, dict):
                continue
            is_v = key in V_STAGES
            thr = _val(st["threshold_pu" if is_v else "threshold_hz"])
            t = _val(st["clearing_time_s"])
            if thr is None or t is None:
                continue
            stage = TripStage(UNDER if key[0] == "u" else OVER, thr, t, st["label"],
                              (st["threshold_pu" if is_v else "threshold_hz"])[1])
            (vs if is_v else fs).append((_STAGE_REASON[key], stage))
        self.v_stages = tuple(vs)
        self.f_stages = tuple(fs)

        m = profile["ov_10min"]
        self.ov_10min = None
        if isinstance(m, dict) and _val(m["threshold_pu"]) is not None:
            self.ov_10min = Mean10Min(_val(m["threshold_pu"]), _val(m["trip_delay_s"]) or 0.0, _val(m["window_s"]),
                                      _val(m["interval_s"]), "ov_10min", m["threshold_pu"][1])

        r = profile["rocof_trip"]
        self.rocof_stage = None
        self._rocof_avg = None
        self._rocof_n = 1
        if isinstance(r, dict) and _val(r["setting_hz_s"]) is not None:
            self.rocof_stage = RocofStage(_val(r["setting_hz_s"]), _val(r["delay_s"]) or 0.0, "rocof",
                                          r["setting_hz_s"][1])
            w = _val(r.get("window_s", (None, ""))) or METER_ROCOF_WINDOW_S
            if w > METER_ROCOF_WINDOW_S:
                # mean of 100 ms ROCOF values over (w - 0.1) s spans df/dt over about w
                self._rocof_n = int((w - METER_ROCOF_WINDOW_S) / meter_period_s + 0.5) + 1
                self._rocof_avg = MovingAverage(self._rocof_n)

        v = profile["vector_shift_trip"]
        setting = _val(v["setting_deg"]) if isinstance(v, dict) else None
        self.vector_shift = VectorShift(setting, _val(profile["f_nom_hz"]), "vector_shift",
                                        v["setting_deg"][1] if isinstance(v, dict) else "")

        self.rocof_immunity_hz_s = _val(profile["rocof_ride_through"]["hz_s"])
        self.phase_jump_immunity_deg = _val(profile["phase_jump_ride_through"]["positive_sequence_deg"])
        vc, fc = profile["v_continuous"], profile["f_continuous"]
        self._v = _Side(_val(vc["low_pu"]), _val(vc["high_pu"]), _bands(profile["v_ride_through"], "low_pu", "high_pu"))
        self._f = _Side(_val(fc["low_hz"]), _val(fc["high_hz"]), _bands(profile["f_ride_through"], "low_hz", "high_hz"))
        self.reset()

    # --- state visible to the controller --------------------------------------
    @property
    def voltage_mode(self):
        return self._v.mode

    @property
    def frequency_mode(self):
        return self._f.mode

    @property
    def jump_deg(self):
        return self.vector_shift.jump_deg

    def reset(self):
        """Re-arm after a trip (call once the enter-service conditions hold again)."""
        for _, s in self.v_stages:
            s.reset()
        for _, s in self.f_stages:
            s.reset()
        if self.ov_10min is not None:
            self.ov_10min.reset()
        self._reset_frequency_units()
        self._v.clear()
        self._f.clear()
        self._last = None
        self._rem_us = 0
        self.ride_through = False
        self.must_trip = False
        self.reason = 0
        self.island_method = 0
        self.frequency_valid = False
        self.rocof_hz_s = 0.0

    def restart(self):
        """The meter went silent (its input timed out): what happened in the gap is
        unknown, so the stage timers, ride-through clocks and measuring windows start
        again with the next sample. A latched trip stays latched, and the 10-minute mean
        keeps its history (it counts a gap as one interval at the last voltage)."""
        for _, s in self.v_stages:
            s.reset()
        self._reset_frequency_units()
        self._v.clear()
        self._f.clear()
        self._last = None
        self._rem_us = 0
        self.frequency_valid = False
        if not self.must_trip:
            self.ride_through = False

    def _reset_frequency_units(self):
        for _, s in self.f_stages:
            s.reset()
        if self.rocof_stage is not None:
            self.rocof_stage.reset()
        if self._rocof_avg is not None:
            self._rocof_avg = MovingAverage(self._rocof_n)  # rare (loss of voltage, reset)
        self.vector_shift.reset()

    def island_trip(self, method_code):
        """Latch a trip for an unintentional island (IEEE 1547-2018 8.1): never held by
        ride-through. Returns the reason in force (the first one if already tripped)."""
        if not self.must_trip:
            self.must_trip = True
            self.reason = ISLANDING
            self.island_method = method_code
            self.ride_through = False
        return self.reason

    def update(self, v_pu, f_hz, rocof_hz_s, phase_deg, now):
        """Feed one meter sample; returns the trip reason (0 = none)."""
        last = self._last
        self._last = now
        dt_ms = 0
        if last is not None:
            d = ticks_diff(now, last)
            if d > 0:
                d += self._rem_us
                dt_ms = d // 1000
                self._rem_us = d - dt_ms * 1000

        for _, s in self.v_stages:
            s.update(v_pu, now)
        if self.ov_10min is not None:
            self.ov_10min.update(v_pu, now)

        f_ok = f_hz > 0.0 and v_pu >= FREQ_VALID_MIN_PU
        if f_ok != self.frequency_valid and not f_ok:
            self._reset_frequency_units()
        self.frequency_valid = f_ok
        rocof_held = False
        jump_held = False
        if f_ok:
            for _, s in self.f_stages:
                s.update(f_hz, now)
            r = rocof_hz_s
            if self._rocof_avg is not None:
                r = self._rocof_avg.update(r)
            self.rocof_hz_s = r
            imm = self.rocof_immunity_hz_s
            if self.rocof_stage is not None:
                self.rocof_stage.update(r, now)
                rocof_held = self.rocof_stage.picked_up and imm is not None and -imm <= r <= imm
            self.vector_shift.update(phase_deg, f_hz, now)
            pj = self.phase_jump_immunity_deg
            j = self.vector_shift.jump_deg
            jump_held = self.vector_shift.tripped and pj is not None and -pj <= j <= pj
            f_rt = self._f.update(f_hz, dt_ms)
        else:
            self.rocof_hz_s = 0.0
            self._f.clear()
            f_rt = False
        v_rt = self._v.update(v_pu, dt_ms)

        if self.must_trip:
            self.ride_through = False
            return self.reason
        self.ride_through = v_rt or f_rt or rocof_held or jump_held

        reason = 0
        side = self._v
        for code, s in self.v_stages:
            if s.tripped and not (v_rt and side.over == (s.kind == OVER)):
                reason = code
                break
        if not reason and self.ov_10min is not None and self.ov_10min.tripped:
            reason = OVERVOLTAGE_10MIN
        if not reason and f_ok:
            side = self._f
            for code, s in self.f_stages:
                if s.tripped and not (f_rt and side.over == (s.kind == OVER)):
                    reason = code
                    break
            if not reason and self.rocof_stage is not None and self.rocof_stage.tripped and not rocof_held:
                reason = ROCOF
            if not reason and self.vector_shift.tripped and not jump_held:
                reason = VECTOR_SHIFT
        if reason:
            self.must_trip = True
            self.reason = reason
            self.ride_through = False
        return reason


class EnterService:
    """Enter-service / reconnection criterion (IEEE 1547-2018 4.10; EN 50549-1 4.10):
    update(v_pu, f_hz, now) is True once voltage and frequency have stayed inside the
    profile's window continuously for its delay (observation time).

    The power during entering service (IEEE 1547-2018 4.10.3: output rises no faster
    than rated power over the enter-service period; EN 50549-1 4.10: a gradient of at
    most 10 % of rated power per minute after reconnection): start_ramp(rated_w, now)
    when the unit enters service; output_cap(now) is then the AC output allowed, rising
    linearly from 0 to rated_w over ramp_time_s, and None once the ramp has ended (or
    none was started). Wrap-safe for any ramp time: the cap adds up the time between
    calls, which the caller makes every control period."""

    __slots__ = ("v_lo", "v_hi", "f_lo", "f_hi", "ramp_time_s", "_delay", "_rated", "_ramp_us", "_elapsed", "_last")

    def __init__(self, profile):
        es = profile["enter_service"]
        vals = [_val(es[k]) for k in ("v_low_pu", "v_high_pu", "f_low_hz", "f_high_hz", "delay_s", "ramp_time_s")]
        for x in vals:
            if x is None:
                raise ValueError("profile %s has no sourced enter-service settings; configure them" % profile["name"])
        self.v_lo, self.v_hi, self.f_lo, self.f_hi, delay_s, self.ramp_time_s = vals
        self._delay = ConditionalDelay(int(delay_s * 1000000.0 + 0.5))
        self._rated = 0.0
        self._ramp_us = int(self.ramp_time_s * 1000000.0 + 0.5)
        self._elapsed = 0
        self._last = None  # ticks of the last output_cap() call while a ramp runs

    def start_ramp(self, rated_w, now):
        """Entering service now: the output cap starts from zero."""
        self._rated = rated_w
        self._elapsed = 0
        self._last = now

    def stop_ramp(self):
        """Out of service (a trip): no cap until the next start_ramp()."""
        self._last = None

    def output_cap(self, now):
        """AC output allowed now (W), or None when no enter-service ramp is running."""
        if self._last is None:
            return None
        d = ticks_diff(now, self._last)
        self._last = now
        if d > 0:
            self._elapsed += d  # an integer count of microseconds: exact, and no ticks wrap
        if self._elapsed >= self._ramp_us:
            self._last = None
            return None
        return self._rated * self._elapsed / self._ramp_us

    def update(self, v_pu, f_hz, now):
        ok = self.v_lo <= v_pu <= self.v_hi and self.f_lo <= f_hz <= self.f_hi
        return self._delay.update(ok, now)

    def reset(self):
        self._delay.reset()
