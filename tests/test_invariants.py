"""Site invariants (hil/invariants.py): each rule fed a synthetic violation and a synthetic
non-violation through the same paths as a run (Metrics.update per plant step, the
devices' bookkeeping, the controller's frames), then the oracle wired into real runs."""

import types

import pytest

from controller import events as ev
from hil import scenario
from hil.invariants import (CURRENT_TOL_A, DEAD_LINE_MAX_S, DIRECTION_TOL_W, POC_CONFIRM_S, RULES,
                            SLEW_REVERSAL_S, Invariants)
from hil.metrics import Metrics
from hil.runner import run_lockstep
from hil.scenario import controller_config
from site_truth import FakeTruth

DT = 0.0005
CP = 0.010
CMD, FORM = 0x100, 0x102  # GW_InverterCmd, GW_InverterForming


def _devices():
    """What hil.nodes.SiteNodes keeps of the frames the devices sent, all fresh at t = 0."""
    tx = lambda name: types.SimpleNamespace(name=name, good_us=0)  # noqa: E731
    return types.SimpleNamespace(
        supervised={"meter": [tx("MTR_Grid"), tx("MTR_Power")], "inverter": [tx("INV_Status"), tx("INV_AcMeasure")],
                    "relay": [tx("RLY_Feedback")], "ev": [tx("EVCC_Limits"), tx("EVCC_Status")]},
        relay_closed_since_us=0, ev_announced=True, ev_announced_us=0)


class Site:
    """A synthetic run: the oracle attached to Metrics, a fake truth stepped by hand."""

    def __init__(self, **ctl):
        sc = scenario.validate({"name": "t", "duration_s": 100.0, "controller": ctl})
        self.inv = Invariants(controller_config(sc))
        self.m = Metrics(sc, CP)
        self.dev = _devices()
        self.inv.attach(self.m, self.dev)
        self.tr = FakeTruth()
        self.n = 0
        self.m.update(0.0, DT, self.tr)

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

    def fresh(self):
        """Every device sent an intact frame just now."""
        for txs in self.dev.supervised.values():
            for tx in txs:
                tx.good_us = int(round(self.t * 1e6))

    def cmd(self, mode, p_w=0):
        self.inv.on_command(CMD, {"InvModeReq": mode, "PSetpoint": p_w, "QSetpoint": 0}, int(round(self.t * 1e6)))

    @property
    def counts(self):
        return self.inv.counts


def _only(site, rule, n=1):
    assert site.counts == {r: (n if r == rule else 0) for r in RULES}, site.inv.first
    assert site.m.result()["invariant_violations"] == n


def test_report_shape_without_violations():
    s = Site().run(1.0)
    assert s.inv.result() == {"violations": 0, "by_rule": {r: 0 for r in RULES}, "first": []}
    assert s.m.result()["invariant_violations"] == 0


# -------------------------------------------------------------------- current
def test_current_dc_over_the_ev_limit_is_one_episode():
    s = Site().run(0.1, i_dc_a=-28.0)
    _only(s, "current", 0)  # at the limit
    s.run(0.05, i_dc_a=-28.0 - CURRENT_TOL_A / 2)
    _only(s, "current", 0)  # within the tolerance
    s.run(0.2, i_dc_a=-29.0)
    _only(s, "current", 1)  # 200 ms over: one episode, however many samples
    first = s.inv.first[0]
    assert first["rule"] == "current" and "dc current 29.00 A" in first["detail"] and first["t_s"] == pytest.approx(0.1505)
    s.run(0.1, i_dc_a=0.0).run(0.1, i_dc_a=30.0)
    _only(s, "current", 2)  # a second excursion is a second episode


def test_current_counts_one_control_period_after_the_limit_changed():
    s = Site().run(0.1)
    s.tr.i_dc_limit_changed_s = s.t
    s.run(CP - DT, i_dc_a=-29.0)  # the limit just dropped below the current: the controller has a period
    _only(s, "current", 0)
    s.run(2 * DT)
    _only(s, "current", 1)


def test_current_ev_limit_not_yet_on_the_bus_is_not_counted():
    """The EV lowered its limit while its frames were lost: nobody can know it before the
    first intact EVCC_Limits frame, or before the EV input is stale."""
    s = Site().run(0.1)
    s.tr.i_dc_limit_changed_s = s.t
    s.dev.ev_announced = False
    s.fresh()
    s.run(0.3, i_dc_a=-29.0)
    _only(s, "current", 0)
    s.dev.ev_announced = True  # the first intact frame with the new limit
    s.dev.ev_announced_us = int(round(s.t * 1e6))
    s.run(CP - DT)
    _only(s, "current", 0)
    s.run(2 * DT)
    _only(s, "current", 1)


