"""Run metrics (hil/metrics.py) against the README definitions: synthetic plant
traces for exact numbers, and a scripted outage on the real plant."""

import pytest

from hil.metrics import RESULT_KEYS, Metrics
from hil.plant import Site
from site_truth import FakeTruth

DT = 0.0005
CP = 0.010  # control period


def scenario(**ev):
    e = {"soc": 0.8, "capacity_kwh": 94.0, "max_charge_kw": 11.0, "max_discharge_kw": 11.0, "min_soc": 0.2}
    e.update(ev)
    return {"name": "t", "duration_s": 10.0, "seed": 0,
            "site": {"nominal_voltage_v": 230.0, "nominal_frequency_hz": 50.0, "phases": 3,
                     "grid_code": "EN50549-1", "meter_period_ms": 10, "inverter_period_ms": 10,
                     "relay_open_ms": 8, "relay_close_ms": 12},
            "ev": e, "inverter": {"rating_kva": 11.0}, "load": {"p_kw": 2.0, "q_kvar": 0.0},
            "mode": {"kind": "idle", "setpoint_kw": 0.0}, "controller": {}, "events": []}


class Trace:
    def __init__(self, **ev):
        self.m = Metrics(scenario(**ev), CP)
        self.tr = FakeTruth()
        self.n = 0
        self.m.update(0.0, DT, self.tr)  # the runner's sample before the first step

    @property
    def t(self):
        return self.n * DT

    def run(self, seconds, **fields):
        for k, v in fields.items():
            setattr(self.tr, k, v)
        for _ in range(int(round(seconds / DT))):
            self.n += 1
            self.tr.t_s = self.n * DT
            self.m.update(self.tr.t_s, DT, self.tr)
        return self


def test_result_has_every_readme_metric():
    r = Trace().run(0.1).m.result()
    assert set(RESULT_KEYS) <= set(r)
    assert r["island_detection_s"] is None and r["reconnect_delay_s"] is None
    assert r["trip_count"] == 0 and r["home_interruption_ms"] == 0.0 and r["max_over_limit_a"] == 0.0
    assert r["ev_soc_end"] == 0.8


def test_home_interruption_counts_time_below_0_7_pu():
    tr = Trace().run(0.1).run(0.012, home_v_pu=0.69).run(0.1, home_v_pu=0.7).run(0.0035, home_v_pu=0.0)
    tr.run(0.1, home_v_pu=1.0)
    assert tr.m.result()["home_interruption_ms"] == pytest.approx(15.5)


def test_dead_line_energized_counts_live_utility_side_with_the_breaker_open():
    tr = Trace().run(0.1)
    tr.run(0.2, utility_side_v_pu=0.6)  # live, but the breaker is closed: the grid itself
    tr.run(0.009, breaker_closed=False, utility_side_v_pu=0.95)
    tr.run(0.050, utility_side_v_pu=0.5)  # not above 0.5 pu
    tr.run(0.003, utility_side_v_pu=0.51)
    tr.run(0.1, utility_side_v_pu=0.0)
    assert tr.m.result()["dead_line_energized_ms"] == pytest.approx(12.0)


def test_max_over_limit_ignores_the_grace_period_and_catches_a_real_exceedance():
    tr = Trace().run(0.5, i_dc_a=-20.0)
    # the EV cuts its limit at t = 0.5 s; the current takes 9 ms to follow: within grace
    t_change = tr.t
    tr.tr.i_dc_limit_changed_s = t_change
    tr.run(0.009, i_dc_limit_a=8.0)
    tr.run(0.001, i_dc_a=-8.0)
    assert tr.m.result()["max_over_limit_a"] == 0.0
    # one sample later than one control period after the change: counts
    tr.run(DT, i_dc_a=-9.5)
    assert tr.m.result()["max_over_limit_a"] == pytest.approx(1.5)
    tr.run(0.1, i_dc_a=-8.0)
    # the AC rating and an export limit are limits too
    tr.run(0.01, i_ac_a=16.4)
    assert tr.m.result()["max_over_limit_a"] == pytest.approx(1.5)
    tr.run(0.01, i_ac_a=17.9)
    assert tr.m.result()["max_over_limit_a"] == pytest.approx(2.0)
    tr.run(0.01, i_ac_a=5.0, i_export_limit_a=10.0, i_export_a=13.25)
    assert tr.m.result()["max_over_limit_a"] == pytest.approx(3.25)


def test_direction_change_restarts_the_grace_period():
    tr = Trace().run(0.2, i_dc_a=5.0, i_dc_limit_a=10.0)
    tr.tr.i_dc_limit_changed_s = tr.t  # the current turned around: the discharge limit is in force now
    tr.run(CP, i_dc_a=-6.0, i_dc_limit_a=4.0)
    assert tr.m.result()["max_over_limit_a"] == 0.0
    tr.run(DT)
    assert tr.m.result()["max_over_limit_a"] == pytest.approx(2.0)


def test_trip_count_and_island_detection_time():
    tr = Trace()
    tr.m.on_event(0.05, "island_detected", method="rocof")  # nuisance detection before the outage
    tr.m.on_event(0.05, "trip", reason="rocof")
    tr.run(1.0)
    tr.run(0.5, breaker_closed=False)
    tr.m.on_event(1.0115, "island_detected", method="undervoltage")
    tr.m.on_event(1.012, "trip", reason="island")
    tr.m.on_event(1.3, "island_detected", method="rocof")
    r = tr.m.result()
    assert r["trip_count"] == 2
    assert r["island_detection_s"] == pytest.approx(0.0115)


