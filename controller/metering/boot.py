"""The meter on a unit: opened by controller.main on --data/meter.bin (docs/metering.md).

Kept out of controller/main.py so that a unit pays for it in RAM only when it meters.
"""

import sys

METER_FILE = "meter.bin"


def attach(gw, cfg, data, now, diag=None, create=True):
    """A Metering on `data`/meter.bin, tapped into `gw` (and its DIDs into `diag`'s UDS
    server); None when `create` is false and there is no such file yet (a unit keeps
    state files only where it was asked to: with diagnostics on, or a file there). A
    register block this firmware cannot read is reported on stderr and left untouched:
    the meter then counts in RAM only."""
    import os

    path = (data if data.endswith("/") else data + "/") + METER_FILE
    if not create:
        try:
            os.stat(path)
        except OSError:
            return None
    from controller.metering.meter import Metering
    from controller.metering.store import MeterStore, medium_size
    from controller.storage import FileMedium

    m = cfg["metering"]
    meter = Metering(gw, cfg, MeterStore(FileMedium(path, medium_size(m["interval_s"], m["history_days"]))), now)
    if meter.refused:
        print("warning: metering: stored registers not read (%s); counting in RAM only" % meter.refused,
              file=sys.stderr)
    if diag is not None:
        from controller.metering.diag import attach_uds

        attach_uds(meter, diag.uds)
    return meter
