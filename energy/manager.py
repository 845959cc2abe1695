"""The live energy manager: plans from day-ahead prices and sends the plan to the gateway
over CAN (docs/plan-execution.md, "The live energy manager").

It listens to the site bus for the EV's state (EVCC_Status: SoC, SocValid, BatteryCapacity;
EVCC_Limits: SessionActive, the EV's power limits and minimum SoC; frames failing their E2E CRC
are counted and ignored) and the gateway's (GW_Status.OperatingMode, GW_Event PlanAccepted /
PlanEnded, logged). Every step it decides, on the manager's clock (UTC seconds, injectable):

- the prices known now are those published by 13:00 Danish local time the day before
  (energy/simulate.py's rule): to the end of today before 13:00, to the end of tomorrow from
  then on, as far as the source has them (a price file, or Energi Data Service through
  energy/eds.py with its injectable opener);
- it plans (energy.plan.solve) over those slots, 15 min each from the current slot's start:
  all-in import/export prices (energy.tariffs.price_arrays), the household's expected load
  (energy.household.expected_load_kw), the EV's use (energy.ev_use.schedule; a trip the EV is
  at home for is dropped), the site's reserve, departure targets with simulate's margin, and
  the energy left at the horizon's end valued at the TV_QUANTILE of the horizon's import
  prices over the charge efficiency;
- it re-plans when the known prices reach further (a publication), when the EV's measured
  SoC departs from the plan's by more than REPLAN_SOC of its capacity (at most once per
  DRIFT_MIN_S), and when the EV arrives;
- it sends the first plan_slots slots of the plan in force as EMS_PlanHdr + EMS_PlanSlot
  (energy/plan_frames.py: a new PlanId per set, Slot0ElapsedS how far the current slot has
  run, ReserveSoc the site's reserve), at every plan and again at every slot boundary with
  the slots that remain, so a lost set is repaired within a slot;
- a gap in prices (no price for the current slot: the file ends, EDS fails and nothing fetched
  before covers it) sends nothing: the plan in force on the gateway covers only priced slots,
  so it expires and the firmware's documented fallback takes over. One log line says so and
  the manager retries (EDS every RETRY_S); it never invents a price. No EV in session or no
  SoC known yet: nothing is sent either (one line each).

Every plan sent prints one line (time, reason, slots, the first slot's mode and kW, the plan's
cost, solve_ms) unless quiet.
"""

import collections
import datetime
import math
import os
import time

from energy import ev_use, household, plan_frames, prices, simulate, tariffs

SLOT_S = 900  # the planner's slot (and the price grid)
PUBLISH_LOCAL_H = simulate.PUBLISH_LOCAL_H
REPLAN_SOC = simulate.REPLAN_SOC
DEPARTURE_MARGIN = simulate.DEPARTURE_MARGIN
TV_QUANTILE = simulate.TV_QUANTILE
DRIFT_MIN_S = 60.0  # a drift re-plan at most this often (manager seconds): the SoC moves in 0.1 % steps
RETRY_S = 60.0  # Energi Data Service is asked again after a failure at most this often
# GW_Event PlanEnded's detail (controller/energy/schedule.py END_*) -> the line logged, with its value
ENDED = {1: "plan %d expired: the fallback is in force", 2: "plan %d cancelled",
         3: "a plan set was refused (reason %d): the plan in force stays"}
SOC_STALE_S = 5.0  # an EV state older than this (bus silent) is not planned on


class ManagerError(ValueError):
    """A setting the manager cannot run with; str() names the option."""


def known_until_s(now_s):
    """End (UTC s, exclusive) of the day-ahead prices published at now_s: the end of the next
    local day from 13:00 Danish time on, else the end of today."""
    d = ev_use.local_datetime(now_s).date()
    pub = ev_use.utc_of_local(d, 60 * PUBLISH_LOCAL_H)
    days = 2 if now_s >= pub else 1
    return ev_use.utc_of_local(d + datetime.timedelta(days=days), 0)


