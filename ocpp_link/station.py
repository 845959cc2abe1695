"""The charging station: the gateway seen by a charging platform (CSMS) over OCPP 2.1.

One EVSE (evseId 1, connectorId 1), on the `ocpp` library (messages and their schema
validation) and a `websockets` client. What it guarantees (docs/ocpp.md):

- Connection (OCPP 2.1 Part 4, OCPP-J): subprotocol ocpp2.1 at URL/ID; security profile 1
  (HTTP Basic auth over ws), 2 (Basic auth over TLS, the server checked against a CA) or 3
  (TLS with a client certificate). A lost or refused connection is retried with back-off
  (OCPPCommCtrlr.RetryBackOffWaitMinimum doubled per attempt up to RetryBackOffRepeatTimes
  doublings, plus up to RetryBackOffRandomRange random seconds). A platform that leaves a
  CALL unanswered for MessageTimeout is taken for gone: the connection is dropped and made
  again; nothing queued is lost.
- Boot (B01): BootNotification until Accepted (Pending/Rejected: again after its interval),
  then StatusNotification, then Heartbeat every interval.
- Transactions (E, TxStartPoint = TxStopPoint = EVConnected): the EV's session
  (EVCC_Limits.SessionActive) starts and ends the transaction. TransactionEvent Started
  (CablePluggedIn), Updated on a charging-state change (ChargingStateChanged), on an
  operation-mode change (OperationModeChanged) and every SampledDataCtrlr.TxUpdatedInterval
  seconds (MeterValuePeriodic) with the TxUpdatedMeasurands, Ended (EVDeparted) with the
  TxEndedMeasurands. A station restarted during a session resumes its transaction (TxResumed);
  one restarted after the EV left ends it (stoppedReason PowerLoss).
- Offline without loss (E12-style): TransactionEvent, NotifyDERAlarm and
  SecurityEventNotification go through a power-loss-safe queue (ocpp_link.offline_queue) and
  are sent in order, each acknowledged only when the platform answered; events raised while
  offline carry offline=true and their original seqNo. seqNo is persisted with the queue.
  A platform that answers a queued message with a CallError gets it again up to
  OCPPCommCtrlr.MessageAttempts (instance TransactionEvent) times; then it is dropped and
  counted (`counters["dropped_after_attempts"]`).
- Smart charging (K, with V2X): SetChargingProfile, ClearChargingProfile,
  GetChargingProfiles (+ ReportChargingProfiles), GetCompositeSchedule, UpdateDynamicSchedule
  through ocpp_link.smart_charging.ProfileStore; the command in force goes to the firmware
  every second (ocpp_link.site_bus), where the firmware's limits clamp it like every command.
- Device model (B): GetVariables, SetVariables, GetBaseReport (+ NotifyReport) through
  ocpp_link.device_model.DeviceModel.
- DER (R): SetDERControl / GetDERControl (+ ReportDERControl) / ClearDERControl through
  ocpp_link.der; trips as NotifyDERAlarm; islanding, backup and grid-support activations as
  NotifyEvent (component V2XGateway).
- Bad input: a CALL that fails its schema is answered with the library's CallError
  (FormatViolation, TypeConstraintViolation, ...); an action the station does not serve with
  NotImplemented (a 2.1 action) or NotSupported (unknown); frames that are not OCPP-J are
  counted; more than FLOOD_BURST calls at FLOOD_RATE per second are answered with a
  GenericError CallError and counted. None of these stops the station.

The platform going away leaves the site in its local behaviour (docs/ocpp.md, "When the
platform goes away"): the profiles already accepted keep running from the station's store
(unless a profile's maxOfflineDuration passes); when the station itself stops, its requests
lapse in the firmware within MODE_VALID_S and the firmware's plan or configured fallback mode
takes over.
"""

import asyncio
import base64
import collections
import datetime
import math
import os
import random
import ssl
import time
import uuid

from ocpp_link import der as der_mod
from ocpp_link import meter_values as mv
from ocpp_link.site_bus import SiteBus

