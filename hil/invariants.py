"""Site invariants: an oracle that checks every run against what a safety reviewer would
require of any controller on this site (docs/scenarios.md, "Site invariants").

The rules never ask the controller what it thinks. They use
- the plant's truth (hil/plant.py Site.truth()), every plant step, through the cheap
  pre-checks in Metrics.update (hil/metrics.py), which call in here only when a rule
  may be broken;
- the frames the devices receive from the controller (inverter command and forming
  frames as the inverter accepted them, GW_Status, GW_Event);
- the frames the devices send (hil/nodes.py keeps the time of every message's last
  intact frame, the relay's last intact contact report, when the EV's limits went out);
- the controller configuration's receive timeouts and control period.

Rules (RULES), each counted in episodes: a violation that lasts several samples or
frames counts once, from its first sample.
- current: no current above the limit in force: |DC current| over the EV's limit of
  the present direction, AC current over the inverter's rating, export current over
  the export limit, grid current over the main fuse (the max_over_limit_a metric).
  DC and AC count one control period after their limit changed; a changed EV limit
  counts from the first intact EVCC_Limits frame that carried it (the controller
  cannot know it earlier), or from the moment the EV input is stale by the `stale`
  rule's measure. Export and fuse are enforced from measurements, so they count
  when the excess lasts longer than POC_CONFIRM_S.
- forming: no grid-forming command (GW_InverterCmd InvModeReq = 2, GW_InverterForming)
  once the relay reports its contact closed (its last intact RLY_Feedback).
- direction: with the site grid-connected (breaker and relay closed in the plant) and
  the mode the controller reports (GW_Status.OperatingMode, and the GW_Event
  mode_change it sends in the tick of the change) unchanged, both for longer than the
  settling allowance: no discharge in charge, no charge in idle, v2h and v2g.
- dead_line: the utility side of the relay above 0.5 pu with the utility breaker open,
  continuously, for no longer than DEAD_LINE_MAX_S.
- stale: no grid-following command with a non-zero PSetpoint while a required input
  (meter, inverter, relay, EV) has sent no intact frame of one of its messages for
  longer than its receive timeout plus one control period plus STALE_MARGIN_S.
"""

from controller import event_names
from controller import events as ev_codes
from controller.config import timeout_ms
from hil.dbcdb import database

RULES = ("current", "forming", "direction", "dead_line", "stale")
INPUTS = ("meter", "inverter", "relay", "ev")

# current: one least significant bit of the current limits on the bus (GW_InverterLimits
# IacMax / IdcChargeMax / IdcDischargeMax are sent in 0.1 A steps), 0.6 % of the rated
# current of an 11 kVA inverter; the controller rounds its limits down, so a correct
# one never needs it, and it keeps float noise out of the count
CURRENT_TOL_A = 0.1
# export and main fuse: the controller can only see a load or voltage step at the point of
# connection through the meter (one-cycle window, 20 ms, reported every 10 ms), then acts on
# its next tick (10 ms) through the inverter's slew (up to 10 ms for a full reversal): about
# 50 ms during which no controller can hold these limits. Twice that, and still far inside
# what they protect: a main fuse carries 1.25-1.5 times its rating for an hour (IEC 60269
# gG conventional non-fusing current), export limitation schemes get 5 s (ENA EREC G100)
POC_CONFIRM_S = 0.1
# direction: the plant gives exactly 0 W for a zero command; the tolerance only absorbs float
# rounding and is 5x below the controller's own smallest deliberate margin (v2h bias, 50 W)
DIRECTION_TOL_W = 10.0
# direction: after the reported mode or the grid connection changes, one control period for
# the controller's command, plus the inverter's full reversal at its slew rate (2 x rated
# power per 10 ms, docs/plant.md section 5: from -rated to +rated in 10 ms)
SLEW_REVERSAL_S = 0.010
# dead line: IEEE 1547-2018 8.1.2 and IEC 62116: cease to energize within 2 s of an island
DEAD_LINE_MAX_S = 2.0
V_DEAD_LINE_PU = 0.5
# stale: device frames leave and the controller reads its clock on 0.5 ms plant steps; one
# millisecond covers the rounding at both ends
STALE_MARGIN_S = 0.001
KEEP_FIRST = 20

_INF = float("inf")
_MODE_NAMES = event_names.MODE_NAMES
_CMD_ID = database().get_message_by_name("GW_InverterCmd").frame_id
_FORM_ID = database().get_message_by_name("GW_InverterForming").frame_id
_GFL, _GFM = 1, 2


