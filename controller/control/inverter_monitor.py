"""The inverter's own report (INV_Status) held against what the gateway commanded.

Each finding is a trip reason (events.T_INV_*): reported once as a TRIP event when it
appears (the fault memory records it as a DTC) and held in `active` while it lasts,
which keeps the gateway in its safe state (inverter off, zero power) and rules out the
backup. The reactions:

- over-current, over-temperature, DC fault, or the state Fault without a flag: the
  power stage itself is faulty; active while reported;
- command timeout (FaultCmdTimeout): the inverter lost our commands and went off by
  itself; active while reported;
- runs uncommanded: commanded Off, yet it reports a running mode or state for
  UNCOMMANDED_CONFIRM_US: `separate` is set, the gateway opens the relay (the one way
  left to keep it from energising the grid) and the finding stays active while it runs;
- does not follow: commanded grid-following or grid-forming, yet it reports another
  mode with no fault flag to explain it (FaultAcGrid, a fault, a command timeout) for
  FOLLOW_CONFIRM_US: active for RETRY_US, then the gateway tries again;
- E2E refusals (FaultE2E): reported; the inverter's own command supervision acts on
  them (it drops to Off when our commands stay bad), which the rules above then see.
The AC-grid fault flag is a grid event, not a fault of the inverter: `ac_grid` tells the
gateway, which separates only outside ride-through (IEEE 1547-2018 6.4.2, 6.5.2: a
momentary cessation inside a ride-through band is not a trip).

Guarantee: update() needs INV_Status values at least every inverter period while they
are fresh (the gateway calls it only then); timers are Elapsed/ConditionalDelay, right
for any duration.
"""

from controller import events
from controller.timing import ConditionalDelay, Elapsed, split_us

MODE_OFF, MODE_GFL, MODE_GFM = 0, 1, 2
ST_RUNNING, ST_FAULT = 2, 3
UNCOMMANDED_CONFIRM_US = 200000  # two command periods and the inverter's reporting lag, with margin
FOLLOW_CONFIRM_US = 500000  # mode changes take one inverter period; a GFL restart 20 ms after the grid returns
RETRY_US = 10000000

_B_OC = 1 << events.T_INV_OVERCURRENT
_B_OT = 1 << events.T_INV_OVERTEMP
_B_DC = 1 << events.T_INV_DC
_B_STATE = 1 << events.T_INV_FAULT_STATE
_B_TIMEOUT = 1 << events.T_INV_CMD_TIMEOUT
_B_UNCOMMANDED = 1 << events.T_INV_UNCOMMANDED
_B_NOT_FOLLOWING = 1 << events.T_INV_NOT_FOLLOWING
_B_E2E = 1 << events.T_INV_E2E
# what rules the inverter out (safe state, no backup)
UNAVAILABLE = _B_OC | _B_OT | _B_DC | _B_STATE | _B_TIMEOUT | _B_UNCOMMANDED | _B_NOT_FOLLOWING
_REASONS = (events.T_INV_OVERCURRENT, events.T_INV_OVERTEMP, events.T_INV_DC, events.T_INV_FAULT_STATE,
            events.T_INV_CMD_TIMEOUT, events.T_INV_UNCOMMANDED, events.T_INV_NOT_FOLLOWING, events.T_INV_E2E)


class InverterMonitor:
    __slots__ = ("active", "reported", "ac_grid", "separate", "_uncommanded", "_not_following", "_retry",
                 "_retry_s", "_retry_us", "_retrying")

    def __init__(self):
        self.active = 0  # bits 1 << events.T_INV_*: findings in force
        self.reported = 0  # the findings last reported (a TRIP event on each new one)
        self.ac_grid = False
        self.separate = False
        self._uncommanded = ConditionalDelay(UNCOMMANDED_CONFIRM_US)
        self._not_following = ConditionalDelay(FOLLOW_CONFIRM_US)
        self._retry = Elapsed()
        self._retry_s, self._retry_us = split_us(RETRY_US)
        self._retrying = False

    def update(self, v, commanded, now):
        """v: INV_Status values; commanded: the mode last sent. Returns the new findings
        (bits) to report as trips; `active`, `separate` and `ac_grid` tell the rest."""
        flags = 0
        if v.get("FaultOverCurrent"):
            flags |= _B_OC
        if v.get("FaultOverTemp"):
            flags |= _B_OT
        if v.get("FaultDc"):
            flags |= _B_DC
        state = v.get("InvState", 0)
        if state == ST_FAULT and not flags:
            flags |= _B_STATE
        if v.get("FaultCmdTimeout"):
            flags |= _B_TIMEOUT
        if v.get("FaultE2E"):
            flags |= _B_E2E
        self.ac_grid = bool(v.get("FaultAcGrid"))
        mode = v.get("InvModeActual", 0)
        running = mode != MODE_OFF or state == ST_RUNNING
        if self._uncommanded.update(commanded == MODE_OFF and running, now):
            flags |= _B_UNCOMMANDED
        self.separate = bool(flags & _B_UNCOMMANDED)
        explained = self.ac_grid or flags & (_B_OC | _B_OT | _B_DC | _B_STATE | _B_TIMEOUT)
        lagging = commanded != MODE_OFF and mode != commanded and not explained
        if self._not_following.update(lagging, now) and not self._retrying:
            self._retrying = True
            self._retry.restart(now)
        if self._retrying:
            self._retry.update(now)
            if self._retry.reached(self._retry_s, self._retry_us):
                self._retrying = False
                self._not_following.reset()
            else:
                flags |= _B_NOT_FOLLOWING
        new = flags & ~self.reported
        self.reported = flags
        self.active = flags & UNAVAILABLE
        return new

    def reset(self):
        """The inverter's report went stale: what it said no longer holds."""
        self._uncommanded.reset()
        self._not_following.reset()
        self.separate = False
        self.ac_grid = False


def reasons():
    """The trip reasons this monitor reports, in the order it reports them."""
    return _REASONS