def test_current_ev_limit_never_delivered_counts_once_the_ev_is_stale():
    s = Site().run(0.1)
    s.tr.i_dc_limit_changed_s = s.t
    s.dev.ev_announced = False
    s.fresh()
    t_stale = s.t + 0.5 + CP + 0.001  # EV timeout 500 ms + one period + margin
    s.run(t_stale + CP - s.t - DT, i_dc_a=-29.0)
    _only(s, "current", 0)
    s.run(2 * DT)
    _only(s, "current", 1)


def test_current_export_counts_only_when_it_lasts():
    s = Site(site={"export_limit_kw": 3.0})
    s.tr.i_export_limit_a = 3000.0 / (3 * 230.0)
    s.run(POC_CONFIRM_S - 2 * DT, i_export_a=6.0)  # a load step: the meter sees it only later
    s.run(0.1, i_export_a=0.0)
    _only(s, "current", 0)
    s.run(POC_CONFIRM_S + 2 * DT, i_export_a=6.0)
    _only(s, "current", 1)
    assert "export current 6.00 A" in s.inv.first[0]["detail"]


def test_current_main_fuse():
    s = Site()
    s.tr.i_fuse_limit_a = 35.0
    s.run(1.0, i_grid_a=34.9)
    _only(s, "current", 0)
    s.run(0.5, i_grid_a=36.0)
    _only(s, "current", 1)
    assert "main fuse" in s.inv.first[0]["detail"]


# -------------------------------------------------------------------- forming
def test_forming_command_while_the_relay_reports_closed():
    s = Site().run(0.1)
    s.dev.relay_closed_since_us = int(round(s.t * 1e6))
    s.cmd(2)
    s.inv.on_command(FORM, {"VoltageSetpoint": 230.0, "FrequencySetpoint": 50.0, "DroopEnable": 1},
                     int(round(s.t * 1e6)))
    _only(s, "forming", 1)  # the command and its forming frame: one episode
    assert s.inv.first[0]["detail"].startswith("GW_InverterCmd InvModeReq=2")


def test_forming_while_the_relay_reports_open_or_moving_is_the_backup():
    s = Site().run(0.1)
    s.dev.relay_closed_since_us = None  # last intact RLY_Feedback: open (or moving)
    for _ in range(5):
        s.cmd(2)
        s.inv.on_command(FORM, {"VoltageSetpoint": 230.0, "FrequencySetpoint": 50.0, "DroopEnable": 1},
                         int(round(s.t * 1e6)))
        s.run(CP)
    s.dev.relay_closed_since_us = int(round(s.t * 1e6))
    s.fresh()
    s.cmd(1, -3000)  # grid-following once it reports closed
    _only(s, "forming", 0)


def test_forming_frame_alone_counts():
    s = Site().run(0.1)
    s.inv.on_command(FORM, {"VoltageSetpoint": 230.0, "FrequencySetpoint": 50.0, "DroopEnable": 1}, 100000)
    _only(s, "forming", 1)


# -------------------------------------------------------------------- direction
def _grid_site(mode):
    s = Site().run(0.1)
    s.inv.on_status(mode, s.t)
    return s


def test_direction_discharge_in_charge():
    s = _grid_site(ev.CHARGE)
    s.run(0.5, p_batt_w=-500.0)
    _only(s, "direction", 1)
    assert "discharging -500 W in reported mode charge" in s.inv.first[0]["detail"]


def test_direction_charge_in_v2g_v2h_idle():
    for mode in (ev.V2G, ev.V2H, ev.IDLE):
        s = _grid_site(mode)
        s.run(0.5, p_batt_w=400.0)
        _only(s, "direction", 1)


