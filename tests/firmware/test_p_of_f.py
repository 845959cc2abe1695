"""controller/grid_support/p_of_f.py: P(f), EN 50549-1 LFSM-O/LFSM-U and IEEE 1547 droop.
Runs under MicroPython (mp_run.py) and CPython (pytest)."""

from controller.grid_support.p_of_f import REF_MOMENTARY, FrequencyWatt, static_power
from unit_steps import PERIOD, near, steps

RATED = 11000.0


def _near(a, b, tol=1.0):
    return near(a, b, tol)


def _en(**kw):
    # EN 50549-1 defaults: f1 = 50.2 Hz (LFSM-O), 49.8 Hz (LFSM-U), s = 5 %, reference P_M
    args = dict(db_of_hz=0.2, db_uf_hz=0.2, k_of=0.05, k_uf=0.05, olrt_s=1.0, reference=REF_MOMENTARY)
    args.update(kw)
    return FrequencyWatt(50.0, RATED, **args)


def _run(fw, f, p_sched, seconds, t0=0, p_min=-RATED, p_max=RATED):
    return steps(lambda t: fw.update(f, p_sched, p_min, p_max, t), seconds, t0)


def test_static_curve_en50549_lfsm_o_at_50_7_hz():
    # 0.5 Hz beyond f1 with s = 5 %: (0.5 / 50) / 0.05 = 20 % of the reference less
    p = static_power(50.7, 8000.0, 50.0, 0.2, 0.2, 0.05, 0.05, 8000.0, -RATED, RATED)
    assert _near(p, 8000.0 * 0.8)


def test_static_curve_is_the_schedule_inside_the_deadband_and_bounded_outside():
    assert static_power(50.1, 3000.0, 50.0, 0.2, 0.2, 0.05, 0.05, RATED, -RATED, RATED) == 3000.0
    assert static_power(53.5, 3000.0, 50.0, 0.2, 0.2, 0.05, 0.05, RATED, -RATED, RATED) == -RATED
    assert static_power(47.0, 3000.0, 50.0, 0.2, 0.2, 0.05, 0.05, RATED, -RATED, 5000.0) == 5000.0


def test_over_frequency_turns_export_into_charging_for_storage():
    # storage: p_min is the charging limit, so the droop goes on through zero
    fw = _en(reference=0)  # the rating as reference
    _run(fw, 50.0, 2000.0, 1.0)
    p, _ = _run(fw, 50.7, 2000.0, 10.0)
    assert _near(p, 2000.0 - 0.2 * RATED, 5.0)  # -200 W: the EV charges


def test_inside_the_deadband_the_schedule_passes_at_once():
    fw = _en()
    p, t = _run(fw, 50.15, 4000.0, 0.5)
    assert p == 4000.0 and not fw.active
    assert fw.update(49.85, -3000.0, -RATED, RATED, t + PERIOD) == -3000.0


def test_response_reaches_90_percent_within_the_open_loop_response_time():
    fw = _en(olrt_s=1.0)
    _, t = _run(fw, 50.0, 8000.0, 1.0)
    target = 8000.0 * 0.8
    p_half, t = _run(fw, 50.7, 8000.0, 0.5, t)
    p_olrt, t = _run(fw, 50.7, 8000.0, 0.5, t)
    assert 8000.0 > p_half > p_olrt
    assert abs(p_olrt - target) <= 0.1 * (8000.0 - target) + 1.0
    assert abs(p_olrt - target) >= 0.05 * (8000.0 - target)  # a first-order response, not a step


def test_the_pre_disturbance_power_is_latched_while_the_schedule_moves():
    fw = _en()
    _, t = _run(fw, 50.0, 8000.0, 1.0)
    _, t = _run(fw, 50.7, 8000.0, 0.1, t)
    p, t = _run(fw, 50.7, 10000.0, 10.0, t)  # a higher schedule during the event is not followed
    assert _near(p, 6400.0, 5.0)


def test_intentional_delay_holds_the_schedule_then_responds():
    fw = _en(delay_s=0.5)
    _, t = _run(fw, 50.0, 8000.0, 1.0)
    p, t = _run(fw, 50.7, 8000.0, 0.4, t)
    assert p == 8000.0 and not fw.active
    p, t = _run(fw, 50.7, 8000.0, 10.0, t)
    assert _near(p, 6400.0, 5.0) and fw.active


def test_back_in_the_deadband_returns_to_the_schedule():
    fw = _en()
    _, t = _run(fw, 50.0, 8000.0, 1.0)
    _, t = _run(fw, 50.7, 8000.0, 5.0, t)
    p, t = _run(fw, 50.0, 5000.0, 10.0, t)
    assert p == 5000.0 and not fw.active


def test_limits_always_bound_the_output():
    fw = _en()
    _, t = _run(fw, 50.0, 8000.0, 1.0)
    # under-frequency asks for more export than the EV allows now: the limit wins
    p, t = _run(fw, 49.0, 8000.0, 5.0, t, p_min=-RATED, p_max=9000.0)
    assert p <= 9000.0
    p, t = _run(fw, 49.0, 8000.0, 0.1, t, p_min=-RATED, p_max=2000.0)
    assert p <= 2000.0


def test_disabled_passes_the_schedule():
    fw = _en(enabled=False)
    p, _ = _run(fw, 51.0, 7000.0, 2.0)
    assert p == 7000.0 and not fw.active
