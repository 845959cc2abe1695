"""Backup switchover: from grid-following to an island carried by the EV, and back in sync.

The sequence of issue #3 item 5, one state per step, so that each transition can
be held against the requirement:

  GRID      relay closed, inverter grid-following (or off by the operating mode)
    | trip() (island detected, hard outage, interface protection)
    v        -> relay open command; inverter OFF: never energise the utility side
  OPENING   wait for the feedback contact to report open
    | contact open and the EV can carry the home    | contact open, no backup possible
    v        -> inverter GRID-FORMING               v        -> stay off
  BACKUP    the home on the EV                      BLACKOUT
    | grid within the enter-service window for the profile's observation time
    v        -> resync_start                        (BLACKOUT: close onto the grid, the home
  RESYNC    steer the island's frequency until phase, slip and voltage match
    | synchro-check holds for SYNC_CONFIRM samples    is dead, so nothing to synchronise)
    v        -> relay close command
  CLOSING   wait for the feedback contact to report closed
    | contact closed
    v        -> inverter GRID-FOLLOWING
  GRID

Guarantees: the inverter is commanded grid-forming only while the feedback contact
reports the relay open; the relay is commanded closed from BACKUP/RESYNC only when
the synchro-check (|phase| <= sync_phase_deg, |slip| <= sync_slip_hz,
|dV| <= sync_voltage_pu) has held for SYNC_CONFIRM consecutive checks; a relay that
does not confirm opening within relay_timeout_us is reported (relay_fault) and the
inverter stays off.
"""

from controller import events
from controller.config import FORMING_STEER_HZ as STEER_RANGE_HZ  # the island's f_set stays within f_nom +- this
from controller.config import FORMING_STEER_PU as STEER_RANGE_PU  # and its v_set within v_nom +- this (pu)
from controller.timing import ConditionalDelay, Elapsed, split_us

GRID, OPENING, BACKUP, BLACKOUT, RESYNC, CLOSING = 0, 1, 2, 3, 4, 5
STATE_NAMES = ("grid", "opening", "backup", "blackout", "resync", "closing")

INV_OFF, INV_GFL, INV_GFM = 0, 1, 2
CONTACT_OPEN, CONTACT_CLOSED = 0, 1

SYNC_CONFIRM = 3  # consecutive synchro-check samples before closing (30 ms at 10 ms)
STEER_GAIN = 0.3  # integral gain per control period of the island's frequency and voltage trim


