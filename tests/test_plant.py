"""Physics of the site plant (hil/plant.py, docs/plant.md): conservation, dynamics,
protection timing and the meter's measuring windows. Expected values come from the
model's equations, evaluated here independently of the implementation."""

import math
import time

import pytest

from hil import plant
from hil.plant import Site

DT = 0.0005
V_N = 230.0
F_N = 50.0


def scenario(load=None, ev=None, site=None, rating_kva=11.0):
    s = {"nominal_voltage_v": V_N, "nominal_frequency_hz": F_N, "phases": 3, "grid_code": "EN50549-1",
         "meter_period_ms": 10, "inverter_period_ms": 10, "relay_open_ms": 8, "relay_close_ms": 12}
    s.update(site or {})
    e = {"soc": 0.8, "capacity_kwh": 94.0, "max_charge_kw": 11.0, "max_discharge_kw": 11.0, "min_soc": 0.2}
    e.update(ev or {})
    return {"name": "t", "duration_s": 10.0, "seed": 0, "site": s, "ev": e,
            "inverter": {"rating_kva": rating_kva}, "load": load or {"p_kw": 2.0, "q_kvar": 0.0},
            "mode": {"kind": "idle", "setpoint_kw": 0.0}, "controller": {}, "events": []}


def run(site, seconds, dt=DT, each=None):
    for _ in range(int(round(seconds / dt))):
        site.step(dt)
        if each is not None:
            each(site)


def island_gfm(load, **kw):
    """Site islanded by its relay, the inverter forming the home grid."""
    s = Site(scenario(load=load), **kw)
    s.apply_event({"kind": "grid_disconnect"})
    s.relay_command(False)
    s.inverter_command(2, 0.0, 0.0)
    run(s, 0.3)
    return s


# ------------------------------------------------------------------ conservation
@pytest.mark.parametrize("p_set", [-5000.0, 4000.0])
def test_grid_import_is_load_plus_inverter_ac_flow(p_set):
    s = Site(scenario(load={"p_kw": 2.0, "q_kvar": 0.3}))
    s.inverter_command(1, p_set, 1000.0)
    run(s, 0.1)
    tr = s.truth()
    mv = s.meter_values()
    # AC side of the stage from the battery side through the constant efficiency
    p_ac = p_set / 0.97 if p_set > 0 else p_set * 0.97
    assert tr.p_batt_w == pytest.approx(p_set)
    assert tr.p_ac_w == pytest.approx(p_ac)
    assert tr.p_load_w == pytest.approx(2000.0)
    assert tr.p_grid_w == pytest.approx(tr.p_load_w + tr.p_ac_w)
    assert mv["p_w"] == pytest.approx(2000.0 + p_ac)
    assert mv["q_var"] == pytest.approx(300.0 - 1000.0)  # inverter supplies 1 kvar
    assert mv["i_max_a"] == pytest.approx(math.hypot(2000.0 + p_ac, -700.0) / (3 * V_N))
    # the energy registers integrate the same flow
    imp0, exp0 = mv["e_import_wh"], mv["e_export_wh"]
    run(s, 1.0)
    mv = s.meter_values()
    flow_wh = (2000.0 + p_ac) / 3600.0
    if flow_wh > 0:
        assert mv["e_import_wh"] - imp0 == pytest.approx(flow_wh, rel=1e-6)
        assert mv["e_export_wh"] == exp0
    else:
        assert mv["e_export_wh"] - exp0 == pytest.approx(-flow_wh, rel=1e-6)
        assert mv["e_import_wh"] == imp0


def test_soc_falls_by_the_discharged_energy():
    s = Site(scenario(load={"p_kw": 0.0}))
    soc0 = s.truth().soc
    s.inverter_command(1, -10000.0, 0.0)
    run(s, 2.0)
    tr = s.truth()
    # battery power ramps to -10 kW at 2 * 11 kVA per 10 ms, then holds
    ramp_s = 10000.0 / (2 * 11000.0 / 0.01)
    e_j = 10000.0 * (2.0 - ramp_s / 2)
    assert soc0 - tr.soc == pytest.approx(e_j / (94.0 * 3.6e6), rel=2e-3)
    ev = s.ev_values()
    assert ev["v_batt"] == pytest.approx(350.0 + 50.0 * tr.soc)
    assert tr.i_dc_a == pytest.approx(-10000.0 / ev["v_batt"])
    assert s.inverter_values()["i_dc"] == pytest.approx(tr.i_dc_a)


def test_slew_rate_limits_increases_and_reductions():
    s = Site(scenario())
    limit = 2 * 11000.0 / 0.010 * DT  # W per step
    for target in (-11000.0, 6000.0, 0.0):
        s.inverter_command(1, target, 0.0)
        seen = [s.truth().p_batt_w]
        run(s, 0.02, each=lambda x: seen.append(x.truth().p_batt_w))
        steps = [b - a for a, b in zip(seen, seen[1:])]
        assert max(abs(d) for d in steps) <= limit * (1 + 1e-9)
        assert seen[-1] == pytest.approx(target)
        # and it is the slew that sets the time: |change| / rate, to the step
        n = next(i for i, p in enumerate(seen) if abs(p - target) < 1e-6)
        assert n == math.ceil(abs(target - seen[0]) / limit - 1e-9)


def test_dc_and_ac_current_limits_clip():
    s = Site(scenario(load={"p_kw": 0.0}))
    s.inverter_limits(40.0, 10.0, 12.0)
    s.inverter_command(1, -11000.0, 0.0)
    run(s, 0.05)
    tr = s.truth()
    assert tr.i_dc_a == pytest.approx(-12.0, rel=1e-6)
    s.inverter_limits(5.0, 10.0, 100.0)
    run(s, 0.001)
    tr = s.truth()
    assert tr.i_ac_a == pytest.approx(5.0)
    assert -tr.p_ac_w == pytest.approx(5.0 * 3 * V_N)
    # under a sag the same current carries less power
    s.apply_event({"kind": "grid_voltage", "pu": 0.7})
    run(s, 0.01)
    assert s.truth().i_ac_a == pytest.approx(5.0)
    assert -s.truth().p_ac_w == pytest.approx(5.0 * 3 * V_N * 0.7)


# ------------------------------------------------------------------ relay
@pytest.mark.parametrize("open_ms,close_ms", [(8, 12), (5, 20)])
def test_relay_operate_times(open_ms, close_ms):
    s = Site(scenario(site={"relay_open_ms": open_ms, "relay_close_ms": close_ms}))
    run(s, 0.01)
    s.relay_command(False)
    states = []
    run(s, 0.05, each=lambda x: states.append((x.t_s, x.relay_values()["state"], x.truth().relay_closed)))
    t0 = 0.01
    moving = [t for t, st, _ in states if st == 2]
    closed_electrically = [t for t, _, c in states if c]
    assert states[-1][1] == 0
    # the contact parts operate-time after the command; until then the bus stays on the grid
    assert max(closed_electrically) - t0 == pytest.approx(open_ms / 1000.0)
    assert max(moving) - t0 == pytest.approx(open_ms / 1000.0)
    assert min(moving) == pytest.approx(t0 + DT)
    assert s.truth().home_v_pu == 0.0  # nothing on the bus: inverter off, relay open
    t1 = s.t_s
    s.relay_command(True)
    states = []
    run(s, 0.05, each=lambda x: states.append((x.t_s, x.relay_values()["state"], x.truth().relay_closed)))
    first_closed = min(t for t, _, c in states if c)
    assert first_closed - DT - t1 == pytest.approx(close_ms / 1000.0)
    assert s.truth().home_v_pu == 1.0


