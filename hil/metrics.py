"""Run metrics of the HIL report (docs/scenarios.md, "Metric definitions").

Metrics(scenario, control_period_s) is fed
- once per plant step with update(t_s, dt_s, truth), where truth is Site.truth()
  (attribute access; see hil/plant.py TRUTH_FIELDS), and
- with every controller event through on_event(t_s, kind, **fields).
result() returns the "metrics" object of the report.

With a site-invariants oracle attached (hil/invariants.py, Invariants.attach), update()
also runs its per-step pre-checks: a few comparisons on values it reads anyway (the
largest current excess, the battery power against the reported mode's band, the time
the dead line has been live, the grid connection); the oracle is called only when one
of them trips, so the check costs next to nothing on the runner's hot path.

Plant-side facts (breaker, relay contact, voltages, currents, limits in force) come
only from the plant's truth; controller-side facts (island_detected, trip, ...) only
from the controller's events. Each truth sample stands for the interval
(previous truth.t_s, truth.t_s]: the plant applies scenario events and commands at
the start of a step, so a change first seen in the sample at t happened at
t - dt. Intervals are taken from truth.t_s, so a repeated update() for the same plant
time counts nothing twice.

Frequency-response services (scenario events freq_service, docs/scenarios.md) are read
from the scenario itself: a service is in force from its event's t_s until t_s + valid_s,
a cancel, or the next freq_service event, whichever comes first. Its curve gives, for the
utility source's true frequency (truth.grid_f_hz, not the meter's estimate), the requested
change dP(f) of the inverter's AC power against the service's baseline (battery convention
like every power of the report: + = charging; linear between points, flat beyond the
ends). The zero band is where dP(f) == 0. Then
- service_activation_s: from the first departure of the source frequency from the zero
  band while a service is in force (the service's start, if the frequency is outside the
  band then) to the first sample at which the delivered change, truth.p_ac_w minus the
  baseline, has the sign of dP(f) at that sample's frequency and at least 90 % of its
  size. None when no service was in force, the frequency never left the band, or the
  frequency returned into the band (or the service ended) before 90 % was reached: only
  the first departure counts. Like every time here it is resolved to the plant step, and
  both instants, a departure and the 90 %, first seen in the sample at t are taken to
  have happened at t - dt;
- service_energy_kwh: the integral of (truth.p_ac_w - baseline) over the time a service
  is in force, battery convention: negative = the site delivered energy to the grid
  beyond its baseline (up-regulation), positive = it absorbed more (down-regulation).
  None when the scenario has no service.

Operating plans and the backup reserve (plan_tracking_error_kw, min_soc_grid_connected_pct,
reserve_violation_s): hil/plan_metrics.py.
"""

from hil.plan_metrics import PlanMetrics

V_INTERRUPTION_PU = 0.7     # home bus below this counts as interrupted (README)
V_DEAD_LINE_PU = 0.5        # utility side above this with the breaker open: dead line energized (README)
GRID_OK_V_PU = (0.9, 1.1)   # "grid came back and stayed within limits" (docs/plant.md)
GRID_OK_DF_HZ = 0.2

RESULT_KEYS = (
    "island_detection_s", "trip_count", "home_interruption_ms", "dead_line_energized_ms",
    "max_over_limit_a", "reconnect_delay_s", "reconnect_phase_error_deg",
    "reconnect_frequency_error_hz", "reconnect_voltage_error_pu", "ev_soc_end",
    "energy_to_home_kwh", "energy_to_grid_kwh", "energy_from_grid_kwh",
    "service_activation_s", "service_energy_kwh",
    "plan_tracking_error_kw", "min_soc_grid_connected_pct", "reserve_violation_s",
)
ACTIVATION_FRACTION = 0.9  # service_activation_s: the share of the requested change delivered


def curve_kw(f_hz, points):
    """A freq_service curve's change (kW) at f_hz: linear between its [hz, kw] points (increasing
    frequencies), the end values beyond the ends."""
    if f_hz <= points[0][0]:
        return points[0][1]
    for (f0, p0), (f1, p1) in zip(points, points[1:]):
        if f_hz <= f1:
            return p0 + (p1 - p0) * (f_hz - f0) / (f1 - f0)
    return points[-1][1]


