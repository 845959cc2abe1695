"""Operating plans in the HIL: the scenario event `plan`, the energy manager's plan frames,
the plan and reserve metrics, and lockstep runs of the controller following a plan (the
slots in turn, expiry to the fallback, the reserve, a corrupted set, a cancel)."""

import pathlib

import pytest

from controller.bus import candb
from controller.bus.inputs import Input
from controller.bus.ports.memory import MemoryBus
from controller.energy.schedule import Schedule
from hil import scenario
from hil.nodes import SiteNodes
from hil.plan_metrics import FIRST_SETTLE_S, SETTLE_S, plan_spans
from hil.runner import _site, run_lockstep
from hil.scenario import ScenarioError, controller_config
from site_truth import MetricsRun

SCEN = pathlib.Path(__file__).resolve().parent.parent / "scenarios"
PLAN = {"t_s": 1.0, "kind": "plan", "slot_s": 10,
        "slots": [{"mode": "charge", "kw": 7.0}, {"mode": "v2h", "kw": -3.0}, {"mode": "v2g", "kw": -5.0}]}


def _sc(events=(), **top):
    d = {"name": "t", "duration_s": 40.0, "events": list(events)}
    d.update(top)
    return scenario.validate(d)


def _error(events=(), **top):
    with pytest.raises(ScenarioError) as e:
        _sc(events, **top)
    return e.value


def _p(rec, t0, t1):
    return [s[5] for s in rec.samples if t0 <= s[0] <= t1]


def _kinds(report, kind):
    return [e for e in report["events"] if e["kind"] == kind]


# ---------------------------------------------------------------- scenario: plan

def test_plan_is_validated_with_its_defaults():
    ev = _sc([PLAN])["events"][0]
    assert ev == {**PLAN, "slot0_elapsed_s": 0, "reserve_pct": 0, "corrupt_slots": []}
    cancel = _sc([{"t_s": 2.0, "kind": "plan", "slots": []}])["events"][0]
    assert cancel["slots"] == [] and "slot_s" not in cancel
    assert _sc([{**PLAN, "slots": [{"mode": "idle"}]}])["events"][0]["slots"] == [{"mode": "idle", "kw": 0.0}]


@pytest.mark.parametrize("change, key, words", [
    ({"slots": [{"mode": "export", "kw": 1.0}]}, "events[0].slots[0].mode", "must be one of"),
    ({"slots": [{"mode": "v2g", "kw": -40.0}]}, "events[0].slots[0].kw", ">= -32"),
    ({"slots": [{"mode": "v2g", "w": -4.0}]}, "events[0].slots[0].w", "unknown key"),
    ({"slots": [{"mode": "idle"}] * 49}, "events[0].slots", "at most 48"),
    ({"slots": "charge"}, "events[0].slots", "list"),
    ({"slot_s": 5}, "events[0].slot_s", ">= 10"),
    ({"slot_s": 4000}, "events[0].slot_s", "<= 3600"),
    ({"slot_s": 60.5}, "events[0].slot_s", "whole number"),
    ({"slot0_elapsed_s": 10}, "events[0].slot0_elapsed_s", "<= 9"),
    ({"reserve_pct": 101}, "events[0].reserve_pct", "<= 100"),
    ({"corrupt_slots": [3]}, "events[0].corrupt_slots[0]", "<= 2"),
    ({"corrupt_slots": 1}, "events[0].corrupt_slots", "list"),
    ({"color": "red"}, "events[0].color", "unknown key"),
])
def test_a_bad_plan_names_its_key(change, key, words):
    e = _error([{**PLAN, **change}])
    assert e.key == key and words in e.problem, str(e)


def test_plan_needs_slots_and_slot_length_and_cancel_takes_none():
    ev = dict(PLAN)
    del ev["slot_s"]
    assert _error([ev]).key == "events[0].slot_s"
    ev = dict(PLAN)
    del ev["slots"]
    assert _error([ev]).key == "events[0].slots"
    e = _error([{"t_s": 1.0, "kind": "plan", "slots": [], "slot_s": 60}])
    assert e.key == "events[0].slot_s" and "cancel" in e.problem


def test_plan_fallback_is_a_checked_controller_key():
    assert _sc(controller={"plan": {"fallback": "idle"}})["controller"]["plan"]["fallback"] == "idle"
    e = _error(controller={"plan": {"fallback": "v2g"}})
    assert e.key == "controller.plan.fallback" and "must be one of" in e.problem


