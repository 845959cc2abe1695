"""The station's side of one OCPP 2.1 connection: the `ocpp` library's ChargePoint with the
station's handlers (what the platform may ask) and a raw call for queued messages.

Every handler answers from the station's stores (ocpp_link.station.Station); the library
validates each request and each answer against the OCPP 2.1 schemas. Gaps of the library
2.1.0 closed here: for version 2.1 it leaves a CALL without a handler unanswered, so
route_message answers it with NotImplemented (a 2.1 action) or NotSupported (unknown); and
it drops frames that are not OCPP-J silently, so they are counted here.
"""

import asyncio
import logging
import time
import uuid

from ocpp.charge_point import snake_to_camel_case
from ocpp.exceptions import GenericError, NotImplementedError as OcppNotImplemented, NotSupportedError
from ocpp.exceptions import OccurrenceConstraintViolationError
from ocpp.messages import Call, MessageType, unpack, validate_payload
from ocpp.routing import after, on
from ocpp.v21 import ChargePoint, call_result
from ocpp.v21.enums import Action

from ocpp_link.station import CONNECTOR_ID, EVSE_ID, FLOOD_BURST, FLOOD_RATE, CallErrorAnswer, utc_text

ACTIONS = {a.value for a in Action}
WIRE_LOG = logging.getLogger("ocpp_link.wire")
if WIRE_LOG.level == logging.NOTSET:
    WIRE_LOG.setLevel(logging.CRITICAL)


def _status_info(reason, info=None):
    if reason is None:
        return None
    d = {"reason_code": reason}
    if info:
        d["additional_info"] = str(info)[:1024]
    return d


def _camel(d):
    return snake_to_camel_case(d)