def test_direction_allows_settling_tolerance_and_other_modes():
    s = _grid_site(ev.CHARGE)
    settle = CP + SLEW_REVERSAL_S
    s.run(settle - DT, p_batt_w=-5000.0)  # the previous mode's discharge, while the command takes hold
    s.run(0.5, p_batt_w=-DIRECTION_TOL_W / 2)  # rounding
    s.run(0.5, p_batt_w=4000.0)
    _only(s, "direction", 0)
    for mode in (ev.BACKUP, ev.SAFE):  # not covered by the rule
        s.inv.on_mode_event(mode, s.t)
        s.run(0.5, p_batt_w=-4000.0).run(0.5, p_batt_w=4000.0)
    _only(s, "direction", 0)


def test_direction_only_while_grid_connected():
    s = _grid_site(ev.CHARGE)
    s.run(0.5, p_batt_w=-3000.0, relay_closed=False)  # backup: the EV carries the home
    s.run(0.5, breaker_closed=False, relay_closed=True)  # outage, relay not yet open
    _only(s, "direction", 0)
    s.run(CP, breaker_closed=True, p_batt_w=-1000.0)  # reconnected: the grid-forming transient
    _only(s, "direction", 0)
    s.run(0.1)
    _only(s, "direction", 1)


def test_direction_mode_change_restarts_the_allowance():
    s = _grid_site(ev.V2G).run(0.5, p_batt_w=-5000.0)
    s.inv.on_mode_event(ev.CHARGE, s.t)
    s.run(CP, p_batt_w=-200.0)
    s.run(0.5, p_batt_w=2000.0)
    _only(s, "direction", 0)


# -------------------------------------------------------------------- dead line
def test_dead_line_longer_than_two_seconds():
    s = Site().run(0.1)
    s.run(DEAD_LINE_MAX_S + 0.5, breaker_closed=False, utility_side_v_pu=0.9)
    _only(s, "dead_line", 1)
    assert s.inv.first[0]["t_s"] == pytest.approx(0.1 + DEAD_LINE_MAX_S + DT)
    assert s.m.result()["dead_line_energized_ms"] == pytest.approx((DEAD_LINE_MAX_S + 0.5) * 1000)


def test_dead_line_short_stretches_do_not_add_up():
    s = Site().run(0.1)
    for _ in range(3):
        s.run(DEAD_LINE_MAX_S - 0.1, breaker_closed=False, utility_side_v_pu=0.9)
        s.run(0.05, utility_side_v_pu=0.2)  # the island collapsed for a moment
    s.run(10.0, utility_side_v_pu=0.0)
    s.run(1.0, breaker_closed=True, utility_side_v_pu=1.0)
    _only(s, "dead_line", 0)


# -------------------------------------------------------------------- stale
def _refresh(s, *keep_old):
    """Every message sent an intact frame now, except the named ones."""
    for txs in s.dev.supervised.values():
        for tx in txs:
            if tx.name not in keep_old:
                tx.good_us = int(round(s.t * 1e6))


def test_stale_power_command_without_a_meter():
    s = Site().run(0.1)
    s.fresh()
    s.cmd(1, -3000)
    s.run(0.061)
    _refresh(s, "MTR_Grid")  # MTR_Grid: last intact frame 61 ms ago, the timeout is 50 ms
    s.cmd(1, -3000)
    _only(s, "stale", 0)  # within timeout + one period + 1 ms
    s.run(0.002)
    _refresh(s, "MTR_Grid")
    s.cmd(1, -3000)
    _only(s, "stale", 1)
    assert "meter (MTR_Grid silent or corrupt for 63 ms, timeout 50 ms)" in s.inv.first[0]["detail"]
    s.run(CP)
    s.cmd(1, -3000)
    _only(s, "stale", 1)  # the next period's command continues the episode


def test_stale_ev_uses_its_own_timeout():
    s = Site().run(0.4)
    s.fresh()
    s.dev.supervised["ev"][1].good_us = 0  # 400 ms: within the EV's 500 ms
    s.cmd(1, 2000)
    _only(s, "stale", 0)
    s.run(0.2)
    for txs in ("meter", "inverter", "relay"):
        for tx in s.dev.supervised[txs]:
            tx.good_us = int(round(s.t * 1e6))
    s.cmd(1, 2000)
    _only(s, "stale", 1)


def test_stale_zero_power_or_off_is_fine():
    s = Site().run(1.0)  # nothing fresh for a second
    s.cmd(1, 0)
    s.cmd(0, 0)
    _only(s, "stale", 0)


def test_stale_configured_timeout():
    s = Site(meter={"timeout_ms": 200}).run(0.2)
    s.fresh()
    s.dev.supervised["meter"][1].good_us = 0
    s.cmd(1, -1000)
    _only(s, "stale", 0)