def service_spans(scenario):
    """(t_start, t_end, points, baseline_w) of every freq_service curve in the scenario, in time
    order: in force until its validity ends, a cancel, or the next freq_service event."""
    evs = [e for e in scenario.get("events", ()) if e["kind"] == "freq_service"]
    spans = []
    for i, e in enumerate(evs):
        if e["service"] == "cancel":
            continue
        end = e["t_s"] + e["valid_s"]
        if i + 1 < len(evs) and evs[i + 1]["t_s"] < end:
            end = evs[i + 1]["t_s"]
        spans.append((e["t_s"], end, e["points"], e.get("baseline_kw", 0.0) * 1000.0))
    return spans


def _sig(x, digits=6):
    """x rounded to `digits` significant digits (None stays None)."""
    if x is None:
        return None
    if isinstance(x, int):
        return x
    return float("%.*g" % (digits, x))


class Metrics:
    __slots__ = (
        "control_period_s", "f_n", "ok_v_lo", "ok_v_hi", "ok_df",
        "_t_last", "_t_disconnect", "_detect_times", "trip_count", "events",
        "_interrupt_s", "_dead_s", "_max_over", "_e_home_j", "_e_to_grid_j", "_e_from_grid_j",
        "_e_island_j", "_e_ev_in_j", "_e_ev_out_j",  # for the metering reconciliation (metering_kwh)
        "_ok_since", "_outage_seen", "_prev_relay_closed", "_reconnect", "reconnects",
        "_soc", "_bms_s",
        # frequency-response services
        "_fs_spans", "_fs_i", "_fs_out", "_fs_t_out", "_fs_armed", "_fs_done", "_fs_activation", "_fs_e_j",
        "plan",  # operating plans and the backup reserve (hil/plan_metrics.py)
        # site invariants (hil/invariants.py): the per-step pre-checks; inert without an oracle
        "inv", "i_tol", "dir_lo", "dir_hi", "dead_max_s", "_dead_from", "_dead_to", "_prev_breaker",
    )

    def __init__(self, scenario, control_period_s=0.01, grid_ok_v_pu=GRID_OK_V_PU, grid_ok_df_hz=GRID_OK_DF_HZ):
        self.control_period_s = float(control_period_s)
        self.f_n = float(scenario["site"]["nominal_frequency_hz"])
        self.ok_v_lo, self.ok_v_hi = grid_ok_v_pu
        self.ok_df = grid_ok_df_hz
        self._t_last = None
        self._t_disconnect = None
        self._detect_times = []
        self.trip_count = 0
        self.events = []
        self._interrupt_s = 0.0
        self._dead_s = 0.0
        self._max_over = 0.0
        self._e_home_j = 0.0
        self._e_to_grid_j = 0.0
        self._e_from_grid_j = 0.0
        self._e_island_j = self._e_ev_in_j = self._e_ev_out_j = 0.0
        self._ok_since = None
        self._outage_seen = False
        self._prev_relay_closed = None
        self._reconnect = None
        self.reconnects = []  # every reclosure after an outage: (t_s, delay_s, dphi_deg, df_hz, dv_pu)
        self._soc = float(scenario["ev"]["soc"])
        self._bms_s = 0.0
        self._fs_spans = service_spans(scenario)
        self._fs_i = 0  # the span in force or next
        self._fs_out = False  # the source frequency is outside the zero band of the curve in force
        self._fs_t_out = None
        self._fs_armed = False
        self._fs_done = False  # the first departure has been judged
        self._fs_activation = None
        self._fs_e_j = 0.0
        self.plan = PlanMetrics(scenario)
        self.inv = None
        self.i_tol = self.dir_hi = self.dead_max_s = float("inf")
        self.dir_lo = -self.dir_hi
        self._dead_from = self._dead_to = None
        self._prev_breaker = None

    def attach_invariants(self, inv):
        """Run the per-step pre-checks of a hil.invariants.Invariants (it calls this from attach())."""
        self.inv = inv
        self.i_tol = inv.i_tol
        self.dead_max_s = inv.dead_max_s

    # ---------------------------------------------------------------- controller events
    def on_event(self, t_s, kind, **fields):
        """A controller event (island_detected, trip, relay_open_command, ...)."""
        self.events.append((t_s, kind))
        if kind == "island_detected":
            self._detect_times.append(t_s)
        elif kind == "trip":
            self.trip_count += 1

    # ---------------------------------------------------------------- plant samples
    def update(self, t_s, dt_s, tr):
        """One plant sample (Site.truth() after the step that ended at t_s)."""
        try:
            t = tr.t_s
        except AttributeError:
            t = t_s
        t_last = self._t_last
        if t_last is None:
            # first sample: an interval only if the plant has already advanced
            dt = dt_s if t > 0.0 else 0.0
        else:
            dt = t - t_last
        if dt <= 0.0:
            return
        self._t_last = t
        t_start = t - dt

        if tr.home_v_pu < V_INTERRUPTION_PU:
            self._interrupt_s += dt
        breaker = tr.breaker_closed
        if not breaker:
            if tr.utility_side_v_pu > V_DEAD_LINE_PU:
                self._dead_s += dt
                if self._dead_to is None or self._dead_to < t_start - 1e-9:  # a new continuous stretch
                    self._dead_from = t_start
                self._dead_to = t
                if t - self._dead_from > self.dead_max_s:
                    self.inv.dead_line(t, t_start, self._dead_from)
            if self._t_disconnect is None:
                self._t_disconnect = t_start
            self._outage_seen = True

        # currents over the limit in force, once that limit has stood one control period
        cp = self.control_period_s
        w = 0.0  # the largest excess of this sample
        if t - tr.i_dc_limit_changed_s > cp:
            x = abs(tr.i_dc_a) - tr.i_dc_limit_a
            if x > w:
                w = x
        if t - tr.i_ac_limit_changed_s > cp:
            x = tr.i_ac_a - tr.i_ac_limit_a
            if x > w:
                w = x
        lim = tr.i_export_limit_a
        if lim is not None and t - tr.i_export_limit_changed_s > cp:
            x = tr.i_export_a - lim
            if x > w:
                w = x
        lim = tr.i_fuse_limit_a
        if lim is not None:
            x = tr.i_grid_a - lim
            if x > w:
                w = x
        if w > self._max_over:
            self._max_over = w
        if w > self.i_tol:
            self.inv.current(t, t_start, tr)
        rc = tr.relay_closed
        if rc != self._prev_relay_closed or breaker != self._prev_breaker:  # (_prev_relay_closed: below)
            self._prev_breaker = breaker
            if self.inv is not None:
                self.inv.grid(t_start, bool(rc and breaker))
        pb = tr.p_batt_w
        if pb > self.dir_hi or pb < self.dir_lo:
            self.inv.direction(t, t_start, pb)

        # energies
        pac = tr.p_ac_w
        if pac < 0.0:
            pl = tr.p_load_w
            e = (pl if pl < -pac else -pac) * dt if pl > 0.0 else 0.0
            self._e_home_j += e
            if not rc:
                self._e_island_j += e
        if pb > 0.0:
            self._e_ev_in_j += pb * dt
        else:
            self._e_ev_out_j -= pb * dt
        pg = tr.p_grid_w
        if pg > 0.0:
            self._e_from_grid_j += pg * dt
        else:
            self._e_to_grid_j -= pg * dt
        if tr.bms_blocked:
            self._bms_s += dt
        if self._fs_spans:
            self._service(t, t_start, dt, tr)
        self.plan.update(t, dt, tr)
        self._soc = tr.soc

        # reconnection onto the grid after an outage
        if breaker:
            gv = tr.grid_v_pu
            ok = self.ok_v_lo <= gv <= self.ok_v_hi and abs(tr.grid_f_hz - self.f_n) <= self.ok_df
        else:
            ok = False
        if ok:
            if self._ok_since is None:
                self._ok_since = t_start
        elif self._ok_since is not None:
            self._ok_since = None
        if rc and self._prev_relay_closed is False and breaker and self._outage_seen:
            delay = t_start - self._ok_since if self._ok_since is not None else 0.0
            rec = (t_start, delay, abs(tr.sync_dphi_deg), abs(tr.sync_df_hz), abs(tr.sync_dv_pu))
            self.reconnects.append(rec)
            if self._reconnect is None:
                self._reconnect = rec
            self._outage_seen = False
        self._prev_relay_closed = rc

    def _service(self, t, t_start, dt, tr):
        """The frequency-response service's metrics for the interval (t_start, t]."""
        spans = self._fs_spans
        i = self._fs_i
        while i < len(spans) and spans[i][1] <= t_start + 1e-9:
            i += 1
            if self._fs_armed:  # the service ended before 90 %: the first departure failed
                self._fs_armed = False
                self._fs_done = True
            self._fs_out = False
        self._fs_i = i
        if i == len(spans) or spans[i][0] > t_start + 1e-9:
            return
        _, _, points, base_w = spans[i]
        delivered = tr.p_ac_w - base_w
        self._fs_e_j += delivered * dt
        if self._fs_done:
            return
        req = curve_kw(tr.grid_f_hz, points) * 1000.0
        if req == 0.0:
            if self._fs_armed:  # back in the band before 90 %
                self._fs_armed = False
                self._fs_done = True
            self._fs_out = False
            return
        if not self._fs_out:
            self._fs_out = True
            self._fs_armed = True
            self._fs_t_out = max(t_start, spans[i][0])
        if self._fs_armed and delivered * req > 0.0 and abs(delivered) >= ACTIVATION_FRACTION * abs(req):
            self._fs_activation = t_start - self._fs_t_out
            self._fs_armed = False
            self._fs_done = True

    # ---------------------------------------------------------------- result
    def metering_kwh(self):
        """The plant's side of the metering reconciliation (docs/metering.md), kWh: grid import
        and export, the EV battery's energy in and out, the EV's energy to the home (all of
        it, and while islanded)."""
        return {"grid_import": self._e_from_grid_j / 3.6e6, "grid_export": self._e_to_grid_j / 3.6e6,
                "ev_charged": self._e_ev_in_j / 3.6e6, "ev_discharged": self._e_ev_out_j / 3.6e6,
                "to_home": self._e_home_j / 3.6e6, "to_home_islanded": self._e_island_j / 3.6e6}

    def result(self):
        """The report's metrics object (README definitions, 6 significant digits)."""
        detect = None
        if self._t_disconnect is not None:
            after = [t for t in self._detect_times if t >= self._t_disconnect - 1e-9]
            if after:
                detect = max(0.0, after[0] - self._t_disconnect)
        rc = self._reconnect
        return {
            "island_detection_s": _sig(detect),
            "trip_count": self.trip_count,
            "home_interruption_ms": _sig(self._interrupt_s * 1000.0),
            "dead_line_energized_ms": _sig(self._dead_s * 1000.0),
            "max_over_limit_a": _sig(self._max_over),
            "reconnect_delay_s": _sig(rc[1]) if rc else None,
            "reconnect_phase_error_deg": _sig(rc[2]) if rc else None,
            "reconnect_frequency_error_hz": _sig(rc[3]) if rc else None,
            "reconnect_voltage_error_pu": _sig(rc[4]) if rc else None,
            "ev_soc_end": _sig(self._soc),
            "energy_to_home_kwh": _sig(self._e_home_j / 3.6e6),
            "energy_to_grid_kwh": _sig(self._e_to_grid_j / 3.6e6),
            "energy_from_grid_kwh": _sig(self._e_from_grid_j / 3.6e6),
            "ev_bms_backstop_ms": _sig(self._bms_s * 1000.0),
            "service_activation_s": _sig(self._fs_activation),
            "service_energy_kwh": _sig(self._fs_e_j / 3.6e6) if self._fs_spans else None,
            **{k: _sig(v) for k, v in self.plan.result().items()},
            **({"invariant_violations": self.inv.total} if self.inv is not None else {}),
        }
