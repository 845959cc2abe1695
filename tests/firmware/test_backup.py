"""Backup switchover state machine and the SFS active method (MicroPython and CPython)."""

from controller.control import backup as B
from controller import events
from controller.protection.anti_islanding import SandiaFrequencyShift

MS = 1000


def _bk(observation_s=1.0):
    log = []
    b = B.Backup(230.0, 50.0, observation_s, lambda c, d, v: log.append((c, d)))
    return b, log


def _codes(log):
    return [c for c, _ in log]


def test_outage_to_backup_only_after_contact_open():
    b, log = _bk()
    assert b.relay_close() and b.inverter_mode(B.INV_GFL) == B.INV_GFL
    assert b.trip(5, 0)
    assert not b.relay_close()
    assert b.inverter_mode(B.INV_GFL) == B.INV_OFF  # never energise the utility side
    b.contact(2, 4 * MS, True)  # moving: nothing yet
    assert b.state == B.OPENING and b.inverter_mode(B.INV_GFL) == B.INV_OFF
    assert b.contact(B.CONTACT_OPEN, 8 * MS, True)
    assert b.state == B.BACKUP and b.inverter_mode(B.INV_GFL) == B.INV_GFM
    assert _codes(log) == [events.RELAY_OPEN_COMMAND, events.RELAY_OPEN, events.GRID_FORMING]
    assert not b.trip(5, 9 * MS)  # a second trip while separated changes nothing


def test_no_backup_possible_is_blackout():
    b, log = _bk()
    b.trip(5, 0)
    b.contact(B.CONTACT_OPEN, 8 * MS, False)
    assert b.state == B.BLACKOUT and b.inverter_mode(B.INV_GFL) == B.INV_OFF
    assert (events.BACKUP_END, events.B_UNAVAILABLE) in log


def test_relay_that_does_not_open_is_reported_and_inverter_stays_off():
    b, log = _bk()
    b.trip(5, 0)
    for t in range(0, 300, 10):
        b.update(t * MS, False, True, 0.0, 0.0, 0.0, 0.0, 0.0, False)
    assert b.state == B.OPENING and b.inverter_mode(B.INV_GFL) == B.INV_OFF
    assert _codes(log).count(events.RELAY_FAULT) == 2  # at 110 ms and at 220 ms, not every period


def _to_backup(b):
    b.trip(5, 0)
    b.contact(B.CONTACT_OPEN, 8 * MS, True)


def test_observation_time_then_resync_then_close_in_sync():
    b, log = _bk(observation_s=1.0)
    _to_backup(b)
    t = 10 * MS
    # grid back but flickers at 0.5 s: the observation restarts
    for i in range(150):
        b.update(t, i != 50, True, 230.0, 230.0, 50.0, 50.0, 30.0, False)
        t += 10 * MS
    assert b.state == B.BACKUP
    for i in range(60):
        b.update(t, True, True, 230.0, 230.0, 50.0, 50.0, 30.0, False)
        t += 10 * MS
    assert b.state == B.RESYNC
    # out of phase: steering speeds the island up, no close
    b.update(t, True, True, 230.0, 230.0, 50.0, 50.0, 30.0, False)
    assert b.f_set > 50.0 and b.state == B.RESYNC
    # in phase but not for SYNC_CONFIRM samples: still no close
    b.update(t, True, True, 230.0, 229.0, 50.0, 50.02, 2.0, False)
    b.update(t, True, True, 230.0, 229.0, 50.0, 50.02, 40.0, False)
    assert b.state == B.RESYNC
    for _ in range(B.SYNC_CONFIRM):
        b.update(t, True, True, 230.0, 229.0, 50.0, 50.02, 2.0, False)
    assert b.state == B.CLOSING and b.relay_close()
    assert b.inverter_mode(B.INV_GFL) == B.INV_GFM  # forming until the contact confirms
    b.contact(B.CONTACT_CLOSED, t, True)
    assert b.state == B.GRID and b.inverter_mode(B.INV_GFL) == B.INV_GFL
    kinds = _codes(log)
    assert kinds[-3:] == [events.RESYNC_START, events.RELAY_CLOSE, events.GRID_FOLLOWING]


def test_never_closes_on_slip_or_voltage_difference():
    b, log = _bk(observation_s=0.0)
    _to_backup(b)
    b.update(10 * MS, True, True, 230.0, 230.0, 50.0, 50.0, 0.0, False)
    assert b.state == B.RESYNC
    for _ in range(10):
        b.update(20 * MS, True, True, 230.0, 230.0, 50.0, 50.3, 0.0, False)  # slip 0.3 Hz
        b.update(20 * MS, True, True, 230.0, 200.0, 50.0, 50.0, 0.0, False)  # 0.13 pu apart
    assert b.state == B.RESYNC


def test_grid_lost_during_resync_back_to_backup():
    b, log = _bk(observation_s=0.0)
    _to_backup(b)
    b.update(10 * MS, True, True, 230.0, 230.0, 50.0, 50.0, 20.0, False)
    assert b.state == B.RESYNC
    b.update(20 * MS, False, True, 0.0, 230.0, 0.0, 50.0, 0.0, False)
    assert b.state == B.BACKUP and b.f_set == 50.0


def test_ev_limit_ends_backup_and_overload_reported_once():
    b, log = _bk()
    _to_backup(b)
    b.update(10 * MS, False, True, 0.0, 200.0, 0.0, 50.0, 0.0, True)
    b.update(20 * MS, False, True, 0.0, 200.0, 0.0, 50.0, 0.0, True)
    assert _codes(log).count(events.BACKUP_OVERLOAD) == 1
    b.update(30 * MS, False, False, 0.0, 200.0, 0.0, 50.0, 0.0, False)
    assert b.state == B.BLACKOUT and b.inverter_mode(B.INV_GFL) == B.INV_OFF
    # the EV allows discharge again while the grid is still away: carry the home again
    b.update(40 * MS, False, True, 0.0, 0.0, 0.0, 0.0, 0.0, False)
    assert b.state == B.BACKUP


def test_blackout_recloses_dead_bus_without_forming():
    b, log = _bk(observation_s=0.1)
    b.trip(5, 0)
    b.contact(B.CONTACT_OPEN, 8 * MS, False)
    t = 10 * MS
    for _ in range(15):
        b.update(t, True, False, 230.0, 0.0, 50.0, 0.0, 0.0, False)
        t += 10 * MS
    assert b.state == B.CLOSING and b.inverter_mode(B.INV_GFL) == B.INV_OFF
    b.contact(B.CONTACT_CLOSED, t, False)
    assert b.state == B.GRID


def test_sfs_positive_feedback_and_clamp():
    s = SandiaFrequencyShift(11000.0, 50.0)
    assert s.update(50.0) == 0.02 * 11000.0  # the constant push that moves a resonant island
    assert s.update(49.9) > s.update(50.0)  # below nominal: supply more Q, which lowers an island's frequency further
    assert s.update(50.1) < 0.0
    assert s.update(40.0) == 0.3 * 11000.0
    assert s.update(0.0) == 0.0  # no voltage
    off = SandiaFrequencyShift(11000.0, 50.0, enabled=False)
    assert off.update(49.0) == 0.0
