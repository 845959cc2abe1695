"""The self-test a trial image passes before it is confirmed (Updater.confirm()).

A newly flashed image boots on trial: select_boot() counted the boot before it ran. It is
confirmed only once it has shown, on this site, that it does the gateway's job:

1. the configuration validated and the gateway was built (the test is created after that);
2. the control loop ran PERIODS control periods (tick() is called after each one) without
   an exception, over at least PERIODS - 1 periods of time (a loop that stalls does not
   count faster): an exception ends the process before it is confirmed;
3. the site bus delivered frames that passed their checks (length, CRC, alive counter,
   range) from the grid meter, the inverter and the relay since the test started: the
   devices the gateway cannot work without (the EV may be away).

Then tick() confirms, once: the only boot-record write of the test. An image that has not
passed DEADLINE_S after its start has failed (FAILED): the caller asks for a restart, the
next boot counts another attempt, and after max_attempts the boot record rolls back to the
previous image. A crash, a hang ended by a watchdog and a power cut during the trial count
the same way. The test does not require leaving the safe state: a grid outage during an
update is no reason to throw away a good image (the devices still send their frames).
"""

from controller.clock import ticks_diff

PERIODS = 300  # control periods the loop must run: 3 s at the default 10 ms
DEADLINE_S = 120
RUNNING, PASSED, FAILED = 0, 1, 2
_DEVICES = (("meter", "mtr_grid"), ("inverter", "inv_status"), ("relay", "rly"))


class SelfTest:
    __slots__ = ("updater", "gw", "periods", "deadline_us", "start", "ticks", "base", "state", "why")
    RUNNING, PASSED, FAILED = RUNNING, PASSED, FAILED

    def __init__(self, updater, gw, now, periods=PERIODS, deadline_s=DEADLINE_S):
        self.updater = updater
        self.gw = gw
        self.periods = periods
        self.deadline_us = int(deadline_s * 1000000)
        self.start = now
        self.ticks = 0
        self.base = self._received()
        self.state = RUNNING
        self.why = ""

    def _received(self):
        out = []
        for _, attr in _DEVICES:
            out.append(getattr(self.gw, attr).received)
        return out

    def missing(self):
        """The devices whose frames have not come through since the test started."""
        now = self._received()
        out = []
        for i in range(len(_DEVICES)):
            if now[i] == self.base[i]:
                out.append(_DEVICES[i][0])
        return out

    def tick(self, now):
        """After each control period. RUNNING, PASSED (confirmed now or before) or FAILED."""
        if self.state != RUNNING:
            return self.state
        self.ticks += 1
        elapsed = ticks_diff(now, self.start)
        if self.ticks >= self.periods and elapsed >= (self.periods - 1) * self.gw.period_us and not self.missing():
            try:
                self.updater.confirm()
            except OSError as e:  # the record cannot be written: not confirmed, try the next boot
                self.state = FAILED
                self.why = "confirm: %s" % e
                return self.state
            self.state = PASSED
            return self.state
        if elapsed >= self.deadline_us:
            self.state = FAILED
            miss = self.missing()
            if miss:
                self.why = "no valid frames from the %s in %d s" % (" or the ".join(miss), elapsed // 1000000)
            else:
                self.why = "%d of %d control periods in %d s" % (self.ticks, self.periods, elapsed // 1000000)
        return self.state
