"""controller/energy/schedule.py: the plan's assembly from its frames and the slot in force
by elapsed time. Runs under MicroPython (mp_run.py) and CPython (pytest)."""

from controller import events
from controller.clock import TICKS_PERIOD, ticks_add
from controller.energy import schedule as sch
from controller.energy.schedule import Schedule

S = 1000000  # us


def _send(s, plan_id, slots, slot_s=60, elapsed=0, reserve=0, now=0, header_last=False, skip=()):
    """A whole set: header then slots (or slots then header); returns the last reason."""
    r = sch.R_OK
    if not header_last:
        r = s.on_header(plan_id, len(slots), slot_s, elapsed, reserve, now)
    for i, (mode, w) in enumerate(slots):
        if i not in skip:
            r = s.on_slot(plan_id, i, mode, w, now) or r
    if header_last:
        r = s.on_header(plan_id, len(slots), slot_s, elapsed, reserve, now) or r
    return r


PLAN = ((events.CHARGE, 7000), (events.V2H, -3000), (events.V2G, -5000))


def _run(s, t, seconds, step_s=1):
    """update() every step_s for `seconds`; returns (t, the END_* values returned)."""
    ends = []
    for _ in range(seconds // step_s):
        t = ticks_add(t, step_s * S)
        e = s.update(t)
        if e:
            ends.append(e)
    return t, ends


def test_complete_set_is_taken_and_followed_slot_by_slot():
    s = Schedule()
    assert _send(s, 3, PLAN, slot_s=60) == sch.R_OK
    assert s.in_force and s.plan_id == 3 and s.n == 3 and s.accepted == 1
    assert (s.index, s.mode, s.setpoint_w) == (0, events.CHARGE, 7000)
    t, ends = _run(s, 0, 59)
    assert s.index == 0 and not ends
    t, ends = _run(s, t, 1)
    assert (s.index, s.mode, s.setpoint_w) == (1, events.V2H, -3000)
    t, ends = _run(s, t, 60)
    assert (s.index, s.mode) == (2, events.V2G) and s.remaining_s() == 60
    t, ends = _run(s, t, 59)
    assert s.in_force and not ends
    t, ends = _run(s, t, 1)
    assert ends == [sch.END_EXPIRED] and not s.in_force and s.mode is None and s.ended == sch.END_EXPIRED
    t, ends = _run(s, t, 10)
    assert ends == []  # expiry is reported once


def test_slot0_elapsed_shifts_the_plan():
    s = Schedule()
    _send(s, 1, PLAN, slot_s=60, elapsed=50)
    t, _ = _run(s, 0, 9)
    assert s.index == 0
    t, _ = _run(s, t, 1)
    assert s.index == 1  # slot 0 had 10 s left at the header
    assert s.remaining_s() == 120


def test_slots_in_any_order_and_header_last():
    s = Schedule()
    assert s.on_slot(5, 2, events.V2G, -5000, 0) == sch.R_OK
    assert s.on_slot(5, 0, events.CHARGE, 7000, 0) == sch.R_OK
    assert not s.in_force
    assert s.on_header(5, 3, 60, 0, 0, 10) == sch.R_OK
    assert not s.in_force  # slot 1 missing
    assert s.on_slot(5, 1, events.IDLE, 0, 20) == sch.R_OK
    assert s.in_force and s.mode == events.CHARGE and s.setpoints[2] == -5000


def test_incomplete_set_refused_and_plan_in_force_stays():
    s = Schedule()
    _send(s, 1, PLAN)
    # a new plan with one slot lost: refused when its time runs out, plan 1 stays
    _send(s, 2, ((events.V2G, -9000), (events.V2G, -9000)), skip=(1,), now=ticks_add(0, 5 * S))
    assert s.plan_id == 1 and s.in_force
    assert s.check(ticks_add(0, 5 * S + sch.SET_TIMEOUT_US)) == sch.R_OK
    assert s.check(ticks_add(0, 5 * S + sch.SET_TIMEOUT_US + 1)) == sch.R_INCOMPLETE
    assert s.check(ticks_add(0, 7 * S)) == sch.R_OK  # counted once
    assert s.refused == 1 and s.refused_by[sch.R_INCOMPLETE] == 1
    assert s.plan_id == 1 and s.mode == events.CHARGE and s.setpoints[1] == -3000


def test_a_frame_of_another_set_ends_the_pending_one():
    s = Schedule()
    s.on_header(1, 2, 60, 0, 0, 0)
    s.on_slot(1, 0, events.CHARGE, 1000, 0)
    assert s.on_slot(2, 0, events.CHARGE, 2000, 0) == sch.R_INCOMPLETE
    assert s.on_header(2, 1, 60, 0, 0, 0) == sch.R_OK
    assert s.in_force and s.plan_id == 2 and s.setpoint_w == 2000 and s.refused == 1


def test_inconsistent_sets_refused():
    s = Schedule()
    assert s.on_header(1, 2, 60, 0, 0, 0) == sch.R_OK
    assert s.on_slot(1, 2, events.CHARGE, 0, 0) == sch.R_INDEX
    s.on_header(1, 2, 60, 0, 0, 0)
    s.on_slot(1, 0, events.CHARGE, 0, 0)
    assert s.on_slot(1, 0, events.CHARGE, 0, 0) == sch.R_DUPLICATE
    assert s.on_header(1, 2, 60, 60, 0, 0) == sch.R_ELAPSED
    assert s.on_header(1, 2, 0, 0, 0, 0) == sch.R_SLOT_LENGTH
    s.on_slot(4, 3, events.CHARGE, 0, 0)  # a slot before its header, beyond the header's count
    assert s.on_header(4, 2, 60, 0, 0, 0) == sch.R_INDEX
    s.on_header(1, 2, 60, 0, 0, 0)
    assert s.on_header(1, 2, 60, 0, 0, 0) == sch.R_INCOMPLETE  # a second header before the slots
    assert not s.in_force and s.accepted == 0
    assert s.refused == 6
    assert s.refused_by[sch.R_INDEX] == 2 and s.refused_by[sch.R_DUPLICATE] == 1


def test_cancel_ends_the_plan_at_once():
    s = Schedule()
    _send(s, 1, PLAN, reserve=40)
    assert s.reserve_pct == 40
    assert s.on_header(2, 0, 60, 0, 0, 0) == sch.R_OK
    assert not s.in_force and s.ended == sch.END_CANCELLED and s.reserve_pct == 0 and s.cancels == 1
    assert s.update(ticks_add(0, S)) == 0


def test_new_plan_replaces_the_old_whole():
    s = Schedule()
    _send(s, 1, PLAN)
    t, _ = _run(s, 0, 70)
    assert s.index == 1
    _send(s, 2, ((events.IDLE, 0),), slot_s=30, now=t)
    assert s.plan_id == 2 and s.n == 1 and s.index == 0 and s.mode == events.IDLE
    t, ends = _run(s, t, 30)
    assert ends == [sch.END_EXPIRED]


def test_long_plan_right_across_ticks_wrap():
    # 48 slots of an hour: two days, across many wraps of ticks_us; start just before a wrap
    s = Schedule()
    t0 = TICKS_PERIOD - 3 * S
    slots = [(events.CHARGE, i) for i in range(48)]
    _send(s, 1, slots, slot_s=3600, now=t0)
    t = t0
    seen = []
    ends = []
    for _ in range(48 * 3600 // 10 + 1):  # an update every 10 s
        t = ticks_add(t, 10 * S)
        e = s.update(t)
        if e:
            ends.append(e)
        if s.in_force and (not seen or seen[-1] != s.index):
            seen.append(s.index)
    assert seen == list(range(48))
    assert ends == [sch.END_EXPIRED]

