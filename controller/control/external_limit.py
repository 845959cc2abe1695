"""The external power limit: the most AC power the EV may be charged with and may discharge,
imposed by the charging platform (OCPP 2.1 operation mode ExternalLimits: the limit and
dischargeLimit of the charging-schedule period in force, forwarded by the gateway's Linux
side) or by the home energy manager, as EMS_PowerLimit frames (dbc/gateway.dbc).

A limit holds for its ValidFor seconds after the reception of the frame that carried it,
then lapses (no external limit); ValidFor 0 cancels it at once. Every accepted frame
replaces the limit in force whole (the sender repeats it every second with the validity
that remains). Refused frames never reach this unit (controller/bus/inputs.py checks
length, CRC, alive counter and range first), so the limit in force stays unchanged.

Guarantees: the limit never outlives its validity, for any duration and any starting
value of the clock (timing.Elapsed, advanced every control period by expire()); charge_w
and discharge_w are both None or both ints >= 0. Where it applies (grid-connected, not in
backup) is the gateway's decision (controller/control/gateway.py); how it narrows the
bounds, the arbiter's (controller/control/limits.py). No heap allocation per period.
"""

from controller.timing import Elapsed


class ExternalLimit:
    __slots__ = ("charge_w", "discharge_w", "valid_s", "_valid")

    def __init__(self):
        self.charge_w = None  # most AC charging power, W (None: no external limit)
        self.discharge_w = None  # most AC discharging power (magnitude), W
        self.valid_s = 0
        self._valid = Elapsed()

    @property
    def in_force(self):
        return self.charge_w is not None

    def take(self, charge_w, discharge_w, valid_for_s, now):
        """One accepted EMS_PowerLimit: in force for valid_for_s from now, or (valid_for_s
        0) the limit in force cancelled. Returns True if a limit is in force afterwards."""
        if valid_for_s <= 0:
            self.drop()
            return False
        self.charge_w = charge_w if charge_w > 0 else 0
        self.discharge_w = discharge_w if discharge_w > 0 else 0
        self.valid_s = valid_for_s
        self._valid.restart(now)
        return True

    def expire(self, now):
        """Every control period: True once, when the limit in force has outlived its
        validity (it has then lapsed)."""
        if self.charge_w is None:
            return False
        v = self._valid
        v.update(now)
        if not v.reached(self.valid_s, 0):
            return False
        self.drop()
        return True

    def drop(self):
        self.charge_w = None
        self.discharge_w = None
