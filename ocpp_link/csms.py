"""A small OCPP 2.1 charging-station management system (the platform side) for HIL tests
and demos.

`Csms` serves OCPP-J 2.1 (OCPP 2.1 Part 4) over WebSocket: subprotocol "ocpp2.1", one
connection per station at ws[s]://host:port/<station id>. Per connection an
`ocpp.v21.ChargePoint` subclass routes the frames; the library validates every request
and every answer against the OCPP 2.1 JSON schemas.

What it guarantees:
  - every incoming CALL is recorded in `Csms.received` before it is answered, and every
    CALL gets an answer: a schema-valid CALLRESULT from a handler below, or a CALLERROR
    (a schema violation: the library's FormatViolation / TypeConstraintViolation /
    ProtocolError; an OCPP 2.1 action without a handler here: NotImplemented; an unknown
    action: NotSupported). The library leaves the last two unanswered for version 2.1
    (its `_raise_key_error` only knows 1.6 and 2.0.x); `StationLink._handle_call` fills
    that gap.
  - a frame that is not OCPP-J (not JSON, not a message array, a binary frame, an unknown
    message type) is counted per station as `malformed` and never ends the connection
    or the server. It is answered with a CALLERROR when its message id can be read and
    it is not itself an answer (RpcFrameworkError, or MessageTypeNotSupported for an
    unknown message type); a frame without a readable message id cannot be answered.
  - security profiles (OCPP 2.1 Part 2, A00 "Security profiles"): 1 = HTTP Basic auth
    (user = station id) on ws://, 2 = the same over TLS (server certificate),
    3 = TLS with a client certificate (an ssl_context that requires one). Wrong or
    missing credentials get HTTP 401 at the handshake; valid ones are never refused.

Handled station-initiated actions (answers as in HANDLED below): BootNotification
(Accepted, interval = heartbeat_s), Heartbeat, StatusNotification, TransactionEvent,
MeterValues, NotifyEVChargingNeeds (Accepted), NotifyEVChargingSchedule (Accepted),
NotifyEvent, NotifyDERAlarm, NotifyDERStartStop, ReportDERControl,
SecurityEventNotification, NotifyReport, ReportChargingProfiles, NotifyChargingLimit,
ClearedChargingLimit, FirmwareStatusNotification, LogStatusNotification, Authorize
(Accepted), DataTransfer (UnknownVendorId). NotifyAllowedEnergyTransfer is a request of
the CSMS to the station in OCPP 2.1, so it is sent with `call`, not handled.

The scripted push (`load_script`, `run_script`) drives `v2xgw csms --script FILE`.
"""

import asyncio
import base64
import binascii
import dataclasses
import datetime
import hmac
import json
import logging
import time
import urllib.parse
import uuid
from http import HTTPStatus

from ocpp.exceptions import NotImplementedError as OcppNotImplementedError
from ocpp.exceptions import NotSupportedError, OCPPError
from ocpp.messages import Call, CallError, CallResult, get_validator, validate_payload
from ocpp.routing import on
from ocpp.v21 import ChargePoint
from ocpp.v21 import call as v21_call
from ocpp.v21 import call_result, datatypes
from ocpp.v21.enums import Action
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

OCPP_VERSION = "2.1"
SUBPROTOCOL = "ocpp2.1"
# OCPP 2.1 Part 2: the charging station identity is an identifierString of at most 48 characters
MAX_STATION_ID = 48

_LOG = logging.getLogger("ocpp_link.csms")

# station-initiated actions this CSMS answers (a script may not push them)
HANDLED = (
    "BootNotification", "Heartbeat", "StatusNotification", "TransactionEvent", "MeterValues",
    "NotifyEVChargingNeeds", "NotifyEVChargingSchedule", "NotifyEvent", "NotifyDERAlarm",
    "NotifyDERStartStop", "ReportDERControl", "SecurityEventNotification", "NotifyReport",
    "ReportChargingProfiles", "NotifyChargingLimit", "ClearedChargingLimit",
    "FirmwareStatusNotification", "LogStatusNotification", "Authorize", "DataTransfer",
)
TX_EVENT_TYPES = ("Started", "Updated", "Ended")
# per station: connections made; CALLs received, CALLERRORs sent (for any reason), CALLs
# failing the schema, frames that are not OCPP-J, SENDs received; CALLs pushed, CALLERRORs
# received for them, CALLRESULTs failing the schema, answers to no pending CALL,
# CALLRESULTERRORs received
COUNTER_NAMES = ("connections", "calls", "call_errors_sent", "schema_errors", "malformed", "sends",
                 "calls_sent", "call_errors_received", "invalid_results", "unexpected_answers",
                 "result_errors_received")


