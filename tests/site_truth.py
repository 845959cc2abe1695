"""A plant truth sample for the metrics and invariants tests (the fields of
hil.plant.TRUTH_FIELDS), as plain attributes the tests change between samples."""

from hil.plant import TRUTH_FIELDS


class FakeTruth:
    """A healthy grid-tied site at rest; tests change fields between samples."""

    def __init__(self):
        for k in TRUTH_FIELDS:
            setattr(self, k, 0.0)
        self.home_v_pu = self.utility_side_v_pu = self.grid_v_pu = 1.0
        self.home_f_hz = self.grid_f_hz = 50.0
        self.breaker_closed = self.relay_closed = True
        self.bms_blocked = False
        self.soc = 0.8
        self.i_dc_limit_a = 28.0
        self.i_ac_limit_a = 15.9
        self.i_export_limit_a = None
        self.i_fuse_limit_a = None


class MetricsRun:
    """hil.metrics.Metrics over a validated scenario, fed FakeTruth samples every `dt`
    seconds of plant time; run() sets truth fields first, then steps."""

    def __init__(self, sc, dt, meter_period_s=0.01):
        from hil.metrics import Metrics

        self.m = Metrics(sc, meter_period_s)
        self.dt = dt
        self.tr = FakeTruth()
        self.tr.p_ac_w = 0.0
        self.n = 0
        self.m.update(0.0, dt, self.tr)

    def run(self, seconds, **fields):
        for k, v in fields.items():
            setattr(self.tr, k, v)
        for _ in range(int(round(seconds / self.dt))):
            self.n += 1
            self.tr.t_s = self.n * self.dt
            self.m.update(self.tr.t_s, self.dt, self.tr)
        return self

    @property
    def result(self):
        return self.m.result()
