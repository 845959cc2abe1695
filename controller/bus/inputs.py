"""Received cyclic inputs: validity checks and receive-timeout supervision.

An Input owns one message from the site bus. accept() runs the checks in the order
a frame must pass them (length, end-to-end CRC and alive counter, value range) and
only then exposes the new values; a refused frame leaves the last good values in
place and is counted by reason. stale() tells whether the input missed its timeout.

Staleness latches: once the timeout has passed, the input stays stale until a frame
is accepted again, however long the silence lasts (a raw ticks difference would look
fresh again after half the ticks period, about 9 minutes). The latch needs stale() to
be asked at least once per half ticks period; the supervision asks every period.
"""

from controller.clock import ticks_diff
from controller.bus.e2e import E2EReceiver, BAD_CRC, accepted
from controller import events


class Input:
    __slots__ = ("msg", "values", "_scratch", "e2e", "timeout_us", "last_us", "seen", "received", "refused", "new",
                 "_stale")

    def __init__(self, msg, timeout_ms):
        self.msg = msg
        self.values = {}
        self._scratch = {}
        self.e2e = E2EReceiver(msg) if msg.e2e_data_id else None
        self.timeout_us = timeout_ms * 1000
        self.last_us = 0
        self.seen = False
        self.received = 0
        self.refused = 0
        self.new = False  # set on each accepted frame; consumers clear it
        self._stale = True

    def accept(self, data, now):
        """Check and take one frame. Returns 0 if accepted, else an events.R_* reason."""
        msg = self.msg
        if len(data) != msg.length:
            self.refused += 1
            return events.R_LENGTH
        if self.e2e is not None:
            st = self.e2e.check(data)
            if not accepted(st):
                self.refused += 1
                return events.R_CRC if st == BAD_CRC else events.R_COUNTER
        d = msg.decode_into(data, self._scratch)
        if msg.check_range(d) is not None:
            self.refused += 1
            return events.R_RANGE
        self._scratch = self.values
        self.values = d
        self.last_us = now
        self.seen = True
        self._stale = False
        self.received += 1
        self.new = True
        return 0

    def restart(self):
        """After a timeout: the next frame starts a new alive-counter sequence."""
        if self.e2e is not None:
            self.e2e.reset()

    def stale(self, now):
        """True if never received, or silent for longer than the timeout since the last
        accepted frame (latched until the next one)."""
        if self._stale:
            return True
        if ticks_diff(now, self.last_us) > self.timeout_us:
            self._stale = True
        return self._stale