class StationCP(ChargePoint):
    """One connection; `station` holds the state that outlives it."""

    def __init__(self, station_id, connection, station, response_timeout=30):
        # the library logs every message, and a traceback for every refused one; the station
        # counts those instead (logging.getLogger("ocpp_link.wire").setLevel(logging.DEBUG) to see them)
        super().__init__(station_id, connection, response_timeout=response_timeout, logger=WIRE_LOG)
        self.station = station

    # ------------------------------------------------------------------ framing
    async def route_message(self, raw_msg):
        st = self.station
        try:
            msg = unpack(raw_msg)
        except Exception:
            st.counters["malformed_frames"] += 1
            return
        if msg.message_type_id == MessageType.Call:
            st.counters["calls_received"] += 1
            now = time.monotonic()
            st._tokens = min(FLOOD_BURST, st._tokens + (now - st._tokens_t) * FLOOD_RATE)
            st._tokens_t = now
            if st._tokens < 1:
                st.counters["calls_refused_flood"] += 1
                await self._send(msg.create_call_error(GenericError(description="rate limit")).to_json())
                return
            st._tokens -= 1
            if msg.action not in self.route_map:
                st.counters["calls_not_served"] += 1
                err = (OcppNotImplemented(description="%s is not served by this station" % msg.action)
                       if msg.action in ACTIONS else NotSupportedError(description="unknown action %s" % msg.action))
                await self._send(msg.create_call_error(err).to_json())
                return
        await super().route_message(raw_msg)

    async def _send(self, message):
        if message.startswith("[4,"):
            self.station.counters["call_errors_sent"] += 1
        await super()._send(message)

    async def call_raw(self, action, payload, timeout_s):
        """Send a CALL with a camelCase payload as it stands; the answer's payload, or
        CallErrorAnswer. asyncio.TimeoutError (a stalled platform) closes the connection."""
        call = Call(unique_id=str(uuid.uuid4()), action=action, payload=payload)
        await validate_payload(call, self._ocpp_version)
        async with self._call_lock:
            await self._send(call.to_json())
            try:
                response = await self._get_specific_response(call.unique_id, timeout_s)
            except asyncio.TimeoutError:
                self.station.counters["calls_timed_out"] += 1
                await self._connection.close()
                raise ConnectionError("no answer to %s within %g s" % (action, timeout_s)) from None
        if response.message_type_id == MessageType.CallError:
            raise CallErrorAnswer(response.error_code, response.error_description)
        response.action = action
        await validate_payload(response, self._ocpp_version)
        return response.payload

    # ------------------------------------------------------------------ device model (B)
    def _items_ok(self, n, instance):
        """At most DeviceDataCtrlr.ItemsPerMessage[instance] items in one request (B06/B07: more
        is an OccurrenceConstraintViolation)."""
        most = int(self.station._dmv("DeviceDataCtrlr", "ItemsPerMessage", 32, instance=instance))
        if n > most:
            raise OccurrenceConstraintViolationError(description="%d items, at most %d per message" % (n, most))

    @on(Action.get_variables)
    def on_get_variables(self, get_variable_data, **_):
        self._items_ok(len(get_variable_data), "GetVariables")
        return call_result.GetVariables(get_variable_result=self.station.dm.get_variables(get_variable_data))

    @on(Action.set_variables)
    def on_set_variables(self, set_variable_data, **_):
        self._items_ok(len(set_variable_data), "SetVariables")
        return call_result.SetVariables(set_variable_result=self.station.dm.set_variables(set_variable_data))

    @on(Action.get_base_report)
    def on_get_base_report(self, request_id, report_base, **_):
        try:
            self._report = self.station.dm.report(report_base=report_base)
        except ValueError:  # SummaryInventory
            self._report = None
            return call_result.GetBaseReport(status="NotSupported")
        return call_result.GetBaseReport(status="Accepted")

    @after(Action.get_base_report)
    async def after_get_base_report(self, request_id, **_):
        await self._notify_report(request_id)

    @on(Action.get_report)
    def on_get_report(self, request_id, component_criteria=None, component_variable=None, **_):
        try:
            self._report = self.station.dm.report(criteria=component_criteria, component_variables=component_variable)
        except ValueError:
            self._report = None
            return call_result.GetReport(status="NotSupported")
        if not self._report:
            self._report = None
            return call_result.GetReport(status="EmptyResultSet")
        return call_result.GetReport(status="Accepted")

    @after(Action.get_report)
    async def after_get_report(self, request_id, **_):
        await self._notify_report(request_id)

    async def _notify_report(self, request_id):
        """NotifyReport in parts of DeviceDataCtrlr.ItemsPerMessage[GetReport] (tbc on all but the last)."""
        data, self._report = getattr(self, "_report", None), None
        if data is None:
            return
        per = int(self.station._dmv("DeviceDataCtrlr", "ItemsPerMessage", 20, instance="GetReport"))
        chunks = [data[i:i + per] for i in range(0, len(data), per)] or [[]]
        for i, chunk in enumerate(chunks):
            p = {"requestId": request_id, "generatedAt": utc_text(self.station.clock()), "seqNo": i,
                 "tbc": i < len(chunks) - 1}
            if chunk:
                p["reportData"] = [_camel(x) for x in chunk]
            await self.station._call_quiet("NotifyReport", p)

    # ------------------------------------------------------------------ smart charging (K)
    def _tx_id(self):
        tx = self.station.tx
        return tx["id"] if tx else None

    @on(Action.set_charging_profile)
    def on_set_charging_profile(self, evse_id, charging_profile, **_):
        st = self.station
        status, reason, info = st.profiles.set(evse_id, charging_profile, st.clock(), self._tx_id())
        st.counters["profiles_" + status.lower()] += 1
        st.say("SetChargingProfile id %s %s: %s%s" % (charging_profile.get("id"),
                                                      _mode_of(charging_profile), status,
                                                      " (%s)" % reason if reason else ""))
        if status == "Accepted":
            st.command_now()
            st._save_state()
        return call_result.SetChargingProfile(status=status, status_info=_status_info(reason, info))

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(self, charging_profile_id=None, charging_profile_criteria=None, **_):
        c = charging_profile_criteria or {}
        status = self.station.profiles.clear(profile_id=charging_profile_id, evse_id=c.get("evse_id"),
                                             purpose=c.get("charging_profile_purpose"),
                                             stack_level=c.get("stack_level"))
        self.station.command_now()
        self.station._save_state()
        return call_result.ClearChargingProfile(status=status)

    @on(Action.get_charging_profiles)
    def on_get_charging_profiles(self, request_id, charging_profile, evse_id=None, **_):
        found = self._found = self.station.profiles.get(
            evse_id=evse_id, profile_ids=charging_profile.get("charging_profile_id"),
            purpose=charging_profile.get("charging_profile_purpose"), stack_level=charging_profile.get("stack_level"))
        return call_result.GetChargingProfiles(status="Accepted" if found else "NoProfiles")

    @after(Action.get_charging_profiles)
    async def after_get_charging_profiles(self, request_id, **_):
        found = getattr(self, "_found", [])
        by_evse = {}
        for evse, prof in found:
            by_evse.setdefault(evse, []).append(prof)
        items = sorted(by_evse.items())
        for i, (evse, profs) in enumerate(items):
            await self.station._call_quiet("ReportChargingProfiles", {
                "requestId": request_id, "chargingLimitSource": "CSO", "evseId": evse,
                "chargingProfile": [_camel(p) for p in profs], "tbc": i < len(items) - 1})

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(self, duration, evse_id, charging_rate_unit="W", **_):
        if evse_id not in (0, EVSE_ID):
            return call_result.GetCompositeSchedule(status="Rejected", status_info=_status_info("UnknownEvse"))
        st = self.station
        sched = st.profiles.composite(evse_id, duration, st.clock(), unit=charging_rate_unit or "W",
                                      tx_id=self._tx_id())
        if sched is None:
            return call_result.GetCompositeSchedule(status="Rejected", status_info=_status_info("NoProfiles"))
        return call_result.GetCompositeSchedule(status="Accepted", schedule=sched)

    @on(Action.update_dynamic_schedule)
    def on_update_dynamic_schedule(self, charging_profile_id, schedule_update, **_):
        st = self.station
        status, reason = st.profiles.update_dynamic(charging_profile_id, schedule_update, st.clock())
        if status == "Accepted":
            st.command_now()
        return call_result.UpdateDynamicSchedule(status=status, status_info=_status_info(reason))

    @on(Action.afrr_signal)
    def on_afrr_signal(self, signal, timestamp, **_):
        # CentralFrequency (the platform streams an aFRR signal) is not an operation mode this
        # station serves; LocalFrequency runs the curve in the firmware instead
        return call_result.AFRRSignal(status="Rejected", status_info=_status_info("UnsupportedRequest"))

    # ------------------------------------------------------------------ DER control (R)
    @on(Action.set_der_control)
    def on_set_der_control(self, is_default, control_id, control_type, limit_max_discharge=None, **_):
        st = self.station
        status, reason, sup = st.der.set(control_id, control_type, is_default, limit_max_discharge)
        st.say("SetDERControl %s %s: %s" % (control_id, control_type, status))
        if status == "Accepted":
            st.command_now()
        return call_result.SetDERControl(status=status, status_info=_status_info(reason), superseded_ids=sup or None)

    @on(Action.get_der_control)
    def on_get_der_control(self, request_id, is_default=None, control_type=None, control_id=None, **_):
        self._der_found = self.station.der.matching(is_default, control_type, control_id)
        return call_result.GetDERControl(status="Accepted" if self._der_found else "NotFound")

    @after(Action.get_der_control)
    async def after_get_der_control(self, request_id, **_):
        found = getattr(self, "_der_found", [])
        if found:
            await self.station._call_quiet("ReportDERControl", self.station.der.report(request_id, found,
                                                                                    self.station.clock()))

    @on(Action.clear_der_control)
    def on_clear_der_control(self, is_default, control_type=None, control_id=None, **_):
        status = self.station.der.clear(is_default, control_type, control_id)
        self.station.command_now()
        return call_result.ClearDERControl(status=status)

    # ------------------------------------------------------------------ transactions, triggers
    @on(Action.request_stop_transaction)
    def on_request_stop_transaction(self, transaction_id, **_):
        # the transaction of a home gateway ends when the EV leaves; a platform that wants no
        # energy transfer sets an Idle profile (docs/ocpp.md)
        return call_result.RequestStopTransaction(status="Rejected", status_info=_status_info("UnsupportedRequest"))

    @on(Action.get_transaction_status)
    def on_get_transaction_status(self, transaction_id=None, **_):
        st = self.station
        pending = len(st.queue) > 0
        if transaction_id is None:
            return call_result.GetTransactionStatus(messages_in_queue=pending)
        ongoing = st.tx is not None and st.tx["id"] == transaction_id
        return call_result.GetTransactionStatus(messages_in_queue=pending, ongoing_indicator=ongoing)

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message, evse=None, **_):
        ok = requested_message in ("BootNotification", "Heartbeat", "StatusNotification", "MeterValues",
                                   "TransactionEvent")
        if requested_message == "TransactionEvent" and self.station.tx is None:
            ok = False
        self._trigger = requested_message if ok else None
        return call_result.TriggerMessage(status="Accepted" if ok else "NotImplemented")

    @after(Action.trigger_message)
    async def after_trigger_message(self, requested_message, **_):
        st = self.station
        what = getattr(self, "_trigger", None)
        if what is None:
            return
        now = utc_text(st.clock())
        if what == "Heartbeat":
            await st._call_quiet("Heartbeat", {})
        elif what == "StatusNotification":
            await st._call_quiet("StatusNotification", {"timestamp": now, "connectorStatus": st._connector_status(),
                                                        "evseId": EVSE_ID, "connectorId": CONNECTOR_ID})
        elif what == "BootNotification":
            await st._call_quiet("BootNotification", {"reason": "Triggered", "chargingStation": {
                "model": st.model[:20], "vendorName": st.vendor[:50]}})
        elif what == "MeterValues":
            from ocpp_link import meter_values as mv

            m = mv.meter_value(st.site, st._measurands("TxUpdatedMeasurands"), "Trigger", now)
            if m is not None:
                await st._call_quiet("MeterValues", {"evseId": EVSE_ID, "meterValue": [m]})
        elif what == "TransactionEvent" and st.tx is not None:
            st._tx_event("Updated", "Trigger", context="Trigger", measurands=st._measurands("TxUpdatedMeasurands"))


def _mode_of(profile):
    try:
        modes = {p.get("operation_mode", "ChargingOnly") for s in profile["charging_schedule"]
                 for p in s["charging_schedule_period"]}
        return "/".join(sorted(modes))
    except (KeyError, TypeError):
        return "?"