def test_relay_feedback_synchro_check_angle():
    s = island_gfm({"p_kw": 2.0})
    s.apply_event({"kind": "grid_reconnect"})
    s.inverter_forming(V_N, 50.2, False)  # no droop: the island runs at exactly 50.2 Hz
    s.step(DT)
    th0 = s.relay_values()["phase_diff_deg"]
    run(s, 0.1)
    rv = s.relay_values()
    assert rv["utility_present"] and rv["utility_v"] == pytest.approx(V_N)
    # utility minus home: the home runs 0.2 Hz fast, 7.2 deg per 100 ms
    d = (rv["phase_diff_deg"] - th0 + 180.0) % 360.0 - 180.0
    assert d == pytest.approx(-0.2 * 360.0 * 0.1, abs=1e-6)


# ------------------------------------------------------------------ meter
def test_meter_rms_follows_a_sag_within_one_cycle():
    s = Site(scenario())
    run(s, 0.1)
    s.apply_event({"kind": "grid_voltage", "pu": 0.7})
    run(s, 0.010)
    half = s.meter_values()["voltage_v"]
    # half a cycle at 1.0 pu and half at 0.7 pu in the one-cycle RMS window
    assert half == pytest.approx(V_N * math.sqrt((1.0 + 0.49) / 2))
    run(s, 0.010)
    assert s.meter_values()["voltage_v"] == pytest.approx(0.7 * V_N)
    assert s.inverter_values()["v_ac"] == pytest.approx(0.7 * V_N)


def test_meter_voltage_ramp():
    s = Site(scenario())
    s.apply_event({"kind": "grid_voltage", "pu": 1.1, "ramp_s": 0.5})
    run(s, 0.25)
    assert s.truth().grid_v_pu == pytest.approx(1.05)
    run(s, 0.5)
    assert s.meter_values()["voltage_v"] == pytest.approx(1.1 * V_N)


@pytest.mark.parametrize("dt", [0.0001, 0.0005, 0.001])
def test_meter_tracks_a_frequency_ramp_with_the_window_lag(dt):
    s = Site(scenario())
    run(s, 0.2, dt)
    s.apply_event({"kind": "grid_frequency", "hz": 49.0, "ramp_hz_per_s": 2.0})
    run(s, 0.3, dt)
    f_true = s.truth().grid_f_hz
    mv = s.meter_values()
    assert f_true == pytest.approx(49.4)
    # mean frequency over the 2-cycle window: lags the ramp by half the window
    lag_s = plant.FREQ_WINDOW_CYCLES / F_N / 2
    assert mv["frequency_hz"] == pytest.approx(f_true + 2.0 * lag_s, abs=2.0 * dt)
    assert mv["rocof_hz_s"] == pytest.approx(-2.0, abs=1e-6)
    run(s, 0.5, dt)
    mv = s.meter_values()
    assert mv["frequency_hz"] == pytest.approx(49.0)
    assert mv["rocof_hz_s"] == pytest.approx(0.0, abs=1e-6)
    # the inverter's PLL tracks the same grid
    assert s.inverter_values()["f_ac"] == pytest.approx(49.0, abs=1e-3)


def test_meter_phase_jump_and_dead_line():
    s = Site(scenario())
    run(s, 0.1)
    s.apply_event({"kind": "grid_phase_jump", "deg": 35.0})
    s.step(DT)
    assert s.meter_values()["phase_deg"] == pytest.approx(35.0)
    s.relay_command(False)
    run(s, 0.05)
    s.apply_event({"kind": "grid_disconnect"})
    run(s, 0.021)
    mv = s.meter_values()
    assert mv["voltage_v"] == 0.0 and mv["frequency_hz"] == 0.0 and mv["p_w"] == 0.0
    assert mv["rocof_hz_s"] == 0.0 and mv["phase_deg"] == 0.0
    rv = s.relay_values()
    assert not rv["utility_present"] and rv["utility_v"] == 0.0
    # the voltage returns at once, the frequency once a full window has zero crossings
    s.apply_event({"kind": "grid_reconnect"})
    run(s, 0.02)
    mv = s.meter_values()
    assert mv["voltage_v"] == pytest.approx(V_N) and mv["frequency_hz"] == 0.0
    run(s, 0.021)
    assert s.meter_values()["frequency_hz"] == pytest.approx(F_N)


# ------------------------------------------------------------------ islands
def test_gfm_island_holds_nominal_at_light_load():
    s = island_gfm({"p_kw": 2.0, "q_kvar": 0.4})
    tr = s.truth()
    # droop: 1 % f per rated P, 5 % V per rated Q
    assert tr.home_v_pu == pytest.approx(1.0 - 0.05 * 400.0 / 11000.0, abs=1e-6)
    assert tr.home_f_hz == pytest.approx(F_N * (1 - 0.01 * 2000.0 / 11000.0), abs=1e-6)
    assert -tr.p_ac_w == pytest.approx(2000.0) and tr.p_load_w == pytest.approx(2000.0)
    assert tr.i_ac_a == pytest.approx(math.hypot(2000.0, 400.0) / (3 * V_N * tr.home_v_pu))
    assert tr.utility_side_v_pu == 0.0  # relay open, breaker open: dead line
    iv = s.inverter_values()
    assert iv["mode"] == 2 and iv["state"] == 2
    assert iv["f_ac"] == pytest.approx(tr.home_f_hz, abs=1e-6)
    # without droop the references hold exactly
    s.inverter_forming(232.0, 50.0, False)
    run(s, 0.1)
    assert s.truth().home_v_pu == pytest.approx(232.0 / V_N) and s.truth().home_f_hz == pytest.approx(50.0)


def test_gfm_island_overload_sags_at_the_current_limit_constant_power():
    s = island_gfm({"p_kw": 2.0, "q_kvar": 0.2})
    i_lim = 9.84
    s.inverter_limits(i_lim, 100.0, 100.0)
    s.apply_event({"kind": "load_step", "p_kw": 9.0, "q_kvar": 1.0})
    run(s, 0.2)
    tr = s.truth()
    # constant power above 0.7 pu needs ever more current as V falls: the bus collapses onto
    # the load's constant-impedance branch, V = I_lim * |Z(0.7 pu)|
    z07 = (0.7 * V_N) ** 2 / (math.hypot(9000.0, 1000.0) / 3)
    assert tr.home_v_pu == pytest.approx(i_lim * z07 / V_N, rel=1e-9)
    assert tr.i_ac_a == pytest.approx(i_lim)
    assert tr.p_load_w == pytest.approx(-tr.p_ac_w)
    # the limit lifted to the rating (15.9 A): this load still needs 18.7 A at 0.7 pu, its
    # peak, so the voltage cannot build up past it and rises only to the impedance branch at
    # the rated current (cold-load pickup, docs/plant.md 3b) ...
    s.inverter_limits(100.0, 100.0, 100.0)
    seen = []
    run(s, 0.2, each=lambda x: seen.append(x.truth().i_ac_a))
    i_r = 11000.0 / (3 * V_N)
    assert s.truth().home_v_pu == pytest.approx(i_r * z07 / V_N, rel=1e-9)
    assert max(seen) <= i_r + 1e-9
    # ... part of it shed (peak 12.6 A), the home comes back
    s.apply_event({"kind": "load_step", "p_kw": 6.0, "q_kvar": 1.0})
    seen = []
    run(s, 0.2, each=lambda x: seen.append(x.truth().i_ac_a))
    assert s.truth().home_v_pu > 0.99
    assert max(seen) <= i_r + 1e-9