# ---------------------------------------------------------------- the energy manager's frames

class _Gw:
    """The gateway's side of the plan frames: its input checks and a Schedule."""

    def __init__(self):
        self.hdr = Input(candb.BY_NAME["EMS_PlanHdr"], 0)
        self.slot = Input(candb.BY_NAME["EMS_PlanSlot"], 0)
        self.sched = Schedule()
        self.refused = 0
        self.modes = 0

    def take(self, port, now):
        while True:
            f = port.recv()
            if f is None:
                return
            can_id, _, data = f
            if can_id == candb.BY_NAME["EMS_ModeRequest"].frame_id:
                self.modes += 1
            elif can_id == self.hdr.msg.frame_id:
                if self.hdr.accept(data, now):
                    self.refused += 1
                    continue
                v = self.hdr.values
                self.sched.on_header(v["PlanId"], v["NumSlots"], v["SlotSeconds"], v["Slot0ElapsedS"],
                                     v["ReserveSoc"], now)
            elif can_id == self.slot.msg.frame_id:
                if self.slot.accept(data, now):
                    self.refused += 1
                    continue
                v = self.slot.values
                self.sched.on_slot(v["PlanId"], v["Index"], v["Mode"], v["SetpointPower"], now)


def _play(events, until_s, step_us=10000):
    sc = _sc(events)
    bus = MemoryBus()
    dev = bus.port(256)
    port = bus.port(256)
    nodes = SiteNodes(_site(sc, controller_config(sc)), dev, sc, codec="cantools")
    gw = _Gw()
    evs = list(sc["events"])
    t_us = 0
    while t_us <= until_s * 1e6:
        while evs and evs[0]["t_s"] * 1e6 <= t_us:
            nodes.apply_event(evs.pop(0), t_us)
        nodes.transmit(t_us)
        gw.take(port, t_us)
        t_us += step_us
    return nodes, gw


def test_the_energy_manager_sends_the_plan_with_e2e_and_stops_its_live_requests():
    nodes, gw = _play([{**PLAN, "reserve_pct": 35, "slot0_elapsed_s": 4}], 3.5)
    s = gw.sched
    assert s.in_force and s.accepted == 1 and gw.refused == 0
    assert (s.plan_id, s.n, s.slot_s, s.offset_s, s.reserve_pct) == (1, 3, 10, 4, 35)
    assert list(s.modes[:3]) == [1, 2, 3] and s.setpoints[:3] == [7000, -3000, -5000]
    assert gw.modes == 1  # the live request at 0 s; none from the plan on (1 s)
    assert nodes.ems_plan.sets_sent == 1


def test_a_corrupt_slot_leaves_the_set_incomplete_and_a_new_plan_takes_a_new_id():
    nodes, gw = _play([PLAN, {**PLAN, "t_s": 2.0, "corrupt_slots": [1]},
                       {"t_s": 5.0, "kind": "plan", "slot_s": 60, "slots": [{"mode": "idle"}]}], 6.0)
    s = gw.sched
    assert gw.refused == 1  # the corrupt slot, at the frame checks
    assert s.refused == 1  # the set it belonged to (its time ran out at the next header)
    assert s.accepted == 2 and s.plan_id == 3 and s.n == 1


# ---------------------------------------------------------------- metrics

DT = 0.01


def _Run(events, **top):
    return MetricsRun(_sc(events, **top), DT)


def test_plan_spans_skip_refused_sets_and_end_at_a_cancel():
    sc = _sc([PLAN, {**PLAN, "t_s": 5.0, "corrupt_slots": [0]}, {"t_s": 20.0, "kind": "plan", "slots": []},
              {**PLAN, "t_s": 25.0, "slot0_elapsed_s": 3, "reserve_pct": 50}])
    assert [(a, b, t0, r) for a, b, _, t0, _, r in plan_spans(sc)] == [(1.0, 20.0, 1.0, 0), (25.0, 52.0, 22.0, 50)]


def test_no_plan_no_tracking_metric():
    r = _Run([]).run(2.0).result
    assert r["plan_tracking_error_kw"] is None and r["reserve_violation_s"] == 0.0
    assert r["min_soc_grid_connected_pct"] == 80.0


