"""InterfaceProtection: stages of a profile, no-voltage handling, ride-through arbitration,
and the shared scenarios' disturbances fed as meter samples (MicroPython and CPython)."""

from controller.clock import TICKS_MAX, ticks_add
from controller.protection import grid_codes
from controller.protection import interface_protection as ipm
from controller.protection.interface_protection import InterfaceProtection, EnterService
from controller.protection.ride_through_check import conflicts

STEP = 10000  # 10 ms meter period


def _wrap(deg):
    return (deg + 180.0) % 360.0 - 180.0


class Meter:
    """Synthetic GridMeter samples every 10 ms, measured like the meter in dbc/meter.dbc:
    RMS voltage over the last full cycle, frequency 20 ms late (zero crossings over a
    window), ROCOF over 100 ms in 0.05 Hz/s steps, PhaseAngle of L1 against a free-running
    nominal-frequency reference in 0.1 deg steps, 1 mHz frequency steps."""

    def __init__(self, v_true, f_true, f_nom=50.0):
        self.v_true = v_true
        self.f_true = f_true
        self.f_nom = f_nom
        self.theta = 0.0
        self.t = 0.0

    def _f_meas(self, t):
        return round(self.f_true(t - 0.02) * 1000.0) / 1000.0

    def sample(self):
        """Advance 10 ms; returns (v_pu, f_hz, rocof_hz_s, phase_deg)."""
        for i in range(10):  # angle: integrate the true frequency in 1 ms steps
            self.theta += 360.0 * (self.f_true(self.t + (i + 0.5) * 0.001) - self.f_nom) * 0.001
        self.t = round((self.t + 0.01) * 1000.0) / 1000.0
        t = self.t
        cyc = 1.0 / self.f_nom
        acc = 0.0
        for i in range(20):
            v = self.v_true(t - cyc + (i + 0.5) * cyc / 20.0)
            acc += v * v
        v = (acc / 20.0) ** 0.5
        f = self._f_meas(t)
        rocof = round((f - self._f_meas(t - 0.1)) / 0.1 / 0.05) * 0.05
        phase = round(_wrap(self.theta) * 10.0) / 10.0
        return v, f, rocof, phase


def _run(ip, meter, seconds, t0=0):
    """Feed the meter's samples; returns (first reason or 0, its time in s, samples with ride_through)."""
    rt = 0
    for k in range(1, int(seconds * 100 + 0.5) + 1):
        v, f, r, a = meter.sample()
        reason = ip.update(v, f, r, a, ticks_add(t0, k * STEP))
        if reason:
            return reason, k * 0.01, rt
        if ip.ride_through:
            rt += 1
    return 0, None, rt


def _const(x):
    return lambda t: x


# --- the shared scenarios -----------------------------------------------------

def _sag(t):
    return 0.7 if 1.0 <= t < 1.5 else 1.0


def test_voltage_sag_ride_through_scenario_en50549():
    # ../shared/scenarios/voltage-sag-ride-through.json: 0.5 s at 0.7 pu, EN50549-1
    ip = InterfaceProtection(grid_codes.profile("EN50549-1", 50.0))
    m = Meter(_sag, _const(50.0))
    modes = []
    for k in range(1, 401):
        v, f, r, a = m.sample()
        assert ip.update(v, f, r, a, k * STEP) == 0
        modes.append((ip.ride_through, ip.voltage_mode))
    during = modes[105:150]  # 1.06 .. 1.50 s
    assert all(rt and mode == ipm.RT_MANDATORY for rt, mode in during)
    assert modes[-1] == (False, ipm.RT_CONTINUOUS)
    assert not ip.must_trip


def test_voltage_sag_no_profile_trips():
    for name in grid_codes.NAMES:
        for fn in (50.0, 60.0):
            ip = InterfaceProtection(grid_codes.profile(name, fn))
            reason, at, rt = _run(ip, Meter(_sag, _const(fn), fn), 4.0)
            assert reason == 0, (name, fn, reason, at)
            assert rt > 40, (name, rt)  # every profile has a ride-through band covering 0.7 pu


def _ramp(t):
    # ../shared/scenarios/rocof-ride-through.json: 2 Hz/s down to 49.0 Hz and back
    if t < 1.0:
        return 50.0
    if t < 1.5:
        return 50.0 - 2.0 * (t - 1.0)
    if t < 3.0:
        return 49.0
    if t < 3.5:
        return 49.0 + 2.0 * (t - 3.0)
    return 50.0


