"""The gateway follows the energy manager's plan (controller/energy/follow.py): slots in
turn, precedence of a live request, fallback, the reserve in force, refused and cancelled
plans. Runs under MicroPython (mp_run.py) and CPython (pytest)."""

from controller import config, events
from controller.control import limits
from controller.control.gateway import Gateway
from controller.energy import schedule as sch
from sitebus import CrcFlip, Site

PERIOD = 100000  # us: 100 ms control periods keep these minutes of plan short to run
PER_S = 10


def _gw(mode="idle", setpoint_kw=0.0, **cfg):
    cfg.setdefault("mode", {"kind": mode, "setpoint_kw": setpoint_kw})
    cfg.setdefault("limits", {"ramp_up_kw_per_s": None})
    cfg.setdefault("control", {"recover_hold_ms": 0, "period_ms": 100})
    site = Site()
    site.ev["MinSoc"] = 10.0  # below the reserve: the reserve is what binds in these tests
    gw = Gateway(config.validate(cfg), site.gw_port)
    seen = []
    gw.listeners.append(lambda code, detail, value: seen.append((code, detail, value)))
    return gw, site, seen


def _run(gw, site, t, seconds):
    for _ in range(int(seconds * PER_S)):
        site.send_all()
        gw.poll(t)
        gw.tick(t)
        t += PERIOD
    return t


def _plan(site, plan_id, slots, slot_s=10, elapsed=0, reserve=0, corrupt=None):
    """Header and slots as the energy manager sends them; slot `corrupt` with a broken CRC."""
    site.dev.send("EMS_PlanHdr", PlanId=plan_id, NumSlots=len(slots), SlotSeconds=slot_s, Slot0ElapsedS=elapsed,
                  ReserveSoc=reserve)
    for i, (mode, w) in enumerate(slots):
        if i == corrupt:
            site.dev.port = CrcFlip(site.dev.port)  # this frame as a transmission error leaves it
            site.dev.send("EMS_PlanSlot", PlanId=plan_id, Index=i, Mode=mode, SetpointPower=w)
            site.dev.port = site.dev.port.port
        else:
            site.dev.send("EMS_PlanSlot", PlanId=plan_id, Index=i, Mode=mode, SetpointPower=w)


def _codes(seen, code):
    return [(d, v) for c, d, v in seen if c == code]


PLAN = ((events.CHARGE, 7000), (events.V2G, -5000), (events.V2H, 0))


def test_slots_followed_in_turn_then_fallback_v2h():
    gw, site, seen = _gw()
    t = _run(gw, site, 0, 1)
    assert gw.mode == events.IDLE and gw.plan is None  # no plan yet: the configured mode
    _plan(site, 4, PLAN)
    t = _run(gw, site, t, 1)
    assert _codes(seen, events.PLAN_ACCEPTED) == [(4, 3)]
    assert gw.mode == events.CHARGE and gw.p_cmd == 7000
    t = _run(gw, site, t, 8.5)  # 10.4 s: 9.4 s after the header
    assert gw.mode == events.CHARGE
    t = _run(gw, site, t, 1)
    assert gw.mode == events.V2G and gw.p_cmd == -5000
    t = _run(gw, site, t, 10)
    assert gw.mode == events.V2H and -1000 < gw.p_cmd < -800  # covers the home's ~1 kW
    assert not _codes(seen, events.PLAN_ENDED)
    t = _run(gw, site, t, 10)
    assert _codes(seen, events.PLAN_ENDED) == [(sch.END_EXPIRED, 4)]
    assert gw.mode == events.V2H  # fallback: V2H above the reserve
    site.soc = 20.0  # at the reserve (backup.reserve_soc_pct 20): idle
    t = _run(gw, site, t, 1)
    assert gw.mode == events.IDLE and gw.p_cmd == 0
    site.soc = 20.5  # within the hysteresis: still idle
    t = _run(gw, site, t, 1)
    assert gw.mode == events.IDLE
    site.soc = 21.0
    t = _run(gw, site, t, 1)
    assert gw.mode == events.V2H and gw.p_cmd < 0


def test_v2h_slot_caps_the_discharge():
    gw, site, _ = _gw()
    site.p_grid = 4000  # the home takes 4 kW
    _plan(site, 1, ((events.V2H, -1500),))
    _run(gw, site, 0, 3)
    assert gw.mode == events.V2H and gw.p_cmd == -1500