def test_tracking_error_after_the_settling_time_of_each_slot():
    r = _Run([PLAN])
    # before the plan and in the first slot's settling time: nothing counts
    r.run(1.0 + FIRST_SETTLE_S - 0.05, p_batt_w=-9000.0)
    r.run(11.0 - r.tr.t_s, p_batt_w=6800.0)  # the charge slot (7 kW) to its end: 0.2 kW short
    assert r.result["plan_tracking_error_kw"] == pytest.approx(0.2)
    r.run(10.0, p_batt_w=-500.0)  # v2h: not counted
    r.run(SETTLE_S - 0.05, p_batt_w=0.0)  # the v2g slot's settling time
    r.run(31.0 - r.tr.t_s, p_batt_w=-4500.0)  # to the plan's end at 31 s
    assert r.result["plan_tracking_error_kw"] == pytest.approx(0.5)
    r.run(20.0, p_batt_w=-9000.0)  # after the plan: not counted
    assert r.result["plan_tracking_error_kw"] == pytest.approx(0.5)


def test_reserve_violation_counts_discharge_below_the_reserve_in_force_while_grid_connected():
    r = _Run([{**PLAN, "reserve_pct": 40}], controller={"backup": {"reserve_soc_pct": 30.0}})
    r.run(0.5, soc=0.35, p_batt_w=-3000.0)  # before the plan: 30 % in force
    assert r.result["reserve_violation_s"] == 0.0
    r.run(1.0, soc=0.35)  # the plan's 40 % from 1 s on
    assert r.result["reserve_violation_s"] == pytest.approx(0.5)
    r.run(1.0, soc=0.35, p_batt_w=2000.0)  # charging: no violation
    r.run(1.0, soc=0.399, p_batt_w=-3000.0)  # within the SoC signal's resolution
    r.run(1.0, soc=0.2, relay_closed=False)  # islanded: the reserve is for this
    assert r.result["reserve_violation_s"] == pytest.approx(0.5)
    assert r.result["min_soc_grid_connected_pct"] == pytest.approx(35.0)


# ---------------------------------------------------------------- lockstep runs

def test_plan_follow_slots_in_turn_then_the_fallback():
    report, rec = run_lockstep(scenario.load(SCEN / "plan-follow.json"))
    m = report["metrics"]
    assert m["trip_count"] == 0 and m["invariant_violations"] == 0 and m["max_over_limit_a"] == 0.0
    assert m["plan_tracking_error_kw"] is not None and m["plan_tracking_error_kw"] < 0.05
    assert [e["mode"] for e in _kinds(report, "mode_change")][-4:] == ["charge", "v2h", "v2g", "v2h"]
    assert [(e["plan_id"], e["slots"]) for e in _kinds(report, "plan_accepted")] == [(1, 3)]
    assert [e["reason"] for e in _kinds(report, "plan_ended")] == ["expired"]
    # the plan's first slot waits out the live request (last repeated at 1 s, valid 3 s), then
    # ramps (20 kW/s) to 7 kW
    assert all(abs(p) < 50.0 for p in _p(rec, 0.5, 3.99))
    assert all(abs(p - 7000.0) < 20.0 for p in _p(rec, 4.5, 61.9))
    # v2h (capped at 3 kW, the home takes 2 kW): the home's load from the EV, no export
    v2h = [s for s in rec.samples if 63.0 <= s[0] <= 121.9]
    assert all(-2100.0 < s[5] < -1900.0 and s[4] >= 0.0 for s in v2h)
    assert all(abs(p + 5000.0) < 20.0 for p in _p(rec, 123.0, 181.9))
    # the plan's last slot elapsed: the fallback powers the home from the EV (60 % >> 20 %)
    assert all(-2100.0 < p < -1900.0 for p in _p(rec, 183.0, 200.0))