class Clock:
    """UTC seconds: the wall clock plus offset_s, or from start_s on (the wall clock's elapsed
    time times speedup). `mono` is injectable (tests)."""

    def __init__(self, start_s=None, speedup=1.0, offset_s=0.0, mono=time.monotonic, wall=time.time):
        self.speedup = float(speedup)
        self._mono = mono
        self._m0 = mono()
        self._t0 = (wall() + offset_s) if start_s is None else float(start_s) + offset_s
        self._scaled = start_s is not None

    def now(self):
        if not self._scaled and self.speedup == 1.0:
            return self._t0 + (self._mono() - self._m0)
        return self._t0 + (self._mono() - self._m0) * self.speedup


# ---------------------------------------------------------------- price sources
class FilePrices:
    """Prices from a PriceSeries (a price file): spot(t0, t1) the 15-min slots of [t0, t1)
    the series covers from t0 on ([] when it does not cover t0's slot)."""

    def __init__(self, series):
        self.series = series
        self.name = os.path.basename(series.source) or series.area

    def spot(self, t0, t1, now_s):
        end = min(t1, self.series.end_s - (self.series.end_s - t0) % SLOT_S)
        if t0 < self.series.start_s or end <= t0:
            return [], "the price file %s covers %s .. %s" % (
                self.name, prices.format_utc(self.series.start_s), prices.format_utc(self.series.end_s))
        return prices.slots(self.series, SLOT_S, t0, end), None


class EdsPrices:
    """Prices from Energi Data Service (energy/eds.py): what was fetched is kept; the known
    range is asked for when the cache does not reach its end, at most every RETRY_S after a
    failure; a failure leaves whatever the cache still covers."""

    def __init__(self, area, opener=None, timeout_s=10.0):
        self.area = area
        self.opener = opener
        self.timeout_s = timeout_s
        self.cache = None  # PriceSeries
        self.next_try_s = -math.inf
        self.last_error = None
        self.name = "Energi Data Service"

    def _covered(self, t0, t1):
        c = self.cache
        if c is None or t0 < c.start_s or c.end_s <= t0:
            return []
        return prices.slots(c, SLOT_S, t0, min(t1, c.end_s - (c.end_s - t0) % SLOT_S))

    def spot(self, t0, t1, now_s):
        from energy import eds

        have = self._covered(t0, t1)
        if (not have or t0 + len(have) * SLOT_S < t1) and now_s >= self.next_try_s:
            try:
                self.cache = eds.fetch(self.area, t0, t1, opener=self.opener, timeout=self.timeout_s)
                self.last_error = None
                have = self._covered(t0, t1)
            except (eds.EdsError, prices.PriceError) as e:
                self.last_error = str(e)
                self.next_try_s = now_s + RETRY_S
        if not have:
            return [], "Energi Data Service: %s" % (self.last_error or "no prices")
        return have, None


