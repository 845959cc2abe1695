"""Measure how long one Diagnostics.poll() takes while the fault memory is being saved.

Not a test (no test_ prefix, no timing assertions): run it by hand under the
MicroPython unix port or CPython from the checkout's top folder:

    .venv/bin/micropython tests/firmware/measure_dtc_save.py [DIR|mem] [ROUNDS]

The fault memory is filled to its capacity (20 DTCs with snapshots) and stored in a
file under DIR (default /tmp) through a BlobStore, as controller.main does, or in RAM
with `mem` (the code's own cost, without the file system's: on the unix port a file's
flush() is an fsync(), whose time is the host disk's). Each round
changes one DTC and then polls until the save is done; every poll is timed. Prints,
for the polls with a save in progress, the worst, the 99th percentile and the median,
the same for polls without one, the polls a save took and the whole save's time. On a
shared machine the worst poll includes the host's scheduling noise: compare the
percentiles, and the smallest worst of several runs.
"""

import sys

sys.path.insert(0, (__file__.rsplit("/", 1)[0] if "/" in __file__ else ".") + "/../..")
sys.path.insert(0, __file__.rsplit("/", 1)[0] if "/" in __file__ else ".")

try:
    from time import ticks_diff, ticks_us
except ImportError:  # CPython
    import time

    def ticks_us():
        return time.perf_counter_ns() // 1000

    def ticks_diff(a, b):
        return a - b

from controller import config
from controller.control.gateway import Gateway
from controller.diag import dtc
from controller.diag.diagnostics import Diagnostics
from controller.storage import BlobStore, FileMedium, MemoryMedium
from sitebus import Site


def main(argv):
    d = argv[1] if len(argv) > 1 else "/tmp"
    rounds = int(argv[2]) if len(argv) > 2 else 200
    site = Site()
    gw = Gateway(config.defaults(), site.gw_port)
    medium = MemoryMedium(8192) if d == "mem" else FileMedium(d + "/measure_dtc.bin", 8192)
    store = BlobStore(medium, 4000)
    diag = Diagnostics(gw, {"serial": "M", "sw_version": "m", "system_name": "m"}, b"\x11" * 32, 0,
                       dtc_store=store)
    codes = list(dtc.SUPPORTED)
    for i in range(dtc.CAPACITY):
        diag.dtcs.record(codes[i], (230.0, 50.0, 60.0, 1000, -2000), i)
    now = 0
    saving = []
    idle = []
    whole = []
    by_step = []  # by_step[i]: the times of the i-th poll of each save
    polls_per_save = 0
    for r in range(rounds):
        diag.dtcs.record(codes[r % dtc.CAPACITY], (231.0, 50.01, 61.0, 1100, -2100), now)
        n = 0
        total = 0
        while True:
            busy = diag.dtcs.changed or getattr(diag, "_saving", None) is not None
            t = ticks_us()
            diag.poll(now)
            dt = ticks_diff(ticks_us(), t)
            now += 1000
            if not busy:
                idle.append(dt)
                break
            saving.append(dt)
            if n >= len(by_step):
                by_step.append([])
            by_step[n].append(dt)
            total += dt
            n += 1
        whole.append(total)
        if n > polls_per_save:
            polls_per_save = n
    saving.sort()
    idle.sort()
    whole.sort()
    print("impl %s medium %s rounds %d polls_per_save %d" % (sys.implementation.name, d, rounds, polls_per_save))
    print("poll during a save (us): worst %d p99 %d median %d; without a save: worst %d p99 %d median %d;"
          " whole save: median %d us"
          % (saving[-1], saving[len(saving) * 99 // 100], saving[len(saving) // 2], idle[-1],
             idle[len(idle) * 99 // 100], idle[len(idle) // 2], whole[len(whole) // 2]))
    med = []
    for times in by_step:
        times.sort()
        med.append(times[len(times) // 2])
    print("median per poll of a save, in order (us):", " ".join(str(x) for x in med))


main(sys.argv)
