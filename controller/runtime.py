"""Real-time execution: the cyclic control loop and the frame-driven fast path on one port.

run() polls the port continuously, so a frame is handled as soon as it arrives
(on_frame), and calls tick() every control period on the injected clock. Between
events it sleeps in port.wait(). Tick lateness is recorded for jitter statistics.
"""

from controller.clock import ticks_diff, ticks_add
from controller.timing import Elapsed, split_us


class LoopStats:
    """Lateness of each tick against its schedule (us): count, max, sum, small histogram."""

    __slots__ = ("ticks", "late_max", "late_sum", "hist", "overruns")
    EDGES = (50, 100, 200, 500, 1000, 2000, 5000)

    def __init__(self):
        self.ticks = 0
        self.late_max = 0
        self.late_sum = 0
        self.hist = [0] * (len(self.EDGES) + 1)
        self.overruns = 0

    def add(self, late):
        self.ticks += 1
        self.late_sum += late
        if late > self.late_max:
            self.late_max = late
        i = 0
        for e in self.EDGES:
            if late < e:
                break
            i += 1
        self.hist[i] += 1


def run(gw, port, clock, duration_us=None, should_stop=None, services=(), housekeeping=None):
    """Run the gateway until duration_us elapsed or should_stop() is true. Returns LoopStats.

    services: objects polled every iteration, service.poll(now) -> the ms it may wait until
    its next poll (e.g. the EV link, controller/iso15118/service.py); the loop sleeps no
    longer than that. housekeeping (controller/housekeeping.py): fed after every tick, so
    the watchdog and the garbage collection happen at that one point of the period."""
    stats = LoopStats()
    period = gw.period_us
    start = clock.ticks_us()
    next_tick = start
    # how long it has run: any duration (a raw ticks difference wraps after ~9 minutes)
    ran = Elapsed()
    ran.restart(start)
    if duration_us is not None:
        dur_s, dur_us = split_us(duration_us)
    while True:
        cap = 5.0
        for s in services:
            w = s.poll(clock.ticks_us())
            if w < cap:
                cap = w
        now = clock.ticks_us()  # after the services: the tick's time stays true however long they took
        gw.poll(now)
        late = ticks_diff(now, next_tick)
        if late >= 0:
            gw.tick(now)
            if housekeeping is not None:
                housekeeping.after_tick(now)
            stats.add(late)
            next_tick = ticks_add(next_tick, period)
            if ticks_diff(now, next_tick) >= 0:
                # more than a period behind: skip missed ticks instead of bursting
                stats.overruns += 1
                next_tick = ticks_add(now, period)
            ran.update(now)
            if duration_us is not None and ran.reached(dur_s, dur_us):
                break
            if should_stop is not None and should_stop():
                break
            continue
        # Sleep until the next frame or the tick, to the fraction of a millisecond: spinning on
        # wait(0) in the last millisecond burns a core and, on CPython, holds the GIL against
        # every other thread of the process (the sender of the very frame we wait for, or
        # the plant of a real-time HIL run).
        wait_ms = -late / 1000.0
        port.wait(wait_ms if wait_ms < cap else cap)
    return stats
