"""Input supervision and the safe state: the first steps of every control period.

The cyclic inputs are grouped by the device that sends them (meter, inverter, relay,
EV). A group is timed out while any of its inputs is stale (controller/bus/inputs.py);
its loss after a first reception is reported once (input_timeout) and so is its return
(input_restored). With the relay closed, meter and inverter measure the same bus, so a
lasting disagreement between them (a frozen or drifting sensor with a live alive
counter) counts as a lost input too (implausible).

The safe state (inverter off, zero power) holds from start-up, and is entered at once
on any lost or implausible input or inverter fault; it is left only after every input
has been fresh, nothing faulted and the grid inside the enter-service window,
continuously for control.recover_hold_ms (docs/protection.md).

Guarantee: `safe` is True whenever the last update saw a stale, implausible or faulted
input, and becomes False only through the recovery delay.
"""

from controller import events
from controller.timing import ConditionalDelay

# meter and inverter disagree on the same bus: more than 10 % of Un or 0.5 Hz for 500 ms
# (both measure over windows of one or two cycles; a disturbance moves both within that time)
PLAUSIBILITY_CONFIRM_US = 500000
PLAUSIBILITY_DV_PU = 0.10
PLAUSIBILITY_DF_HZ = 0.5

# what safe_state() reports
STAYED, ENTERED, CLEARED = 0, 1, 2


def disagree(meter, inverter, v_nom):
    """True if meter (MTR_Grid values) and inverter (INV_AcMeasure values), which see the
    same bus, differ by more than the plausibility bounds."""
    # whole volts are plenty against a bound of 10 % (and an int difference allocates
    # nothing under MicroPython)
    dv = int(meter.get("GridVoltage", 0.0)) - int(inverter.get("AcVoltage", 0.0))
    lim = int(PLAUSIBILITY_DV_PU * v_nom) + 1
    if dv > lim or dv < -lim:
        return True
    fm = meter.get("GridFrequency", 0.0)
    fa = inverter.get("AcFrequency", 0.0)
    if fm <= 0.0 or fa <= 0.0 or fm == fa:
        return False
    df = fm - fa
    return df > PLAUSIBILITY_DF_HZ or df < -PLAUSIBILITY_DF_HZ


class Supervision:
    """Receive timeouts per input group, meter/inverter plausibility, the safe state."""

    __slots__ = ("groups", "timed_out", "announced", "implausible", "implausible_reported", "recover",
                 "safe", "emit")

    def __init__(self, groups, recover_hold_us, emit):
        """groups: ((events.IN_*, (Input, ...)), ...); emit(code, detail, value) reports."""
        self.groups = groups
        self.timed_out = {}
        self.announced = {}
        for grp, _ in groups:
            self.timed_out[grp] = True
            self.announced[grp] = False
        self.implausible = ConditionalDelay(PLAUSIBILITY_CONFIRM_US)
        self.implausible_reported = False
        self.recover = ConditionalDelay(recover_hold_us)
        self.safe = True
        self.emit = emit

    def inputs(self, now):
        """Step 1: receive-timeout supervision per group; True if every group is fresh."""
        ok = True
        emit = self.emit
        for grp, inps in self.groups:
            stale = False
            for inp in inps:
                if inp.stale(now):
                    stale = True
            if stale != self.timed_out[grp]:
                self.timed_out[grp] = stale
                if stale:
                    for inp in inps:
                        inp.restart()
                # only a loss after a first reception is an event; start-up is silent
                if stale and inps[0].seen:
                    self.announced[grp] = True
                    emit(events.INPUT_TIMEOUT, grp, 0)
                elif not stale and self.announced[grp]:
                    self.announced[grp] = False
                    emit(events.INPUT_RESTORED, grp, 0)
            if stale:
                ok = False
        return ok

    def plausibility(self, bad, now):
        """Step 1b: `bad` is this period's disagreement; True once it has lasted
        PLAUSIBILITY_CONFIRM_US (reported as implausible, and restored when it ends)."""
        if self.implausible.update(bad, now) != self.implausible_reported:
            self.implausible_reported = self.implausible.output
            self.emit(events.IMPLAUSIBLE if self.implausible.output else events.INPUT_RESTORED,
                      events.IN_PLAUSIBILITY, 0)
        return self.implausible.output

    def safe_state(self, ok, faulted, grid_ok, now):
        """Step 3: enter or leave the safe state; returns STAYED, ENTERED or CLEARED."""
        if self.safe:
            if self.recover.update(ok and not faulted and grid_ok, now):
                self.safe = False
                self.emit(events.SAFE_STATE_CLEARED, 0, 0)
                return CLEARED
            return STAYED
        if ok and not faulted:
            return STAYED
        self.safe = True
        self.recover.reset()
        cause = 0
        for grp, _ in self.groups:
            if self.timed_out[grp]:
                cause = grp
        if self.implausible.output:
            cause = events.IN_PLAUSIBILITY
        self.emit(events.SAFE_STATE, cause, 0)
        return ENTERED