class Backup:
    __slots__ = ("state", "emit", "v_nom", "f_nom", "observe", "relay_timeout_us", "since", "_rt_s", "_rt_us",
                 "sync_phase_deg", "sync_slip_hz", "sync_voltage_pu", "sync_ok", "f_set", "v_set",
                 "steer_hz_per_deg", "steer_max_hz", "dead_close", "overload")

    def __init__(self, v_nom, f_nom, observation_s, emit, relay_timeout_ms=100, sync_phase_deg=5.0,
                 sync_slip_hz=0.1, sync_voltage_pu=0.05):
        self.state = GRID
        self.emit = emit
        self.v_nom = v_nom
        self.f_nom = f_nom
        self.observe = ConditionalDelay(int(observation_s * 1000000))
        self.relay_timeout_us = relay_timeout_ms * 1000
        self.since = Elapsed()  # since the relay was commanded (its operate-time supervision)
        self._rt_s, self._rt_us = split_us(self.relay_timeout_us)
        self.sync_phase_deg = sync_phase_deg
        self.sync_slip_hz = sync_slip_hz
        self.sync_voltage_pu = sync_voltage_pu
        self.sync_ok = 0
        self.f_set = f_nom
        self.v_set = v_nom
        # phase steering of the island during resync: a slip proportional to the phase
        # error, bounded so that the droop-controlled island stays well inside its window
        self.steer_hz_per_deg = 0.004
        self.steer_max_hz = 0.2
        self.dead_close = False  # closing from BLACKOUT: the inverter stays off
        self.overload = False

    # -------------------------------------------------------------- outputs
    def relay_close(self):
        """The relay command: closed in GRID and while closing."""
        return self.state == GRID or self.state == CLOSING

    def inverter_mode(self, grid_mode):
        """Inverter mode for this state; grid_mode is what the operating mode wants on the grid."""
        s = self.state
        if s == GRID:
            return grid_mode
        if s == BACKUP or s == RESYNC or (s == CLOSING and not self.dead_close):
            return INV_GFM
        return INV_OFF

    def connected(self):
        return self.state == GRID

    # -------------------------------------------------------------- events in
    def trip(self, reason, now):
        """Separate from the grid (protection or island detection). True if this started a switchover."""
        if self.state != GRID:
            return False
        self.state = OPENING
        self.since.restart(now)
        self.observe.reset()
        self.emit(events.RELAY_OPEN_COMMAND, reason, 0)
        return True

    def contact(self, state, now, can_backup):
        """Feedback contact reported `state`; returns True if the inverter command must change now.
        The closed contact after CLOSING is the only way back to GRID (update() never goes there)."""
        s = self.state
        if s == OPENING and state == CONTACT_OPEN:
            self.emit(events.RELAY_OPEN, 0, 0)
            if can_backup:
                self._enter_backup(now)
            else:
                self.state = BLACKOUT
                self.emit(events.BACKUP_END, events.B_UNAVAILABLE, 0)
            return True
        if s == CLOSING and state == CONTACT_CLOSED:
            self.state = GRID
            self.emit(events.GRID_FOLLOWING, 0, 0)
            return True
        return False

    def _enter_backup(self, now):
        self.state = BACKUP
        self.since.restart(now)
        self.f_set = self.f_nom
        self.v_set = self.v_nom
        self.overload = False
        self.observe.reset()
        self.emit(events.GRID_FORMING, 0, 0)

    def _relay_late(self, now):
        """The relay has not reported its new position within relay_timeout_us."""
        t = self.since
        t.update(now)
        return t.s > self._rt_s or (t.s == self._rt_s and t.us > self._rt_us)

    # -------------------------------------------------------------- per period
    def update(self, now, grid_ok, can_backup, util_v, home_v, f_grid, f_island, phase_diff_deg, at_limit):
        """One control period. grid_ok: the utility side is inside the enter-service window.

        util_v/home_v in volts, frequencies in Hz, phase_diff_deg = utility minus home.
        at_limit: the inverter delivers all the EV allows (overload of the backup).
        """
        s = self.state
        if s == OPENING:
            if self._relay_late(now):
                self.since.restart(now)  # report again after another timeout, not every period
                self.emit(events.RELAY_FAULT, 0, 0)
            return
        if s == GRID:
            return
        if s == BACKUP or s == RESYNC:
            if not can_backup:
                self.state = BLACKOUT
                self.emit(events.BACKUP_END, events.B_EV_LIMIT, 0)
                return
            if at_limit and not self.overload:
                self.emit(events.BACKUP_OVERLOAD, 0, 0)
            self.overload = at_limit
        if s == BLACKOUT and can_backup and not grid_ok:
            # the EV came back (limits, SoC) while the grid is still away: carry the home again.
            # Only with the relay open: BLACKOUT is entered after the contact reported open.
            self._enter_backup(now)
            return
        observed = self.observe.update(grid_ok, now)
        if s == BACKUP:
            if observed:
                self.state = RESYNC
                self.sync_ok = 0
                self.emit(events.RESYNC_START, 0, 0)
            return
        if s == BLACKOUT:
            if observed:
                # dead home bus: nothing to synchronise, close onto the healthy grid
                self.state = CLOSING
                self.dead_close = True
                self.since.restart(now)
                self.emit(events.RELAY_CLOSE, 0, 0)
            return
        if s == RESYNC:
            if not grid_ok:
                self.state = BACKUP
                self.f_set = self.f_nom
                self.v_set = self.v_nom
                self.observe.reset()
                return
            # steer: run the island slightly faster when it lags the grid (utility ahead).
            # The droop makes the island run below its setpoint under load, so the setpoint
            # is corrected by the measured island frequency (integral action), not set open-loop.
            slip = phase_diff_deg * self.steer_hz_per_deg
            if slip > self.steer_max_hz:
                slip = self.steer_max_hz
            elif slip < -self.steer_max_hz:
                slip = -self.steer_max_hz
            if f_island > 0.0:
                f = self.f_set + STEER_GAIN * (f_grid + slip - f_island)
                lo = self.f_nom - STEER_RANGE_HZ
                hi = self.f_nom + STEER_RANGE_HZ
                self.f_set = lo if f < lo else hi if f > hi else f
            # likewise the voltage: the island's voltage is trimmed onto the utility's
            if home_v > 0.0:
                v = self.v_set + STEER_GAIN * (util_v - home_v)
                lo = self.v_nom * (1.0 - STEER_RANGE_PU)
                hi = self.v_nom * (1.0 + STEER_RANGE_PU)
                self.v_set = lo if v < lo else hi if v > hi else v
            ok = (-self.sync_phase_deg <= phase_diff_deg <= self.sync_phase_deg
                  and -self.sync_slip_hz <= f_grid - f_island <= self.sync_slip_hz
                  and abs(util_v - home_v) <= self.sync_voltage_pu * self.v_nom)
            self.sync_ok = self.sync_ok + 1 if ok else 0
            if self.sync_ok >= SYNC_CONFIRM:
                self.state = CLOSING
                self.dead_close = False
                self.since.restart(now)
                self.emit(events.RELAY_CLOSE, 0, 0)
            return
        if s == CLOSING and self._relay_late(now):
            self.since.restart(now)
            self.emit(events.RELAY_FAULT, 1, 0)
