"""The gateway controller: one control period of data flow, plus a fast path.

Data flows one way per period: frames in (inputs with checks and timeouts) ->
supervision and safe state -> operating mode target -> ramp -> limit arbitration ->
command frames out. Frames that can make a limit tighter (EV limits) or that signal
a fault (inverter AC loss) take the fast path: on_frame() re-arbitrates and sends
the inverter command at once instead of waiting for the next tick.

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
from controller.protection import grid_codes
from controller.control import limits
from controller.protection.anti_islanding import FrequencyDrift, SandiaFrequencyShift
from controller.control.backup import Backup, GRID as BK_GRID
from controller.clock import ticks_diff, ticks_add
from controller.config import timeout_ms
from controller.bus.e2e import E2ESender
from controller.bus.inputs import Input
from controller.protection.interface_protection import InterfaceProtection, EnterService
from controller.timing import RampLimiter, ConditionalDelay, MovingAverage

INV_OFF, INV_GFL, INV_GFM = 0, 1, 2
# inverter faults of the power stage itself: no backup possible, safe state until cleared
_INTERNAL_FAULTS = (1 << events.T_INV_OVERCURRENT) | (1 << events.T_INV_OVERTEMP) | (1 << events.T_INV_DC)
RELAY_OPEN, RELAY_CLOSED = 0, 1
OVERLOAD_CONFIRM_US = 200000  # an overload must last 200 ms: the forming transient is not one
# meter and inverter disagree on the same bus: more than 10 % of Un or 0.5 Hz for 500 ms
# (both measure over windows of one or two cycles; a disturbance moves both within that time)
PLAUSIBILITY_CONFIRM_US = 500000
PLAUSIBILITY_DV_PU = 0.10
PLAUSIBILITY_DF_HZ = 0.5


class _Out:
    """One transmitted message: its signal dict, frame buffer and E2E sender."""

    __slots__ = ("msg", "sig", "buf", "e2e")

    def __init__(self, msg):
        self.msg = msg
        self.sig = {}
        for s in msg.signals:
            self.sig[s[0]] = 0
        self.buf = bytearray(msg.length)
        self.e2e = E2ESender(msg) if msg.e2e_data_id else None


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
        self.recover = ConditionalDelay(cfg["control"]["recover_hold_ms"] * 1000)
        self.bias_w = cfg["limits"]["v2h_import_bias_w"]
        # the meter reports power averaged over its window: average the inverter's power
        # over the same span, so that grid minus inverter is the load and not a timing artefact
        n = cfg["meter"]["window_ms"] // cfg["inverter"]["period_ms"]
        self.p_ac_avg = MovingAverage(n if n > 0 else 1)
        self.gain = cfg["limits"]["v2h_gain"]
        # grid protection, islanding and backup (issue #3): the profile named by site.grid_code
        prof = grid_codes.profile(cfg["site"]["grid_code"], self.f_nom)
        self.prot = InterfaceProtection(prof, cfg["meter"]["period_ms"] / 1000.0)
        self.enter = EnterService(prof)
        self.es_ramp = cfg["limits"]["enter_service_ramp"]
        self.out_cap = None  # the enter-service ramp's AC output cap this period (None: no ramp)
        self.backup = Backup(self.v_nom, self.f_nom, grid_codes.value(prof["enter_service"]["delay_s"]), self._event)
        self.backup_enabled = cfg["backup"]["enabled"]
        self.sfs = SandiaFrequencyShift(self.arbiter.rating_va, self.f_nom,
                                        enabled=cfg["anti_islanding"]["active_method"] == "sfs")
        immunity = grid_codes.value(prof["rocof_ride_through"]["hz_s"]) or 2.0
        self.drift = FrequencyDrift(self.f_nom, 2.0 * immunity)
        self.overload = ConditionalDelay(OVERLOAD_CONFIRM_US)
        self.implausible = ConditionalDelay(PLAUSIBILITY_CONFIRM_US)
        self.implausible_reported = False
        self.q_cmd = 0.0
        self.separated_by = 0
        self._started = False

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
        # frame id -> (input, group); group = the supervised input it belongs to
        self.by_id = {}
        for inp, grp in ((self.mtr_grid, events.IN_METER), (self.mtr_power, events.IN_METER),
                         (self.inv_status, events.IN_INVERTER), (self.inv_ac, events.IN_INVERTER),
                         (self.rly, events.IN_RELAY), (self.ev_limits, events.IN_EV),
                         (self.ev_status, events.IN_EV), (self.inv_loss, 0), (self.ems, 0)):
            self.by_id[inp.msg.frame_id] = (inp, grp)
        self.groups = ((events.IN_METER, (self.mtr_grid, self.mtr_power)),
                       (events.IN_INVERTER, (self.inv_status, self.inv_ac)),
                       (events.IN_RELAY, (self.rly,)),
                       (events.IN_EV, (self.ev_limits, self.ev_status)))
        self.timed_out = {events.IN_METER: True, events.IN_INVERTER: True,
                          events.IN_RELAY: True, events.IN_EV: True}
        self.announced = {events.IN_METER: False, events.IN_INVERTER: False,
                          events.IN_RELAY: False, events.IN_EV: False}
        # the messages the gateway sends, passed through from candb (the DBC is the source of truth)
        self.o_cmd = _Out(M["GW_InverterCmd"])
        self.o_lim = _Out(M["GW_InverterLimits"])
        self.o_rly = _Out(M["GW_RelayCmd"])
        self.o_form = _Out(M["GW_InverterForming"])
        self.o_status = _Out(M["GW_Status"])
        self.o_event = _Out(M["GW_Event"])
        self.status_counter = 0
        self.event_seq = 0
        self.next_status = None
        # state
        mode = cfg["mode"]["kind"]
        self.mode = ("idle", "charge", "v2h", "v2g").index(mode)
        self.setpoint_w = cfg["mode"]["setpoint_kw"] * 1000.0
        self.reported_mode = None
        self.safe = True
        self.inputs_ok = False
        self.inv_mode = INV_OFF
        self.p_cmd = 0.0
        self.p_target = 0.0
        self.limiting = limits.INPUT_TIMEOUT
        self.limit_reported = None  # the safe state says enough; reported again after it
        self.limit_event_at = None
        self.v2h_ac = 0.0
        self.trip_flags = 0
        self.refused = [0, 0, 0, 0, 0, 0]  # by events.R_* reason
        self.refused_total = 0
        self.refused_reported = 0
        self._last_refused = (0, 0)
        self.sent = 0
        # extensions on the same bus (diagnostics over ISO-TP): objects with
        # on_port_frame(frame, now) -> bool (True = consumed) and an event listener list
        self.taps = []
        self.listeners = []
        self.ignored = 0
        self.tx_errors = 0

    def rx_ids(self):
        """Every (can_id, extended) the gateway and its taps read: the acceptance filter
        for its port (``port.set_filter(gw.rx_ids())``), sorted."""
        ids = [(i, False) for i in self.by_id]
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

    # ---------------------------------------------------------------- inputs
    def on_frame(self, can_id, data, now):
        """Take one received frame; fast path for limit and fault frames."""
        entry = self.by_id.get(can_id)
        if entry is None:
            if can_id in candb.MESSAGES:
                self.ignored += 1  # on the site bus, but not for the controller
            else:
                self._refuse(events.R_UNKNOWN_ID, can_id)
            return
        inp = entry[0]
        reason = inp.accept(data, now)
        if reason:
            self._refuse(reason, can_id)
            return
        if inp is self.mtr_grid:
            self._protect(now)
        elif inp is self.inv_loss:
            # the inverter lost its AC voltage (hard outage): separate at once
            if self.backup.state == BK_GRID:
                self._separate(events.T_AC_LOSS, now)
        elif inp is self.rly:
            was = self.backup.state
            if self.backup.contact(inp.values["ContactState"], now, self._can_backup()):
                if was != BK_GRID and self.backup.state == BK_GRID:
                    self._back_in_service(now)
                self._command_now()
        elif inp is self.inv_ac:
            # the island's frequency as the inverter's PLL sees it, every inverter period
            if self.drift.update(inp.values["AcFrequency"], now) and self.backup.state == BK_GRID \
                    and not self.separated_by and self.inv_mode == INV_GFL:
                self._separate(events.T_FREQ_DRIFT, now)
        elif inp is self.inv_status:
            self.p_ac_avg.update(limits.batt_to_ac(inp.values["PActual"], self.eff))
        elif inp is self.ev_limits:
            # fast path: a tighter EV limit must not wait for the next period
            if not self.safe and self.backup.state == BK_GRID:
                self._arbitrate()
                p, by = self.arbiter.clamp(self.p_cmd)
                if p != self.p_cmd:
                    self.p_cmd = p
                    self.limiting = by
                    self.ramp.value = p
                    self._send_cmd()
        elif inp is self.ems:
            v = inp.values
            m = v["ModeReq"]
            if m <= events.V2G:
                self.mode = m
                self.setpoint_w = float(v["SetpointPower"])

    # ------------------------------------------------------- protection and backup
    def _protect(self, now):
        """Interface protection on every accepted grid sample (fast path)."""
        v = self.mtr_grid.values
        reason = self.prot.update(v["GridVoltage"] / self.v_nom, v["GridFrequency"], v["Rocof"], v["PhaseAngle"], now)
        if reason and self.backup.state == BK_GRID and not self.separated_by:
            self._separate(reason, now)

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
        self.inv_mode = self.backup.inverter_mode(self.inv_mode if self.backup.state == BK_GRID else INV_OFF)
        self._send_relay(self.backup.relay_close())
        self._send_cmd()
        if self.inv_mode == INV_GFM:
            self._send_forming()

    def _can_backup(self):
        """The EV can carry the home: enabled, fresh inputs, no inverter fault, discharge allowed."""
        if not self.backup_enabled or self.trip_flags & _INTERNAL_FAULTS:
            return False
        if self.timed_out[events.IN_EV] or self.timed_out[events.IN_INVERTER] or self.timed_out[events.IN_RELAY]:
            return False
        ev = self.ev_limits.values
        if ev.get("SessionActive", 0) != 1 or ev.get("MaxDischargePower", 0) <= 0:
            return False
        return self.ev_status.values.get("Soc", 0.0) > ev.get("MinSoc", 100.0)

    def _refuse(self, reason, can_id):
        self.refused[reason] += 1
        self.refused_total += 1
        self._last_refused = (reason, can_id)

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
                self._refuse(events.R_UNKNOWN_ID, f[0] & 0xFFFF)
                continue
            self.on_frame(f[0], f[2], now)
        for tap in self.taps:
            tap.poll(now)
        return n

    # ---------------------------------------------------------------- period
    def tick(self, now):
        """One control period: supervise, decide, arbitrate, command."""
        # 1. receive-timeout supervision per input group
        ok = True
        for grp, inps in self.groups:
            stale = False
            for inp in inps:
                if inp.stale(now):
                    stale = True
            if stale != self.timed_out[grp]:
                self.timed_out[grp] = stale
                if stale:
                    for inp in inps:
                        inp.restart()
                # only a loss after a first reception is an event; start-up is silent
                if stale and inps[0].seen:
                    self.announced[grp] = True
                    self._event(events.INPUT_TIMEOUT, grp, 0)
                elif not stale and self.announced[grp]:
                    self.announced[grp] = False
                    self._event(events.INPUT_RESTORED, grp, 0)
            if stale:
                ok = False
        # 1b. plausibility: with the relay closed, meter and inverter measure the same bus; a
        # live counter on a frozen or drifting sensor shows up as a lasting disagreement
        bad = ok and self._implausible()
        if self.implausible.update(bad, now) != self.implausible_reported:
            self.implausible_reported = self.implausible.output
            self._event(events.IMPLAUSIBLE if self.implausible.output else events.INPUT_RESTORED,
                        events.IN_PLAUSIBILITY, 0)
        if self.implausible.output:
            ok = False
        # 2. inverter-reported protection trips (rising edges)
        if not self.timed_out[events.IN_INVERTER]:
            self._inverter_faults(now)
        # 3. safe state: inverter off and zero power. Entered on an input timeout or a trip;
        # left once every input is fresh, no fault is reported and the grid is within the
        # enter-service window, all continuously for recover_hold.
        faulted = self.trip_flags != 0
        if self.safe:
            if self.recover.update(ok and not faulted and self._grid_ok(), now):
                self.safe = False
                self.ramp.reset(0.0, now)
                if self.es_ramp == "always" and not self._started:
                    self.enter.start_ramp(self.arbiter.rating_va, now)  # the first entry into service
                self._started = True
                self._event(events.SAFE_STATE_CLEARED, 0, 0)
        elif not ok or faulted:
            self.safe = True
            self.recover.reset()
            self.limit_reported = None
            cause = 0
            for grp, _ in self.groups:
                if self.timed_out[grp]:
                    cause = grp
            if self.implausible.output:
                cause = events.IN_PLAUSIBILITY
            self._event(events.SAFE_STATE, cause, 0)
        self.inputs_ok = ok
        # 4. active anti-islanding (SFS) while feeding the grid, then mode target, ramp, limits
        if self.backup.state == BK_GRID and self.inv_mode == INV_GFL and not self.safe:
            self.q_cmd = self.sfs.update(self.inv_ac.values.get("AcFrequency", 0.0))
        else:
            self.q_cmd = self.sfs.update(0.0)
        self.out_cap = self.enter.output_cap(now)
        self._arbitrate()
        target = 0.0 if self.safe else self._target()
        self.p_target = target
        p = self.ramp.update(target, now)
        p, by = self.arbiter.clamp(p)
        self.ramp.value = p
        if by == limits.NONE and self.ramp.limited:
            by = limits.RAMP
        self.p_cmd = p
        self.limiting = by
        # 5. backup switchover and the inverter mode it allows
        self._backup_period(now)
        self.inv_mode = self.backup.inverter_mode(INV_GFL if self._may_energize() else INV_OFF)
        # 6. commands
        self._send_cmd()
        self._send_limits()
        self._send_relay(self.backup.relay_close())
        if self.inv_mode == INV_GFM:
            self._send_forming()
        reported = events.SAFE if self.safe else self.mode
        if self.backup.state != BK_GRID:
            reported = events.BACKUP
        if reported != self.reported_mode:
            self.reported_mode = reported
            self._event(events.MODE_CHANGE, reported, 0)
        if (not self.safe and self.backup.state == BK_GRID and self.limiting != self.limit_reported
                and (self.limit_event_at is None or ticks_diff(now, self.limit_event_at) >= self.status_period_us)):
            # at most one per status period: a command hovering at a bound must not flood the bus
            self.limit_reported = self.limiting
            self.limit_event_at = now
            self._event(events.LIMIT_CHANGE, self.limiting, int(self.p_cmd))
        if self.next_status is None or ticks_diff(now, self.next_status) >= 0:
            self.next_status = ticks_add(now, self.status_period_us)
            self._send_status()

    def _grid_ok(self):
        """The utility side is inside the profile's enter-service window now (no delay)."""
        if self.timed_out[events.IN_METER]:
            return False
        v = self.mtr_grid.values
        u = v.get("GridVoltage", 0.0) / self.v_nom
        f = v.get("GridFrequency", 0.0)
        e = self.enter
        return e.v_lo <= u <= e.v_hi and e.f_lo <= f <= e.f_hi

    def _backup_period(self, now):
        bk = self.backup
        rv = self.rly.values
        ac = self.inv_ac.values
        # the backup is overloaded when the inverter delivers all the EV allows, runs at its
        # current limit, or the island sags (a current-limited voltage source under overload)
        lim = self.ev_limits.values.get("MaxDischargePower", 0)
        at_limit = self.overload.update(
            (lim > 0 and self.inv_status.values.get("PActual", 0) <= -0.97 * lim)
            or ac.get("AcCurrent", 0.0) >= 0.97 * self.o_lim.sig["IacMax"]
            or (bk.state != BK_GRID and 0.0 < ac.get("AcVoltage", 0.0) < 0.85 * self.v_nom), now)
        bk.update(now, self._grid_ok(), self._can_backup(), rv.get("UtilityVoltage", 0.0), ac.get("AcVoltage", 0.0),
                  self.mtr_grid.values.get("GridFrequency", 0.0), ac.get("AcFrequency", 0.0),
                  rv.get("SyncPhaseDiff", 0.0), at_limit)

    def _back_in_service(self, now):
        """The relay closed onto the grid again (Backup.contact(), the only way back to GRID):
        re-arm protection, restart power from zero under the enter-service ramp."""
        self.prot.reset()
        self.drift.reset()
        self.separated_by = 0
        self.ramp.reset(0.0, now)
        self.v2h_ac = 0.0
        if self.es_ramp != "off":
            self.enter.start_ramp(self.arbiter.rating_va, now)

    def _implausible(self):
        if self.backup.state != BK_GRID or self.rly.values.get("ContactState") != RELAY_CLOSED:
            return False
        m = self.mtr_grid.values
        a = self.inv_ac.values
        if abs(m.get("GridVoltage", 0.0) - a.get("AcVoltage", 0.0)) > PLAUSIBILITY_DV_PU * self.v_nom:
            return True
        fm = m.get("GridFrequency", 0.0)
        fa = a.get("AcFrequency", 0.0)
        return fm > 0.0 and fa > 0.0 and abs(fm - fa) > PLAUSIBILITY_DF_HZ

    def _may_energize(self):
        if self.safe or self.mode == events.IDLE or self.separated_by:
            return False
        if self.timed_out[events.IN_RELAY] or self.timed_out[events.IN_INVERTER]:
            return False
        return self.rly.values.get("ContactState") == RELAY_CLOSED

    def _inverter_faults(self, now):
        v = self.inv_status.values
        flags = 0
        if v.get("FaultOverCurrent"):
            flags |= 1 << events.T_INV_OVERCURRENT
        if v.get("FaultOverTemp"):
            flags |= 1 << events.T_INV_OVERTEMP
        if v.get("FaultDc"):
            flags |= 1 << events.T_INV_DC
        if v.get("FaultAcGrid"):
            flags |= 1 << events.T_INV_AC_GRID
        # a fault that appears while the controller is not yet in the safe state is a trip;
        # the inverter is commanded off, so a flapping flag cannot produce a stream of trips
        new = flags & ~self.trip_flags if not self.safe else 0
        for reason in (events.T_INV_OVERCURRENT, events.T_INV_OVERTEMP, events.T_INV_DC):
            if new & (1 << reason):
                self._event(events.TRIP, reason, 0)
        # an AC grid fault seen by the inverter is a grid event: separate like any loss of mains
        if new & (1 << events.T_INV_AC_GRID) and self.backup.state == BK_GRID and not self.separated_by:
            self._separate(events.T_INV_AC_GRID, now)
        self.trip_flags = flags & _INTERNAL_FAULTS

    def _load_w(self):
        """Home load estimate: grid import minus inverter AC power (point of connection balance)."""
        return self.mtr_power.values.get("ActivePower", 0) - self.p_ac_avg.value

    def _arbitrate(self):
        ev = self.ev_limits.values
        st = self.ev_status.values
        soc = st.get("Soc", 0.0)
        min_soc = ev.get("MinSoc", 100.0)
        v = self.mtr_grid.values.get("GridVoltage", 0.0)
        self.arbiter.update(self.inputs_ok and ev.get("SessionActive", 0) == 1,
                            ev.get("MaxChargePower", 0), ev.get("MaxDischargePower", 0),
                            soc, min_soc, v, self._load_w(), self.q_cmd, self.out_cap)

    def _target(self):
        m = self.mode
        if m == events.CHARGE or m == events.V2G:
            return self.setpoint_w
        if m == events.V2H:
            # cover the home load, keep a small import so that V2H never exports
            if self.mtr_power.new:
                self.mtr_power.new = False
                want = self.bias_w - self._load_w()
                if want > 0.0:
                    want = 0.0
                self.v2h_ac += self.gain * (want - self.v2h_ac)
            return limits.ac_to_batt(self.v2h_ac, self.eff)
        self.v2h_ac = 0.0
        return 0.0

    # ---------------------------------------------------------------- outputs
    def _tx(self, out):
        out.msg.encode_into(out.sig, out.buf)
        if out.e2e is not None:
            out.e2e.seal(out.buf)
        if self.port.send(out.msg.frame_id, out.buf):
            self.sent += 1
        else:
            self.tx_errors += 1

    def _send_cmd(self):
        s = self.o_cmd.sig
        s["InvModeReq"] = self.inv_mode
        # only grid-following takes a power setpoint; int() truncates toward 0: never above the bound
        s["PSetpoint"] = int(self.p_cmd) if self.inv_mode == INV_GFL else 0
        s["QSetpoint"] = int(self.q_cmd) if self.inv_mode == INV_GFL else 0
        self._tx(self.o_cmd)

    def _send_limits(self):
        v = self.ev_status.values.get("BatteryVoltage", 0.0)
        ev = self.ev_limits.values
        s = self.o_lim.sig
        s["IacMax"] = int(self.arbiter.rating_va / (self.phases * self.v_nom) * 10) / 10.0
        if v > 1.0 and not self.safe:
            s["IdcChargeMax"] = min(409.5, int(ev.get("MaxChargePower", 0) / v * 10) / 10.0)
            s["IdcDischargeMax"] = min(409.5, int(ev.get("MaxDischargePower", 0) / v * 10) / 10.0)
        else:
            s["IdcChargeMax"] = 0.0
            s["IdcDischargeMax"] = 0.0
        self._tx(self.o_lim)

    def _send_forming(self):
        s = self.o_form.sig
        s["VoltageSetpoint"] = self.backup.v_set
        s["FrequencySetpoint"] = self.backup.f_set
        s["DroopEnable"] = 1
        self._tx(self.o_form)

    def _send_relay(self, close):
        self.o_rly.sig["RelayCloseReq"] = 1 if close else 0
        self._tx(self.o_rly)

    def _send_status(self):
        s = self.o_status.sig
        s["OperatingMode"] = events.SAFE if self.safe else self.mode
        s["LimitingFactor"] = self.limiting
        s["TimeoutMeter"] = 1 if self.timed_out[events.IN_METER] else 0
        s["TimeoutInverter"] = 1 if self.timed_out[events.IN_INVERTER] else 0
        s["TimeoutRelay"] = 1 if self.timed_out[events.IN_RELAY] else 0
        s["TimeoutEv"] = 1 if self.timed_out[events.IN_EV] else 0
        s["PTarget"] = int(self.p_cmd)
        s["RxRefused"] = self.refused_total if self.refused_total < 65535 else 65535
        self.status_counter = (self.status_counter + 1) & 15
        s["AliveCounter"] = self.status_counter
        self._tx(self.o_status)
        if self.refused_total != self.refused_reported:
            # at most one refusal event per status period: a corrupt node must not flood the bus
            self.refused_reported = self.refused_total
            r, fid = self._last_refused
            self._event(events.FRAME_REFUSED, r, fid)

    def _event(self, code, detail, value):
        for fn in self.listeners:
            fn(code, detail, value)
        s = self.o_event.sig
        s["EventCode"] = code
        s["EventDetail"] = detail
        self.event_seq = (self.event_seq + 1) & 255
        s["EventSeq"] = self.event_seq
        s["EventValue"] = value if value < 32768 else value - 65536
        self._tx(self.o_event)