def _now_utc():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def is_call_action(action):
    """True for an OCPP 2.1 request the library knows (a dataclass in ocpp.v21.call)."""
    cls = getattr(v21_call, action, None) if isinstance(action, str) and action.isidentifier() else None
    return isinstance(cls, type) and dataclasses.is_dataclass(cls)


def schema_problem(action, payload):
    """None if payload is a valid OCPP 2.1 `action` request, else 'path: problem' (the
    library's schema for that action, as `validate_payload` applies it)."""
    validator = get_validator(2, action, OCPP_VERSION)
    errors = sorted(validator.iter_errors(payload), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    e = errors[0]
    path = ""
    for p in e.absolute_path:
        path += "[%d]" % p if isinstance(p, int) else ("." + p if path else p)
    return "%s: %s" % (path or "(payload)", e.message)


def station_from_path(path):
    """The station id of a request path `/.../<id>` (the last segment, percent-decoded), or
    None when it is empty, too long or holds control characters."""
    segment = urllib.parse.urlsplit(path).path.rstrip("/").rpartition("/")[2]
    sid = urllib.parse.unquote(segment)
    if not sid or len(sid) > MAX_STATION_ID or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in sid):
        return None
    return sid


def _basic_credentials(header):
    """(user, password) of an `Authorization: Basic ...` header, or None."""
    scheme, _, token = (header or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        text = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = text.partition(":")
    return (user, password) if sep else None


def _fmt(v):
    if isinstance(v, float) and v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return str(v)


def _meter_pairs(meter_values):
    pairs = []
    for mv in meter_values if isinstance(meter_values, list) else ():
        for sv in (mv.get("sampledValue") or ()) if isinstance(mv, dict) else ():
            if not isinstance(sv, dict):
                continue
            # OCPP 2.1: a sampled value without measurand is Energy.Active.Import.Register
            name = sv.get("measurand", "Energy.Active.Import.Register")
            if sv.get("phase"):
                name += "." + str(sv["phase"])
            pairs.append("%s=%s" % (name, _fmt(sv.get("value"))))
    return pairs


def summarize(action, payload):
    """One short line of the essentials of a request (for the console); never raises."""
    return _one_line(_summary(action, payload))


def _one_line(text):
    # a station's text must not break the one-line-per-message output
    return "".join(ch if ch >= " " and ch != "\x7f" else "\\x%02x" % ord(ch) for ch in text)


def _summary(action, payload):
    p = payload if isinstance(payload, dict) else {}
    g = p.get
    try:
        if action == "TransactionEvent":
            info = g("transactionInfo") or {}
            parts = [str(g("eventType")), "seqNo=%s" % g("seqNo"), "trigger=%s" % g("triggerReason"),
                     "tx=%s" % info.get("transactionId")]
            if info.get("chargingState"):
                parts.append("state=%s" % info["chargingState"])
            if g("offline"):
                parts.append("offline")
            return " ".join(parts + _meter_pairs(g("meterValue")))
        if action == "MeterValues":
            return " ".join(["evse=%s" % g("evseId")] + _meter_pairs(g("meterValue")))
        if action == "BootNotification":
            cs = g("chargingStation") or {}
            return "reason=%s %s %s" % (g("reason"), cs.get("vendorName"), cs.get("model"))
        if action == "StatusNotification":
            return "evse=%s connector=%s %s" % (g("evseId"), g("connectorId"), g("connectorStatus"))
        if action == "NotifyDERAlarm":
            s = "controlType=%s" % g("controlType")
            if g("gridEventFault"):
                s += " gridEventFault=%s" % g("gridEventFault")
            return s + " alarmEnded=%s" % bool(g("alarmEnded"))
        if action == "NotifyDERStartStop":
            return "controlId=%s started=%s" % (g("controlId"), g("started"))
        if action == "NotifyEVChargingNeeds":
            needs = g("chargingNeeds") or {}
            return "evse=%s transfer=%s controlMode=%s" % (g("evseId"), needs.get("requestedEnergyTransfer"),
                                                           needs.get("controlMode"))
        if action == "NotifyEvent":
            items = []
            for ev in g("eventData") or ():
                items.append("%s.%s=%s (%s)" % ((ev.get("component") or {}).get("name"),
                                                (ev.get("variable") or {}).get("name"),
                                                ev.get("actualValue"), ev.get("trigger")))
            return " ".join(items)
        if action == "SecurityEventNotification":
            return "type=%s" % g("type")
        if action == "SetChargingProfile":
            prof = g("chargingProfile") or {}
            parts = ["evse=%s" % g("evseId"), "profile=%s" % prof.get("id"), "stack=%s" % prof.get("stackLevel"),
                     "%s/%s" % (prof.get("chargingProfilePurpose"), prof.get("chargingProfileKind"))]
            if prof.get("transactionId") is not None:
                parts.append("tx=%s" % prof["transactionId"])
            for sched in prof.get("chargingSchedule") or ():
                periods = sched.get("chargingSchedulePeriod") or []
                parts.append("[%s%s]" % (sched.get("chargingRateUnit"),
                                         " %ss" % sched["duration"] if "duration" in sched else ""))
                for per in periods[:4]:
                    fields = ["%s=%s" % (k, _fmt(per[k])) for k in ("limit", "dischargeLimit", "setpoint") if k in per]
                    if "v2xFreqWattCurve" in per:
                        fields.append("freqWattCurve=%d points" % len(per["v2xFreqWattCurve"]))
                    parts.append("%ss:%s%s" % (per.get("startPeriod"), per.get("operationMode", "ChargingOnly"),
                                               "".join(" " + f for f in fields)))
                if len(periods) > 4:
                    parts.append("... %d periods" % len(periods))
            return " ".join(parts)
        if action == "Authorize":
            tok = g("idToken") or {}
            return "idToken=%s (%s)" % (tok.get("idToken"), tok.get("type"))
    except (AttributeError, TypeError):
        pass  # a schema-invalid payload: fall back to its JSON
    text = json.dumps(payload, separators=(",", ":"), default=str)
    return text if len(text) <= 160 else text[:157] + "..."


class _BadFrame(Exception):
    """A frame that is not OCPP-J; answer_id is the message id to answer with a CALLERROR, or None."""

    def __init__(self, why, answer_id=None, code="RpcFrameworkError"):
        Exception.__init__(self, why)
        self.answer_id = answer_id
        self.code = code


def _parse_frame(raw):
    """The OCPP-J message array of a text frame (OCPP 2.1 Part 4: CALL 2, CALLRESULT 3,
    CALLERROR 4, CALLRESULTERROR 5, SEND 6), or _BadFrame."""
    if not isinstance(raw, str):
        raise _BadFrame("binary frame (OCPP-J uses text frames)")
    try:
        msg = json.loads(raw)
    except ValueError:
        raise _BadFrame("not JSON") from None
    if not isinstance(msg, list) or len(msg) < 2 or type(msg[0]) is not int:
        raise _BadFrame("not an OCPP-J message array [messageTypeId, messageId, ...]")
    kind, uid = msg[0], msg[1]
    if not isinstance(uid, str):
        raise _BadFrame("messageId is not a string")
    shapes = {2: (str, dict), 3: (dict,), 4: (str, str, dict), 5: (str, str, dict), 6: (str, dict)}
    if kind not in shapes:
        raise _BadFrame("unknown messageTypeId %d" % kind, uid, "MessageTypeNotSupported")
    shape = shapes[kind]
    if len(msg) != 2 + len(shape) or not all(isinstance(v, t) for v, t in zip(msg[2:], shape)):
        # a broken CALL is answered; a broken answer never is (OCPP-J: no answer to an answer)
        raise _BadFrame("malformed message of type %d" % kind, uid if kind == 2 else None)
    return msg


class StationLink(ChargePoint):
    """One station's connection: the library's v2.1 ChargePoint with the CSMS's handlers,
    recording and counting. `call_raw` pushes a camelCase CALL and returns its answer."""

    def __init__(self, csms, station_id, connection):
        ChargePoint.__init__(self, station_id, connection, response_timeout=30, logger=_LOG)
        self._csms = csms
        self._pending = None  # (message id, future) of our CALL in flight
        self.counters = csms.counters_for(station_id)

    @property
    def websocket(self):
        return self._connection

    async def run(self):
        """Route frames until the connection closes; a frame never ends the loop."""
        try:
            async for raw in self._connection:
                try:
                    await self.route_message(raw)
                except ConnectionClosed:
                    raise
                except Exception as e:  # our own bug: report it, keep the station
                    _LOG.exception("%s: frame not handled", self.id)
                    self._csms._say("%s internal error on a frame: %s" % (self.id, e))
        except ConnectionClosed:
            pass
        finally:
            if self._pending is not None and not self._pending[1].done():
                self._pending[1].set_exception(ConnectionError("%s disconnected before answering" % self.id))

    async def route_message(self, raw_msg):
        c = self.counters
        try:
            msg = _parse_frame(raw_msg)
        except _BadFrame as e:
            c["malformed"] += 1
            self._csms._say("%s malformed frame: %s" % (self.id, e))
            if e.answer_id is not None:
                await self._send(CallError(e.answer_id, e.code, str(e), {}).to_json())
            return
        kind, uid = msg[0], msg[1]
        if kind == 2:
            await self._on_call(Call(uid, msg[2], msg[3]))
        elif kind in (3, 4):
            pending = self._pending
            if pending is None or uid != pending[0] or pending[1].done():
                # late (after a timeout) or never asked for
                c["unexpected_answers"] += 1
                self._csms._say("%s answer to no pending CALL (id %s) dropped" % (self.id, uid))
                return
            pending[1].set_result(CallResult(uid, msg[2]) if kind == 3 else CallError(uid, msg[2], msg[3], msg[4]))
        elif kind == 5:
            # CALLRESULTERROR: the station could not use one of our CALLRESULTs
            c["result_errors_received"] += 1
            self._csms._say("%s CALLRESULTERROR for %s: %s %s" % (self.id, uid, msg[2], msg[3]))
        else:
            # SEND (unconfirmed, e.g. NotifyPeriodicEventStream): recorded (not validated), never answered
            c["sends"] += 1
            self._csms._record(self.id, msg[2], msg[3], uid)

    async def _on_call(self, msg):
        self.counters["calls"] += 1
        self._csms._record(self.id, msg.action, msg.payload, msg.unique_id)
        try:
            await self._handle_call(msg)
        except OCPPError as error:
            await self._send(msg.create_call_error(error).to_json())
        except ConnectionClosed:
            raise
        except Exception:  # our own bug: the station still gets an answer (InternalError)
            _LOG.exception("%s: %s not handled", self.id, msg.action)
            await self._send(msg.create_call_error(None).to_json())

    async def _handle_call(self, msg):
        handlers = self.route_map.get(msg.action) or {}
        if "_on_action" not in handlers:
            # the library's gap for 2.1: without this, a CALL with no handler gets no answer
            try:
                Action(msg.action)
            except ValueError:
                raise NotSupportedError(details={"cause": "%s is not an OCPP 2.1 action" % msg.action}) from None
            raise OcppNotImplementedError(details={"cause": "this CSMS has no handler for %s" % msg.action})
        try:
            await validate_payload(msg, self._ocpp_version)
        except OCPPError:
            self.counters["schema_errors"] += 1
            raise
        return await ChargePoint._handle_call(self, msg)

    async def _send(self, message):
        if message.startswith("[4,"):
            self.counters["call_errors_sent"] += 1
        await ChargePoint._send(self, message)

    async def call_raw(self, action, payload, timeout_s=30, unique_id=None, before_send=None):
        """Send `action` with the camelCase `payload` (schema-validated first: OCPPError if
        invalid) and return ("result", payload) or ("error", code, description). A
        CALLRESULT that fails the schema is returned as ("error", <violation code>,
        "CALLRESULT fails the schema: ..."). asyncio.TimeoutError after timeout_s,
        ConnectionError if the station disconnects first. before_send() is called once
        the CALL is valid, just before it goes out."""
        if not is_call_action(action):
            raise ValueError("%r is not an OCPP 2.1 action" % (action,))
        msg = Call(unique_id or str(uuid.uuid4()), action, payload)
        await validate_payload(msg, self._ocpp_version)
        async with self._call_lock:  # OCPP-J: one CALL in flight per direction
            fut = asyncio.get_running_loop().create_future()
            self._pending = (msg.unique_id, fut)
            try:
                self.counters["calls_sent"] += 1
                if before_send is not None:
                    before_send()
                await self._send(msg.to_json())
                response = await asyncio.wait_for(fut, timeout_s)
            finally:
                self._pending = None
        if isinstance(response, CallError):
            self.counters["call_errors_received"] += 1
            return ("error", response.error_code, response.error_description)
        response.action = action
        try:
            await validate_payload(response, self._ocpp_version)
        except OCPPError as e:
            self.counters["invalid_results"] += 1
            cause = (e.details or {}).get("cause") if isinstance(e.details, dict) else None
            return ("error", e.code, "CALLRESULT fails the schema: %s" % (cause or e.description))
        return ("result", response.payload)

    # -- handlers: station-initiated requests (OCPP 2.1 Part 2 use cases named) --

    @on(Action.boot_notification)
    def on_boot_notification(self, **kw):  # B01: cold boot, accepted
        return call_result.BootNotification(current_time=_now_utc(), interval=self._csms.heartbeat_s,
                                            status="Accepted")

    @on(Action.heartbeat)
    def on_heartbeat(self, **kw):  # G02
        return call_result.Heartbeat(current_time=_now_utc())

    @on(Action.status_notification)
    def on_status_notification(self, **kw):  # G01
        return call_result.StatusNotification()

    @on(Action.transaction_event)
    def on_transaction_event(self, id_token=None, **kw):  # E01..E15
        if id_token is not None:  # a token in the event is authorized like Authorize (C01)
            return call_result.TransactionEvent(id_token_info=datatypes.IdTokenInfoType(status="Accepted"))
        return call_result.TransactionEvent()

    @on(Action.meter_values)
    def on_meter_values(self, **kw):  # J01
        return call_result.MeterValues()

    @on(Action.notify_ev_charging_needs)
    def on_notify_ev_charging_needs(self, **kw):  # K15 (ISO 15118 charging needs)
        return call_result.NotifyEVChargingNeeds(status="Accepted")

    @on(Action.notify_ev_charging_schedule)
    def on_notify_ev_charging_schedule(self, **kw):
        return call_result.NotifyEVChargingSchedule(status="Accepted")

    @on(Action.notify_event)
    def on_notify_event(self, **kw):
        return call_result.NotifyEvent()

    @on(Action.notify_der_alarm)
    def on_notify_der_alarm(self, **kw):
        return call_result.NotifyDERAlarm()

    @on(Action.notify_der_start_stop)
    def on_notify_der_start_stop(self, **kw):
        return call_result.NotifyDERStartStop()

    @on(Action.report_der_control)
    def on_report_der_control(self, **kw):
        return call_result.ReportDERControl()

    @on(Action.security_event_notification)
    def on_security_event_notification(self, **kw):
        return call_result.SecurityEventNotification()

    @on(Action.notify_report)
    def on_notify_report(self, **kw):
        return call_result.NotifyReport()

    @on(Action.report_charging_profiles)
    def on_report_charging_profiles(self, **kw):
        return call_result.ReportChargingProfiles()

    @on(Action.notify_charging_limit)
    def on_notify_charging_limit(self, **kw):
        return call_result.NotifyChargingLimit()

    @on(Action.cleared_charging_limit)
    def on_cleared_charging_limit(self, **kw):
        return call_result.ClearedChargingLimit()

    @on(Action.firmware_status_notification)
    def on_firmware_status_notification(self, **kw):
        return call_result.FirmwareStatusNotification()

    @on(Action.log_status_notification)
    def on_log_status_notification(self, **kw):
        return call_result.LogStatusNotification()

    @on(Action.authorize)
    def on_authorize(self, **kw):  # C01: every token is accepted (a test platform)
        return call_result.Authorize(id_token_info=datatypes.IdTokenInfoType(status="Accepted"))

    @on(Action.data_transfer)
    def on_data_transfer(self, **kw):  # P01: no vendor extensions here
        return call_result.DataTransfer(status="UnknownVendorId")


class Csms:
    """The CSMS: bind with `start`, then stations connect at `url` + "/<station id>".

    Attributes: `received` (records of incoming CALLs, and SENDs, oldest first, at most
    about record_limit kept), `sent` (CALLs pushed with `call`, with "answer"),
    `connected` (station id -> StationLink), `counters` (station id -> dict of
    COUNTER_NAMES), `transactions` (station id -> transactionId of its latest
    TransactionEvent Started), `handshakes_refused`, `listeners` (callables
    (kind, record) with kind "received" or "sent"), `on_connect` (callables
    (station_id, link)).
    """

    def __init__(self, host="127.0.0.1", port=0, heartbeat_s=60, basic_auth=None, ssl_context=None, log=print,
                 quiet=False, record_limit=100000):
        self.host = host
        self.port = port
        self.heartbeat_s = int(heartbeat_s)
        self.basic_auth = dict(basic_auth) if basic_auth is not None else None
        self.ssl_context = ssl_context
        self.log = log
        self.quiet = quiet
        self.record_limit = max(1, int(record_limit))
        self.received = []
        self.sent = []
        self.records_dropped = 0
        self.connected = {}
        self.counters = {}
        self.transactions = {}
        self.handshakes_refused = 0
        self.listeners = []
        self.on_connect = []
        self._waiters = []
        self._connect_waiters = {}
        self._server = None
        self._t0 = time.monotonic()

    @property
    def url(self):
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "%s://%s:%d" % ("wss" if self.ssl_context is not None else "ws", host, self.port)

    def counters_for(self, station_id):
        """The counters of a station (created at zero on first use)."""
        c = self.counters.get(station_id)
        if c is None:
            c = self.counters[station_id] = dict.fromkeys(COUNTER_NAMES, 0)
        return c

    async def start(self):
        """Bind and serve; afterwards self.port is the bound port. OSError if it cannot bind."""
        self._t0 = time.monotonic()
        self._server = await serve(self._serve_station, self.host, self.port, subprotocols=[SUBPROTOCOL],
                                   process_request=self._process_request, ssl=self.ssl_context,
                                   logger=logging.getLogger("ocpp_link.csms.ws"))
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self):
        """Close every connection and the listening socket."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    # -- waiting --

    async def wait_for(self, predicate, timeout_s):
        """The first record in `received`, or arriving, for which predicate(record) is true.
        asyncio.TimeoutError after timeout_s (None: no limit)."""
        for r in self.received:
            if predicate(r):
                return r
        fut = asyncio.get_running_loop().create_future()
        entry = (predicate, fut)
        self._waiters.append(entry)
        try:
            return await asyncio.wait_for(fut, timeout_s)
        finally:
            self._waiters.remove(entry)

    async def wait_connected(self, station_id, timeout_s):
        """The StationLink of station_id once connected; asyncio.TimeoutError after timeout_s."""
        link = self.connected.get(station_id)
        if link is not None:
            return link
        fut = asyncio.get_running_loop().create_future()
        self._connect_waiters.setdefault(station_id, []).append(fut)
        try:
            return await asyncio.wait_for(fut, timeout_s)
        finally:
            waiting = self._connect_waiters.get(station_id, [])
            if fut in waiting:
                waiting.remove(fut)

    # -- pushing --

    async def call(self, station_id, action, payload_camel, timeout_s=30):
        """Push a CALL to a connected station and return ("result", payload) or
        ("error", code, description) (see StationLink.call_raw). LookupError if the
        station is not connected, ValueError for an unknown action, OCPPError if the
        payload fails the action's schema, asyncio.TimeoutError without an answer."""
        link = self.connected.get(station_id)
        if link is None:
            raise LookupError("station %r is not connected" % (station_id,))
        rec = {"t": None, "station": station_id, "action": action, "payload": payload_camel,
               "unique_id": str(uuid.uuid4())}

        def sending():
            rec["t"] = time.monotonic()
            self._say("%s <- %s %s" % (station_id, action, summarize(action, payload_camel)), always=True)

        answer = await link.call_raw(action, payload_camel, timeout_s, unique_id=rec["unique_id"], before_send=sending)
        rec["answer"] = list(answer)
        self.sent.append(rec)
        if answer[0] == "result":
            line = "%s -> %s result %s" % (station_id, action, json.dumps(answer[1], separators=(",", ":")))
        else:
            line = "%s -> %s error %s: %s" % (station_id, action, answer[1], answer[2])
        self._say(line, always=True)
        self._notify("sent", rec)
        return answer

    # -- internals --

    def _say(self, line, always=False):
        if always or not self.quiet:
            self.log("%9.3f %s" % (time.monotonic() - self._t0, _one_line(line)))

    def _notify(self, kind, rec):
        for fn in list(self.listeners):
            try:
                fn(kind, rec)
            except Exception:  # a listener's bug must not cost the station its answer
                _LOG.exception("listener failed")

    def _record(self, station_id, action, payload, unique_id):
        rec = {"t": time.monotonic(), "station": station_id, "action": action, "payload": payload,
               "unique_id": unique_id}
        if action == "TransactionEvent" and isinstance(payload, dict) and payload.get("eventType") == "Started":
            tx = payload.get("transactionInfo")
            if isinstance(tx, dict) and isinstance(tx.get("transactionId"), str):
                self.transactions[station_id] = tx["transactionId"]
        self.received.append(rec)
        if len(self.received) > self.record_limit + self.record_limit // 10:
            # trimmed in chunks so the cost stays O(1) per record
            drop = len(self.received) - self.record_limit
            del self.received[:drop]
            self.records_dropped += drop
        self._say("%s -> %s %s" % (station_id, action, summarize(action, payload)))
        self._notify("received", rec)
        for predicate, fut in list(self._waiters):
            if fut.done():
                continue
            try:
                if predicate(rec):
                    fut.set_result(rec)
            except Exception as e:
                fut.set_exception(e)
        return rec

    def _process_request(self, connection, request):
        """Refuse at the handshake: no station id in the path (404), wrong or missing
        credentials when basic_auth is set (401). Anything else goes on to the upgrade."""
        sid = station_from_path(request.path)
        if sid is None:
            self.handshakes_refused += 1
            self._say("refused %s: no station id in the path" % (request.path,), always=True)
            return connection.respond(HTTPStatus.NOT_FOUND, "expected the path /<station id>\n")
        if self.basic_auth is not None:
            cred = _basic_credentials(request.headers.get("Authorization"))
            expected = self.basic_auth.get(sid)
            ok = (cred is not None and expected is not None and cred[0] == sid
                  and hmac.compare_digest(cred[1].encode("utf-8"), str(expected).encode("utf-8")))
            if not ok:
                self.handshakes_refused += 1
                why = "no credentials" if cred is None else "wrong credentials"
                self._say("refused %s: %s (HTTP 401)" % (sid, why), always=True)
                response = connection.respond(HTTPStatus.UNAUTHORIZED, "Unauthorized\n")
                response.headers["WWW-Authenticate"] = 'Basic realm="OCPP", charset="UTF-8"'
                return response
        return None

    async def _serve_station(self, ws):
        sid = station_from_path(ws.request.path)
        link = StationLink(self, sid, ws)
        old = self.connected.get(sid)
        self.connected[sid] = link
        self.counters_for(sid)["connections"] += 1
        peer = ws.remote_address[0] if ws.remote_address else "?"
        self._say("%s connected from %s (%s)" % (sid, peer, ws.subprotocol), always=True)
        if old is not None:
            # the newest connection of a station wins; the old one may be half-open
            self._say("%s: the new connection replaces the old one" % sid, always=True)
            asyncio.ensure_future(old.websocket.close(1000, "replaced by a new connection"))
        for fut in self._connect_waiters.pop(sid, []):
            if not fut.done():
                fut.set_result(link)
        for fn in list(self.on_connect):
            try:
                fn(sid, link)
            except Exception:
                _LOG.exception("on_connect callback failed")
        try:
            await link.run()
        finally:
            if self.connected.get(sid) is link:
                del self.connected[sid]
            self._say("%s disconnected (%s)" % (sid, ws.close_code), always=True)