def test_gfm_island_from_a_dark_bus_stalls_below_a_constant_power_peak_current():
    # tests/data/soak-repro/gfm-start-over-current.json at the plant: the inverter forms the
    # island from a dark bus into 9.4 kW of constant power at 15.9 A. At 1 pu the load needs
    # 13.6 A, but 19.5 A at 0.7 pu (its peak, where it turns into an impedance): the build-up
    # cannot pass it, the current loop holds 15.9 A and the voltage stalls on the impedance
    # branch, V = I_lim * |Z(0.7 pu)|
    i_lim = 15.9
    s = Site(scenario(load={"p_kw": 9.4, "q_kvar": 0.0}), relay_closed=False)
    s.inverter_limits(i_lim, 100.0, 100.0)
    s.inverter_command(2, 0.0, 0.0)
    seen = []
    run(s, 0.1, each=lambda x: seen.append((x.truth().home_v_pu, x.truth().i_ac_a)))
    assert max(i for _, i in seen) <= i_lim + 1e-9
    z07 = (0.7 * V_N) ** 2 / (9400.0 / 3)
    assert seen[-1][0] == pytest.approx(i_lim * z07 / V_N, rel=1e-9)
    assert seen[-1][0] < 0.58 and seen[-1][1] == pytest.approx(i_lim)
    assert 9400.0 / (3 * V_N) < i_lim < 9400.0 / (3 * V_N * 0.7)
    # the same load and limit on an island the inverter took over at 1 pu: it holds nominal
    t = island_gfm({"p_kw": 2.0, "q_kvar": 0.0})
    t.inverter_limits(i_lim, 100.0, 100.0)
    t.apply_event({"kind": "load_step", "p_kw": 9.4, "q_kvar": 0.0})
    run(t, 0.1)
    assert t.truth().home_v_pu == pytest.approx(1.0) and t.truth().i_ac_a == pytest.approx(9400.0 / (3 * V_N))
    # the stalled island with part of the load shed (7 kW: 14.5 A at its peak) builds up
    s.apply_event({"kind": "load_step", "p_kw": 7.0, "q_kvar": 0.0})
    seen = []
    run(s, 0.1, each=lambda x: seen.append((x.truth().home_v_pu, x.truth().i_ac_a)))
    assert max(i for _, i in seen) <= i_lim + 1e-9
    assert seen[-1][0] == pytest.approx(1.0)


def test_gfm_island_overload_rlc_and_dc_power_cap():
    s = island_gfm({"rlc": {"p_kw": 9.0, "q_factor": 1.0, "reactive_mismatch_pct": 10.0}})
    tr = s.truth()
    x = tr.home_f_hz / F_N
    s1 = 9000.0 * math.hypot(1.0, 1.0 / x - 1.1 * x)
    i_lim = 8.0
    s.inverter_limits(i_lim, 100.0, 100.0)
    run(s, 0.1)
    tr = s.truth()
    x = tr.home_f_hz / F_N
    s1 = 9000.0 * math.hypot(1.0, 1.0 / x - 1.1 * x)
    assert tr.home_v_pu == pytest.approx(3 * V_N * i_lim / s1, rel=1e-4)
    assert tr.i_ac_a == pytest.approx(i_lim, rel=1e-4)
    # a DC discharge limit caps the power: the impedance load sags until it fits
    s.inverter_limits(100.0, 100.0, 10.0)
    run(s, 0.2)
    tr = s.truth()
    p_cap = 10.0 * tr.v_batt * 0.97
    assert tr.p_load_w == pytest.approx(p_cap, rel=1e-3)
    assert tr.i_dc_a == pytest.approx(-10.0, rel=1e-3)


def rlc_island(mismatch_pct, p_share, q_set=0.0):
    """GFL inverter exporting p_share of a Qf=1 RLC load when the utility opens."""
    s = Site(scenario(load={"rlc": {"p_kw": 8.0, "q_factor": 1.0, "reactive_mismatch_pct": mismatch_pct}}))
    s.inverter_command(1, -8000.0 * p_share / 0.97, q_set)
    run(s, 0.2)
    s.apply_event({"kind": "grid_disconnect"})
    return s


def test_gfl_rlc_island_balanced_barely_moves():
    s = rlc_island(0.0, 1.0)
    lo_v = hi_v = 1.0
    lo_f = hi_f = F_N

    def watch(x):
        nonlocal lo_v, hi_v, lo_f, hi_f
        tr = x.truth()
        lo_v, hi_v = min(lo_v, tr.home_v_pu), max(hi_v, tr.home_v_pu)
        lo_f, hi_f = min(lo_f, tr.home_f_hz), max(hi_f, tr.home_f_hz)

    run(s, 2.0, each=watch)
    assert hi_v - lo_v < 1e-3 and hi_f - lo_f < 0.01
    # the island is live: the inverter keeps running and the dead line stays energized
    assert s.inverter_values()["state"] == 2
    assert s.truth().utility_side_v_pu > 0.99
    assert s.meter_values()["frequency_hz"] == pytest.approx(F_N, abs=0.01)
    assert s.meter_values()["p_w"] == 0.0  # nothing flows to the open breaker


def test_gfl_rlc_island_mismatch_moves_v_and_f():
    s = rlc_island(2.0, 0.9)
    run(s, 0.5)
    tr = s.truth()
    # R absorbs P_inv: V = sqrt(P_inv / P); L and C balance: f = f_n * sqrt(Qf / (Qf + m))
    assert tr.home_v_pu == pytest.approx(math.sqrt(0.9), rel=1e-6)
    assert tr.home_f_hz == pytest.approx(F_N * math.sqrt(1.0 / 1.02), abs=1e-4)
    assert s.inverter_values()["f_ac"] == pytest.approx(tr.home_f_hz, abs=1e-3)
    # reactive power from the inverter is absorbed by the L/C: the island moves to lower f
    s2 = rlc_island(0.0, 1.0, q_set=800.0)
    run(s2, 0.5)
    a = 800.0 / 8000.0
    x = (-a + math.sqrt(a * a + 4.0)) / 2.0
    assert s2.truth().home_f_hz == pytest.approx(F_N * x, abs=1e-3)


# -- the grid-following stage is a current source behind a slow outer loop (docs/plant.md 5)
W0_BUS = 0.5 * 3 * plant.C_BUS_F * V_N ** 2  # J, the bus capacitance at nominal voltage
TAU = plant.TAU_OUTER_S


def reference_island(p_ref_ac, load_w, seconds, w0=W0_BUS, rlc=False, h=1e-6, v_f=1.0, steps=None):
    """The island's equations integrated with tiny explicit steps, independently of the plant:
    2*W0*V*dV/dt = a*V - P_L(V) with a = P_ref / V_f (the current reference), V_f following V
    with TAU inside 0.9..1.1 pu and holding outside; P_L constant above 0.7 pu and an impedance
    below (or an impedance throughout for R). Returns [(t, V, V_f)] every `steps` seconds."""
    v, t, out, nxt = 1.0, 0.0, [], 0.0
    steps = steps or seconds
    while t < seconds - 1e-12:
        if t >= nxt - 1e-12:
            out.append((t, v, v_f))
            nxt += steps
        pl = load_w * v * v if rlc else (load_w if v >= 0.7 else load_w * v * v / 0.49)
        u = v * v + (p_ref_ac / v_f * v - pl) * h / w0
        v = math.sqrt(max(u, 0.0))
        if 0.9 <= v <= 1.1:
            v_f += (v - v_f) * h / TAU
        t += h
    out.append((t, v, v_f))
    return out


