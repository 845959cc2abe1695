"""The firmware's meter in the HIL: attached to the simulated controller on a RAM medium,
carried over a controller restart (a power cut: RAM lost, the medium kept), and its
registers set beside the plant's truth in the report (docs/metering.md, "Reconciliation").

The report's "metering" object:
  registers_kwh   the firmware's registers (store.NAMES without the _wh), kWh
  hil_kwh         the plant's figures for the same quantities (Metrics.metering_kwh):
                  grid import/export, EV battery in/out, v2h + backup = the EV's energy to
                  the home, backup = the part while islanded, v2g = grid export
  records         interval records in the ring; synchronised: the wall time came over
                  EMS_Time; counter_resets, stores, restarts
"""

from controller.metering import store as st
from controller.metering.meter import Metering
from controller.storage import MemoryMedium

# register -> the plant's figure it is compared with
TRUTH = {"grid_import_wh": "grid_import", "grid_export_wh": "grid_export", "ev_charged_wh": "ev_charged",
         "ev_discharged_wh": "ev_discharged", "v2g_wh": "grid_export", "backup_wh": "to_home_islanded"}


class HilMeter:
    """The meter of the simulated controller and its medium; restart() is a power cut."""

    def __init__(self, cfg, gw, now):
        m = cfg["metering"]
        self.cfg = cfg
        self.medium = MemoryMedium(st.medium_size(m["interval_s"], m["history_days"]))
        self.meter = Metering(gw, cfg, st.MeterStore(self.medium), now)
        self.restarts = 0

    def restart(self, gw, now):
        """A new meter on a new gateway from what the medium holds (the RAM state is lost)."""
        self.medium = MemoryMedium(data=self.medium.image())
        self.meter = Metering(gw, self.cfg, st.MeterStore(self.medium), now)
        self.restarts += 1
        return self.meter

    def records(self):
        """[(seq, start, covered_s, flags, deltas)] oldest first."""
        out = []
        for q, p in self.meter.store.log.records():
            start, cov, flags, d = st.unpack_record(p)
            out.append((q, start, cov, flags, d))
        return out

    def report(self, metrics):
        me = self.meter
        truth = metrics.metering_kwh()
        regs = {n[:-3]: round(v / 1000.0, 6) for n, v in zip(st.NAMES, me.tot)}
        hil = {n[:-3]: round(truth[t], 6) for n, t in TRUTH.items()}
        hil["v2h"] = round(truth["to_home"] - truth["to_home_islanded"], 6)
        return {"registers_kwh": regs, "hil_kwh": hil, "records": me.store.log.count,
                "synchronised": me.synced, "counter_resets": me.counter_resets, "stores": me.stores,
                "restarts": self.restarts}
