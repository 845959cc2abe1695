"""A run's time series as CSV (`v2xgw hil run/serve --trace FILE`): what the site did, one
row per meter period (the scenario's `site.meter_period_ms`), straight from the plant's
truth (docs/scenarios.md, "Trace").

Signs: `inv_p_kw` + = the inverter charges the EV (AC side); `inv_q_kvar` + = the inverter
supplies reactive power (over-excited); `p_grid_kw` + = the site imports.
"""

import csv

# the columns every consumer may rely on come first, in this order
COLUMNS = ("t_s", "grid_v_pu", "grid_f_hz", "inv_p_kw", "inv_q_kvar", "ev_soc",
           "home_v_pu", "home_f_hz", "p_grid_kw", "q_grid_kvar", "p_load_kw", "breaker_closed", "relay_closed",
           "inverter_mode")


def _r(x, nd=6):
    return round(x, nd)


class Trace:
    """Writes a row at the first plant sample at or after each multiple of `period_us`."""

    def __init__(self, path, period_us):
        if period_us <= 0:
            raise ValueError("period_us must be positive")
        self.period_us = int(period_us)
        self.next_us = 0
        self.rows = 0
        self._f = open(path, "w", newline="")
        self._w = csv.writer(self._f)
        self._w.writerow(COLUMNS)

    def sample(self, now_us, site):
        if now_us < self.next_us:
            return
        while self.next_us <= now_us:
            self.next_us += self.period_us
        t = site.truth()
        self._w.writerow((
            _r(now_us / 1e6), _r(t.utility_side_v_pu), _r(site.meter_frequency(), 4),
            _r(t.p_ac_w / 1000.0, 4), _r(t.q_inv_var / 1000.0, 4), _r(t.soc),
            _r(t.home_v_pu), _r(t.home_f_hz, 4), _r(t.p_grid_w / 1000.0, 4), _r(t.q_grid_var / 1000.0, 4),
            _r(t.p_load_w / 1000.0, 4), int(bool(t.breaker_closed)), int(bool(t.relay_closed)), t.inverter_mode))
        self.rows += 1

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None