def hard_outage(p_set, dt=DT, seconds=0.03, load=None):
    """V2H on a constant-power load; the utility breaker opens. Returns the site and what happened."""
    s = Site(scenario(load=load or {"p_kw": 2.0, "q_kvar": 0.2}))
    s.inverter_command(1, p_set, 0.0)
    run(s, 0.2, dt)
    t0 = s.t_s
    s.apply_event({"kind": "grid_disconnect"})
    seen = {"v": []}

    def watch(x):
        t = x.t_s - t0
        v = x.truth().home_v_pu
        seen["v"].append((t, v))
        for key, lim in (("t07", 0.7), ("t05", 0.5)):
            if v < lim and key not in seen:
                seen[key] = t
        e = x.take_ac_loss()
        if e is not None:
            seen.setdefault("losses", []).append((t, e))
        if x.inverter_values()["fault_ac_grid"] and "stop" not in seen:
            seen["stop"] = t

    run(s, seconds, dt, each=watch)
    return s, seen


@pytest.mark.parametrize("dt", [0.0001, 0.0005, 0.001])
def test_hard_outage_nearly_matched_constant_power_load_collapses(dt):
    # hard-outage-v2h: the EV covers a 2 kW + 0.2 kvar home with a small import bias (the
    # controller's 50 W, here 2009 W at the battery = 1949 W AC); then the utility opens
    p_ac = 2009.0 * 0.97
    s, seen = hard_outage(-2009.0, dt)
    # negative incremental resistance against a current source: no stable point above 0.7 pu
    assert 0.002 < seen["t07"] < 0.006
    # below 0.7 pu the load is an impedance (P ~ V^2) against the current source (P ~ V):
    # V -> 0.49 * P_d/P / V_f, below the 0.5 pu AC-loss threshold
    assert seen["t05"] < 0.020
    v_fast = 0.49 * p_ac / 2000.0 / s.v_f
    assert v_fast < 0.49
    assert min(v for t, v in seen["v"] if t < seen.get("stop", 1.0)) == pytest.approx(v_fast, abs=0.01)
    # the inverter's fast detector reports it once (0.5 ms below 0.5 pu) ...
    assert len(seen["losses"]) == 1
    t_loss, e = seen["losses"][0]
    assert e["reason"] == 1 and e["voltage_v"] < 0.5 * V_N
    assert seen["t05"] < t_loss <= seen["t05"] + 0.0005 + dt + 1e-9
    # ... the stage leaves after 2 ms out of its AC window, and the bus is dark
    assert seen["stop"] == pytest.approx(seen["t05"] + 0.002, abs=dt + 1e-9)
    assert s.truth().home_v_pu < 0.01 and s.inverter_values()["state"] == 1
    # with the old constant-power source this island sat at 0.7*sqrt(P_d/P) = 0.69 pu
    assert 0.7 * math.sqrt(p_ac / 2000.0) > 0.69


def test_hard_outage_trajectory_follows_the_equations():
    s, seen = hard_outage(-2009.0, dt=0.0005, seconds=0.008)
    ref = reference_island(2009.0 * 0.97, 2000.0, 0.0075, steps=0.0005)
    got = dict((round(t, 4), v) for t, v in seen["v"])
    for t, v, _ in ref[1:]:
        # the plant moves V_f once per step (0.5 ms) where the reference moves it continuously
        assert got[round(t, 4)] == pytest.approx(v, abs=0.005), t
    assert seen["t07"] == pytest.approx(next(t for t, v, _ in ref if v < 0.7), abs=0.0006)


def test_constant_power_island_with_a_deficit_or_a_surplus():
    # 100 W short: the same collapse, sooner
    _, short = hard_outage(-1900.0 / 0.97, load={"p_kw": 2.0, "q_kvar": 0.0})
    _, bias = hard_outage(-2009.0)
    assert short["t07"] < bias["t07"] and len(short["losses"]) == 1
    # 100 W over: the voltage runs up until the stage's AC window (1.2 pu) stops it; the
    # bus then collapses with nothing to hold it
    s, over = hard_outage(-2100.0 / 0.97, load={"p_kw": 2.0, "q_kvar": 0.0})
    v_max = max(v for _, v in over["v"])
    assert 1.2 < v_max <= plant.U_MAX_PU
    assert over["stop"] < 0.01 and "t07" in over and s.truth().home_v_pu < 0.01
    # the matched point is unstable: 1 W short (0.05 %) is enough, it only takes longer
    s, one = hard_outage(-1999.0 / 0.97, load={"p_kw": 2.0, "q_kvar": 0.0}, seconds=0.05)
    assert short["t07"] < one["t07"] < 0.03 and len(one["losses"]) == 1


@pytest.mark.parametrize("qf", [1.0, 0.05])
def test_outer_loop_time_constant_in_a_step_of_p_ref(qf):
    # balanced RLC island (m = 0; Qf = 1 is the IEEE 1547.1 load, Qf = 0.05 nearly a pure R)
    s = Site(scenario(load={"rlc": {"p_kw": 8.0, "q_factor": qf, "reactive_mismatch_pct": 0.0}}))
    s.inverter_command(1, -8000.0 / 0.97, 0.0)
    run(s, 0.2)
    s.apply_event({"kind": "grid_disconnect"})
    run(s, 0.3)
    assert s.truth().home_v_pu == pytest.approx(1.0, abs=1e-6)
    # 5 % less power: a current source into R lowers V in proportion at once (V = I*R, within
    # the tank's 2RC), then the outer loop raises the current as its filtered voltage follows,
    # until R absorbs the power reference again: V = sqrt(0.95)
    s.inverter_command(1, -8000.0 * 0.95 / 0.97, 0.0)
    t0 = s.t_s
    seen = []
    run(s, 0.3, each=lambda x: seen.append((x.t_s - t0, x.truth().home_v_pu)))
    w0 = W0_BUS + qf * 8000.0 / (2 * math.pi * F_N)  # bus + tank energy (Qf * P / omega)
    ref = reference_island(8000.0 * 0.95, 8000.0, 0.3, w0=w0, rlc=True, h=2e-6, steps=0.01)
    got = dict((round(t, 4), v) for t, v in seen)
    for t, v, _ in ref[1:]:
        assert got[round(t, 4)] == pytest.approx(v, abs=2e-4), t
    v_end = math.sqrt(0.95)
    assert seen[-1][1] == pytest.approx(v_end, abs=1e-5)  # a power source after the outer loop ...
    v_min = min(v for _, v in seen)
    assert v_min < v_end - 0.008  # ... a current source before it: the voltage undershoots
    if qf < 0.1:
        assert v_min == pytest.approx(0.95, abs=0.005)  # small tank: V = 0.95 * I * R at once
    t_min = next(t for t, v in seen if v == v_min)
    half = next(t for t, v in seen if t > t_min and v > (v_min + v_end) / 2)
    # the recovery takes tens of ms: the outer loop (TAU = 20 ms; with V ~ 1/V_f the loop
    # closes at TAU/2), not the tank (2RC = 2*Qf/omega = 6.4 ms at Qf = 1)
    assert 0.005 < half - t_min < 0.03


