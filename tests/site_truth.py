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