def test_rocof_ride_through_scenario_en50549():
    ip = InterfaceProtection(grid_codes.profile("EN50549-1", 50.0))
    m = Meter(_const(1.0), _ramp)
    worst_rocof = worst_jump = 0.0
    lowest = 50.0
    for k in range(1, 601):
        v, f, r, a = m.sample()
        assert ip.update(v, f, r, a, k * STEP) == 0
        worst_rocof = max(worst_rocof, abs(ip.rocof_hz_s))
        worst_jump = max(worst_jump, abs(ip.jump_deg))
        lowest = min(lowest, f)
        assert ip.frequency_mode == ipm.RT_CONTINUOUS  # 49.0 Hz is inside 49.0-51.0 Hz
    assert abs(worst_rocof - 2.0) < 1e-9  # what the meter reports: the immunity value itself
    assert worst_jump < 0.5  # a ramp is no phase jump
    assert abs(lowest - 49.0) < 1e-9


def test_rocof_scenario_with_a_rocof_stage_above_the_immunity():
    # a DSO-configured LoM ROCOF stage must sit above the 2 Hz/s immunity (conflicts() checks it)
    p = grid_codes.profile("EN50549-1", 50.0)
    p["rocof_trip"] = {"setting_hz_s": (2.5, "test: DSO setting"), "delay_s": (0.0, "test"),
                       "window_s": (0.5, "test")}
    assert conflicts(p) == []
    ip = InterfaceProtection(p)
    reason, at, rt = _run(ip, Meter(_const(1.0), _ramp), 6.0)
    assert reason == 0


def test_rocof_scenario_other_profiles():
    for name in grid_codes.NAMES:
        ip = InterfaceProtection(grid_codes.profile(name, 50.0))
        reason, at, rt = _run(ip, Meter(_const(1.0), _ramp), 6.0)
        assert reason == 0, (name, reason, at)


# --- stages, no voltage, arbitration ------------------------------------------

def _feed(ip, v, f, seconds, t0=0, rocof=0.0, phase=0.0, step=STEP):
    """Constant sample values; returns (reason, time in s) of the first trip, and the ride-through trace."""
    trace = []
    k = 0
    while k * step <= seconds * 1000000:
        reason = ip.update(v, f, rocof, phase, ticks_add(t0, k * step))
        trace.append(ip.ride_through)
        if reason:
            return reason, k * step / 1000000.0, trace
        k += 1
    return 0, None, trace


def test_reason_codes():
    codes = [getattr(ipm, n) for n in ("UNDERVOLTAGE_1", "UNDERVOLTAGE_2", "OVERVOLTAGE_1", "OVERVOLTAGE_2",
                                       "OVERVOLTAGE_10MIN", "UNDERFREQUENCY_1", "UNDERFREQUENCY_2",
                                       "OVERFREQUENCY_1", "OVERFREQUENCY_2", "ROCOF", "VECTOR_SHIFT", "ISLANDING")]
    assert len(set(codes)) == len(codes)
    for c in codes:
        assert 16 <= c <= 63 and c in ipm.REASON_NAMES
    assert len(ipm.REASON_NAMES) == len(codes)
    assert ipm.REASON_NAMES[ipm.UNDERVOLTAGE_1] == "undervoltage_stage1"


def test_no_voltage_is_undervoltage_not_underfrequency():
    ip = InterfaceProtection(grid_codes.profile("EN50549-1", 50.0))
    reason, at, rt = _feed(ip, 0.0, 0.0, 5.0)
    assert reason == ipm.UNDERVOLTAGE_2 and abs(at - 0.40) < 1e-9  # U<< 0.20 pu / 0.40 s
    assert not ip.frequency_valid and not any(rt)  # below U_ret = 0.15 pu: no ride-through
    ip = InterfaceProtection(grid_codes.profile("IEEE1547-2018-CatII", 60.0))
    reason, at, rt = _feed(ip, 0.0, 0.0, 5.0)
    assert reason == ipm.UNDERVOLTAGE_2 and abs(at - 0.16) < 1e-9


def test_no_voltage_cat3_momentary_cessation_then_trip():
    # Cat III: V < 0.50 pu is momentary cessation for 1 s, then UV2 (0.50 pu, 2 s) clears
    ip = InterfaceProtection(grid_codes.profile("IEEE1547-2018-CatIII", 60.0))
    reason, at, rt = _feed(ip, 0.0, 0.0, 5.0)
    assert reason == ipm.UNDERVOLTAGE_2 and abs(at - 2.0) < 1e-9
    assert all(rt[1:100]) and not any(rt[101:])