def test_voltage_step_on_the_grid_shows_the_outer_loop():
    s = Site(scenario(load={"p_kw": 0.0}))
    s.inverter_command(1, -5000.0, 0.0)
    run(s, 0.1)
    assert s.truth().p_batt_w == pytest.approx(-5000.0)
    # a 5 % step down inside the continuous-operation band: the current holds, P falls 5 %;
    # then V_f follows with TAU and the current rises to bring P back
    s.apply_event({"kind": "grid_voltage", "pu": 0.95})
    a = 1.0 - math.exp(-DT / TAU)
    for n in range(1, 201):
        s.step(DT)
        vf = 0.95 + 0.05 * (1.0 - a) ** (n - 1)  # V_f moves after the step's power is delivered
        assert s.truth().p_batt_w == pytest.approx(-5000.0 * 0.95 / vf, rel=1e-9), n
    assert s.truth().p_batt_w == pytest.approx(-5000.0, rel=1e-3)
    # a dip below 0.9 pu: ride-through mode, the outer loop holds and so does the current
    i0 = s.truth().i_ac_a
    s.apply_event({"kind": "grid_voltage", "pu": 0.6})
    run(s, 0.2)
    assert s.truth().i_ac_a == pytest.approx(i0, rel=1e-4)
    assert s.truth().p_ac_w == pytest.approx(-5000.0 * 0.97 * 0.6 / 0.95, rel=1e-3)
    s.apply_event({"kind": "grid_voltage", "pu": 1.0})
    run(s, 0.2)
    assert s.truth().p_batt_w == pytest.approx(-5000.0, rel=1e-4)


def test_dc_current_limit_holds_through_a_swell():
    s = Site(scenario(load={"p_kw": 0.0}))
    s.inverter_limits(100.0, 10.0, 10.0)
    s.inverter_command(1, -11000.0, 0.0)
    run(s, 0.1)
    vb = s.truth().v_batt
    assert s.truth().i_dc_a == pytest.approx(-10.0)
    # the current references would deliver 8 % more at once; the DC stage's limit holds
    s.apply_event({"kind": "grid_voltage", "pu": 1.08})
    lows = []
    run(s, 0.1, each=lambda x: lows.append(x.truth().i_dc_a))
    assert min(lows) >= -10.0 - 1e-6  # (i_dc uses the battery voltage after the step)
    assert s.truth().p_batt_w == pytest.approx(-10.0 * vb, rel=1e-3)


def test_dc_current_limit_holds_in_the_step_the_utility_opens():
    # tests/data/soak-repro/island-surplus-dc-over-current.json at the plant: 5.8 kW from the
    # battery into a 3 kW home, the stage's DC limit 20.5 A; the surplus drives the island
    # past V_c = P_dc / a within the step the utility opens
    s = Site(scenario(load={"p_kw": 3.0, "q_kvar": 0.0}))
    s.inverter_limits(15.9, 20.5, 20.5)
    s.inverter_command(1, -5800.0, 0.0)
    run(s, 0.2)
    s.apply_event({"kind": "grid_disconnect"})
    seen = []
    run(s, 0.01, each=lambda x: seen.append((x.truth().home_v_pu, x.truth().i_dc_a, x.truth().i_ac_a)))
    v_c = 20.5 * s.truth().v_batt * 0.97 / (5800.0 * 0.97)
    assert seen[0][0] > v_c  # passed in the first step
    assert seen[0][1] == pytest.approx(-20.5, rel=1e-6)  # ... at the DC limit, not 5.8 kW * V / V_f
    assert min(i for _, i, _ in seen) >= -20.5 - 1e-6
    assert max(i for _, _, i in seen) <= 15.9 + 1e-9
    assert s.truth().home_v_pu < 0.01  # the AC window stopped the stage, as before


def test_gfl_island_at_its_dc_limit_settles_where_the_load_takes_it():
    # the references at the DC limit (8.4 kW AC) when a balanced Qf = 1 RLC island of 8 kW
    # forms: above V_f the stage delivers the constant P_dc, so W0 * d(V^2)/dt = P_dc - P*V^2
    # and V^2 -> P_dc / P with the time constant W0 / P (a current source would head for
    # V = P_dc / P with 2*W0 / P, past the limit)
    s = Site(scenario(load={"rlc": {"p_kw": 8.0, "q_factor": 1.0, "reactive_mismatch_pct": 0.0}}))
    vb = s.truth().v_batt
    idc = 8400.0 / (0.97 * vb)
    s.inverter_limits(100.0, 100.0, idc)
    s.inverter_command(1, -11000.0, 0.0)
    run(s, 0.2)
    s.apply_event({"kind": "grid_disconnect"})
    t0 = s.t_s
    w0 = W0_BUS + 8000.0 / (2 * math.pi * F_N)  # bus + tank (Qf * P / omega)
    seen = []
    run(s, 0.1, each=lambda x: seen.append((x.t_s - t0, x.truth().home_v_pu, x.truth().i_dc_a)))
    for t, v, i_dc in seen:
        assert i_dc >= -idc - 1e-6, t  # (i_dc uses the battery voltage after the step)
        if t < 0.01:
            u = 1.05 - 0.05 * math.exp(-8000.0 * t / w0)
            assert v == pytest.approx(math.sqrt(u), abs=1e-5), t
    assert s.truth().i_dc_a == pytest.approx(-idc, rel=1e-5)
    p_dc = idc * 0.97 * s.truth().v_batt  # (the battery voltage drifts with soc)
    assert seen[-1][1] == pytest.approx(math.sqrt(p_dc / 8000.0), rel=1e-7)


def _island_reference(s, v, a, dt, v_c, p_dc, n=4000):
    """W0 * d(V^2)/dt = P_d(V) - P_L(V), P_d = a*V up to V_c and p_dc above, with classical
    Runge-Kutta steps (independent of the plant's closed forms); clipped as the plant clips."""
    w0, p0, rlc = s._w0, s.ld_p, s.ld_rlc

    def f(u):
        vv = math.sqrt(max(u, 0.0))
        pd = p_dc if vv > v_c else a * vv
        pl = 0.0 if p0 <= 0.0 else p0 * u if rlc else p0 if vv >= 0.7 else p0 * u / 0.49
        return (pd - pl) / w0

    u, h = v * v, dt / n
    for _ in range(n):
        k1 = f(u)
        k2 = f(u + h / 2 * k1)
        k3 = f(u + h / 2 * k2)
        k4 = f(u + h * k3)
        u += h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return min(math.sqrt(max(u, 0.0)), plant.U_MAX_PU)


@pytest.mark.parametrize("load, v0, a, p_dc", [
    ({"p_kw": 3.0}, 1.0, 5800.0, 7760.0),        # constant power: current source, then the DC limit
    ({"p_kw": 2.0}, 0.5, 5000.0, 3600.0),        # impedance -> constant power -> DC limit
    ({"p_kw": 9.0}, 0.3, 10000.0, 5000.0),       # V_c below the breakpoint: the limit into an impedance
    ({"p_kw": 2.0}, 1.0, -3000.0, -2000.0),      # charging at its limit: down through 0.7 pu and V_c
    ({"rlc": {"p_kw": 8.0, "q_factor": 1.0}}, 1.0, 8500.0, 8500.0),   # at the limit from the start
    ({"rlc": {"p_kw": 8.0, "q_factor": 1.0}}, 1.2, 8000.0, 8400.0),   # down from above V_c
    ({"p_kw": 0.0}, 1.0, 1000.0, 1100.0),        # no load: up through V_c
    ({"p_kw": 0.0}, 1.2, -1000.0, -1100.0),      # no load, charging: down through V_c
])
@pytest.mark.parametrize("dt", [0.0001, 0.0005, 0.001])
def test_island_step_is_exact_across_its_regions(load, v0, a, p_dc, dt):
    # docs/plant.md 3a: the passive island's step, solved in closed form region by region
    s = Site(scenario(load=load))
    v_c = p_dc / a
    assert s._island_v(v0, a, dt, v_c, p_dc) == pytest.approx(_island_reference(s, v0, a, dt, v_c, p_dc), abs=1e-9)


