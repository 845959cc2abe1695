"""The gateway controller: one control period of data flow, plus a fast path.

Data flows one way per period (tick), one step a method:
  1. inputs      receive-timeout supervision per device (control/supervision.py), and
                 the energy manager's request validity (control/operating_mode.py), then its
                 plan's slot or fallback where no request is in force (energy/follow.py),
                 and an external power limit's validity (control/external_limit.py)
  1b. plausible  meter and inverter agree on the bus they share
  2. inverter    its reported mode, state and fault flags against the command
                 (control/inverter_monitor.py)
  3. safe state  enter at once, leave after control.recover_hold_ms of health
  4. decide      reactive power (grid support's Q mode plus active anti-islanding), mode
                 target (control/operating_mode.py), ramp, limit arbitration
                 (control/limits.py), then grid support's active power (P(f), volt-watt:
                 controller/grid_support/support.py) within the limits, arbitrated again
  5. switchover  the backup state machine (control/backup.py)
  6. command     inverter, limits, relay and forming frames (control/commands.py)
  7. report      mode and limit events, GW_Status
Received frames go through a dispatch table: frame id -> (input, its supervision group,
handler). Every frame passes its input's checks (controller/bus/inputs.py) before a
handler sees it. Frames that can make a limit tighter (EV limits, an external power
limit) or that signal a grid fault (grid samples, inverter AC loss, the island's
frequency) take the fast path: their handler re-arbitrates or separates at once instead
of waiting for the next tick.

Guarantees:
- every GW_InverterCmd carries a power setpoint inside the bounds of limits.Arbiter
  computed from the newest accepted inputs (property-tested);
- a malformed frame (length, CRC, alive counter, range, unknown id) is counted and
  refused, never raises, and never changes the inputs;
- without fresh inputs the controller holds zero power (safe state) and leaves it
  only after all inputs were fresh for control.recover_hold_ms.
"""

from controller import events
from controller.bus import candb
from controller.bus.inputs import Input
from controller.clock import ticks_add, ticks_diff
from controller.control import inverter_monitor, limits, supervision
from controller.control.backup import GRID as BK_GRID, Backup
from controller.control.commands import Commands
from controller.control.operating_mode import OperatingMode
from controller.protection.anti_islanding import FrequencyDrift, SandiaFrequencyShift
from controller.protection.interface_protection import EnterService, InterfaceProtection
from controller.timing import ConditionalDelay, Elapsed, MovingAverage, RampLimiter, split_us

INV_OFF, INV_GFL, INV_GFM = 0, 1, 2
RELAY_OPEN, RELAY_CLOSED = 0, 1
OVERLOAD_CONFIRM_US = 200000  # an overload must last 200 ms: the forming transient is not one