def test_plan_reserve_holds_the_ev_at_the_plans_reserve():
    report, rec = run_lockstep(scenario.load(SCEN / "plan-reserve.json"))
    m = report["metrics"]
    assert m["trip_count"] == 0 and m["invariant_violations"] == 0
    assert m["reserve_violation_s"] == 0.0
    # held at the reserve as the controller sees it (EVCC_Status.Soc in 0.1 % steps) through the plan;
    # the fallback V2H goes on below 40 % after it (the configured 20 % again)
    assert all(0.3995 <= s[7] <= 0.4006 for s in rec.samples if 40.0 <= s[0] <= 122.0)
    assert 39.9 <= m["min_soc_grid_connected_pct"] < 40.0
    assert m["plan_tracking_error_kw"] == pytest.approx(5.0, abs=0.05)  # what the plan did not get
    held = [e for e in _kinds(report, "limit_change") if e["by"] == "reserve"]
    assert len(held) == 1 and 30.0 < held[0]["t_s"] < 40.0
    assert min(_p(rec, 5.0, 30.0)) < -4950.0  # it exported before
    assert all(abs(p) < 50.0 for p in _p(rec, held[0]["t_s"] + 0.1, 121.9))  # and not after, though asked
    assert max(_p(rec, 123.0, 150.0)) < -900.0  # the plan's reserve ended with it: V2H above 20 %


@pytest.mark.parametrize("soc, discharging", [(0.3, True), (0.2, False)])
def test_expiry_falls_back_to_v2h_above_the_reserve_and_idle_at_it(soc, discharging):
    sc = _sc([{"t_s": 1.0, "kind": "plan", "slot_s": 10, "slots": [{"mode": "charge", "kw": 3.0}]}],
             duration_s=20.0, ev={"soc": soc, "capacity_kwh": 60.0, "min_soc": 0.1})
    report, rec = run_lockstep(sc)
    assert [e["reason"] for e in _kinds(report, "plan_ended")] == ["expired"]
    assert all(abs(p - 3000.0) < 20.0 for p in _p(rec, 5.0, 10.9))
    after = _p(rec, 12.0, 20.0)
    if discharging:
        assert all(-2100.0 < p < -1900.0 for p in after)  # the home's 2 kW
        assert _kinds(report, "mode_change")[-1]["mode"] == "v2h"
    else:
        assert all(abs(p) < 1.0 for p in after)
        assert _kinds(report, "mode_change")[-1]["mode"] == "idle"
    assert report["metrics"]["reserve_violation_s"] == 0.0


def test_a_corrupted_plan_frame_is_refused_and_the_plan_in_force_stays():
    sc = _sc([{"t_s": 1.0, "kind": "plan", "slot_s": 30, "slots": [{"mode": "charge", "kw": 3.0}] * 2},
              {"t_s": 8.0, "kind": "plan", "slot_s": 30, "slots": [{"mode": "v2g", "kw": -6.0}] * 2,
               "corrupt_slots": [1]}], duration_s=20.0)
    report, rec = run_lockstep(sc)
    assert report["run"]["frames_refused_by_controller"] == 2  # the corrupt frame and its set
    bad, incomplete = _kinds(report, "frame_refused")
    assert bad["frame_id"] == 0x314 and bad["reason"] in ("crc", "length", "range")  # the slot's frame checks
    assert incomplete["frame_id"] == 0x313 and incomplete["reason"] == "range"  # the set, counted on the header
    ended = _kinds(report, "plan_ended")
    assert [(e["reason"], e["refused"]) for e in ended] == [("refused", "incomplete")]
    assert 9.0 <= ended[0]["t_s"] <= 9.1  # the set's second ran out
    assert all(abs(p - 3000.0) < 20.0 for p in _p(rec, 5.0, 20.0))  # plan 1 followed throughout
    assert report["metrics"]["plan_tracking_error_kw"] < 0.05


def test_a_cancel_ends_the_plan_at_once_and_a_live_request_comes_first():
    sc = _sc([{"t_s": 1.0, "kind": "plan", "slot_s": 60, "slots": [{"mode": "v2g", "kw": -4.0}]},
              {"t_s": 8.0, "kind": "plan", "slots": []},
              {"t_s": 12.0, "kind": "mode", "mode": {"kind": "charge", "setpoint_kw": 2.0}}],
             duration_s=16.0, controller={"plan": {"fallback": "idle"}})
    report, rec = run_lockstep(sc)
    ended = _kinds(report, "plan_ended")
    assert [(e["reason"], e["plan_id"]) for e in ended] == [("cancelled", 1)] and ended[0]["t_s"] == pytest.approx(8.0)
    assert all(abs(p + 4000.0) < 20.0 for p in _p(rec, 5.0, 7.99))
    assert all(abs(p) < 1.0 for p in _p(rec, 8.05, 11.99))  # fallback idle
    assert all(abs(p - 2000.0) < 20.0 for p in _p(rec, 12.5, 16.0))  # the energy manager's live request