@pytest.mark.parametrize("dt", [0.0001, 0.0005, 0.001])
def test_ac_loss_flag_within_2ms_of_a_hard_outage(dt):
    s = Site(scenario(load={"p_kw": 2.0, "q_kvar": 0.2}))
    s.inverter_command(1, 3000.0, 0.0)  # charging: nothing holds the bus up
    run(s, 0.1, dt)
    t0 = s.t_s
    s.apply_event({"kind": "grid_disconnect"})
    losses = []
    stopped = []
    below = []

    def watch(x):
        if x.truth().home_v_pu < 0.5 and not below:
            below.append(x.t_s - t0)
        e = x.take_ac_loss()
        if e is not None:
            losses.append((x.t_s - t0, e))
        iv = x.inverter_values()
        if iv["fault_ac_grid"] and not stopped:
            stopped.append(x.t_s - t0)

    run(s, 0.05, dt, each=watch)
    assert len(losses) == 1  # once per loss
    t_loss, e = losses[0]
    assert t_loss <= 0.002 + 1e-9
    assert e["reason"] == 1 and e["voltage_v"] < 0.5 * V_N
    # the power stage leaves the grid after 2 ms out of its AC window
    assert stopped[0] - below[0] == pytest.approx(0.002, abs=1e-9)
    iv = s.inverter_values()
    assert iv["state"] == 1 and iv["fault_ac_grid"] and iv["p_w"] == 0.0
    # the grid returns: the flag clears, the inverter resumes and the detector re-arms
    s.apply_event({"kind": "grid_reconnect"})
    run(s, 0.1, dt)
    iv = s.inverter_values()
    assert not iv["fault_ac_grid"] and iv["state"] == 2 and iv["p_w"] == pytest.approx(3000.0)
    s.apply_event({"kind": "grid_disconnect"})
    run(s, 0.01, dt)
    assert s.take_ac_loss() is not None


def test_no_ac_loss_while_forming():
    s = island_gfm({"p_kw": 2.0})
    s.take_ac_loss()  # the relay opened on a dead inverter before it formed: that one counts
    s.inverter_limits(1.0, 100.0, 100.0)  # the bus sags below 0.5 pu under its own limit
    run(s, 0.05)
    assert s.truth().home_v_pu < 0.5
    assert s.take_ac_loss() is None


# ------------------------------------------------------------------ inverter behaviour
def test_gfm_in_parallel_with_the_grid_follows_its_droop():
    s = Site(scenario(load={"p_kw": 2.0}))
    s.inverter_forming(V_N, 50.05, True)
    s.inverter_command(2, 0.0, 0.0)
    run(s, 0.5)
    tr = s.truth()
    # P = (f_set - f_grid) / (1 % of f_n) * S_rated delivered to the grid
    assert -tr.p_ac_w == pytest.approx(0.05 / 0.5 * 11000.0, rel=2e-3)
    assert tr.p_grid_w == pytest.approx(2000.0 + tr.p_ac_w)


# ------------------------------------------------------------------ source impedance
Z_IEC = {"r_ohm": 0.24, "x_ohm": 0.15}  # IEC 60725 reference impedance, phase conductor
Z_WEAK = {"r_ohm": 1.0, "x_ohm": 1.0}  # the weakest feeder the plant is meant for
V2 = 3 * V_N * V_N  # n_ph * V_n^2: W (or var) times ohm over this is the drop in pu


def grid_behind(z, load=None):
    return Site(scenario(load=load or {"p_kw": 0.0}, site={"grid_impedance": z}))


def poc_exact(z, p_grid, q_grid):
    """|V| (pu) at the point of connection solved as phasors, V = E - Z * conj(S / V) per phase
    with the source E at 1 pu: what the plant's drop approximation is compared with."""
    zc = complex(z["r_ohm"], z["x_ohm"])
    s_ph = complex(p_grid, q_grid) / 3.0
    v = complex(V_N, 0.0)
    for _ in range(60):
        v = V_N - zc * (s_ph / v).conjugate()
    return abs(v) / V_N


def poc_views(s):
    """The point-of-connection voltage (pu) as the meter, the relay's utility-side sensing, the
    inverter and the truth see it."""
    tr = s.truth()
    return (s.meter_values()["voltage_v"] / V_N, s.relay_values()["utility_v"] / V_N,
            s.inverter_values()["v_ac"] / V_N, tr.home_v_pu, tr.utility_side_v_pu)


def test_exporting_through_the_source_impedance_raises_the_poc_voltage():
    s = grid_behind(Z_IEC)
    s.inverter_command(1, -10000.0 / 0.97, 0.0)  # 10 kW at the AC side
    run(s, 0.5)
    tr = s.truth()
    assert tr.p_grid_w == pytest.approx(-10000.0, rel=1e-6)
    rise = 0.24 * 10000.0 / V2  # R*P / (3 V^2) = 0.0151 pu, 3.5 V
    for v in poc_views(s):
        assert v - 1.0 == pytest.approx(rise, rel=1e-6)
    assert tr.grid_v_pu == 1.0  # the source upstream does not move
    # the approximation divides by the source voltage, not the POC's, and neglects the drop's
    # quadrature part (X*P here): 2.6e-4 pu (0.06 V) from the phasor solution
    assert tr.home_v_pu == pytest.approx(poc_exact(Z_IEC, tr.p_grid_w, tr.q_grid_var), abs=5e-4)
    # importing (charging) lowers it by the same rule
    s.inverter_command(1, 8000.0, 0.0)
    run(s, 0.5)
    tr = s.truth()
    assert tr.p_grid_w == pytest.approx(8000.0 / 0.97, rel=1e-6)
    assert tr.home_v_pu - 1.0 == pytest.approx(-0.24 * tr.p_grid_w / V2, rel=1e-6)


@pytest.mark.parametrize("q_var", [6000.0, -6000.0])
def test_reactive_power_through_the_source_impedance_moves_the_poc_voltage(q_var):
    # var the inverter supplies (over-excited, + q_var) raise the voltage by X*Q/(3 V^2);
    # var it absorbs lower it
    s = grid_behind(Z_IEC)
    s.inverter_command(1, 0.0, q_var)
    run(s, 0.5)
    tr = s.truth()
    assert tr.q_grid_var == pytest.approx(-q_var, rel=1e-6)
    assert tr.p_grid_w == pytest.approx(0.0, abs=1e-6)
    for v in poc_views(s):
        assert v - 1.0 == pytest.approx(0.15 * q_var / V2, rel=1e-6)  # 0.0057 pu, 1.3 V
    assert tr.home_v_pu == pytest.approx(poc_exact(Z_IEC, tr.p_grid_w, tr.q_grid_var), abs=5e-4)


def test_the_load_alone_sees_its_own_drop_from_the_start():
    s = grid_behind(Z_WEAK, load={"p_kw": 6.0, "q_kvar": 2.0})
    expected = 1.0 - (6000.0 + 2000.0) / V2
    for v in poc_views(s):
        assert v == pytest.approx(expected, rel=1e-9)
    run(s, 0.1)
    assert s.truth().home_v_pu == pytest.approx(expected, rel=1e-9)
    # the relay open: nothing flows through the impedance, its utility side reads the source
    s.relay_command(False)
    run(s, 0.1)
    assert s.relay_values()["utility_v"] / V_N == pytest.approx(1.0)
    assert s.meter_values()["voltage_v"] / V_N == pytest.approx(1.0)