def test_reconnect_metrics_after_an_outage():
    tr = Trace().run(1.0)
    tr.run(0.01, breaker_closed=False)
    tr.run(1.0, relay_closed=False, home_f_hz=49.9)
    # grid back at t=2.01, first outside the window, within limits from t=2.51
    tr.run(0.5, breaker_closed=True, grid_v_pu=1.15)
    tr.run(3.0, grid_v_pu=1.0, sync_dphi_deg=-12.5, sync_df_hz=0.1, sync_dv_pu=-0.003)
    # the plant's closing sample carries the differences that stood across the contact
    tr.run(DT, relay_closed=True)
    tr.run(0.1, sync_dphi_deg=0.0, sync_df_hz=0.0, sync_dv_pu=0.0)
    r = tr.m.result()
    assert r["reconnect_delay_s"] == pytest.approx(3.0)
    assert r["reconnect_phase_error_deg"] == 12.5
    assert r["reconnect_frequency_error_hz"] == 0.1
    assert r["reconnect_voltage_error_pu"] == 0.003


def test_energies():
    tr = Trace()
    tr.run(1.0, p_ac_w=-3000.0, p_load_w=2000.0, p_grid_w=-1000.0)  # V2G: 2 kW to the home, 1 kW out
    tr.run(2.0, p_ac_w=-1500.0, p_load_w=2000.0, p_grid_w=500.0)  # V2H short of the load
    tr.run(3.6, p_ac_w=4000.0, p_load_w=2000.0, p_grid_w=6000.0)  # charging
    r = tr.m.result()
    assert r["energy_to_home_kwh"] == pytest.approx((2000.0 * 1.0 + 1500.0 * 2.0) / 3.6e6)
    assert r["energy_to_grid_kwh"] == pytest.approx(1000.0 / 3.6e6)
    assert r["energy_from_grid_kwh"] == pytest.approx((500.0 * 2.0 + 6000.0 * 3.6) / 3.6e6)


def test_a_repeated_sample_counts_nothing_twice():
    tr = Trace().run(0.1, home_v_pu=0.0)
    tr.m.update(tr.t, DT, tr.tr)
    tr.m.update(tr.t, DT, tr.tr)
    assert tr.m.result()["home_interruption_ms"] == pytest.approx(100.0)


def test_rounding_to_six_significant_digits():
    tr = Trace().run(0.3, p_ac_w=-1234.56789, p_load_w=5000.0)
    v = tr.m.result()["energy_to_home_kwh"]
    assert v == float("%.6g" % (1234.56789 * 0.3 / 3.6e6))


def test_scripted_outage_on_the_plant():
    """A gateway stand-in: opens the relay 10 ms after the outage, forms the island,
    waits for the grid, synchronises and recloses."""
    sc = scenario()
    site = Site(sc)
    m = Metrics(sc, CP)
    count = {"dead": 0, "dark": 0}  # samples counted here from the truth, independently of Metrics

    def run(seconds):
        for _ in range(int(round(seconds / DT))):
            site.step(DT)
            tr = site.truth()
            m.update(site.t_s, DT, tr)
            count["dead"] += (not tr.breaker_closed) and tr.utility_side_v_pu > 0.5
            count["dark"] += tr.home_v_pu < 0.7

    site.inverter_command(1, -1950.0 / 0.97, 0.0)  # V2H, 50 W short of the 2 kW load
    run(1.0)
    site.apply_event({"kind": "grid_disconnect"})
    run(0.010)
    m.on_event(site.t_s, "island_detected", method="test")
    site.relay_command(False)
    run(0.02)
    site.inverter_command(2, 0.0, 0.0)
    run(1.0)
    site.apply_event({"kind": "grid_reconnect"})
    site.apply_event({"kind": "grid_phase_jump", "deg": 40.0})
    run(1.0)
    while abs(site.relay_values()["phase_diff_deg"]) > 1.0:  # slide the island's phase onto the grid's
        site.inverter_forming(230.0, 50.0 + 0.02 * site.relay_values()["phase_diff_deg"], False)
        run(CP)
    site.inverter_forming(230.0, 50.0, False)
    site.relay_command(True)
    run(0.1)
    r = m.result()
    assert r["island_detection_s"] == pytest.approx(0.010)
    assert r["dead_line_energized_ms"] == pytest.approx(count["dead"] * DT * 1000.0)
    assert r["home_interruption_ms"] == pytest.approx(count["dark"] * DT * 1000.0)
    # the grid-following inverter is a current source: against the constant-power load the
    # 50 W deficit collapses the bus below 0.5 pu within a few ms (docs/plant.md 3a), so the
    # dead line is de-energized before the relay contact parts (10 ms + its 8 ms) ...
    assert 3.0 < r["dead_line_energized_ms"] < 10.0
    # ... and the home is dark from ~4 ms until the inverter forms the island at 30 ms
    assert 20.0 < r["home_interruption_ms"] < 30.0
    assert r["reconnect_delay_s"] > 1.0
    assert r["reconnect_phase_error_deg"] < 1.5
    assert r["reconnect_frequency_error_hz"] < 0.05
    assert r["reconnect_voltage_error_pu"] < 0.01
    assert r["ev_soc_end"] < 0.8
    assert r["energy_to_home_kwh"] > 1950.0 * 2.0 / 3.6e6
    assert r["max_over_limit_a"] == 0.0