class Gateway:
    def __init__(self, cfg, port):
        self.cfg = cfg
        self.port = port
        self.period_us = cfg["control"]["period_ms"] * 1000
        self.status_period_us = cfg["control"]["status_period_ms"] * 1000
        self.eff = cfg["inverter"]["efficiency"]
        self.v_nom = cfg["site"]["nominal_voltage_v"]
        self.f_nom = cfg["site"]["nominal_frequency_hz"]
        self.phases = cfg["site"]["phases"]
        self.arbiter = limits.Arbiter(cfg)
        r = cfg["limits"]["ramp_up_kw_per_s"]
        self.ramp = RampLimiter(None if r is None else r * 1000.0)
        # the meter reports power averaged over its window: average the inverter's power
        # over the same span, so that grid minus inverter is the load and not a timing artefact
        n = cfg["meter"]["window_ms"] // cfg["inverter"]["period_ms"]
        self.p_ac_avg = MovingAverage(n if n > 0 else 1, integer=True)
        e = self.eff * 1000.0  # per-mille, rounded both ways (AC from battery power in ints)
        self._eff_dn = int(e)
        # GW_InverterLimits: the rated AC current is a constant; the DC currents follow the
        # EV's limits and battery voltage, recomputed only when those change
        self._iac_max = int(self.arbiter.rating_va / (self.phases * self.v_nom) * 10) / 10.0
        self._idc_key = None
        self._idc = (0.0, 0.0)
        self._soc_pct = 0.0
        self._min_soc_pct = 100.0
        # thresholds in the units of the signals, computed once (no float per period)
        self._iac_97 = 0.97 * self._iac_max  # the backup runs at its current limit
        self._v_85 = 0.85 * self.v_nom  # the island sags: a current-limited source under overload
        self.op = OperatingMode(cfg, candb.BY_NAME["EMS_ModeRequest"].timeout_ms)
        # grid protection, islanding and backup: the profile named by site.grid_code (read
        # here only: the profile machinery is not needed at run time)
        from controller.protection import grid_codes

        prof = grid_codes.profile(cfg["site"]["grid_code"], self.f_nom)
        # grid support (controller/grid_support/support.py): imported here, built once from
        # the profile's settings and the configuration; then its part of the profile goes
        # (a board's heap has the room for the rest of the start-up again)
        from controller.grid_support import settings
        from controller.grid_support.support import GridSupport

        self.gs = GridSupport(settings.resolve(cfg, prof), self.arbiter.rating_va)
        settings.drop()
        del prof["grid_support"]
        self.prot = InterfaceProtection(prof, cfg["meter"]["period_ms"] / 1000.0)
        self.enter = EnterService(prof)
        self._grid_v_lo = self.enter.v_lo * self.v_nom  # the enter-service window in volts
        self._grid_v_hi = self.enter.v_hi * self.v_nom
        self.es_ramp = cfg["limits"]["enter_service_ramp"]
        self.out_cap = None  # the enter-service ramp's AC output cap this period (None: no ramp)
        self.backup = Backup(self.v_nom, self.f_nom, grid_codes.value(prof["enter_service"]["delay_s"]), self._event)
        self.backup_enabled = cfg["backup"]["enabled"]
        self.sfs = SandiaFrequencyShift(self.arbiter.rating_va, self.f_nom,
                                        enabled=cfg["anti_islanding"]["active_method"] == "sfs")
        immunity = grid_codes.value(prof["rocof_ride_through"]["hz_s"]) or 2.0
        self.drift = FrequencyDrift(self.f_nom, 2.0 * immunity)
        self.reserve_pct = self.gs.reserve_soc_pct = cfg["backup"]["reserve_soc_pct"]  # a plan may raise it
        self.overload = ConditionalDelay(OVERLOAD_CONFIRM_US)
        self.inv_mon = inverter_monitor.InverterMonitor()
        self.gfm_refused = 0  # grid-forming commands held back because the relay reported closed
        self.q_cmd = 0.0
        self.separated_by = 0
        self._started = False
        self._meter_stale = True
        self._inverter_stale = True

        # inputs, and the dispatch table of received frames
        from controller.config import timeout_ms  # here, not at module level: main can drop config after start

        M = candb.BY_NAME
        tm, ti, tr, te = (timeout_ms(cfg, "meter"), timeout_ms(cfg, "inverter"),
                          timeout_ms(cfg, "relay"), timeout_ms(cfg, "ev"))
        self.mtr_grid = Input(M["MTR_Grid"], tm)
        self.mtr_power = Input(M["MTR_Power"], tm)
        self.inv_status = Input(M["INV_Status"], ti)
        self.inv_ac = Input(M["INV_AcMeasure"], ti)
        self.rly = Input(M["RLY_Feedback"], tr)
        self.ev_limits = Input(M["EVCC_Limits"], te)
        self.ev_status = Input(M["EVCC_Status"], te)
        self.inv_loss = Input(M["INV_AcLossEvent"], 0)
        self.ems = Input(M["EMS_ModeRequest"], 0)
        gs = self.gs
        gs.hdr_in = Input(M["EMS_FreqServiceHdr"], 0)
        gs.pt_in = Input(M["EMS_FreqServicePoint"], 0)
        self.plan = None  # the energy manager's plan (controller/energy/follow.py), made by its first frame
        self.plan_hdr = Input(M["EMS_PlanHdr"], 0)
        self.plan_slot = Input(M["EMS_PlanSlot"], 0)
        # an external power limit (control/external_limit.py), made by its first frame
        self.ext = None
        self.ext_in = Input(M["EMS_PowerLimit"], 0)
        # frame id -> (input, supervision group (0: event-driven, not supervised), handler)
        self.rx = {}
        for inp, grp, handler in (
                (self.mtr_grid, events.IN_METER, self._on_grid_sample),
                (self.mtr_power, events.IN_METER, None),
                (self.inv_status, events.IN_INVERTER, self._on_inverter_status),
                (self.inv_ac, events.IN_INVERTER, self._on_island_frequency),
                (self.rly, events.IN_RELAY, self._on_relay_feedback),
                (self.ev_limits, events.IN_EV, self._on_ev_limits),
                (self.ev_status, events.IN_EV, None),
                (self.inv_loss, 0, self._on_ac_loss),
                (self.ems, 0, self._on_mode_request),
                (gs.hdr_in, 0, self._on_service_header),
                (gs.pt_in, 0, self._on_service_point),
                (self.plan_hdr, 0, self._on_plan),
                (self.plan_slot, 0, self._on_plan),
                (self.ext_in, 0, self._on_power_limit)):
            self.rx[inp.msg.frame_id] = (inp, grp, handler)
        self.sup = supervision.Supervision(
            ((events.IN_METER, (self.mtr_grid, self.mtr_power)),
             (events.IN_INVERTER, (self.inv_status, self.inv_ac)),
             (events.IN_RELAY, (self.rly,)),
             (events.IN_EV, (self.ev_limits, self.ev_status))),
            cfg["control"]["recover_hold_ms"] * 1000, self._event)
        self.timed_out = self.sup.timed_out  # {events.IN_*: bool}, read by diagnostics and the SECC
        self.out = Commands(port)
        self.next_status = None
        # state
        self.reported_mode = None
        self.inputs_ok = False
        self.inv_mode = INV_OFF
        self.p_cmd = 0.0
        self.p_target = 0.0
        self.limiting = limits.INPUT_TIMEOUT
        self.limit_reported = None  # the safe state says enough; reported again after it
        self.limit_since = Elapsed()  # since the last limit event (at most one per status period)
        self.limit_since_started = False
        self._status_s, self._status_us = split_us(self.status_period_us)
        self.trip_flags = 0
        self.refused = [0, 0, 0, 0, 0, 0]  # by events.R_* reason
        self.refused_total = 0
        self.refused_reported = 0
        self.clamped_reported = 0
        self._last_refused = (0, 0)
        # extensions on the same bus (diagnostics over ISO-TP): objects with
        # on_port_frame(frame, now) -> bool (True = consumed) and an event listener list
        self.taps = []
        self.listeners = []
        self.ignored = 0

    # the state others read (diagnostics, the SECC, the HIL and the tests)
    @property
    def safe(self):
        return self.sup.safe

    @property
    def mode(self):
        return self.op.mode

    @property
    def sent(self):
        return self.out.sent

    @property
    def tx_errors(self):
        return self.out.tx_errors

    def rx_ids(self):
        """Every (can_id, extended) the gateway and its taps read: the acceptance filter
        for its port (``port.set_filter(gw.rx_ids())``), sorted."""
        ids = [(i, False) for i in self.rx]
        for tap in self.taps:
            ids.extend(tap.rx_ids())
        ids.sort()
        return ids

    def apply_acceptance_filter(self):
        """With ``control.acceptance_filter`` (default on), let the port receive only
        rx_ids(); call it after every tap is attached. True if the filter sits below the
        port (hardware, kernel)."""
        if self.cfg["control"]["acceptance_filter"]:
            return self.port.set_filter(self.rx_ids())
        return False

    # ---------------------------------------------------------------- received frames
    def poll(self, now, budget=64):
        """Drain up to `budget` frames from the port into on_frame()."""
        port = self.port
        n = 0
        while n < budget:
            f = port.recv()
            if f is None:
                break
            n += 1
            consumed = False
            for tap in self.taps:
                if tap.on_port_frame(f, now):
                    consumed = True
                    break
            if consumed:
                continue
            if f[1]:  # extended id: nothing on the site bus uses it
                self.refuse(events.R_UNKNOWN_ID, f[0] & 0xFFFF)
                continue
            self.on_frame(f[0], f[2], now)
        for tap in self.taps:
            tap.poll(now)
        return n

    def on_frame(self, can_id, data, now):
        """Take one received frame: its input's checks, then its handler (the fast path)."""
        entry = self.rx.get(can_id)
        if entry is None:
            if can_id in candb.MESSAGES:
                self.ignored += 1  # on the site bus, but not for the controller
            else:
                self.refuse(events.R_UNKNOWN_ID, can_id)
            return
        reason = entry[0].accept(data, now)
        if reason:
            self.refuse(reason, can_id)
            return
        handler = entry[2]
        if handler is not None:
            handler(now)

    def refuse(self, reason, can_id):
        """Count one refused frame (events.R_* reason); reported once per status period."""
        self.refused[reason] += 1
        self.refused_total += 1
        self._last_refused = (reason, can_id)

    def _on_grid_sample(self, now):
        """Interface protection on every accepted grid sample."""
        v = self.mtr_grid.values
        reason = self.prot.update(v["GridVoltage"] / self.v_nom, v["GridFrequency"], v["Rocof"], v["PhaseAngle"], now)
        if reason and self.backup.state == BK_GRID and not self.separated_by:
            self._separate(reason, now)
        elif self.gs.service and self.backup.state == BK_GRID and not self.separated_by and not self.sup.safe:
            # fast path: a frequency service follows its curve on every grid sample
            p = self._service_p(True, v["GridFrequency"], now)
            if p is not None and p != self.p_cmd and self.gs.fsvc.acting:
                self.p_cmd = p
                self.ramp.value = p
                self._send_cmd()

    def _on_ac_loss(self, now):
        """The inverter lost its AC voltage (hard outage): separate at once."""
        if self.backup.state == BK_GRID:
            self._separate(events.T_AC_LOSS, now)

    def _on_island_frequency(self, now):
        """The frequency as the inverter's PLL sees it, every inverter period: a steady,
        fast run-away while feeding the grid is an island (frequency drift)."""
        if self.drift.update(self.inv_ac.values["AcFrequency"], now) and self.backup.state == BK_GRID \
                and not self.separated_by and self.inv_mode == INV_GFL:
            self._separate(events.T_FREQ_DRIFT, now)

    def _on_inverter_status(self, now):
        """The inverter's AC power, averaged over the meter's window (whole watts)."""
        p = self.inv_status.values["PActual"]
        self.p_ac_avg.update(p * 1000 // self._eff_dn if p > 0 else p * self._eff_dn // 1000)

    def _on_relay_feedback(self, now):
        was = self.backup.state
        if self.backup.contact(self.rly.values["ContactState"], now, self._can_backup()):
            if was != BK_GRID and self.backup.state == BK_GRID:
                self._back_in_service(now)
            self._command_now()

    def _on_ev_limits(self, now):
        """Fast path: a tighter EV limit must not wait for the next period."""
        self._reclamp()

    def _reclamp(self):
        """The limits again now, and the command into them at once if they bind it (a
        looser limit waits for the next period's ramp)."""
        if not self.sup.safe and self.backup.state == BK_GRID:
            self._arbitrate()
            p = self.arbiter.limit(self.p_cmd)
            if p != self.p_cmd:
                self.p_cmd = p
                self.limiting = self.arbiter.by
                self.ramp.value = p
                self._send_cmd()

    def _on_mode_request(self, now):
        """A request of the energy manager: in force for its validity (control/operating_mode.py)."""
        v = self.ems.values
        if self.op.request(v["ModeReq"], v["SetpointPower"], v["ValidFor"], now):
            self._event(events.INPUT_RESTORED, events.IN_EMS, 0)

    def _on_service_header(self, now):
        gs = self.gs
        if gs.fsa is None:
            from controller.grid_support.freq_service import CurveAssembler, FrequencyService

            gs.fsvc = FrequencyService()
            gs.fsa = CurveAssembler(gs.fsvc)
        v = self.gs.hdr_in.values
        if gs.fsa.on_header(v["Kind"], v["CurveId"], v["NumPoints"], v["BaselinePower"], v["ValidFor"], now):
            # an inconsistent set is refused whole (freq_service.CurveAssembler says why):
            # counted like any refused frame, the curve in force stays
            self.refuse(events.R_RANGE, gs.hdr_in.msg.frame_id)

    def _on_service_point(self, now):
        """A frequency-response curve's point; the set complete, the service is in force."""
        if self.gs.fsa is None:
            self.refuse(events.R_RANGE, self.gs.pt_in.msg.frame_id)  # a point before any header
            return
        v = self.gs.pt_in.values
        if self.gs.fsa.on_point(v["CurveId"], v["Index"], v["Frequency"], v["DeltaPower"], now):
            self.refuse(events.R_RANGE, self.gs.pt_in.msg.frame_id)

    def _on_power_limit(self, now):
        """An external power limit (EMS_PowerLimit; control/external_limit.py): kept for its
        validity, in backup too (it applies again when the grid is back and it still holds),
        and taken on the fast path like a tighter EV limit. Its code loads with the first."""
        if self.ext is None:
            from controller.control.external_limit import ExternalLimit

            self.ext = ExternalLimit()
        v = self.ext_in.values
        self.ext.take(v["MaxChargePower"], v["MaxDischargePower"], v["ValidFor"], now)
        self._reclamp()

    def _on_plan(self, now):
        """A plan frame (EMS_PlanHdr or EMS_PlanSlot); the plan's code loads with the first."""
        if self.plan is None:
            from controller.energy.follow import PlanFollower

            self.plan = PlanFollower(self)
        self.plan.on_frame(now)

    # ------------------------------------------------------- separation and backup
    def _separate(self, reason, now):
        """Loss of mains or protection trip while connected: island detected, relay opens, backup follows."""
        self.separated_by = reason
        self.enter.stop_ramp()  # out of service; the ramp starts again when back in service
        self._event(events.ISLAND_DETECTED, reason, 0)
        self._event(events.TRIP, reason, 0)
        if self.backup.trip(reason, now):
            self.sfs.reset()
            self.q_cmd = 0.0
            self.p_cmd = 0.0
            self.ramp.reset(0.0, now)
            self._command_now()

    def _command_now(self):
        """Send relay and inverter commands for the present backup state without waiting for the tick."""
        bk = self.backup
        if bk.state != BK_GRID:
            self.inv_mode = bk.inverter_mode(INV_OFF)
        elif self.inv_mode == INV_GFM:
            # just back on the grid: the island's grid-forming ends with the contact closing
            self.inv_mode = INV_GFL if self._may_energize() else INV_OFF
        self.out.send_relay(bk.relay_close())
        self._send_cmd()
        if self.inv_mode == INV_GFM and self.rly.values.get("ContactState") != RELAY_CLOSED:
            self.out.send_forming(self.backup.v_set, self.backup.f_set)

    def _can_backup(self):
        """The EV can carry the home: enabled, fresh inputs, no inverter fault, discharge allowed."""
        if not self.backup_enabled or self.trip_flags:
            return False
        t = self.sup.timed_out
        if t[events.IN_EV] or t[events.IN_INVERTER] or t[events.IN_RELAY]:
            return False
        ev = self.ev_limits.values
        if ev.get("SessionActive", 0) != 1 or ev.get("MaxDischargePower", 0) <= 0:
            return False
        self._soc()
        return self._soc_pct > self._min_soc_pct

    def _back_in_service(self, now):
        """The relay closed onto the grid again (Backup.contact(), the only way back to GRID):
        re-arm protection, restart power from zero under the enter-service ramp."""
        self.prot.reset()
        self.drift.reset()
        self.separated_by = 0
        self.p_cmd = 0
        self.ramp.reset(0, now)
        self.op.v2h_ac = 0
        if self.es_ramp != "off":
            self.enter.start_ramp(self.arbiter.rating_va, now)

    # ---------------------------------------------------------------- the period
    def tick(self, now):
        """One control period: supervise, decide, arbitrate, command, report."""
        ok = self.sup.inputs(now)
        self._restart_on_silence()
        if self.op.expire(now):
            self._event(events.INPUT_TIMEOUT, events.IN_EMS, 0)  # the configured mode again
        if self.ext is not None:
            self.ext.expire(now)  # an external limit past its validity lapses
        if self.plan is not None:
            self.plan.tick(now)  # the plan's slot, or its fallback, where no request is in force
        if self.sup.plausibility(ok and self._implausible(), now):
            ok = False
        if not self.sup.timed_out[events.IN_INVERTER]:
            self._inverter_report(now)
        self._safe_state(ok, now)
        self._decide(now)
        self._switchover(now)
        self._command()
        self._report(now)

    def _restart_on_silence(self):
        """A measurement source went silent: the units that integrate its samples over
        time start again with its next sample (a gap of any length, even one longer than
        half the ticks period, can then never look like a short one)."""
        t = self.sup.timed_out
        m = t[events.IN_METER]
        if m and not self._meter_stale:
            self.prot.restart()
        self._meter_stale = m
        i = t[events.IN_INVERTER]
        if i and not self._inverter_stale:
            self.drift.reset()
            self.inv_mon.reset()
        self._inverter_stale = i

    def _implausible(self):
        """Step 1b: with the relay closed, meter and inverter measure the same bus."""
        if self.backup.state != BK_GRID or self.rly.values.get("ContactState") != RELAY_CLOSED:
            return False
        return supervision.disagree(self.mtr_grid.values, self.inv_ac.values, self.v_nom)

    def _inverter_report(self, now):
        """Step 2: the inverter's mode, state and fault flags against the command
        (control/inverter_monitor.py): trips, the safe state, separation."""
        mon = self.inv_mon
        new = mon.update(self.inv_status.values, self.inv_mode, now)
        if not self.sup.safe:
            # a finding that appears while in service is a trip; in the safe state the
            # inverter is commanded off, so a flapping flag cannot produce a stream of trips
            for reason in inverter_monitor.reasons():
                if new & (1 << reason):
                    self._event(events.TRIP, reason, 0)
        connected = self.backup.state == BK_GRID and not self.separated_by
        if mon.separate and connected:
            # commanded off and still running: only the relay can keep it off the grid
            self._separate(events.T_INV_UNCOMMANDED, now)
        elif mon.ac_grid and connected and not self.sup.safe and self.inv_mode == INV_GFL \
                and not self.prot.ride_through:
            # the inverter's power stage lost the grid: a grid event, a trip unless the
            # interface protection is riding through it (momentary cessation is allowed there)
            self._separate(events.T_INV_AC_GRID, now)
        self.trip_flags = mon.active

    def _safe_state(self, ok, now):
        """Step 3: inverter off and zero power on an input timeout or a trip; left once every
        input is fresh, no fault is reported and the grid is within the enter-service
        window, all continuously for recover_hold."""
        change = self.sup.safe_state(ok, self.trip_flags != 0, self._grid_ok(), now)
        if change == supervision.CLEARED:
            self.ramp.reset(0.0, now)
            if self.es_ramp == "always" and not self._started:
                self.enter.start_ramp(self.arbiter.rating_va, now)  # the first entry into service
            self._started = True
        elif change == supervision.ENTERED:
            self.limit_reported = None
        self.inputs_ok = ok

    def _decide(self, now):
        """Step 4: reactive power while feeding the grid (grid support's Q mode plus the
        active anti-islanding term, within the apparent-power limit), then mode target,
        ramp and the limits in force, then grid support's active power within them."""
        safe = self.sup.safe
        feeding = self.backup.state == BK_GRID and self.inv_mode == INV_GFL and not safe
        mg = self.mtr_grid.values
        v = mg.get("GridVoltage", 0.0)
        f = mg.get("GridFrequency", 0.0)
        gs = self.gs
        if feeding:
            q = self.sfs.update(self.inv_ac.values.get("AcFrequency", 0.0), now)
            if gs.service and gs.fsvc.acting:
                # a frequency service acting: the deviation is a grid event the site is paid
                # to support with active power, so the SFS feedback does not take its share
                # of the rating (its bias q_0 stays; the passive criteria still watch)
                q = self.sfs.q_0 if self.sfs.enabled else 0.0
            if gs.q_unit is not None:
                v_pu = v / self.v_nom
                q += gs.q_var(v_pu, gs.p_gen_ac, now)
                # the reactive current limit: |Q| within the apparent power the rated current
                # gives at this voltage (the arbiter leaves P what remains)
                s_v = self.arbiter.rating_va * (v_pu if v_pu < 1.0 else 1.0)
                q = s_v if q > s_v else -s_v if q < -s_v else q
            gs.on = True
        else:
            q = self.sfs.update(0.0)
            if gs.on:
                gs.reset(now)
                gs.on = False
        self.q_cmd = q
        self.out_cap = self.enter.output_cap(now)
        self._arbitrate()
        if safe:
            target = 0.0
        else:
            new = self.mtr_power.new
            self.mtr_power.new = False
            target = self.op.target(new, self._load_w())
        self.p_target = target
        p = self.arbiter.limit(self.ramp.update(target, now))
        by = self.arbiter.by
        # a frequency-response service sets the power, past the mode's target and ramp;
        # P(f) and volt-watt then act on it or on the target
        g = self._service_p(feeding, f, now)
        moved = g is not None
        if moved:
            p = g
        if feeding:
            g = self._grid_support_p(p, v, f, now)
            if g is not None:
                p = g
                moved = True
        if moved:
            by = self.arbiter.by if self.arbiter.by != limits.NONE else limits.GRID_SUPPORT
        self.ramp.value = p
        if by == limits.NONE:
            if self.op.direction_limited:
                by = limits.MODE_DIRECTION
            elif self.ramp.limited:
                by = limits.RAMP
        self.p_cmd = p
        self.limiting = by
        if gs.q_unit is not None:  # the P the Q modes follow (no float per period without one)
            gs.p_gen_ac = -limits.batt_to_ac(p, self.eff) if p else 0.0

    def _service_p(self, feeding, f, now):
        """The battery power a frequency-response service in force asks for (limited), or
        None. Runs every period, feeding or not, so that its validity runs out on time;
        when not feeding its bounds are zero."""
        gs = self.gs
        fsvc = gs.fsvc
        if fsvc is None or not fsvc.in_force:
            gs.service = False
            return None
        arb = self.arbiter
        eff = self.eff
        if feeding:
            lo = -limits.batt_to_ac(arb.hi_w, eff)
            hi = -limits.batt_to_ac(arb.lo_w, eff)
        else:
            lo = hi = 0
        g = fsvc.update(f, self._soc_pct, gs.reserve_soc_pct, self.ev_status.values.get("BatteryCapacity", 0.0), lo, hi,
                        now)
        gs.service = feeding and g is not None
        if not gs.service:
            return None
        return arb.limit(limits.ac_to_batt(-g, eff))

    def _grid_support_p(self, p, v, f, now):
        """Grid support's active power for the scheduled battery power p, within the limits
        and the mode's direction; None when no function moved it (p stands)."""
        gs = self.gs
        if not gs.service and gs.quiet(f, now):
            return None
        m = self.op.mode
        arb = self.arbiter
        pf_on = True
        if gs.service:
            # where the service's curve acts, it is the frequency response (the product the
            # TSO buys): P(f) stands aside and latches afresh when the curve stops
            pf_on = not gs.fsvc.acting
            lo, hi = arb.lo_w, arb.hi_w  # the service may move the EV either way
        # the mode's direction bounds the response: v2g only lowers export, charge only
        # lowers charging or charges more, v2h only lowers the home's supply (never exports)
        elif m == events.CHARGE:
            lo, hi = 0, arb.hi_w
        elif m == events.V2G:
            lo, hi = arb.lo_w, 0
        elif m == events.V2H:
            lo, hi = (p if p < 0 else 0), 0
        else:
            if gs.acting:
                gs.reset(now)
            return None
        eff = self.eff
        g = gs.p_w(f, v / self.v_nom, -limits.batt_to_ac(p, eff),
                   -limits.batt_to_ac(hi, eff), -limits.batt_to_ac(lo, eff), now, pf_on)
        if not gs.acting:
            return None
        return arb.limit(limits.ac_to_batt(-g, eff))

    def _switchover(self, now):
        """Step 5: the backup state machine, and the inverter mode it allows."""
        bk = self.backup
        rv = self.rly.values
        ac = self.inv_ac.values
        # the backup is overloaded when the inverter delivers all the EV allows, runs at its
        # current limit, or the island sags (a current-limited voltage source under overload)
        lim = self.ev_limits.values.get("MaxDischargePower", 0)
        at_limit = self.overload.update(
            (lim > 0 and self.inv_status.values.get("PActual", 0) * 100 <= -97 * lim)
            or ac.get("AcCurrent", 0.0) >= self._iac_97
            or (bk.state != BK_GRID and 0.0 < ac.get("AcVoltage", 0.0) < self._v_85), now)
        bk.update(now, self._grid_ok(), self._can_backup(), rv.get("UtilityVoltage", 0.0), ac.get("AcVoltage", 0.0),
                  self.mtr_grid.values.get("GridFrequency", 0.0), ac.get("AcFrequency", 0.0),
                  rv.get("SyncPhaseDiff", 0.0), at_limit)
        self.inv_mode = bk.inverter_mode(INV_GFL if self._may_energize() else INV_OFF)

    def _command(self):
        """Step 6: the command frames of this period."""
        self._send_cmd()
        self._send_limits()
        self.out.send_relay(self.backup.relay_close())
        if self.inv_mode == INV_GFM and self.rly.values.get("ContactState") != RELAY_CLOSED:
            self.out.send_forming(self.backup.v_set, self.backup.f_set)

    def _report(self, now):
        """Step 7: mode and limit events, and GW_Status every status period."""
        safe = self.sup.safe
        mode = events.SAFE if safe else events.FREQ_SERVICE if self.gs.service else self.op.mode
        reported = events.BACKUP if self.backup.state != BK_GRID else mode
        if reported != self.reported_mode:
            self.reported_mode = reported
            self._event(events.MODE_CHANGE, reported, 0)
        acting = self.gs.acting | (4 if self.gs.service else 0)
        if acting != self.gs.reported:
            # a grid-support function starts or ends acting (value 1 / 0): bit 1 P(f), 2 volt-watt, 4 service
            changed = acting ^ self.gs.reported
            self.gs.reported = acting
            for bit, fn in ((1, events.GS_P_OF_F), (2, events.GS_VOLT_WATT), (4, events.GS_FREQ_SERVICE)):
                if changed & bit:
                    self._event(events.GRID_SUPPORT, fn, 1 if acting & bit else 0)
        since = self.limit_since
        since.update(now)
        if (not safe and self.backup.state == BK_GRID and self.limiting != self.limit_reported
                and (not self.limit_since_started or since.reached(self._status_s, self._status_us))):
            # at most one per status period: a command hovering at a bound must not flood the bus
            self.limit_reported = self.limiting
            since.restart(now)
            self.limit_since_started = True
            self._event(events.LIMIT_CHANGE, self.limiting, int(self.p_cmd))
        if self.next_status is None or ticks_diff(now, self.next_status) >= 0:
            self.next_status = ticks_add(now, self.status_period_us)
            self.out.send_status(mode, self.limiting, self.sup.timed_out,
                                 self.op.expired, self.p_cmd, self.refused_total)
            if self.refused_total != self.refused_reported:
                # at most one refusal event per status period: a corrupt node must not flood the bus
                self.refused_reported = self.refused_total
                r, fid = self._last_refused
                self._event(events.FRAME_REFUSED, r, fid)
            if self.out.clamped != self.clamped_reported:
                # likewise a value that had to be fitted into its signal (control/commands.py)
                self.clamped_reported = self.out.clamped
                self._event(events.COMMAND_CLAMPED, 0, self.out.clamped_id)

    # ---------------------------------------------------------------- helpers
    def _grid_ok(self):
        """The utility side is inside the profile's enter-service window now (no delay)."""
        if self.sup.timed_out[events.IN_METER]:
            return False
        v = self.mtr_grid.values
        u = v.get("GridVoltage", 0.0)
        f = v.get("GridFrequency", 0.0)
        e = self.enter
        return self._grid_v_lo <= u <= self._grid_v_hi and e.f_lo <= f <= e.f_hi

    def _may_energize(self):
        fsvc = self.gs.fsvc
        if self.sup.safe or self.separated_by or (self.op.mode == events.IDLE and not (fsvc and fsvc.in_force)):
            return False
        t = self.sup.timed_out
        if t[events.IN_RELAY] or t[events.IN_INVERTER]:
            return False
        return self.rly.values.get("ContactState") == RELAY_CLOSED

    def _load_w(self):
        """Home load estimate: grid import minus inverter AC power (point of connection balance)."""
        return self.mtr_power.values.get("ActivePower", 0) - self.p_ac_avg.value

    def _soc(self):
        """State of charge and minimum in % into _soc_pct/_min_soc_pct; a value the EV did
        not report restricts: (0, 100) means no discharge."""
        ev = self.ev_limits.values
        st = self.ev_status.values
        if st.get("SocValid", 0) != 1 or ev.get("MinSocValid", 0) != 1:
            self._soc_pct = 0.0
            self._min_soc_pct = 100.0
        else:
            self._soc_pct = st["Soc"]
            self._min_soc_pct = ev["MinSoc"]

    def _arbitrate(self):
        ev = self.ev_limits.values
        self._soc()
        # the reserve and an external limit hold while grid-connected; in backup the EV
        # carries the home with all it may give
        grid = self.backup.state == BK_GRID
        ext = self.ext if grid else None
        self.arbiter.update(self.inputs_ok and ev.get("SessionActive", 0) == 1,
                            ev.get("MaxChargePower", 0), ev.get("MaxDischargePower", 0),
                            self._soc_pct, self._min_soc_pct, self.mtr_grid.values.get("GridVoltage", 0.0),
                            self._load_w(), self.q_cmd, self.out_cap,
                            self.reserve_pct if grid else None,
                            None if ext is None else ext.charge_w, None if ext is None else ext.discharge_w)

    def _send_cmd(self):
        mode = self.inv_mode
        if mode == INV_GFM and self.rly.values.get("ContactState") == RELAY_CLOSED:
            # never form a grid against a closed relay (it would fight the utility): the
            # backup state machine cannot ask for it; this guard holds whatever asks
            mode = INV_OFF
            self.gfm_refused += 1
        self.out.send_inverter(mode, self.p_cmd, self.q_cmd, mode == INV_GFL)

    def _send_limits(self):
        v = self.ev_status.values.get("BatteryVoltage", 0.0)
        ev = self.ev_limits.values
        pc = ev.get("MaxChargePower", 0)
        pd = ev.get("MaxDischargePower", 0)
        on = v > 1.0 and not self.sup.safe
        k = self._idc_key
        if k is None or k[0] != on or k[1] != v or k[2] != pc or k[3] != pd:
            self._idc_key = (on, v, pc, pd)
            if on:
                # rounded down to the signal's 0.1 A: never above the EV's power at this
                # voltage; an EV that allows more than the signal carries saturates it
                top = self.out.lim.range["IdcChargeMax"][1]
                self._idc = (min(top, int(pc / v * 10) / 10.0), min(top, int(pd / v * 10) / 10.0))
            else:
                self._idc = (0.0, 0.0)
        self.out.send_limits(self._iac_max, self._idc[0], self._idc[1])

    def _event(self, code, detail, value):
        for fn in self.listeners:
            fn(code, detail, value)
        self.out.send_event(code, detail, value)