def test_no_source_impedance_is_the_stiff_grid():
    # None, a zero impedance and a scenario without the key give the same numbers at every step
    for name, (kw, script) in sorted(QUIET_SCRIPTS.items()):
        if "grid_impedance" in kw["scenario"]["site"]:
            continue
        base = _scripted(kw, script, force_full=False)
        for z in (None, {"r_ohm": 0.0, "x_ohm": 0.0}):
            sc = dict(kw["scenario"], site=dict(kw["scenario"]["site"], grid_impedance=z))
            assert _scripted(dict(kw, scenario=sc), script, force_full=False) == base, (name, z)
    s = Site(scenario(load={"p_kw": 9.0, "q_kvar": 3.0}, site={"grid_impedance": None}))
    s.inverter_command(1, -11000.0, 5000.0)
    run(s, 0.3)
    assert s.truth().home_v_pu == 1.0


def test_a_long_run_behind_a_weak_source_settles_after_every_step():
    # 60 s of load and setpoint steps on a 1 + j1 ohm feeder at 11 kVA (the drop's loop gain is
    # largest here): after each step the voltage moves to the operating point the drop equation
    # gives and stays there; the few reversals allowed are the slew and the outer loop, a
    # numerical oscillation of the drop would reverse the voltage at every step
    s = grid_behind(Z_WEAK, load={"p_kw": 2.0, "q_kvar": 0.5})
    rlc = lambda p, m: {"kind": "load_step", "rlc": {"p_kw": p, "q_factor": 1.0, "reactive_mismatch_pct": m}}
    script = [
        lambda: s.inverter_command(1, -10000.0, 0.0),
        lambda: s.apply_event({"kind": "load_step", "p_kw": 6.0, "q_kvar": 2.0}),
        lambda: s.inverter_command(1, -5000.0, 4000.0),
        lambda: s.apply_event(rlc(8.0, 2.0)),
        lambda: s.inverter_command(1, 8000.0, -3000.0),
        lambda: s.apply_event({"kind": "load_step", "p_kw": 0.5, "q_kvar": 0.0}),
        lambda: s.inverter_command(1, 0.0, 6000.0),
        lambda: s.apply_event(rlc(4.0, 0.0)),
        lambda: s.inverter_command(1, -11000.0, 0.0),  # at the rating: the current limit acts
        lambda: s.apply_event({"kind": "load_step", "p_kw": 9.0, "q_kvar": 3.0}),
        lambda: s.inverter_command(0, 0.0, 0.0),
        lambda: s.apply_event({"kind": "load_step", "p_kw": 1.0, "q_kvar": 0.2}),
    ]
    n_seg = int(round(5.0 / DT))
    for i, action in enumerate(script):
        action()
        vs = []
        for _ in range(n_seg):
            s.step(DT)
            vs.append(s.truth().home_v_pu)
        tail = vs[-int(round(1.0 / DT)):]
        assert max(tail) - min(tail) < 1e-9, i
        tr = s.truth()
        assert tr.home_v_pu == pytest.approx(1.0 - (1.0 * tr.p_grid_w + 1.0 * tr.q_grid_var) / V2, abs=1e-9), i
        d = [b - a for a, b in zip(vs, vs[1:]) if abs(b - a) > 1e-9]
        assert sum(1 for a, b in zip(d, d[1:]) if a * b < 0.0) <= 2, i
        assert 0.85 < tr.home_v_pu < 1.1 and tr.inverter_state != plant.ST_FAULT, i


def test_bms_backstop_at_min_soc():
    s = Site(scenario(ev={"soc": 0.2, "min_soc": 0.2}))
    s.inverter_command(1, -5000.0, 0.0)
    run(s, 0.05)
    tr = s.truth()
    assert tr.p_batt_w == 0.0 and tr.bms_blocked
    s.inverter_command(1, 5000.0, 0.0)  # charging is allowed
    run(s, 0.05)
    assert s.truth().p_batt_w == pytest.approx(5000.0) and not s.truth().bms_blocked
    # an island formed on an empty battery cannot be held
    s2 = Site(scenario(ev={"soc": 0.2, "min_soc": 0.2}))
    s2.apply_event({"kind": "grid_disconnect"})
    s2.relay_command(False)
    s2.inverter_command(2, 0.0, 0.0)
    run(s2, 0.1)
    assert s2.truth().home_v_pu == 0.0 and s2.truth().bms_blocked


def test_overcurrent_trip_latches_when_the_limiter_fails():
    s = Site(scenario(load={"p_kw": 2.0}), current_limiter=False)
    s.apply_event({"kind": "grid_disconnect"})
    s.relay_command(False)
    s.inverter_command(2, 0.0, 0.0)
    run(s, 0.1)
    s.apply_event({"kind": "load_step", "p_kw": 15.0, "q_kvar": 3.0})  # 1.4 x rated current
    trips = []
    run(s, 0.05, each=lambda x: trips.append(x.t_s) if x.inverter_values()["fault_overcurrent"] and not trips else None)
    assert trips[0] - 0.1 == pytest.approx(0.010 + DT)  # first sample over + 10 ms
    iv = s.inverter_values()
    assert iv["state"] == 3 and iv["mode"] == 0
    assert s.truth().home_v_pu == 0.0
    s.apply_event({"kind": "load_step", "p_kw": 2.0})
    run(s, 0.05)
    assert s.inverter_values()["state"] == 3  # latched
    s.clear_faults()
    run(s, 0.05)
    assert s.inverter_values()["state"] == 2 and s.truth().home_v_pu > 0.99


def test_command_timeout_forces_off_until_the_next_command():
    s = Site(scenario())
    s.inverter_command(1, -3000.0, 0.0)
    run(s, 0.05)
    s.inverter_command_timeout()
    run(s, 0.001)
    iv = s.inverter_values()
    assert iv["fault_cmd_timeout"] and iv["mode"] == 0 and iv["p_w"] == 0.0
    s.inverter_command(1, -3000.0, 0.0)
    run(s, 0.01)
    iv = s.inverter_values()
    assert not iv["fault_cmd_timeout"] and iv["p_w"] == pytest.approx(-3000.0)


def test_events_the_plant_does_not_handle():
    s = Site(scenario())
    assert not s.apply_event({"kind": "mode", "mode": {"kind": "v2h"}})
    assert not s.apply_event({"kind": "can_silence", "node": "meter", "duration_s": 1.0})
    assert s.apply_event({"kind": "ev_limits", "max_discharge_kw": 3.0})
    assert s.ev_values()["max_discharge_w"] == 3000.0
    assert s.truth().i_dc_limit_changed_s == 0.0


def test_limit_in_force_follows_the_direction():
    s = Site(scenario(ev={"max_charge_kw": 7.0, "max_discharge_kw": 5.0}))
    s.inverter_command(1, 3000.0, 0.0)
    run(s, 0.05)
    tr = s.truth()
    assert tr.i_dc_limit_a == pytest.approx(7000.0 / tr.v_batt)
    s.inverter_command(1, -3000.0, 0.0)
    t_cmd = s.t_s
    run(s, 0.05)
    tr = s.truth()
    assert tr.i_dc_limit_a == pytest.approx(5000.0 / tr.v_batt)
    assert t_cmd < tr.i_dc_limit_changed_s < t_cmd + 0.005  # when the current changed sign
    s.apply_event({"kind": "ev_limits", "max_discharge_kw": 2.0})
    assert s.truth().i_dc_limit_changed_s == s.t_s


