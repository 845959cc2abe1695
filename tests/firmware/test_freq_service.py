"""controller/grid_support/freq_service.py: frequency-response services and their curve
frames. Runs under MicroPython (mp_run.py) and CPython (pytest)."""

from controller.clock import TICKS_PERIOD, ticks_add
from controller.grid_support import freq_service as fs
from controller.grid_support.freq_service import CurveAssembler, FrequencyService

PERIOD = 10000  # us: one grid sample
P_MAX = 11000.0
P_MIN = -11000.0
# an FFR-like curve: nothing above 49.7 Hz, 11 kW more export at 49.5 Hz and below
FFR_F = (49.5, 49.7)
FFR_DP = (11000.0, 0.0)


def _svc(f=FFR_F, dp=FFR_DP, baseline=0.0, valid_s=60, kind=fs.KIND_FFR, now=0):
    s = FrequencyService()
    s.load(f, dp, baseline, valid_s, kind, now)
    return s


def _run(s, f, seconds, t, soc=80.0, reserve=20.0, cap=60.0, p_min=P_MIN, p_max=P_MAX):
    p = None
    for _ in range(int(seconds * 1000000 // PERIOD)):
        t = ticks_add(t, PERIOD)
        p = s.update(f, soc, reserve, cap, p_min, p_max, t)
    return p, t


def _raises(fn, *args):
    try:
        fn(*args)
    except ValueError:
        return True
    return False


def test_curve_is_followed_on_every_sample_linear_and_flat_beyond_the_ends():
    s = _svc()
    assert s.update(50.0, 80.0, 20.0, 60.0, P_MIN, P_MAX, 0) == 0
    assert s.update(49.7, 80.0, 20.0, 60.0, P_MIN, P_MAX, PERIOD) == 0
    assert s.update(49.6, 80.0, 20.0, 60.0, P_MIN, P_MAX, 2 * PERIOD) == 5500  # half way, the same sample
    assert s.update(49.5, 80.0, 20.0, 60.0, P_MIN, P_MAX, 3 * PERIOD) == 11000
    assert s.update(48.0, 80.0, 20.0, 60.0, P_MIN, P_MAX, 4 * PERIOD) == 11000  # flat below the first point
    assert s.update(49.65, 80.0, 20.0, 60.0, P_MIN, P_MAX, 5 * PERIOD) == 2750


def test_baseline_and_a_symmetric_curve():
    # FCR-N-like: 49.9 Hz +4 kW, 50.1 Hz -4 kW around a 2 kW export baseline
    s = _svc(f=(49.9, 50.0, 50.1), dp=(4000.0, 0.0, -4000.0), baseline=2000.0, kind=fs.KIND_FCR_N)
    assert s.update(50.0, 80.0, 20.0, 60.0, P_MIN, P_MAX, 0) == 2000
    assert s.update(50.05, 80.0, 20.0, 60.0, P_MIN, P_MAX, PERIOD) == 0
    assert s.update(50.2, 80.0, 20.0, 60.0, P_MIN, P_MAX, 2 * PERIOD) == -2000  # charging
    assert s.update(49.95, 80.0, 20.0, 60.0, P_MIN, P_MAX, 3 * PERIOD) == 4000


def test_no_service_gives_none():
    s = FrequencyService()
    assert s.update(49.5, 80.0, 20.0, 60.0, P_MIN, P_MAX, 0) is None
    assert s.endurance_s is None and s.last_activation_s is None


def test_validity_expires_and_a_new_load_renews_it():
    s = _svc(valid_s=2)
    p, t = _run(s, 49.5, 1.99, 0)
    assert p == 11000
    p, t = _run(s, 49.5, 0.02, t)
    assert p is None and not s.in_force
    s.load(FFR_F, FFR_DP, 0.0, 2, fs.KIND_FFR, t)  # renewed from now
    p, t = _run(s, 49.5, 1.5, t)
    assert p == 11000
    s.load(FFR_F, FFR_DP, 0.0, 2, fs.KIND_FFR, t)
    p, t = _run(s, 49.5, 1.5, t)  # 3 s after the first reload: still in force
    assert p == 11000


def test_validity_is_right_across_a_ticks_wrap():
    t0 = TICKS_PERIOD - 500000
    s = _svc(valid_s=1, now=t0)
    p, t = _run(s, 49.5, 0.99, t0)
    assert p == 11000
    p, t = _run(s, 49.5, 0.02, t)
    assert p is None


def test_cancel():
    s = _svc()
    p, t = _run(s, 49.5, 0.1, 0)
    assert p == 11000
    s.cancel()
    assert s.update(49.5, 80.0, 20.0, 60.0, P_MIN, P_MAX, t + PERIOD) is None


def test_the_callers_limits_bound_the_result():
    s = _svc()
    p, t = _run(s, 49.5, 0.1, 0, p_max=3000.0)
    assert p == 3000.0
    s2 = _svc(f=(50.1, 50.5), dp=(0.0, -11000.0), kind=fs.KIND_FCR_D_DOWN)
    p, t = _run(s2, 50.5, 0.1, 0, p_min=-7000.0)
    assert p == -7000.0
    # the caller's limits win even over the reserve rule: a p_min above zero holds
    p, t = _run(s2, 50.0, 0.1, t, soc=10.0, p_min=500.0)
    assert p == 500.0


def test_the_reserve_stops_discharge_but_not_charging():
    s = _svc(f=(49.5, 49.9, 50.1, 50.5), dp=(6000.0, 0.0, 0.0, -6000.0), kind=fs.KIND_CUSTOM)
    p, t = _run(s, 49.5, 0.1, 0, soc=20.1, reserve=20.0)
    assert p == 6000
    p, t = _run(s, 49.5, 0.1, t, soc=20.0, reserve=20.0)
    assert p == 0
    p, t = _run(s, 50.5, 0.1, t, soc=20.0, reserve=20.0)
    assert p == -6000  # charging is allowed at the reserve
    p, t = _run(s, 50.5, 0.1, t, soc=100.0, reserve=20.0)
    assert p == 0  # ... and not when full


def test_energy_accounting_both_directions():
    s = _svc(f=(49.5, 49.9, 50.1, 50.5), dp=(6000.0, 0.0, 0.0, -3600.0), kind=fs.KIND_CUSTOM, valid_s=600)
    _, t = _run(s, 50.0, 1.0, 0)
    _, t = _run(s, 49.5, 60.0, t)  # 6 kW for a minute: 100 Wh up (the first sample's command
    _, t = _run(s, 50.5, 60.0, t)  # holds from it on), then 3.6 kW for a minute: 60 Wh down
    _, t = _run(s, 50.0, 1.0, t)
    assert abs(s.energy_up_wh - 100.0) < 0.01, s.energy_up_wh
    assert abs(s.energy_down_wh - 60.0) < 0.01, s.energy_down_wh


def test_energy_over_a_long_gap_between_updates():
    s = _svc(valid_s=3600)
    s.update(49.5, 80.0, 20.0, 60.0, P_MIN, P_MAX, 0)
    s.update(49.5, 80.0, 20.0, 60.0, P_MIN, P_MAX, 300 * 1000000)  # five minutes at 11 kW
    assert abs(s.energy_up_wh - 11000.0 * 300 / 3600) < 0.01


def test_no_energy_is_counted_without_a_service():
    s = _svc(valid_s=1)
    _, t = _run(s, 49.5, 3.0, 0)
    # commanded from the first sample (10 ms) to the expiry (1 s), then nothing
    assert abs(s.energy_up_wh - 11000.0 * 0.99 / 3600) < 1e-6, s.energy_up_wh


def test_activation_is_recorded_from_leaving_the_zero_band():
    s = _svc()
    _, t = _run(s, 50.0, 1.0, 0)
    assert s.activations == 0 and s.last_activation_s is None
    _, t = _run(s, 49.5, 1.0, t)
    assert s.activations == 1 and s.last_activation_s == 0.0  # no filter: at once
    _, t = _run(s, 50.0, 1.0, t)
    # limited to 30 % at first: 90 % is reached only when the limit goes
    _, t = _run(s, 49.5, 0.5, t, p_max=3300.0)
    assert s.activations == 2 and s.last_activation_s == 0.0  # unchanged: the second is not there yet
    _, t = _run(s, 49.5, 0.5, t)
    assert s.activations == 2 and abs(s.last_activation_s - 0.5) < 0.011


def test_endurance_from_soc_reserve_and_full_activation():
    s = _svc(f=(49.5, 49.9), dp=(10000.0, 0.0), kind=fs.KIND_FCR_D_UP)
    s.update(50.0, 30.0, 20.0, 60.0, P_MIN, P_MAX, 0)
    assert abs(s.energy_above_reserve_kwh - 6.0) < 1e-9
    assert abs(s.endurance_s - 6.0 * 3600 / 10.0) < 1e-6  # 6 kWh at 10 kW: 36 min
    assert s.endurance_ok()  # FCR-D: 20 min
    s.update(50.0, 22.0, 20.0, 60.0, P_MIN, 5000.0, PERIOD)  # 1.2 kWh at 5 kW (the limit): 14.4 min
    assert abs(s.endurance_s - 864.0) < 1e-6
    assert not s.endurance_ok()
    s.update(50.0, 19.0, 20.0, 60.0, P_MIN, P_MAX, 2 * PERIOD)
    assert s.energy_above_reserve_kwh == 0.0 and s.endurance_s == 0.0
    down = _svc(f=(50.1, 50.5), dp=(0.0, -12000.0), kind=fs.KIND_FCR_D_DOWN)
    down.update(50.0, 90.0, 20.0, 60.0, P_MIN, P_MAX, 0)
    assert down.endurance_s is None  # never discharges
    assert abs(down.endurance_down_s - 6.0 * 3600 / 11.0) < 1e-6  # bounded by p_min


def test_bad_curves_are_refused_and_change_nothing():
    s = _svc()
    assert _raises(s.load, (49.5,), (1.0,), 0.0, 10, fs.KIND_FFR, 0)
    assert _raises(s.load, (49.7, 49.5), (0.0, 1.0), 0.0, 10, fs.KIND_FFR, 0)
    assert _raises(s.load, (49.5, 49.5), (0.0, 1.0), 0.0, 10, fs.KIND_FFR, 0)
    assert _raises(s.load, FFR_F, FFR_DP, 0.0, 0, fs.KIND_FFR, 0)
    assert _raises(s.load, FFR_F, FFR_DP, 0.0, 10, fs.KIND_NONE, 0)
    assert _raises(s.load, FFR_F, FFR_DP, 0.0, 10, 6, 0)
    assert _raises(s.load, tuple(49.0 + 0.1 * i for i in range(9)), (0.0,) * 9, 0.0, 10, fs.KIND_CUSTOM, 0)
    assert s.update(49.5, 80.0, 20.0, 60.0, P_MIN, P_MAX, PERIOD) == 11000  # the first curve holds


# ---------------------------------------------------------------- the curve's frames

def _asm():
    s = FrequencyService()
    return s, CurveAssembler(s)


def _send(a, points, curve_id=3, kind=fs.KIND_FFR, baseline=0, valid=30, order=None, now=0):
    """A header, then the points (battery convention, as on the bus) in `order`; the
    reasons returned."""
    r = [a.on_header(kind, curve_id, len(points), baseline, valid, now)]
    for i in (order if order is not None else range(len(points))):
        r.append(a.on_point(curve_id, i, points[i][0], points[i][1], now + 100 * (len(r))))
    return r


def test_a_proper_set_is_loaded_in_the_generator_convention():
    s, a = _asm()
    r = _send(a, [(49.5, -11000), (49.7, 0)], baseline=1000)  # export 11 kW more; baseline: charging 1 kW
    assert r == [fs.R_OK] * 3 and a.loaded == 1 and a.refused == 0
    assert s.kind == fs.KIND_FFR and s.curve_id == 3 and s.valid_s == 30
    assert s.update(49.5, 80.0, 20.0, 60.0, P_MIN, P_MAX, 1000) == 10000  # -1000 + 11000
    assert s.update(50.0, 80.0, 20.0, 60.0, P_MIN, P_MAX, 2000) == -1000


def test_points_out_of_order_are_accepted():
    s, a = _asm()
    pts = [(49.0, -8000), (49.5, -4000), (49.9, 0), (50.1, 0), (50.5, 4000), (51.0, 8000)]
    r = _send(a, pts, kind=fs.KIND_CUSTOM, order=(3, 0, 5, 1, 4, 2))
    assert r == [fs.R_OK] * 7 and a.loaded == 1
    assert s.n == 6 and s.update(50.75, 80.0, 20.0, 60.0, P_MIN, P_MAX, 0) == -6000


def test_inconsistent_sets_are_refused_with_their_reason():
    s, a = _asm()
    assert a.on_point(3, 0, 49.5, -1000, 0) == fs.R_NO_HEADER
    assert _send(a, [(49.7, 0), (49.5, -1000)])[-1] == fs.R_ORDER
    assert _send(a, [(49.5, -1000), (49.5, 0)])[-1] == fs.R_ORDER
    assert a.on_header(fs.KIND_FFR, 3, 9, 0, 30, 0) == fs.R_COUNT
    assert a.on_header(fs.KIND_FFR, 3, 1, 0, 30, 0) == fs.R_COUNT
    assert a.on_header(6, 3, 2, 0, 30, 0) == fs.R_KIND
    assert a.on_header(fs.KIND_FFR, 3, 2, 0, 0, 0) == fs.R_VALIDITY
    # a point of another curve, an index beyond the count, an index twice
    a.on_header(fs.KIND_FFR, 3, 2, 0, 30, 0)
    assert a.on_point(4, 0, 49.5, -1000, 10) == fs.R_CURVE_ID
    a.on_header(fs.KIND_FFR, 3, 2, 0, 30, 0)
    assert a.on_point(3, 2, 49.5, -1000, 10) == fs.R_INDEX
    a.on_header(fs.KIND_FFR, 3, 2, 0, 30, 0)
    a.on_point(3, 0, 49.5, -1000, 10)
    assert a.on_point(3, 0, 49.5, -1000, 20) == fs.R_DUPLICATE
    # an incomplete set followed by a new header; a set that takes too long
    a.on_header(fs.KIND_FFR, 3, 2, 0, 30, 0)
    a.on_point(3, 0, 49.5, -1000, 10)
    assert a.on_header(fs.KIND_FFR, 3, 2, 0, 30, 20) == fs.R_OK and a.last_reason == fs.R_INCOMPLETE
    assert a.on_point(3, 0, 49.5, -1000, 20 + fs.SET_TIMEOUT_US + 1) == fs.R_INCOMPLETE
    assert a.loaded == 0 and a.refused == 12 and not s.in_force
    assert a.refused_by[fs.R_ORDER] == 2 and a.refused_by[fs.R_COUNT] == 2 and a.refused_by[fs.R_INCOMPLETE] == 2
    # after all that, a proper set still goes through
    assert _send(a, [(49.5, -1000), (49.7, 0)], now=1000000)[-1] == fs.R_OK and s.in_force and a.loaded == 1


def test_a_refused_set_leaves_the_service_in_force():
    s, a = _asm()
    _send(a, [(49.5, -11000), (49.7, 0)])
    _send(a, [(49.7, 0), (49.5, -2000)], curve_id=4)
    assert s.curve_id == 3 and s.update(49.5, 80.0, 20.0, 60.0, P_MIN, P_MAX, 1000) == 11000


def test_a_header_with_no_points_or_kind_none_cancels():
    s, a = _asm()
    _send(a, [(49.5, -11000), (49.7, 0)])
    assert s.in_force
    assert a.on_header(fs.KIND_FFR, 5, 0, 0, 1, 10) == fs.R_OK
    assert not s.in_force and a.cancels == 1
    _send(a, [(49.5, -11000), (49.7, 0)])
    a.on_header(fs.KIND_NONE, 5, 2, 0, 1, 10)
    assert not s.in_force and a.cancels == 2 and a.refused == 0


def test_activation_data_are_consistent():
    for kind, steps in fs.ACTIVATION.items():
        assert fs.KIND_NONE < kind < fs.N_KINDS
        for frac, within in steps:
            assert 0.0 < frac <= 1.0 and within > 0.0
    assert fs.ENDURANCE_S[fs.KIND_FCR_N] == 3600 and fs.ENDURANCE_S[fs.KIND_FCR_D_UP] == 1200