def test_live_request_takes_precedence_over_the_plan():
    gw, site, _ = _gw()
    _plan(site, 1, ((events.CHARGE, 7000),), slot_s=60)
    t = _run(gw, site, 0, 1)
    assert gw.p_cmd == 7000
    site.dev.send("EMS_ModeRequest", ModeReq=events.V2G, SetpointPower=-3000, ValidFor=5)
    t = _run(gw, site, t, 4)
    assert gw.mode == events.V2G and gw.p_cmd == -3000
    t = _run(gw, site, t, 2)  # the request ran out: the plan's slot again
    assert gw.mode == events.CHARGE and gw.p_cmd == 7000


def test_fallback_idle_and_mode_by_configuration():
    gw, site, _ = _gw(plan={"fallback": "idle"})
    _plan(site, 1, ((events.CHARGE, 3000),))
    t = _run(gw, site, 0, 11)
    assert gw.mode == events.IDLE and gw.p_cmd == 0
    gw, site, _ = _gw(mode="charge", setpoint_kw=2.0, plan={"fallback": "mode"})
    _plan(site, 1, ((events.V2G, -3000),))
    t = _run(gw, site, 0, 1)
    assert gw.p_cmd == -3000
    t = _run(gw, site, t, 10)
    assert gw.mode == events.CHARGE and gw.p_cmd == 2000


def test_refused_set_leaves_the_plan_in_force():
    gw, site, seen = _gw()
    _plan(site, 1, ((events.CHARGE, 4000), (events.CHARGE, 4000)), slot_s=60)
    t = _run(gw, site, 0, 1)
    before = gw.refused_total
    _plan(site, 2, ((events.V2G, -9000), (events.V2G, -9000)), corrupt=1)
    t = _run(gw, site, t, 2)
    assert gw.refused[events.R_CRC] == 1  # the broken frame ...
    assert gw.refused_total == before + 2  # ... and the set it left incomplete
    assert gw.plan.sched.refused_by[sch.R_INCOMPLETE] == 1
    assert gw.plan.sched.plan_id == 1 and gw.mode == events.CHARGE and gw.p_cmd == 4000
    assert _codes(seen, events.PLAN_ENDED) == [(sch.END_REFUSED, sch.R_INCOMPLETE)]
    assert _codes(seen, events.PLAN_ACCEPTED) == [(1, 2)]


def test_cancel_ends_the_plan_at_once():
    gw, site, seen = _gw(plan={"fallback": "idle"})
    _plan(site, 7, ((events.V2G, -4000),), slot_s=600)
    t = _run(gw, site, 0, 1)
    assert gw.p_cmd == -4000
    site.dev.send("EMS_PlanHdr", PlanId=8, NumSlots=0, SlotSeconds=600)
    t = _run(gw, site, t, 0.2)
    assert gw.mode == events.IDLE and gw.p_cmd == 0
    assert _codes(seen, events.PLAN_ENDED) == [(sch.END_CANCELLED, 7)]


def test_reserve_stops_any_discharge_while_grid_connected():
    gw, site, _ = _gw()
    site.soc = 25.0
    site.dev.send("EMS_ModeRequest", ModeReq=events.V2G, SetpointPower=-6000, ValidFor=600)
    t = _run(gw, site, 0, 1)
    assert gw.p_cmd == -6000
    site.soc = 20.0  # the configured reserve (backup.reserve_soc_pct 20)
    t = _run(gw, site, t, 0.3)
    assert gw.p_cmd == 0 and gw.limiting == limits.RESERVE
    assert site.last("GW_Status")["LimitingFactor"] == limits.RESERVE
    site.soc = 20.9
    t = _run(gw, site, t, 0.3)
    assert gw.p_cmd == 0  # hysteresis
    site.soc = 21.0
    t = _run(gw, site, t, 0.3)
    assert gw.p_cmd == -6000
    site.dev.send("EMS_ModeRequest", ModeReq=events.CHARGE, SetpointPower=3000, ValidFor=600)
    site.soc = 10.0
    t = _run(gw, site, t, 0.3)
    assert gw.p_cmd == 3000  # charging is never held by the reserve


def test_plan_raises_the_reserve_while_in_force():
    gw, site, _ = _gw(plan={"fallback": "idle"})
    site.soc = 50.0
    _plan(site, 1, ((events.V2G, -5000),), slot_s=20, reserve=60)
    t = _run(gw, site, 0, 1)
    assert gw.reserve_pct == 60 and gw.gs.reserve_soc_pct == 60
    assert gw.p_cmd == 0 and gw.limiting == limits.RESERVE
    site.dev.send("EMS_PlanHdr", PlanId=2, NumSlots=0, SlotSeconds=20)  # cancelled: the configured 20 % again
    site.dev.send("EMS_ModeRequest", ModeReq=events.V2G, SetpointPower=-5000, ValidFor=600)
    t = _run(gw, site, t, 0.5)
    assert gw.reserve_pct == 20 and gw.p_cmd == -5000