def test_deterministic():
    def trace():
        s = Site(scenario(load={"rlc": {"p_kw": 5.0, "q_factor": 1.5, "reactive_mismatch_pct": 3.0}}))
        s.inverter_command(1, -4000.0, 500.0)
        out = []
        run(s, 0.1, each=lambda x: out.append(tuple(x.truth().as_dict().values())))
        s.apply_event({"kind": "grid_disconnect"})
        run(s, 0.2, each=lambda x: out.append(tuple(x.truth().as_dict().values())))
        out.append(tuple(sorted(s.meter_values().items())))
        return out

    assert trace() == trace()


def test_truth_has_the_metric_fields_and_mapping_access():
    tr = Site(scenario()).truth()
    for k in ("home_v_pu", "utility_side_v_pu", "breaker_closed", "relay_closed", "inverter_mode", "p_batt_w",
              "p_ac_w", "i_ac_a", "i_dc_a", "p_load_w", "p_grid_w", "soc", "i_dc_limit_a", "i_ac_limit_a",
              "i_export_limit_a"):
        assert tr[k] == getattr(tr, k)
    assert tr.i_export_limit_a is None
    tr = Site(scenario(), export_limit_kw=6.9).truth()
    assert tr.i_export_limit_a == pytest.approx(10.0)


def _scripted(site_kw, script, force_full):
    """Run a script of (seconds, action) on a Site; with force_full every step takes the full path."""
    s = Site(**site_kw)
    out = []
    for seconds, action in script:
        if action is not None:
            action(s)
        for _ in range(int(round(seconds / DT))):
            if force_full:
                s._quiet = 0
            s.step(DT)
            out.append(tuple(s.truth().as_dict().values()))
            out.append(tuple(sorted(s.meter_values().items())))
            out.append(tuple(sorted(s.inverter_values().items())))
            out.append(tuple(sorted(s.relay_values().items())))
            loss = s.take_ac_loss()
            out.append(loss and tuple(sorted(loss.items())))
    return out


QUIET_SCRIPTS = {
    "grid-tied": ({"scenario": scenario(load={"p_kw": 3.0, "q_kvar": 0.5}),
                   "export_limit_kw": 5.0, "main_fuse_a": 30.0}, [
        (0.2, lambda s: s.inverter_command(1, -9000.0, 0.0)),
        (0.1, lambda s: s.inverter_command(1, -9000.0, 0.0)),  # a repeated command changes nothing
        (0.1, lambda s: s.inverter_limits(40.0, 10.0, 12.0)),  # the DC limit binds and drifts with soc
        (0.1, lambda s: s.apply_event({"kind": "grid_voltage", "pu": 0.95})),
        (0.2, lambda s: s.apply_event({"kind": "grid_voltage", "pu": 0.7})),
        (0.1, lambda s: s.apply_event({"kind": "grid_voltage", "pu": 1.0, "ramp_s": 0.05})),
        (0.2, lambda s: s.apply_event({"kind": "ev_limits", "max_discharge_kw": 2.0})),
        (0.2, lambda s: s.inverter_command(1, 4000.0, -300.0)),
        (0.1, lambda s: s.inverter_command_timeout()),
        (0.1, None)]),
    "bms": ({"scenario": scenario(ev={"soc": 0.2000002, "min_soc": 0.2})}, [
        (0.3, lambda s: s.inverter_command(1, -11000.0, 0.0))]),  # reaches min_soc while quiet
    "islands": ({"scenario": scenario(load={"rlc": {"p_kw": 8.0, "q_factor": 1.0, "reactive_mismatch_pct": 0.0}})}, [
        (0.2, lambda s: s.inverter_command(1, -8000.0 / 0.97, 0.0)),
        (1.0, lambda s: s.apply_event({"kind": "grid_disconnect"})),  # settles: quiet island
        (0.3, lambda s: s.inverter_command(1, -7600.0 / 0.97, 0.0)),
        (0.1, lambda s: s.relay_command(False)),
        (0.2, lambda s: s.inverter_command(0, 0.0, 0.0)),  # dead bus
        (0.3, lambda s: s.inverter_command(2, 0.0, 0.0)),
        (0.2, lambda s: s.apply_event({"kind": "grid_reconnect"})),
        (0.3, lambda s: s.relay_command(True)),
        (0.3, lambda s: s.inverter_command(1, -3000.0, 0.0))]),
    "hard-outage": ({"scenario": scenario(load={"p_kw": 2.0, "q_kvar": 0.2})}, [
        (0.2, lambda s: s.inverter_command(1, -2009.0, 0.0)),
        (0.2, lambda s: s.apply_event({"kind": "grid_disconnect"}))]),
    "charging-outage": ({"scenario": scenario(load={"p_kw": 2.0, "q_kvar": 0.2})}, [
        (0.2, lambda s: s.inverter_command(1, 3000.0, 0.0)),
        (0.1, lambda s: s.apply_event({"kind": "grid_disconnect"})),  # the stage trips on the dead bus
        (0.1, lambda s: s.apply_event({"kind": "grid_reconnect"})),  # and resumes after 20 ms in its window
        (0.1, None)]),
    "surplus": ({"scenario": scenario(load={"p_kw": 2.0, "q_kvar": 0.0})}, [
        (0.2, lambda s: s.inverter_command(1, -2100.0 / 0.97, 0.0)),
        (0.1, lambda s: s.apply_event({"kind": "grid_disconnect"}))]),
}
# the same scripts behind a weak feeder: the bus then moves with what the site draws
for _name in ("grid-tied", "islands", "charging-outage"):
    _kw, _script = QUIET_SCRIPTS[_name]
    _sc = dict(_kw["scenario"], site=dict(_kw["scenario"]["site"], grid_impedance=Z_WEAK))
    QUIET_SCRIPTS[_name + "-impedance"] = (dict(_kw, scenario=_sc), _script)
# at its current limit the stage is never 'fixed', so a grid-tied step at rest still recomputes it
QUIET_SCRIPTS["current-limit-impedance"] = (
    {"scenario": scenario(load={"p_kw": 3.0, "q_kvar": 0.5}, site={"grid_impedance": Z_WEAK})}, [
        (1.0, lambda s: s.inverter_command(1, -11000.0, 6000.0))])


@pytest.mark.parametrize("name", sorted(QUIET_SCRIPTS))
def test_quiescent_steps_equal_full_steps(name):
    # the step's shortcut for states at rest (see Site.step) must be invisible
    kw, script = QUIET_SCRIPTS[name]
    fast = _scripted(kw, script, force_full=False)
    full = _scripted(kw, script, force_full=True)
    assert len(fast) == len(full)
    for i, (a, b) in enumerate(zip(fast, full)):
        assert a == b, (name, i // 5)


def test_step_cost(capsys):
    def cost(site, force_full, n=12000):
        t = time.perf_counter()
        for _ in range(n):
            if force_full:
                site._quiet = 0
            site.step(DT)
            site.truth()
        return (time.perf_counter() - t) / n * 1e6

    s = Site(scenario(load={"p_kw": 2.0, "q_kvar": 0.2}))
    s.inverter_command(1, -3000.0, 0.0)
    quiet, full = cost(s, False), cost(s, True)
    isl = island_gfm({"p_kw": 2.0, "q_kvar": 0.2})
    gfm = cost(isl, False)
    with capsys.disabled():
        print("\nplant step cost: %.2f us grid-tied at rest (%.2f us full step), %.2f us grid-forming island"
              % (quiet, full, gfm))