class Invariants:
    """The oracle of one run. attach() it to the run's Metrics (per-step pre-checks) and
    give it the devices (hil.nodes.SiteNodes, or any object with the same attributes:
    supervised, relay_closed_since_us, ev_announced, ev_announced_us); feed it the
    controller's frames with on_command(), on_status(), on_mode_event()."""

    def __init__(self, config, latency_s=0.0, keep=KEEP_FIRST):
        """config: the controller configuration of the run (hil.scenario.controller_config).
        latency_s: how late the controller may see a device frame and the devices its
        commands beyond lockstep (0 in lockstep; real-time runs add their bus and
        scheduling latency); it widens every allowance by that much."""
        self.period_s = config["control"]["period_ms"] / 1000.0
        self.latency_s = float(latency_s)
        period_us = config["control"]["period_ms"] * 1000
        margin_us = int(round((STALE_MARGIN_S + self.latency_s) * 1e6))
        self.timeout_us = {inp: timeout_ms(config, inp) * 1000 for inp in INPUTS}
        self.stale_after_us = {inp: self.timeout_us[inp] + period_us + margin_us for inp in INPUTS}
        self.i_tol = CURRENT_TOL_A
        self.poc_confirm_s = POC_CONFIRM_S
        self.dir_tol = DIRECTION_TOL_W
        self.dir_settle_s = self.period_s + SLEW_REVERSAL_S + self.latency_s
        self.dead_max_s = DEAD_LINE_MAX_S
        self.forming_grace_us = int(round(self.latency_s * 1e6))
        self.keep = keep
        self.devices = None
        self.metrics = None
        self.counts = {r: 0 for r in RULES}
        self.first = []
        self._last = {r: -_INF for r in RULES}
        self._poc_from = {"export": None, "fuse": None}
        self._poc_last = {"export": -_INF, "fuse": -_INF}
        self.mode = None  # the operating mode the controller reports (events.IDLE ... SAFE)
        self.mode_since = 0.0
        self.connected = False  # breaker and relay closed in the plant
        self.connected_since = 0.0
        self.dir_lo = -_INF  # the battery power band of the direction rule (read per step)
        self.dir_hi = _INF
        self._fresh_until_us = -1  # no input can be stale before this plant time

    def attach(self, metrics, devices=None):
        """Let `metrics` (hil.metrics.Metrics) run this oracle's per-step pre-checks."""
        self.metrics = metrics
        self.devices = devices
        metrics.attach_invariants(self)
        self._band()

    # ------------------------------------------------------------ bookkeeping
    def _record(self, rule, t, detail, t_start=None):
        """One violating sample (t_start: the start of its plant interval) or frame; a new
        episode unless it continues the last one of the same rule."""
        last = self._last[rule]
        self._last[rule] = t
        if t_start is not None:
            new = t_start > last + 1e-9
        else:
            new = t - last > self.period_s + 0.001 + self.latency_s  # frames come every period
        if new:
            self.counts[rule] += 1
            if len(self.first) < self.keep:
                self.first.append({"t_s": round(t, 6), "rule": rule, "detail": detail})

    @property
    def total(self):
        return sum(self.counts.values())

    def result(self):
        """The report's `invariants` object."""
        return {"violations": self.total, "by_rule": dict(self.counts), "first": list(self.first)}

    # ------------------------------------------------------------ per plant step (from Metrics)
    def current(self, t, t_start, tr):
        """A current over its limit by more than i_tol (Metrics' pre-check, one control
        period after the limit changed in the plant): decide whether it counts."""
        cp = self.period_s
        tol = self.i_tol
        worst = None
        x = abs(tr.i_dc_a) - tr.i_dc_limit_a
        if x > tol:
            changed = tr.i_dc_limit_changed_s
            dev = self.devices
            if dev is not None:
                if dev.ev_announced:
                    k = dev.ev_announced_us / 1e6
                else:  # not yet on the bus: it counts once the EV input is stale
                    k = min(tx.good_us + self.stale_after_us["ev"] for tx in dev.supervised["ev"]) / 1e6
                if k > changed:
                    changed = k
            if t - changed > cp + self.latency_s:
                worst = (x, "dc current %.2f A over the EV's limit %.2f A" % (abs(tr.i_dc_a), tr.i_dc_limit_a))
        x = tr.i_ac_a - tr.i_ac_limit_a
        if x > tol and t - tr.i_ac_limit_changed_s > cp and (worst is None or x > worst[0]):
            worst = (x, "ac current %.2f A over the inverter's rating %.2f A" % (tr.i_ac_a, tr.i_ac_limit_a))
        for name, i, lim, what in (("export", tr.i_export_a, tr.i_export_limit_a, "export limit"),
                                   ("fuse", tr.i_grid_a, tr.i_fuse_limit_a, "main fuse")):
            if lim is None:
                continue
            x = i - lim
            if x <= tol:
                continue
            if self._poc_last[name] < t_start - 1e-9:
                self._poc_from[name] = t_start
            self._poc_last[name] = t
            if t - self._poc_from[name] > self.poc_confirm_s and (worst is None or x > worst[0]):
                worst = (x, "%s current %.2f A over the %s %.2f A for %.0f ms"
                         % (name, i, what, lim, (t - self._poc_from[name]) * 1000))
        if worst is not None:
            self._record("current", t, worst[1] + " (+%.2f A)" % worst[0], t_start)

    def direction(self, t, t_start, p_batt_w):
        """Battery power outside the band of the reported mode (Metrics' pre-check)."""
        if not self.connected or t < max(self.mode_since, self.connected_since) + self.dir_settle_s:
            return
        name = _MODE_NAMES[self.mode]
        what = "discharging" if p_batt_w < 0 else "charging"
        self._record("direction", t, "battery %s %.0f W in reported mode %s" % (what, p_batt_w, name), t_start)

    def dead_line(self, t, t_start, since):
        """The utility side has been live with the breaker open since `since`, longer than dead_max_s."""
        self._record("dead_line", t, "utility side above %.1f pu with the utility breaker open since %.3f s"
                     % (V_DEAD_LINE_PU, since), t_start)

    def grid(self, t_start, connected):
        """The plant's breaker and relay are (not) both closed from t_start on."""
        self.connected = connected
        self.connected_since = t_start
        self._band()

    # ------------------------------------------------------------ controller frames
    def on_command(self, can_id, d, now_us):
        """An inverter command or forming frame, as the inverter accepted it."""
        if can_id == _CMD_ID:
            m = d["InvModeReq"]
            if m == _GFM:
                self._forming(now_us, "GW_InverterCmd InvModeReq=2")
            elif m == _GFL and d["PSetpoint"] != 0 and now_us > self._fresh_until_us:
                self._stale(now_us, d["PSetpoint"])
        elif can_id == _FORM_ID:
            self._forming(now_us, "GW_InverterForming")

    def _forming(self, now_us, what):
        dev = self.devices
        if dev is None:
            return
        since = dev.relay_closed_since_us
        if since is not None and now_us - since >= self.forming_grace_us:
            self._record("forming", now_us / 1e6, "%s with the relay reporting closed since %.3f s"
                         % (what, since / 1e6))

    def _stale(self, now_us, p_w):
        dev = self.devices
        if dev is None:
            return
        fresh_until = _INF
        stale = []
        for inp, txs in dev.supervised.items():
            after = self.stale_after_us[inp]
            for tx in txs:
                u = tx.good_us + after
                if u < fresh_until:
                    fresh_until = u
                if now_us > u:
                    stale.append("%s (%s silent or corrupt for %.0f ms, timeout %.0f ms)"
                                 % (inp, tx.name, (now_us - tx.good_us) / 1e3, self.timeout_us[inp] / 1e3))
        self._fresh_until_us = fresh_until
        if stale:
            self._record("stale", now_us / 1e6, "grid-following PSetpoint %d W while %s" % (p_w, ", ".join(stale)))

    def on_status(self, mode, t):
        """GW_Status.OperatingMode as the devices received it at plant time t."""
        if mode != self.mode:
            self.mode = mode
            self.mode_since = t
            self._band()

    on_mode_event = on_status  # a GW_Event mode_change (sent in the tick of the change)

    def _band(self):
        m = self.mode
        lo, hi = -_INF, _INF
        if self.connected and m is not None:
            if m == ev_codes.CHARGE:
                lo = -self.dir_tol
            elif m in (ev_codes.IDLE, ev_codes.V2H, ev_codes.V2G):
                hi = self.dir_tol
        self.dir_lo = lo
        self.dir_hi = hi
        if self.metrics is not None:
            self.metrics.dir_lo = lo
            self.metrics.dir_hi = hi