EVSE_ID = 1
CONNECTOR_ID = 1
MODE_VALID_S = 3  # EMS_ModeRequest / EMS_PowerLimit ValidFor: repeated every second, lapses 3 s after the station stops
COMMAND_PERIOD_S = 1.0
FLOOD_RATE = 20.0  # incoming CALLs per second, sustained
FLOOD_BURST = 40
STATE_SAVE_S = 10.0  # energy registers to the durable state at most this often (a power cut loses at most this much)
PULL_RETRY_S = 10.0
NO_LIMIT_W = 32000  # EMS_PowerLimit's full scale: no external limit in that direction (dbc/gateway.dbc)


def utc_text(t_s):
    """RFC 3339 UTC with milliseconds and Z."""
    d = datetime.datetime.fromtimestamp(t_s, datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (d.microsecond // 1000)


class StationError(ValueError):
    """A setting the station cannot run with; str() names it."""


class CallErrorAnswer(Exception):
    """The platform answered a CALL with a CallError."""

    def __init__(self, code, description):
        super().__init__("%s: %s" % (code, description))
        self.code = code


class Station:
    """One charging station (the gateway) on one site bus and one platform connection.

    bus: a python-can bus (send(can.Message), recv(timeout)). clock(): UTC seconds
    (injectable: tests, and hil serve's plant-time start). data_dir holds the offline queue, the
    station's durable state and the device model's written values."""

    def __init__(self, station_id, url, bus, data_dir, rated_charge_w, rated_discharge_w, password=None,
                 security_profile=None, ca_file=None, cert_file=None, key_file=None, clock=time.time,
                 log=print, quiet=False, vendor="v2x-gateway", model="V2X home gateway", dm_overrides=None,
                 nominal_voltage_v=230.0, phases=3, fsync=True, server_hostname=None):
        from ocpp_link.offline_queue import OfflineQueue

        if not station_id or "/" in station_id:
            raise StationError("--id: a station id is a non-empty name without '/', not %r" % station_id)
        if not (url.startswith("ws://") or url.startswith("wss://")):
            raise StationError("--csms: expected ws://HOST:PORT[/PATH] or wss://..., not %r" % url)
        if security_profile is None:
            security_profile = 3 if cert_file else (2 if url.startswith("wss://") else (1 if password else 0))
        if security_profile not in (0, 1, 2, 3):
            raise StationError("--security-profile: 0..3, not %r" % security_profile)
        if security_profile >= 2 and not url.startswith("wss://"):
            raise StationError("--security-profile %d needs a wss:// URL" % security_profile)
        if security_profile in (1, 2) and not password:
            raise StationError("--security-profile %d needs --password (HTTP Basic auth)" % security_profile)
        if security_profile == 3 and not (cert_file and key_file):
            raise StationError("--security-profile 3 needs --cert and --key (the station's client certificate)")
        self.id = station_id
        self.url = url.rstrip("/") + "/" + station_id
        self.bus = bus
        self.password = password
        self.security_profile = security_profile
        self.ca_file, self.cert_file, self.key_file = ca_file, cert_file, key_file
        self.server_hostname = server_hostname  # the name the platform's certificate must carry, if not the URL's
        self.clock = clock
        self.log = log
        self.quiet = quiet
        self.vendor, self.model = vendor, model
        os.makedirs(data_dir, exist_ok=True)
        self.queue = OfflineQueue(os.path.join(data_dir, "queue"), fsync=fsync)
        try:
            self._open(station_id, security_profile, dm_overrides, data_dir, rated_charge_w,
                              rated_discharge_w, nominal_voltage_v, phases, fsync)
        except Exception:
            self.queue.close()  # a station refused at start leaves its folder free for the next
            raise

    def _open(self, station_id, security_profile, dm_overrides, data_dir, rated_charge_w, rated_discharge_w,
              nominal_voltage_v, phases, fsync):
        """The stores and the state the station keeps in data_dir, as a restart finds them."""
        from ocpp_link.device_model import DeviceModel
        from ocpp_link.smart_charging import ProfileStore

        st = self.queue.get_state("station", {}) or {}
        ov = {"SecurityCtrlr.Identity": station_id}
        if security_profile:  # 0 (no security, test rigs) is no OCPP profile: the variable keeps its default
            ov["SecurityCtrlr.SecurityProfile"] = str(security_profile)
        ov.update(dm_overrides or {})
        self.dm = DeviceModel(overrides=ov, path=os.path.join(data_dir, "device_model.json"),
                              rated_power_w=rated_charge_w, fsync=fsync)
        self.profiles = ProfileStore(rated_charge_w, rated_discharge_w, nominal_voltage_v=nominal_voltage_v,
                                     phases=phases)
        self.der = der_mod.DerControls(rated_discharge_w)
        # the profiles accepted before a restart are in force again (K01: they persist); one
        # that no longer validates (its transaction is gone, it expired) is dropped
        tx = st.get("tx")
        if tx is not None:
            self.profiles.start_transaction(tx["id"], tx["start_s"])
        for evse_id, prof in st.get("profiles", []):
            self.profiles.set(evse_id, prof, self.clock(), tx["id"] if tx else None)
        self.site = SiteBus(import_wh=st.get("import_wh", 0.0), export_wh=st.get("export_wh", 0.0))
        self.rated_charge_w = float(rated_charge_w)
        self.rated_discharge_w = float(rated_discharge_w)
        self.tx = st.get("tx")  # {"id", "seq", "start_s", "state", "mode"} of the running transaction, or None
        if self.tx is not None:
            # a cut between a message's append and the state's save leaves the counter one behind
            # the queue: the queue's own messages of this transaction are the authority
            seqs = [p["seqNo"] for _, a, p in self.queue.pending()
                    if a == "TransactionEvent" and p["transactionInfo"]["transactionId"] == self.tx["id"]]
            if seqs and max(seqs) + 1 > self.tx["seq"]:
                self.tx["seq"] = max(seqs) + 1
        self.cp = None  # the connection's ChargePoint while connected
        self.accepted = False  # BootNotification accepted on this connection
        self.offline_since = self.clock()  # offline until the first connection is accepted
        self.heartbeat_s = 60
        self.counters = collections.Counter()
        self._tokens = FLOOD_BURST
        self._tokens_t = time.monotonic()
        self._last_cmd = None
        self._last_curve = None
        self._cmd_next = 0.0
        self._mv_next = None
        self._state_saved = 0.0
        self._status_sent = None
        self._alarm = None  # (controlType, fault) of the trip alarm in force
        self._wake = None
        self._resumed = False
        self._needs_sent = False
        self._in_backup = False
        self._pull_next = {}  # dynamic profile id -> when it may be pulled again

    # ------------------------------------------------------------------ helpers
    def say(self, line):
        if not self.quiet:
            self.log("%s %s" % (utc_text(self.clock())[11:19], line))

    def _dmv(self, comp, var, default, instance=None):
        try:
            v = self.dm.value(comp, var, instance=instance) if instance else self.dm.value(comp, var)
        except Exception:
            return default
        return default if v is None else v

    def _save_state(self):
        self.queue.put_state("station", {"import_wh": self.site.import_wh, "export_wh": self.site.export_wh,
                                         "tx": self.tx, "profiles": self.profiles.get()})
        self._state_saved = time.monotonic()

    def _enqueue(self, action, payload):
        """Durable before it returns; validated now so a queued message can always be sent."""
        from ocpp.messages import Call

        _validate_sync(Call(unique_id="q", action=action, payload=payload))
        try:
            self.queue.append(action, payload)
        except Exception as e:  # a full queue: counted, the station goes on
            self.counters["queue_full"] += 1
            self.say("queue: %s dropped (%s)" % (action, e))
            return
        self.counters["queued"] += 1
        if self._wake is not None:
            self._wake.set()

    # ------------------------------------------------------------------ transactions
    def _tx_event(self, event_type, trigger, charging_state=None, context=None, measurands=None, stopped=None,
                  operation_mode=None):
        now = self.clock()
        info = {"transactionId": self.tx["id"]}
        if charging_state is not None:
            info["chargingState"] = charging_state
        if stopped is not None:
            info["stoppedReason"] = stopped
        if operation_mode is not None:
            info["operationMode"] = operation_mode
        p = {"eventType": event_type, "timestamp": utc_text(now), "triggerReason": trigger,
             "seqNo": self.tx["seq"], "transactionInfo": info}
        if self.cp is None or not self.accepted:
            p["offline"] = True
        if event_type == "Started":
            p["evse"] = {"id": EVSE_ID, "connectorId": CONNECTOR_ID}
        if measurands:
            m = mv.meter_value(self.site, measurands, context, utc_text(now))
            if m is not None:
                p["meterValue"] = [m]
        self.tx["seq"] += 1
        # the seqNo counter is saved with the message: a restart neither repeats nor skips one
        self._enqueue("TransactionEvent", p)
        self._save_state()
        self.counters["tx_events"] += 1

    def _charging_state(self):
        p = self.site.p_batt_w
        if abs(p) > 50.0:
            return "Charging"
        if self._last_cmd is not None and self._last_cmd[0] == "Idle":
            return "SuspendedEVSE"
        return "EVConnected"

    def _transactions(self, now):
        s = self.site.session
        if s is None:
            return
        if self.tx is not None and not self._resumed:
            self._resumed = True
            if s:
                self._tx_event("Updated", "TxResumed", charging_state=self._charging_state())
            else:
                self._tx_event("Ended", "AbnormalCondition", stopped="PowerLoss",
                               measurands=self._measurands("TxEndedMeasurands"), context="Transaction.End")
                self._end_tx()
                return
        self._resumed = True
        if s and self.tx is None:
            self.tx = {"id": str(uuid.uuid4()), "seq": 0, "start_s": now, "state": "EVConnected", "mode": None}
            self.profiles.start_transaction(self.tx["id"], now)
            self._tx_event("Started", "CablePluggedIn", charging_state="EVConnected", context="Transaction.Begin",
                           measurands=self._measurands("TxStartedMeasurands"))
            self._mv_next = now + self._tx_interval()
            self._needs_sent = False
            self.say("transaction %s started" % self.tx["id"][:8])
        elif not s and self.tx is not None:
            self._tx_event("Ended", "EVDeparted", stopped="EVDisconnected", charging_state="Idle",
                           context="Transaction.End", measurands=self._measurands("TxEndedMeasurands"))
            self.say("transaction %s ended" % self.tx["id"][:8])
            self._end_tx()
        if self.tx is None:
            return
        cs = self._charging_state()
        if cs != self.tx["state"]:
            self.tx["state"] = cs
            self._tx_event("Updated", "ChargingStateChanged", charging_state=cs)
        mode = self._last_cmd[0] if self._last_cmd else None
        if mode != self.tx.get("mode"):
            self.tx["mode"] = mode
            if mode is not None:
                self._tx_event("Updated", "OperationModeChanged", operation_mode=mode)
        if self._mv_next is None:
            self._mv_next = now + self._tx_interval()
        if self._tx_interval() > 0 and now >= self._mv_next:
            self._mv_next = now + self._tx_interval()
            self._tx_event("Updated", "MeterValuePeriodic", context="Sample.Periodic",
                           measurands=self._measurands("TxUpdatedMeasurands"))

    def _end_tx(self):
        self.profiles.on_transaction_end(self.tx["id"])
        self.tx = None
        self._mv_next = None
        self._save_state()

    def _tx_interval(self):
        return float(self._dmv("SampledDataCtrlr", "TxUpdatedInterval", 60))

    def _measurands(self, var):
        return mv.parse_list(self._dmv("SampledDataCtrlr", var, ",".join(mv.SUPPORTED[:5])))

    # ------------------------------------------------------------------ commands to the firmware
    def _commands(self, now):
        """The profile in force -> frames for the firmware (docs/ocpp.md, "Operation modes")."""
        cmd = self.profiles.command(EVSE_ID, now, self.tx["id"] if self.tx else None)
        der_lim = self.der.discharge_limit_w(now)
        frames = []
        mode = cmd.mode
        charge_lim = cmd.limit_w
        dis_lim = cmd.discharge_limit_w
        if der_lim is not None:
            dis_lim = der_lim if dis_lim is None else min(dis_lim, der_lim)
        valid = MODE_VALID_S
        if cmd.until_s is not None:
            valid = max(1, min(MODE_VALID_S, int(math.ceil(cmd.until_s - now))))
        sb = self.site
        if mode == "Idle":
            frames += sb.mode_request("idle", 0, valid)
            charge_lim, dis_lim = 0.0, 0.0
        elif mode == "CentralSetpoint":
            sp = cmd.setpoint_w or 0.0
            frames += sb.mode_request("charge" if sp >= 0 else "v2g", sp, valid)
        elif mode == "ChargingOnly":
            sp = charge_lim if charge_lim is not None else self.rated_charge_w
            frames += sb.mode_request("charge", sp, valid)
            dis_lim = 0.0
        # ExternalSetpoint, ExternalLimits, LocalLoadBalancing: the local energy manager's plan or
        # the firmware's own mode decides, inside the limits below; LocalFrequency: the curve
        if mode == "LocalFrequency" and cmd.freq_curve:
            curve = (tuple(cmd.freq_curve), cmd.baseline_w or 0.0)
            frames += sb.freq_service(cmd.freq_curve, cmd.baseline_w or 0.0, valid, new_curve=curve != self._last_curve)
            self._last_curve = curve
        elif self._last_curve is not None:
            frames += sb.freq_cancel()
            self._last_curve = None
        if charge_lim is not None or dis_lim is not None:
            # AC power at the inverter's terminals, as OCPP's limits; a direction without a limit
            # goes as the signal's full scale, which leaves it to the firmware's own limits
            frames += sb.power_limit(NO_LIMIT_W if charge_lim is None else charge_lim,
                                     NO_LIMIT_W if dis_lim is None else dis_lim, valid)
        elif self._last_cmd is not None and self._last_cmd[2]:
            frames += sb.power_limit(0, 0, 0)  # the limit ends with the profile
        key = (mode, cmd.setpoint_w, charge_lim is not None or dis_lim is not None, cmd.profile_id)
        if self._last_cmd is None or key[:2] != self._last_cmd[:2]:
            self.say("command: %s%s (profile %s)" % (mode or "local behaviour",
                                                    "" if cmd.setpoint_w is None else " %.0f W" % cmd.setpoint_w,
                                                    cmd.profile_id))
        self._last_cmd = key
        return frames

    def _send_frames(self, frames):
        import can

        for can_id, data in frames:
            try:
                self.bus.send(can.Message(arbitration_id=can_id, data=data, is_extended_id=False))
                self.counters["frames_sent"] += 1
            except Exception:  # a full or lost bus: counted, the next period sends again
                self.counters["bus_send_errors"] += 1

    # ------------------------------------------------------------------ events to the platform
    def _grid_events(self, now):
        while self.site.events:
            t, e = self.site.events.popleft()
            k = e.get("kind")
            ts = utc_text(now)
            a = der_mod.alarm_for(e, ts, self._alarm)
            if a is not None:
                self._alarm = None if a.get("alarmEnded") else (a["controlType"], a["gridEventFault"])
                self._enqueue("NotifyDERAlarm", a)
                self.say("DER alarm %s %s%s" % (a["controlType"], a["gridEventFault"],
                                                " ended" if a.get("alarmEnded") else ""))
            if k == "island_detected":
                self._notify_event("Islanded", "true", ts, "Alerting", tech=str(e.get("method")))
            elif k == "mode_change":
                backup = e.get("mode") == "backup"
                if backup != self._in_backup:
                    self._in_backup = backup
                    self._notify_event("BackupActive", "true" if backup else "false", ts, "Delta", cleared=not backup)
            elif k == "grid_support":
                self._notify_event("GridSupportActive", "true" if e.get("active") else "false", ts, "Delta",
                                   tech=str(e.get("function")), cleared=not e.get("active"))
            elif k == "safe_state":
                self._notify_event("SafeState", "true", ts, "Alerting", tech=str(e.get("cause")))

    def _notify_event(self, variable, value, ts, trigger, tech=None, cleared=None):
        self.counters["event_id"] += 1
        d = {"eventId": self.counters["event_id"], "timestamp": ts, "trigger": trigger, "actualValue": value,
             "eventNotificationType": "HardWiredNotification", "component": {"name": "V2XGateway"},
             "variable": {"name": variable}}
        if tech:
            d["techInfo"] = tech[:500]
        if cleared is not None:
            d["cleared"] = bool(cleared)
        if self.tx is not None:
            d["transactionId"] = self.tx["id"]
        self.say("event %s=%s%s" % (variable, value, " (%s)" % tech if tech else ""))
        self._live("NotifyEvent", {"generatedAt": ts, "seqNo": 0, "eventData": [d]})

    def _live(self, action, payload):
        """A message that is current only now: sent when connected, else dropped and counted."""
        if self.cp is None or not self.accepted:
            self.counters["dropped_offline"] += 1
            return
        asyncio.ensure_future(self._call_quiet(action, payload))

    async def _call_quiet(self, action, payload):
        try:
            await self.cp.call_raw(action, payload, self._timeout())
        except Exception as e:
            self.counters["live_call_failed"] += 1
            self.say("%s not delivered: %s" % (action, e))

    def _timeout(self):
        return float(self._dmv("OCPPCommCtrlr", "MessageTimeout", 30, instance="Default"))

    def _connector_status(self):
        return "Occupied" if self.site.session else "Available"

    async def _status_notification(self):
        st = self._connector_status()
        self._status_sent = st
        await self.cp.call_raw("StatusNotification", {"timestamp": utc_text(self.clock()), "connectorStatus": st,
                                                      "evseId": EVSE_ID, "connectorId": CONNECTOR_ID},
                               self._timeout())

    def charging_needs(self):
        """NotifyEVChargingNeeds payload from the EV's announced limits (ISO 15118-20 BPT
        parameters as the gateway's SECC forwards them on EVCC_Limits/EVCC_Status)."""
        s = self.site
        v2x = {"maxChargePower": s.ev_max_charge_w, "maxDischargePower": s.ev_max_discharge_w}
        if s.soc is not None and s.capacity_kwh:
            cap_wh = s.capacity_kwh * 1000.0
            v2x["evMaxEnergyRequest"] = round((100.0 - s.soc) / 100.0 * cap_wh, 1)
            v2x["evTargetEnergyRequest"] = v2x["evMaxEnergyRequest"]
            if s.ev_min_soc is not None:
                # ISO 15118-20 EVMinimumV2XEnergyRequest: energy to the EV's minimum SoC (negative above it)
                v2x["evMinV2XEnergyRequest"] = round((s.ev_min_soc - s.soc) / 100.0 * cap_wh, 1)
                v2x["evMaxV2XEnergyRequest"] = v2x["evMaxEnergyRequest"]
        return {"evseId": EVSE_ID, "timestamp": utc_text(self.clock()),
                "chargingNeeds": {"requestedEnergyTransfer": "AC_BPT",
                                  "availableEnergyTransfer": ["AC_BPT", "AC_three_phase"],
                                  "controlMode": "DynamicControl", "v2xChargingParameters": v2x}}

    # ------------------------------------------------------------------ the site loop
    def step(self, now):
        """One site period: frames in, transactions, grid events, commands out."""
        while True:
            msg = self.bus.recv(timeout=0)
            if msg is None:
                break
            if not msg.is_extended_id:
                self.site.on_frame(msg.arbitration_id, msg.data, now)
        self.profiles.set_offline(self.offline_since, now)
        self._transactions(now)
        self._grid_events(now)
        if self.tx is not None and not self._needs_sent and self.site.soc is not None and self.accepted:
            self._needs_sent = True
            self._live("NotifyEVChargingNeeds", self.charging_needs())
        if self.accepted and self._status_sent is not None and self._connector_status() != self._status_sent:
            self._status_sent = self._connector_status()
            self._live("StatusNotification", {"timestamp": utc_text(now), "connectorStatus": self._status_sent,
                                              "evseId": EVSE_ID, "connectorId": CONNECTOR_ID})
        if self.accepted:
            self._pull_dynamic(now)
        mono = time.monotonic()
        if mono >= self._cmd_next:
            self._cmd_next = mono + COMMAND_PERIOD_S
            self._send_frames(self._commands(now))
        if mono - self._state_saved >= STATE_SAVE_S:
            self._save_state()

    def _pull_dynamic(self, now):
        """K (dynamic profiles): a Dynamic profile whose dynUpdateInterval ran out without an
        UpdateDynamicSchedule is asked for with PullDynamicScheduleUpdate, again at most every
        PULL_RETRY_S while the platform has no update (its values stay in force meanwhile)."""
        for pid in self.profiles.pull_due(now):
            if self._pull_next.get(pid, 0.0) > now:
                continue
            self._pull_next[pid] = now + PULL_RETRY_S
            asyncio.ensure_future(self._pull_one(pid))

    async def _pull_one(self, pid):
        from ocpp.charge_point import camel_to_snake_case

        try:
            r = await self.cp.call_raw("PullDynamicScheduleUpdate", {"chargingProfileId": pid}, self._timeout())
        except Exception as e:
            self.counters["live_call_failed"] += 1
            self.say("PullDynamicScheduleUpdate %d: %s" % (pid, e))
            return
        if r.get("status") == "Accepted" and r.get("scheduleUpdate"):
            status, reason = self.profiles.update_dynamic(pid, camel_to_snake_case(r["scheduleUpdate"]), self.clock())
            self.say("dynamic profile %d pulled: %s%s" % (pid, status, " (%s)" % reason if reason else ""))
            if status == "Accepted":
                self.command_now()

    def command_now(self):
        """Send the command in force at once (a profile changed)."""
        self._cmd_next = 0.0

    async def site_loop(self, stop, period_s=0.05):
        while not stop.is_set():
            self.step(self.clock())
            await asyncio.sleep(period_s)

    # ------------------------------------------------------------------ the platform link
    def _ssl_on(self):
        return self.url.startswith("wss://")

    def _ssl(self):
        if not self._ssl_on():
            return None
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca_file)
        if self.security_profile == 3:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    def _headers(self):
        if self.security_profile in (1, 2) and self.password:
            tok = base64.b64encode(("%s:%s" % (self.id, self.password)).encode()).decode()
            return {"Authorization": "Basic " + tok}
        return None

    def _backoff(self, attempt):
        base = float(self._dmv("OCPPCommCtrlr", "RetryBackOffWaitMinimum", 3))
        times = int(self._dmv("OCPPCommCtrlr", "RetryBackOffRepeatTimes", 5))
        rnd = float(self._dmv("OCPPCommCtrlr", "RetryBackOffRandomRange", 10))
        return base * (2 ** min(attempt, times)) + random.uniform(0, rnd)

    async def link_loop(self, stop):
        """Connect, boot, drain the queue, answer the platform; again with back-off when it fails."""
        import websockets
        from websockets.asyncio.client import connect

        attempt = 0
        while not stop.is_set():
            try:
                kw = {"server_hostname": self.server_hostname} if self.server_hostname and self._ssl_on() else {}
                async with connect(self.url, subprotocols=["ocpp2.1"], additional_headers=self._headers(),
                                   ssl=self._ssl(), open_timeout=self._timeout(), ping_interval=None, **kw) as ws:
                    attempt = 0
                    await self._session(ws, stop)
            except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException, CallErrorAnswer,
                    ConnectionError) as e:
                self.counters["connection_failures"] += 1
                self.say("platform unreachable: %s" % (str(e) or type(e).__name__))
            finally:
                self.cp = None
                self.accepted = False
                if self.offline_since is None:
                    self.offline_since = self.clock()
            if stop.is_set():
                break
            wait = self._backoff(attempt)
            attempt += 1
            self.say("reconnecting in %.1f s" % wait)
            try:
                await asyncio.wait_for(stop.wait(), wait)
            except asyncio.TimeoutError:
                pass

    async def _session(self, ws, stop):
        from ocpp_link.station_cp import StationCP

        cp = StationCP(self.id, ws, self, response_timeout=self._timeout())
        self.cp = cp
        reader = asyncio.ensure_future(cp.start())
        stopper = asyncio.ensure_future(stop.wait())
        tasks = [reader, stopper]
        try:
            await self._boot(cp, reader)
            self.accepted = True
            if self.offline_since is not None:
                self.offline_since = None
            self.say("connected to %s" % self.url)
            await self._status_notification()
            self._needs_sent = False
            tasks += [asyncio.ensure_future(self._drain(cp)), asyncio.ensure_future(self._heartbeat(cp))]
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t is not stopper and t.exception() is not None:
                    raise t.exception()
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:  # collected, so no task's end goes unreported
                try:
                    await t
                except (asyncio.CancelledError, Exception):
                    pass
            await ws.close()

    async def _boot(self, cp, reader):
        while True:
            r = await cp.call_raw("BootNotification", {
                "reason": "PowerUp",
                "chargingStation": {"model": self.model[:20], "vendorName": self.vendor[:50]}}, self._timeout())
            self.heartbeat_s = max(1, int(r.get("interval") or 60))
            if r["status"] == "Accepted":
                if not self.counters["booted"]:
                    self._enqueue("SecurityEventNotification", {"type": "StartupOfTheDevice",
                                                                "timestamp": utc_text(self.clock())})
                self.counters["booted"] += 1
                return
            self.say("BootNotification %s: again in %d s" % (r["status"], self.heartbeat_s))
            await asyncio.sleep(self.heartbeat_s)
            if reader.done():
                raise ConnectionError("closed during boot")

    async def _heartbeat(self, cp):
        while True:
            await asyncio.sleep(self.heartbeat_s)
            await cp.call_raw("Heartbeat", {}, self._timeout())

    async def _drain(self, cp):
        """Send the queue's head until it is empty; wait for more. Ack after the answer."""
        self._wake = asyncio.Event()
        attempts = 0
        while True:
            head = self.queue.head()
            if head is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            recno, action, payload = head
            try:
                await cp.call_raw(action, payload, self._timeout())
            except CallErrorAnswer as e:
                attempts += 1
                limit = int(self._dmv("OCPPCommCtrlr", "MessageAttempts", 3, instance="TransactionEvent"))
                self.say("%s seqNo %s refused (%s), attempt %d of %d" % (action, payload.get("seqNo"), e, attempts,
                                                                        limit))
                if attempts < limit:
                    await asyncio.sleep(float(self._dmv("OCPPCommCtrlr", "MessageAttemptInterval", 1,
                                                        instance="TransactionEvent")))
                    continue
                self.counters["dropped_after_attempts"] += 1
            attempts = 0
            self.queue.ack(recno)
            self.counters["delivered"] += 1

    # ------------------------------------------------------------------ run
    async def run(self, stop, duration_s=None):
        """Run until stop is set (or duration_s passes)."""
        if duration_s is not None:
            asyncio.get_event_loop().call_later(duration_s, stop.set)
        link = asyncio.ensure_future(self.link_loop(stop))
        try:
            await self.site_loop(stop)
        finally:
            stop.set()
            link.cancel()
            try:
                await link
            except (asyncio.CancelledError, Exception):
                pass
            self._save_state()


def _validate_sync(call):
    """The library's schema check of one message, synchronously (its validate_payload is a
    coroutine that never awaits anything but the check)."""
    from ocpp.messages import _validate_payload

    _validate_payload(call, "2.1")