# -- scripted push (v2xgw csms --script FILE) --

SCRIPT_KEYS = ("after", "delay_s", "action", "payload")
PLACEHOLDER_TX = "$transactionId"


class ScriptError(ValueError):
    """A script file problem; str() is 'steps[i].KEY: problem' (or the file-level problem)."""


def check_script(doc):
    """The validated steps of a parsed script document, each a dict with all SCRIPT_KEYS
    (after: None or (action, eventType or None)). ScriptError naming the key otherwise."""
    if not isinstance(doc, dict):
        raise ScriptError("expected an object {\"steps\": [...]}")
    for key in doc:
        if key != "steps":
            raise ScriptError("%s: unknown key (expected steps)" % key)
    steps = doc.get("steps")
    if not isinstance(steps, list):
        raise ScriptError("steps: expected a list of steps")
    out = []
    for i, step in enumerate(steps):
        where = "steps[%d]" % i
        if not isinstance(step, dict):
            raise ScriptError("%s: expected an object" % where)
        for key in step:
            if key not in SCRIPT_KEYS:
                raise ScriptError("%s.%s: unknown key (expected one of %s)" % (where, key, ", ".join(SCRIPT_KEYS)))
        after = step.get("after")
        trigger = None
        if after is not None:
            if not isinstance(after, str):
                raise ScriptError("%s.after: expected an action name, \"TransactionEvent:<eventType>\" or null" % where)
            name, sep, event = after.partition(":")
            try:
                Action(name)
            except ValueError:
                raise ScriptError("%s.after: %r is not an OCPP 2.1 action" % (where, name)) from None
            if sep:
                if name != "TransactionEvent" or event not in TX_EVENT_TYPES:
                    raise ScriptError("%s.after: only TransactionEvent takes an eventType (%s)"
                                      % (where, ", ".join(TX_EVENT_TYPES)))
            trigger = (name, event if sep else None)
        delay = step.get("delay_s", 0)
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay < 1e6:
            raise ScriptError("%s.delay_s: expected seconds, 0 or more" % where)
        action = step.get("action")
        if action is None:
            raise ScriptError("%s.action: missing" % where)
        if not is_call_action(action):
            raise ScriptError("%s.action: %r is not an OCPP 2.1 action" % (where, action))
        if action in HANDLED:
            raise ScriptError("%s.action: %s is sent by the station, not the CSMS" % (where, action))
        payload = step.get("payload", {})
        if not isinstance(payload, dict):
            raise ScriptError("%s.payload: expected an object" % where)
        problem = schema_problem(action, payload)
        if problem:
            raise ScriptError("%s.payload: %s fails the OCPP 2.1 schema: %s" % (where, action, problem))
        out.append({"after": trigger, "delay_s": float(delay), "action": action, "payload": payload})
    return out