def test_undervoltage_ride_through_then_stage1():
    # EN50549-1 at 0.5 pu: UVRT duration 0.15 + (0.5-0.15)/0.7*2.85 = 1.575 s, U< trips at 3.0 s
    ip = InterfaceProtection(grid_codes.profile("EN50549-1", 50.0))
    reason, at, rt = _feed(ip, 0.5, 50.0, 5.0)
    assert reason == ipm.UNDERVOLTAGE_1 and abs(at - 3.0) < 1e-9
    assert all(rt[:158]) and not any(rt[158:])
    assert ip.must_trip and ip.reason == reason


def test_conflicting_stage_is_held_until_the_ride_through_ends():
    p = grid_codes.profile("EN50549-1", 50.0)
    p["trip"]["uv1"]["clearing_time_s"] = (0.5, "test: a DSO setting that cuts into the UVRT curve")
    assert len(conflicts(p)) == 1
    ip = InterfaceProtection(p)
    reason, at, rt = _feed(ip, 0.7, 50.0, 5.0)
    # the stage times out at 0.5 s but 0.7 pu must be ridden through for 2.389 s
    assert reason == ipm.UNDERVOLTAGE_1 and abs(at - 2.39) < 1e-9
    assert all(rt[:-1])


def test_ride_through_clock_starts_at_the_first_sample_outside():
    p = grid_codes.profile("EN50549-1", 50.0)
    p["trip"]["uv1"]["clearing_time_s"] = (0.5, "test: conflicting setting")
    ip = InterfaceProtection(p)
    t0 = TICKS_MAX - 1500000
    for k in range(100):  # 1 s healthy
        assert ip.update(1.0, 50.0, 0.0, 0.0, ticks_add(t0, k * STEP)) == 0
    for k in range(100, 400):
        r = ip.update(0.7, 50.0, 0.0, 0.0, ticks_add(t0, k * STEP))
        if r:
            break
    assert r == ipm.UNDERVOLTAGE_1 and k == 100 + 239  # 2.39 s after the sag began


def test_frequency_stage_and_band():
    ip = InterfaceProtection(grid_codes.profile("EN50549-1", 50.0))
    reason, at, rt = _feed(ip, 1.0, 47.4, 1.0)
    assert reason == ipm.UNDERFREQUENCY_1 and abs(at - 0.1) < 1e-9
    ip = InterfaceProtection(grid_codes.profile("EN50549-1", 50.0))
    reason, at, rt = _feed(ip, 1.0, 47.5, 60.0, step=100000)  # at the threshold: inside the 30 min band
    assert reason == 0 and all(rt[1:]) and ip.frequency_mode == ipm.RT_MANDATORY
    ip = InterfaceProtection(grid_codes.profile("IEEE1547-2018-CatII", 60.0))
    reason, at, rt = _feed(ip, 1.0, 62.1, 1.0)
    assert reason == ipm.OVERFREQUENCY_2 and abs(at - 0.16) < 1e-9
    ip = InterfaceProtection(grid_codes.profile("IEEE1547-2018-CatII", 50.0))
    reason, at, rt = _feed(ip, 1.0, 51.7, 1.0)  # 62.0 Hz converted to 51.67 Hz
    assert reason == ipm.OVERFREQUENCY_2


def test_losing_voltage_resets_the_frequency_stages():
    ip = InterfaceProtection(grid_codes.profile("EN50549-1", 50.0))
    t = 0
    for _ in range(8):
        assert ip.update(1.0, 47.4, 0.0, 0.0, t) == 0
        t += STEP
    assert ip.update(0.0, 0.0, 0.0, 0.0, t) == 0  # 10 ms without voltage
    t += STEP
    for k in range(10):  # the 0.1 s f< timer starts again
        assert ip.update(1.0, 47.4, 0.0, 0.0, t) == 0
        t += STEP
    assert ip.update(1.0, 47.4, 0.0, 0.0, t) == ipm.UNDERFREQUENCY_1


def test_overvoltage_10min_mean():
    ip = InterfaceProtection(grid_codes.profile("EN50549-1", 50.0))
    reason, at, rt = _feed(ip, 1.12, 50.0, 10.0, step=100000)
    assert reason == ipm.OVERVOLTAGE_10MIN and abs(at - 3.0) < 1e-9
    ip = InterfaceProtection(grid_codes.profile("IEEE1547-2018-CatII", 60.0))
    assert ip.ov_10min is None