# ---------------------------------------------------------------- the manager
class Plan:
    """A solved plan: slot k starts at t0 + k*SLOT_S; p_kw, soc (N+1), load_kw per slot."""

    __slots__ = ("t0", "p_kw", "soc", "load_kw", "cost_dkk", "solve_ms", "price_end", "made_s", "reason")

    def slot(self, t_s):
        return int((t_s - self.t0) // SLOT_S)


class Manager:
    """The energy manager on one python-can bus (send(can.Message), recv(timeout)).

    step(now_s) makes every decision at UTC time now_s; on_message(msg) takes a received
    frame; run() loops on the bus and the clock. `log(line)` gets every report line."""

    def __init__(self, bus, clock, price_source, site, tariff, plan_slots=32, allow_export=True, speedup=1,
                 log=print, quiet=False, solve=None, inverter_efficiency=plan_frames.INVERTER_EFFICIENCY):
        import cantools

        if not 1 <= plan_slots <= plan_frames.MAX_SLOTS:
            raise ManagerError("--plan-slots: must be 1..%d, not %d" % (plan_frames.MAX_SLOTS, plan_slots))
        self.bus = bus
        self.clock = clock
        self.prices = price_source
        self.site = site
        self.tariff = tariff
        self.plan_slots = plan_slots
        self.allow_export = allow_export
        self.speedup = speedup
        self.bus_slot_s = slot_seconds_on_bus(speedup)
        self.log = log
        self.quiet = quiet
        if not 0.5 <= inverter_efficiency <= 1.0:
            raise ManagerError("--inverter-efficiency: must be 0.5..1 (the gateway's inverter.efficiency), not %g"
                               % inverter_efficiency)
        self.eff = inverter_efficiency
        if solve is None:
            from energy.plan import solve
        self.solve = solve
        self.enc = plan_frames.Encoder()
        db = cantools.database.Database()
        for f in ("ev.dbc", "gateway.dbc"):
            db.add_dbc_file(str(plan_frames.DBC.parent / f))
        self.db = db
        from controller.bus import e2e

        self._crc = e2e.crc8_j1850
        self._rx = {}
        for name in ("EVCC_Status", "EVCC_Limits", "GW_Status", "GW_Event"):
            m = db.get_message_by_name(name)
            did = m.dbc.attributes["E2EDataID"].value if "E2EDataID" in m.dbc.attributes else 0
            self._rx[m.frame_id] = (m, did)
        self.soc = None  # fraction, from EVCC_Status
        self.soc_s = None  # when (manager time)
        self.capacity_kwh = None
        self.session = None
        self.ev_limits = None  # (max charge kW, max discharge kW, min soc fraction)
        self.gw_mode = None
        self.plan = None
        self.plan_id = 0
        self.sent_slot = None  # the slot start the last set was sent for
        self.sets_sent = 0
        self.frames_sent = 0
        self.rx_refused = 0
        self.accepted = collections.deque(maxlen=64)  # (plan id, slots) from GW_Event PlanAccepted
        self.ended = collections.deque(maxlen=64)  # (why, plan id / reason) from GW_Event PlanEnded
        self._said = None  # the last "nothing sent" line (said once per episode)

    # ------------------------------------------------------------ bus in
    def on_message(self, msg):
        """A received frame; frames of other messages are ignored, malformed ones counted."""
        ent = self._rx.get(msg.arbitration_id)
        if ent is None or msg.is_extended_id:
            return
        m, did = ent
        data = bytes(msg.data)
        try:
            if len(data) != m.length or (did and self._crc(did, data, 7) != data[7]):
                raise ValueError("length or CRC")
            v = m.decode(data, decode_choices=False)
        except Exception:  # cantools' DecodeError or the check above: a malformed frame is counted, never fatal
            self.rx_refused += 1
            return
        name = m.name
        if name == "EVCC_Status":
            if v["SocValid"]:
                self.soc = v["Soc"] / 100.0
                self.soc_s = self.clock.now()
            if v["BatteryCapacity"] > 0:
                self.capacity_kwh = float(v["BatteryCapacity"])
        elif name == "EVCC_Limits":
            was = self.session
            self.session = bool(v["SessionActive"])
            self.ev_limits = (v["MaxChargePower"] / 1000.0, v["MaxDischargePower"] / 1000.0,
                              v["MinSoc"] / 100.0 if v["MinSocValid"] else None)
            if was is False and self.session:
                self.plan = None  # the EV arrived: plan afresh
        elif name == "GW_Status":
            self.gw_mode = int(v["OperatingMode"])
        elif name == "GW_Event":
            if v["EventCode"] == 22:
                self.accepted.append((int(v["EventDetail"]), int(v["EventValue"])))
            elif v["EventCode"] == 23:
                why, val = int(v["EventDetail"]), int(v["EventValue"])
                self.ended.append((why, val))
                if not self.quiet:  # rare, and what an operator wants to see: the gateway off the plan
                    what = ENDED.get(why, "plan %%d ended (%d)" % why) % val
                    self.log("%s gateway: %s" % (prices.format_utc(int(self.clock.now())), what))

    # ------------------------------------------------------------ decisions
    def _say_once(self, key, line):
        """Log `line` unless the last such line had the same key (one line per episode)."""
        if key != self._said:
            self._said = key
            self.log(line)

    def step(self, now_s):
        """Plan, re-plan or re-send as due at UTC time now_s. Returns the reason of the set
        sent ("start", "prices", "soc drift", "slot") or None."""
        t_slot = int(now_s // SLOT_S) * SLOT_S
        stamp = prices.format_utc(int(now_s))
        if self.soc is None or self.session is None or now_s - self.soc_s > SOC_STALE_S * self.speedup:
            self.plan = None
            self._say_once("waiting", "%s no plan sent: waiting for the EV's state on the bus "
                                      "(EVCC_Status, EVCC_Limits)" % stamp)
            return None
        if not self.session:
            self.plan = None
            self._say_once("no ev", "%s no plan sent: no EV in session" % stamp)
            return None
        spot, why = self.prices.spot(t_slot, known_until_s(now_s), now_s)
        if not spot:
            self.plan = None
            self._say_once(("gap", why), "%s no plan sent: no price for the slot from %s (%s); the gateway's plan "
                                         "expires and its fallback takes over; retrying"
                           % (stamp, prices.format_utc(int(t_slot)), why))
            return None
        price_end = t_slot + len(spot) * SLOT_S
        p = self.plan
        reason = None
        if p is None or p.slot(t_slot) >= len(p.p_kw):
            reason = "start" if p is None else "prices"
        elif price_end > p.price_end:
            reason = "prices"
        elif now_s - p.made_s >= DRIFT_MIN_S * self.speedup and abs(self.soc - self._expected_soc(p, now_s)) \
                > REPLAN_SOC:
            reason = "soc drift"
        if reason is not None:
            from energy.plan import PlanInputError

            try:
                self.plan = self._make_plan(t_slot, spot, now_s, reason)
            except (PlanInputError, tariffs.TariffError) as e:
                # a site no plan can serve, or a tariff without the date: said once, tried again each step
                self.plan = None
                self._say_once(("refused", str(e)), "%s no plan sent: %s" % (stamp, e))
                return None
        elif t_slot == self.sent_slot:
            return None
        else:
            reason = "slot"
        return reason if self._send(now_s, t_slot, reason) else None

    def _expected_soc(self, p, now_s):
        k = p.slot(now_s)
        f = (now_s - (p.t0 + k * SLOT_S)) / SLOT_S
        return p.soc[k] + (p.soc[k + 1] - p.soc[k]) * f

    def problem(self, t0, spot):
        """The planner's input (../shared/energy/README.md) over the slots of `spot` from t0,
        and the terminal value (DKK/kWh) of the energy left at its end."""
        site = self.site
        ev = site["ev"]
        n = len(spot)
        imp, exp = tariffs.price_arrays(self.tariff, t0, SLOT_S, spot)
        hh = site["household"]
        load = household.expected_load_kw(t0, SLOT_S, n, hh["annual_kwh"], hh["heat_pump"], hh["heat_pump_kwh"])
        plugged, drive, deps = ev_use.schedule(t0, SLOT_S, n, site["use"])
        # the EV is here now (the manager only plans with it in session): a trip the schedule
        # has it on is not happening
        k = 0
        while k < n and not plugged[k]:
            plugged[k] = True
            drive[k] = 0.0
            k += 1
        cap = self.capacity_kwh or ev["capacity_kwh"]
        mc, md = ev["max_charge_kw"], ev["max_discharge_kw"]
        min_soc = ev["min_soc"]
        if self.ev_limits is not None:  # the EV's limits are battery side, the plan's AC
            mc = min(mc, self.ev_limits[0] / self.eff)
            md = min(md, self.ev_limits[1] * self.eff)
            if self.ev_limits[2] is not None:
                min_soc = max(min_soc, self.ev_limits[2])
        soc = min(1.0, max(min_soc, self.soc))  # an EV below its minimum: the plan starts there
        pb = {
            "slot_minutes": SLOT_S // 60,
            "start_utc": prices.format_utc(int(t0)),
            "import_price_dkk_per_kwh": imp,
            "export_price_dkk_per_kwh": exp,
            "home_load_kw": load,
            "ev": {"capacity_kwh": cap, "soc": soc, "max_charge_kw": mc, "max_discharge_kw": md,
                   "charge_efficiency": ev["charge_efficiency"], "discharge_efficiency": ev["discharge_efficiency"],
                   "min_soc": min_soc, "plugged": plugged, "drive_kwh": drive,
                   "departures": [{"slot": s, "min_soc": min(1.0, m + DEPARTURE_MARGIN)} for s, m in deps if s > k]},
            "reserve_soc": max(site["reserve_soc"], min_soc),
            "wear_cost_dkk_per_kwh": site["wear_cost_dkk_per_kwh"],
            "grid_import_limit_kw": site["grid_import_limit_kw"],
            "grid_export_limit_kw": site["grid_export_limit_kw"],
            "allow_export": self.allow_export,
        }
        q = sorted(imp)[int(TV_QUANTILE * (n - 1))]
        return pb, max(0.0, q / ev["charge_efficiency"])

    def _make_plan(self, t0, spot, now_s, reason):
        pb, tv = self.problem(t0, spot)
        res = self.solve(pb, terminal_value_dkk_per_kwh=tv)
        p = Plan()
        p.t0 = t0
        p.p_kw = [s["p_kw"] for s in res["slots"]]
        p.soc = [s["soc"] for s in res["slots"]] + [res.get("soc_end", res["slots"][-1]["soc"])]
        p.load_kw = pb["home_load_kw"]
        p.cost_dkk = res["cost_dkk"]
        p.solve_ms = res["solve_ms"]
        p.price_end = t0 + len(spot) * SLOT_S
        p.made_s = now_s
        p.reason = reason
        return p

    def commands(self, p, k0, k1):
        """[(mode, SetpointPower W)] of plan slots k0..k1-1 (energy/plan_frames.slot_command)."""
        return [plan_frames.slot_command(p.p_kw[k], p.load_kw[k], self.allow_export, self.eff) for k in range(k0, k1)]

    # ------------------------------------------------------------ bus out
    def _send(self, now_s, t_slot, reason):
        import can

        p = self.plan
        k0 = p.slot(t_slot)
        k1 = min(len(p.p_kw), k0 + self.plan_slots)
        cmds = self.commands(p, k0, k1)
        # the slot's elapsed time on the gateway's clock (real seconds: scaled by the speedup),
        # taken after the solve so its time counts
        elapsed = int(round((self.clock.now() - t_slot) / self.speedup))
        elapsed = max(0, min(self.bus_slot_s - 1, elapsed))
        pid = (self.plan_id + 1) & 15
        reserve = int(round(100 * self.site["reserve_soc"]))
        frames = self.enc.plan(pid, cmds, self.bus_slot_s, elapsed, reserve)
        try:
            for fid, data in frames:
                self.bus.send(can.Message(arbitration_id=fid, data=data, is_extended_id=False))
                self.frames_sent += 1
        except can.CanError as e:
            self.sent_slot = None  # tried again at the next step
            self._say_once(("bus", str(e)), "%s plan not sent: %s; retrying" % (prices.format_utc(int(now_s)), e))
            return False
        self.plan_id = pid
        self.sent_slot = t_slot
        self.sets_sent += 1
        self._said = None
        if not self.quiet:
            mode, w = cmds[0]
            self.log("%s plan %d (%s): %d slots of %d s from %s +%d s, first %s %.2f kW, cost %.2f DKK over %d "
                     "slots, solve %.1f ms" % (
                         prices.format_utc(int(now_s)), pid, reason, len(cmds), self.bus_slot_s,
                         prices.format_utc(int(t_slot)), elapsed, mode, p.p_kw[k0], p.cost_dkk, len(p.p_kw),
                         p.solve_ms))
        return True

    # ------------------------------------------------------------ loop
    def run(self, duration_s=None, stop=None, poll_s=0.05):
        """Receive and decide until duration_s (wall seconds) has passed or stop() is true."""
        end = None if duration_s is None else time.monotonic() + duration_s
        next_step = 0.0
        while (end is None or time.monotonic() < end) and not (stop is not None and stop()):
            msg = self.bus.recv(timeout=poll_s)
            while msg is not None:
                self.on_message(msg)
                msg = self.bus.recv(timeout=0)
            m = time.monotonic()
            if m >= next_step:
                next_step = m + poll_s
                self.step(self.clock.now())


def slot_seconds_on_bus(speedup):
    """SlotSeconds of the plan on the bus: the planner's 900 s on the gateway's clock, which runs
    at real speed while the manager's runs `speedup` times faster. ManagerError unless it is a
    whole number of seconds in the DBC's 10..3600."""
    s = SLOT_S / speedup
    lo, hi = plan_frames.SLOT_S_RANGE
    if not (speedup > 0 and abs(s - round(s)) < 1e-9 and lo <= round(s) <= hi):
        raise ManagerError("--speedup: %g makes %g s slots; it must divide %d s into whole slots of %d..%d s"
                           % (speedup, s, SLOT_S, lo, hi))
    return int(round(s))