def load_script(path):
    """check_script of the JSON file at path; ScriptError for an unreadable or non-JSON file."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ScriptError("cannot read: %s" % (e.strerror or e)) from None
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ScriptError("not JSON: %s" % e) from None
    return check_script(doc)


def substitute(payload, tx_id):
    """payload with every string equal to "$transactionId" replaced by tx_id."""
    if isinstance(payload, dict):
        return {k: substitute(v, tx_id) for k, v in payload.items()}
    if isinstance(payload, list):
        return [substitute(v, tx_id) for v in payload]
    return tx_id if payload == PLACEHOLDER_TX else payload


def _uses_tx(payload):
    return substitute(payload, None) != payload


def _trigger_matches(rec, station_id, trigger, since):
    if rec["station"] != station_id or rec["t"] < since or rec["action"] != trigger[0]:
        return False
    return trigger[1] is None or (isinstance(rec["payload"], dict) and rec["payload"].get("eventType") == trigger[1])


async def run_script(csms, station_id, steps, since=None, timeout_s=30):
    """Run the steps in order for one station: wait for each step's trigger (a record from
    that station received after the previous step, or after `since` for the first), then
    delay_s, then push the CALL. Returns the answers; stops early (with a line) when the
    station is gone or "$transactionId" has no transaction to stand for."""
    mark = time.monotonic() if since is None else since
    answers = []
    for i, step in enumerate(steps):
        if step["after"] is not None:
            trig = step["after"]
            await csms.wait_for(lambda r: _trigger_matches(r, station_id, trig, mark), None)
        if step["delay_s"] > 0:
            await asyncio.sleep(step["delay_s"])
        payload = step["payload"]
        if _uses_tx(payload):
            tx = csms.transactions.get(station_id)
            if tx is None:
                csms._say("%s script steps[%d]: no transaction started yet for $transactionId; script stopped"
                          % (station_id, i), always=True)
                return answers
            payload = substitute(payload, tx)
        try:
            answer = await csms.call(station_id, step["action"], payload, timeout_s)
        except LookupError:
            csms._say("%s script steps[%d]: station gone; script stopped" % (station_id, i), always=True)
            return answers
        except (ConnectionClosed, ConnectionError):
            csms._say("%s script steps[%d]: connection closed; script stopped" % (station_id, i), always=True)
            return answers
        except asyncio.TimeoutError:
            csms._say("%s script steps[%d]: no answer to %s in %g s" % (station_id, i, step["action"], timeout_s),
                      always=True)
            answer = ("timeout",)
        except OCPPError as e:  # "$transactionId" replaced by an id the schema refuses
            csms._say("%s script steps[%d]: not sent: %s" % (station_id, i, e), always=True)
            answer = ("invalid", e.code)
        answers.append(answer)
        mark = time.monotonic()
    return answers