def test_island_trip_is_not_blocked_by_ride_through():
    ip = InterfaceProtection(grid_codes.profile("EN50549-1", 50.0))
    for k in range(50):
        assert ip.update(0.7, 50.0, 0.0, 0.0, k * STEP) == 0
    assert ip.ride_through
    assert ip.island_trip(3) == ipm.ISLANDING
    assert ip.must_trip and ip.island_method == 3 and not ip.ride_through
    assert ip.update(0.7, 50.0, 0.0, 0.0, 50 * STEP) == ipm.ISLANDING  # latched
    assert ip.island_trip(4) == ipm.ISLANDING and ip.island_method == 3
    ip.reset()
    assert not ip.must_trip and ip.reason == 0
    assert ip.update(1.0, 50.0, 0.0, 0.0, 60 * STEP) == 0


def test_rocof_stage_plumbing():
    p = grid_codes.profile("EN50549-1", 50.0)
    p["rocof_trip"] = {"setting_hz_s": (2.5, "test"), "delay_s": (0.1, "test"), "window_s": (0.5, "test")}
    ip = InterfaceProtection(p)
    reason, at, rt = _feed(ip, 1.0, 50.0, 5.0, rocof=2.0)
    assert reason == 0
    ip = InterfaceProtection(p)
    reason, at, rt = _feed(ip, 1.0, 50.0, 5.0, rocof=-3.0)
    assert reason == ipm.ROCOF and abs(at - 0.1) < 1e-9


def test_vector_shift_stage_plumbing():
    p = grid_codes.profile("IEEE1547-2018-CatII", 60.0)
    p["vector_shift_trip"] = {"setting_deg": (25.0, "test: above the 20 deg immunity")}
    assert conflicts(p) == []
    for jump, expect in ((15.0, 0), (30.0, ipm.VECTOR_SHIFT)):
        ip = InterfaceProtection(p)
        got = 0
        for k in range(100):
            got = ip.update(1.0, 60.0, 0.0, jump if k >= 50 else 0.0, k * STEP)
            if got:
                break
        assert got == expect, (jump, got)


def test_tick_wrap():
    ip = InterfaceProtection(grid_codes.profile("EN50549-1", 50.0))
    reason, at, rt = _feed(ip, 0.0, 0.0, 2.0, t0=TICKS_MAX - 200000)
    assert reason == ipm.UNDERVOLTAGE_2 and abs(at - 0.40) < 1e-9


def test_enter_service():
    es = EnterService(grid_codes.profile("IEEE1547-2018-CatII", 60.0))
    assert es.ramp_time_s == 300.0
    ok_at = None
    for k in range(400):
        if es.update(1.0, 60.0, k * 1000000) and ok_at is None:
            ok_at = k
    assert ok_at == 300
    es.reset()
    for k in range(400):
        assert not es.update(0.9, 60.0, k * 1000000)  # below 0.917 pu
    es = EnterService(grid_codes.profile("EN50549-1", 50.0))
    assert not es.update(1.0, 50.0, 0) and es.update(1.0, 50.0, 60000000)
    assert not es.update(1.0, 50.3, 61000000)
    dk = EnterService(grid_codes.profile("DK-EN50549-1", 50.0))  # the EN values, labelled as stand-ins
    assert not dk.update(1.0, 50.0, 0) and dk.update(1.0, 50.0, 60000000)


def test_enter_service_ramp_is_linear_then_ends_across_a_ticks_wrap():
    es = EnterService(grid_codes.profile("EN50549-1", 50.0))  # 600 s: 10 % of rated per minute
    assert es.output_cap(0) is None  # no ramp before one is started
    t = TICKS_MAX - 300 * 1000000  # the ticks wrap halfway through the ramp
    es.start_ramp(11000.0, t)
    worst = 0.0
    for k in range(1, 60000):  # 600 s in 10 ms periods
        c = es.output_cap(ticks_add(t, k * 10000))
        worst = max(worst, abs(c - 11000.0 * k / 60000))
        if k == 6000:
            assert abs(c - 1100.0) < 1e-6  # one minute: 10 % of rated
    assert worst < 1e-6  # linear all the way, across the wrap
    assert es.output_cap(ticks_add(t, 600000000)) is None  # at rated power the ramp has ended
    assert es.output_cap(ticks_add(t, 600010000)) is None
    es = EnterService(grid_codes.profile("IEEE1547-2018-CatII", 60.0))  # 300 s enter-service period
    es.start_ramp(6000.0, 0)
    assert abs(es.output_cap(150000000) - 3000.0) < 1e-6
    es.stop_ramp()  # a trip takes the unit out of service: no cap until the next entry
    assert es.output_cap(160000000) is None
    es.start_ramp(6000.0, 200000000)
    assert es.output_cap(200000000) == 0.0