# -------------------------------------------------------------------- in runs
def test_first_list_is_bounded():
    s = Site().run(0.1)
    s.inv.on_status(ev.V2G, s.t)
    for _ in range(30):
        s.run(0.1, p_batt_w=100.0).run(0.1, p_batt_w=-100.0)
    assert s.counts["direction"] == 30
    assert len(s.inv.first) == 20


def test_run_reports_invariants():
    sc = scenario.validate({"name": "inv", "duration_s": 2.0, "mode": {"kind": "v2g", "setpoint_kw": -5.0},
                            "events": [{"t_s": 0.5, "kind": "can_silence", "node": "relay", "duration_s": 0.3},
                                       {"t_s": 1.0, "kind": "mode", "mode": {"kind": "charge", "setpoint_kw": -3.0}}]})
    report, _ = run_lockstep(sc)
    assert report["metrics"]["invariant_violations"] == 0
    assert report["invariants"] == {"violations": 0, "by_rule": {r: 0 for r in RULES}, "first": []}


# -------------------------------------------------------------------- a broken controller
# The rules in whole runs: the shipped controller with one safeguard taken out (monkeypatched
# for the test, controller/ unchanged) must be caught by the rule that guards against it.

def _broken_run(monkeypatch, sc, *patches):
    for obj, name, fn in patches:
        monkeypatch.setattr(obj, name, fn)
    report, _ = run_lockstep(scenario.validate(sc))
    return report["invariants"]


def test_a_controller_that_never_times_out_is_caught_by_stale(monkeypatch):
    from controller.bus.inputs import Input

    sc = {"name": "blind", "duration_s": 2.0, "mode": {"kind": "v2g", "setpoint_kw": -5.0},
          "events": [{"t_s": 1.0, "kind": "can_silence", "node": "meter", "duration_s": 0.5}]}
    inv = _broken_run(monkeypatch, sc, (Input, "stale", lambda self, now: not self.seen))
    assert inv["by_rule"] == {**{r: 0 for r in RULES}, "stale": 1}, inv["first"]
    v = inv["first"][0]
    # last meter frame at 0.99 s: stale from 0.99 + 50 ms timeout + 10 ms period + 1 ms, caught at the next command
    assert 1.051 < v["t_s"] <= 1.061 and "meter (MTR_Grid silent or corrupt for" in v["detail"]


def test_a_controller_that_discharges_in_charge_is_caught_by_direction(monkeypatch):
    from controller.control.operating_mode import OperatingMode

    target = OperatingMode.target

    def no_direction_guard(self, new_sample, load_w):
        return self.setpoint_w if self.mode == ev.CHARGE else target(self, new_sample, load_w)

    sc = {"name": "wrong-way", "duration_s": 1.5, "mode": {"kind": "charge", "setpoint_kw": 4.0},
          "events": [{"t_s": 0.8, "kind": "mode", "mode": {"kind": "charge", "setpoint_kw": -3.0}}]}
    inv = _broken_run(monkeypatch, sc, (OperatingMode, "target", no_direction_guard))
    assert inv["by_rule"] == {**{r: 0 for r in RULES}, "direction": 1}, inv["first"]
    assert "discharging" in inv["first"][0]["detail"] and "mode charge" in inv["first"][0]["detail"]


def test_a_controller_that_ignores_the_ev_limit_is_caught_by_current(monkeypatch):
    from controller.control import gateway, limits

    sc = {"name": "over", "duration_s": 2.0, "load": {"p_kw": 1.0}, "mode": {"kind": "v2g", "setpoint_kw": -10.0},
          "events": [{"t_s": 1.0, "kind": "ev_limits", "max_discharge_kw": 3.0}]}
    def no_clamp(self, p):
        self.by = limits.NONE
        return p

    inv = _broken_run(monkeypatch, sc, (limits.Arbiter, "limit", no_clamp),
                      # and the inverter's own DC limit, the second line of defence, left wide open
                      (gateway.Gateway, "_send_limits", lambda self: self.out.send_limits(15.9, 400.0, 400.0)))
    assert inv["by_rule"] == {**{r: 0 for r in RULES}, "current": 1}, inv["first"]
    v = inv["first"][0]
    assert 1.0 < v["t_s"] <= 1.0105 and "over the EV's limit" in v["detail"]  # one control period after
