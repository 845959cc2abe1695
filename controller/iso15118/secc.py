"""ISO 15118-20 SECC state machine (DC, DC_BPT, AC, AC_BPT; Scheduled and Dynamic
control modes; EIM), with the EXI codec and the transport outside.

    secc = Secc(evse, config)           # one per charge point; survives reconnects
    secc.connection_made(now)
    res_ns, res = secc.handle(ns, msg, now)   # msg: {"SessionSetupReq": {...}}
    secc.closing                        # True: send res (if any), then close TCP
    secc.poll(now)                      # True: a timeout ended the session; close
    secc.connection_lost(now)

Messages are plain dicts in the JSON form of the EXI codec (element names as keys,
RationalNumber as {"Exponent", "Value"}). All session state lives in the plain dict
`secc.st`; `handle` depends only on that state, the request, `now` (ticks_us) and the
`evse` object, so the machine is deterministic under a simulated clock.

The `evse` object (see BasicEvse for a reference implementation) is how the SECC
meets the rest of the gateway; units are SI (V, A, W, Wh, s), current and power are
positive into the EV (charge) and negative out of it (discharge):
    evse.limits()        -> dict: max_charge_power, min_charge_power,
                            max_discharge_power, min_discharge_power,
                            max_charge_current, min_charge_current,
                            max_discharge_current, min_discharge_current,
                            max_voltage, min_voltage, power_ramp_limitation,
                            nominal_voltage, nominal_frequency
    evse.present()       -> dict: voltage, current, power, target_power (the power
                            the gateway's arbitration grants now, signed)
    evse.isolation()     -> "ok" | "pending" | "fault"   (DC cable check)
    evse.authorized()    -> "ok" | "pending" | "rejected" (EIM)
    evse.ev_limits(d)    <- the EV's limits and energy requests, snake_case names of
                            the message fields without "EV" (max_charge_power,
                            max_discharge_current, target_energy_request, ...)
    evse.ev_target(d)    <- what the EV asks for now (voltage, current, power, soc,
                            channel, charging_complete, ...)
    evse.output(channel) <- "Charge", "Discharge" or None (off)
    evse.session_lost(reason) <- the session ended abnormally: bring current to zero
    evse.new_session()   <- optional: an EV connected; forget what the last one announced
"""

from controller.clock import ticks_add, ticks_diff
from controller.iso15118.v2gtp import NS_AC, NS_COMMON, NS_DC, NS_SAP

# states
S_SAP = "SupportedAppProtocol"
S_SETUP = "SessionSetup"
S_AUTH_SETUP = "AuthorizationSetup"
S_AUTH = "Authorization"
S_DISCOVERY = "ServiceDiscovery"
S_DETAIL = "ServiceDetail"
S_CPD = "ChargeParameterDiscovery"
S_SCHEDULE = "ScheduleExchange"
S_CABLE = "CableCheck"
S_PRECHARGE = "PreCharge"
S_POWER = "PowerDelivery"
S_LOOP = "ChargeLoop"
S_WELDING = "WeldingDetection"
S_STOP = "SessionStop"
S_END = "End"

# timeouts, microseconds (ISO 15118-20 clause 8.8 timers)
SEQUENCE_TIMEOUT_US = 60000000  # V2G_SECC_Sequence_Timeout
SETUP_TIMEOUT_US = 20000000  # V2G_SECC_CommunicationSetup_Timeout (connect -> SessionSetupReq)

# EV-side message timeouts the SECC must answer within (V2G_EVCC_Msg_Timeout), us
PERFORMANCE_US = {"DC_ChargeLoopReq": 250000, "AC_ChargeLoopReq": 250000}
PERFORMANCE_DEFAULT_US = 2000000

SERVICE_AC = 1
SERVICE_DC = 2
SERVICE_AC_BPT = 5
SERVICE_DC_BPT = 6
BPT_SERVICES = (SERVICE_AC_BPT, SERVICE_DC_BPT)

SCHEDULED = 1
DYNAMIC = 2

ZERO_SID = "0000000000000000"

# which namespace each request must arrive in ("*" = the negotiated energy namespace)
REQUESTS = {
    "supportedAppProtocolReq": NS_SAP,
    "SessionSetupReq": NS_COMMON,
    "AuthorizationSetupReq": NS_COMMON,
    "AuthorizationReq": NS_COMMON,
    "ServiceDiscoveryReq": NS_COMMON,
    "ServiceDetailReq": NS_COMMON,
    "ServiceSelectionReq": NS_COMMON,
    "ScheduleExchangeReq": NS_COMMON,
    "PowerDeliveryReq": NS_COMMON,
    "SessionStopReq": NS_COMMON,
    "DC_ChargeParameterDiscoveryReq": NS_DC,
    "DC_CableCheckReq": NS_DC,
    "DC_PreChargeReq": NS_DC,
    "DC_ChargeLoopReq": NS_DC,
    "DC_WeldingDetectionReq": NS_DC,
    "AC_ChargeParameterDiscoveryReq": NS_AC,
    "AC_ChargeLoopReq": NS_AC,
}

# requests accepted in each state (SessionStopReq is added where the EV may stop)
EXPECTED = {
    S_SAP: ("supportedAppProtocolReq",),
    S_SETUP: ("SessionSetupReq",),
    S_AUTH_SETUP: ("AuthorizationSetupReq", "SessionStopReq"),
    S_AUTH: ("AuthorizationReq", "SessionStopReq"),
    S_DISCOVERY: ("ServiceDiscoveryReq", "SessionStopReq"),
    S_DETAIL: ("ServiceDetailReq", "ServiceSelectionReq", "SessionStopReq"),
    S_CPD: ("DC_ChargeParameterDiscoveryReq", "AC_ChargeParameterDiscoveryReq", "SessionStopReq"),
    S_SCHEDULE: ("ScheduleExchangeReq", "SessionStopReq"),
    S_CABLE: ("DC_CableCheckReq", "SessionStopReq"),
    S_PRECHARGE: ("DC_PreChargeReq", "PowerDeliveryReq", "SessionStopReq"),
    S_POWER: ("PowerDeliveryReq", "ScheduleExchangeReq", "SessionStopReq"),
    S_LOOP: ("DC_ChargeLoopReq", "AC_ChargeLoopReq", "PowerDeliveryReq"),
    S_WELDING: ("DC_WeldingDetectionReq", "SessionStopReq"),
    S_STOP: ("SessionStopReq",),
    S_END: (),
}


# ---------------------------------------------------------------- numbers
def rat(x):
    """RationalNumber dict for a number (Value fits xs:short, Exponent xs:byte)."""
    if x is None:
        x = 0
    e = 0
    v = x
    if v == int(v):
        v = int(v)
        while v > 32767 or v < -32768:
            v = v / 10
            e += 1
        v = int(round(v))
        while v > 32767 or v < -32768:  # rounding may carry over
            v = int(round(v / 10))
            e += 1
        return {"Exponent": e, "Value": v}
    while e > -3 and v != int(v) and -3276.7 <= v <= 3276.7:
        v = v * 10
        e -= 1
    while v > 32767 or v < -32768:
        v = v / 10
        e += 1
    return {"Exponent": e, "Value": int(round(v))}


def val(r):
    """The number a RationalNumber dict stands for (int when exact)."""
    e = r["Exponent"]
    v = r["Value"]
    if e >= 0:
        return v * (10 ** e)
    return v / (10 ** (-e))


_WORDS = {"Maximum": "max", "Minimum": "min"}


def snake(name):
    """'EVMaximumDischargeCurrent' -> 'max_discharge_current' (EV/EVSE prefix dropped)."""
    if name.startswith("EVSE"):
        name = name[4:]
    elif name.startswith("EV"):
        name = name[2:]
    parts = []
    word = ""
    for i in range(len(name)):
        c = name[i]
        if c == "_":
            if word:
                parts.append(word)
            word = ""
            continue
        if "A" <= c <= "Z" and word and ("a" <= word[-1] <= "z" or (
                "A" <= word[-1] <= "Z" and i + 1 < len(name) and "a" <= name[i + 1] <= "z")):
            parts.append(word)
            word = ""
        word += c
    if word:
        parts.append(word)
    return "_".join(_WORDS.get(p, p.lower()) for p in parts)


def numbers(d):
    """Snake-case dict of a message element: rationals to numbers, scalars kept."""
    out = {}
    for k in d:
        v = d[k]
        if isinstance(v, dict):
            if "Exponent" in v and "Value" in v:
                out[snake(k)] = val(v)
        elif not isinstance(v, list):
            out[snake(k)] = v
    return out


def _evse_fields(lim, names):
    out = {}
    for n in names:
        out["EVSE" + n] = rat(lim.get(snake(n), 0))
    return out


# ---------------------------------------------------------------- skeletons
# mandatory fields of each response, used for FAILED_* answers ([V2G20-...]: a
# response carrying a FAILED code still has to be schema-valid)
def _skeleton(name):
    z = {"Exponent": 0, "Value": 0}
    if name == "SessionSetupRes":
        return {"EVSEID": "ZZ00000"}
    if name == "AuthorizationSetupRes":
        return {"AuthorizationServices": ["EIM"], "CertificateInstallationService": False,
                "EIM_ASResAuthorizationMode": {}}
    if name in ("AuthorizationRes", "DC_CableCheckRes"):
        return {"EVSEProcessing": "Finished"}
    if name == "ServiceDiscoveryRes":
        return {"ServiceRenegotiationSupported": False,
                "EnergyTransferServiceList": {"Service": [{"ServiceID": SERVICE_DC, "FreeService": False}]}}
    if name == "ServiceDetailRes":
        return {"ServiceID": SERVICE_DC, "ServiceParameterList": {"ParameterSet": [
            {"ParameterSetID": 1, "Parameter": [{"Name": "Connector", "intValue": 1}]}]}}
    if name == "ScheduleExchangeRes":
        return {"EVSEProcessing": "Finished", "Dynamic_SEResControlMode": {}}
    if name == "DC_ChargeParameterDiscoveryRes":
        return {"DC_CPDResEnergyTransferMode": {
            "EVSEMaximumChargePower": z, "EVSEMinimumChargePower": z, "EVSEMaximumChargeCurrent": z,
            "EVSEMinimumChargeCurrent": z, "EVSEMaximumVoltage": z, "EVSEMinimumVoltage": z}}
    if name == "AC_ChargeParameterDiscoveryRes":
        return {"AC_CPDResEnergyTransferMode": {
            "EVSEMaximumChargePower": z, "EVSEMinimumChargePower": z, "EVSENominalFrequency": z}}
    if name in ("DC_PreChargeRes", "DC_WeldingDetectionRes"):
        return {"EVSEPresentVoltage": z}
    if name == "DC_ChargeLoopRes":
        return {"EVSEPresentCurrent": z, "EVSEPresentVoltage": z, "EVSEPowerLimitAchieved": False,
                "EVSECurrentLimitAchieved": False, "EVSEVoltageLimitAchieved": False,
                "Scheduled_DC_CLResControlMode": {}}
    if name == "AC_ChargeLoopRes":
        return {"Scheduled_AC_CLResControlMode": {}}
    return {}


class BasicEvse:
    """Reference `evse`: fixed limits, an ideal converter that follows the EV (DC
    Scheduled) or the granted power (AC, DC Dynamic), and a record of everything the
    SECC reported. The gateway replaces it with one wired to limits.py and the
    inverter; HIL and tests use it as is."""

    def __init__(self, limits=None, grant_power=None):
        self.lim = {
            "max_charge_power": 11000, "min_charge_power": 0,
            "max_discharge_power": 11000, "min_discharge_power": 0,
            "max_charge_current": 32, "min_charge_current": 0,
            "max_discharge_current": 32, "min_discharge_current": 0,
            "max_voltage": 500, "min_voltage": 150, "power_ramp_limitation": 100,
            "nominal_voltage": 400, "nominal_frequency": 50,
        }
        if limits:
            self.lim.update(limits)
        self.grant_power = grant_power  # None: grant what the EV asks, within limits
        self.voltage = 0
        self.current = 0
        self.channel = None
        self.ac_power = None  # AC: the active power delivered (signed), None for DC
        self.isolation_state = "ok"
        self.auth_state = "ok"
        self.ev_lim = {}
        self.ev_tgt = {}
        self.lost = []
        self.history = []
        self.dynamic = False

    def limits(self):
        return self.lim

    def present(self):
        p = self.ac_power if self.ac_power is not None else self.voltage * self.current
        return {"voltage": self.voltage, "current": self.current, "power": p, "target_power": self._granted()}

    def _granted(self):
        if self.channel is None:
            return 0
        p = self.grant_power
        if p is None:
            p = self.ev_tgt.get("power")
            if p is None:
                p = self.ev_lim.get("max_charge_power", 0) if self.channel == "Charge" else -self.ev_lim.get("max_discharge_power", 0)
        hi = min(self.lim["max_charge_power"], self.ev_lim.get("max_charge_power", self.lim["max_charge_power"]))
        lo = -min(self.lim["max_discharge_power"], self.ev_lim.get("max_discharge_power", 0))
        if self.dynamic and "max_discharge_power" in self.ev_lim:
            # Dynamic BPT: the charger decides the direction within the EV's limits (ISO 15118-20
            # dynamic control mode); the channel of PowerDelivery only starts the transfer
            return max(lo, min(p, hi))
        if self.channel == "Charge":
            return max(0, min(p, hi))
        return min(0, max(p, lo))

    def isolation(self):
        return self.isolation_state

    def authorized(self):
        return self.auth_state

    def ev_limits(self, d):
        self.ev_lim.update(d)
        self.history.append(("ev_limits", d))

    def ev_target(self, d):
        self.ev_tgt.update(d)
        self.history.append(("ev_target", d))
        if "voltage" in d and d["voltage"] is not None:
            self.voltage = d["voltage"]
        if "present_voltage" in d and self.channel is not None:
            self.voltage = d["present_voltage"]
        if "current" in d and self.channel is not None:
            c = d["current"]
            if self.channel == "Charge":
                c = max(0, min(c, self.lim["max_charge_current"]))
            else:
                c = min(0, max(c, -self.lim["max_discharge_current"]))
            self.current = c
        if "present_power" in d:
            self.ac_power = self._granted()
        elif d.get("dynamic") and self.channel is not None and self.voltage:
            self.dynamic = True
            self.current = self._granted() / self.voltage

    def output(self, channel):
        self.channel = channel
        self.history.append(("output", channel))
        if channel is None:
            self.current = 0
            if self.ac_power is not None:
                self.ac_power = 0

    def session_lost(self, reason):
        self.lost.append(reason)
        self.channel = None
        self.current = 0
        if self.ac_power is not None:
            self.ac_power = 0


class Secc:
    """The SECC session machine. config keys (all optional): evse_id, energy ("DC" or
    "AC": the namespaces offered), services (ServiceIDs offered), sequence_timeout_us,
    setup_timeout_us, unix_time (callable -> seconds for Header.TimeStamp; default: echo
    the EV's), new_session_id (callable -> 16 hex chars), nominal_voltage."""

    def __init__(self, evse, config=None):
        self.evse = evse
        cfg = config or {}
        self.cfg = cfg
        self.evse_id = cfg.get("evse_id", "DE*V2X*E0001")
        energy = cfg.get("energy", "DC")
        self.energy_ns = NS_DC if energy == "DC" else NS_AC
        if energy == "DC":
            default = (SERVICE_DC, SERVICE_DC_BPT)
        else:
            default = (SERVICE_AC, SERVICE_AC_BPT)
        self.services = tuple(cfg.get("services", default))
        self.seq_timeout = cfg.get("sequence_timeout_us", SEQUENCE_TIMEOUT_US)
        self.setup_timeout = cfg.get("setup_timeout_us", SETUP_TIMEOUT_US)
        self._unix_time = cfg.get("unix_time")
        self._new_sid = cfg.get("new_session_id") or _random_sid
        self.paused_sid = None
        self.counters = {"sessions": 0, "sequence_error": 0, "unknown_session": 0, "timeout": 0,
                         "unknown_message": 0, "failed": 0}
        self.closing = False
        self.st = {}
        self.connection_made(0)

    # ------------------------------------------------------------ lifecycle
    def connection_made(self, now):
        self.closing = False
        self.st = {"state": S_SAP, "sid": None, "ns": None, "service": None, "pset": None,
                   "control": None, "bpt": False, "channel": None, "deadline": ticks_add(now, self.setup_timeout),
                   "last_req": None}
        hook = getattr(self.evse, "new_session", None)
        if hook is not None:
            hook()  # a new EV (or the same one again): what the last one announced is gone

    def connection_lost(self, now):
        if self.st["state"] != S_END:
            self._lose("connection_lost")
        self.st["state"] = S_END

    def poll(self, now):
        """True when a timeout has ended the session (the transport closes)."""
        st = self.st
        if st["state"] == S_END:
            return self.closing
        if ticks_diff(now, st["deadline"]) > 0:
            self.counters["timeout"] += 1
            self._lose("sequence_timeout" if st["sid"] else "setup_timeout")
            st["state"] = S_END
            self.closing = True
            return True
        return False

    def _lose(self, reason):
        self.st["channel"] = None
        self.evse.session_lost(reason)

    # ------------------------------------------------------------ dispatch
    def handle(self, ns, msg, now):
        """(response namespace, response dict) for one decoded request, or None when
        no response can be formed (unknown message): then `closing` is set."""
        st = self.st
        if self.closing or st["state"] == S_END:
            self.closing = True
            return None
        name = None
        body = None
        if isinstance(msg, dict) and len(msg) == 1:
            for k in msg:
                name = k
                body = msg[k]
        want_ns = REQUESTS.get(name)
        if want_ns is None or want_ns != ns or not isinstance(body, dict):
            self.counters["unknown_message"] += 1
            self._lose("unknown_message")
            st["state"] = S_END
            self.closing = True
            return None
        res_name = name[:-3] + "Res"
        if name not in EXPECTED[st["state"]] or (ns != NS_COMMON and ns != NS_SAP and ns != st["ns"]):
            self.counters["sequence_error"] += 1
            return self._failed(ns, res_name, body, "FAILED_SequenceError")
        if name != "supportedAppProtocolReq" and name != "SessionSetupReq":
            hdr = body.get("Header")
            if not isinstance(hdr, dict) or hdr.get("SessionID") != st["sid"]:
                self.counters["unknown_session"] += 1
                return self._failed(ns, res_name, body, "FAILED_UnknownSession")
        st["last_req"] = name
        try:
            res = getattr(self, "_" + name)(body, now)
        except (KeyError, TypeError, ValueError, AttributeError):
            # a schema-valid request always has what we read; anything else is garbage
            self.counters["failed"] += 1
            return self._failed(ns, res_name, body, "FAILED")
        if self.closing:
            st["state"] = S_END
        else:
            st["deadline"] = ticks_add(now, self.seq_timeout)
        return ns, {res_name: res}

    def performance_budget_us(self, name):
        """How long the SECC may take to answer request `name` (the EV's timeout)."""
        return PERFORMANCE_US.get(name, PERFORMANCE_DEFAULT_US)

    def _header(self, body):
        ts = None
        if self._unix_time is not None:
            ts = int(self._unix_time())
        else:
            h = body.get("Header")
            if isinstance(h, dict):
                ts = h.get("TimeStamp")
        sid = self.st["sid"] or ZERO_SID
        return {"SessionID": sid, "TimeStamp": ts if isinstance(ts, int) else 0}

    def _failed(self, ns, res_name, body, code):
        self.counters["failed"] += 1
        self.closing = True
        self._lose(code)
        self.st["state"] = S_END
        if res_name == "supportedAppProtocolRes":
            return ns, {res_name: {"ResponseCode": "Failed_NoNegotiation"}}
        res = _skeleton(res_name)
        res["Header"] = self._header(body if isinstance(body, dict) else {})
        res["ResponseCode"] = code
        return ns, {res_name: res}

    def _ok(self, body, res, code="OK"):
        res["Header"] = self._header(body)
        res["ResponseCode"] = code
        return res

    def _fail_here(self, body, res_name, code):
        """A FAILED_* answer from inside a handler: the session ends."""
        self.counters["failed"] += 1
        self.closing = True
        self._lose(code)
        res = _skeleton(res_name)
        return self._ok(body, res, code)

    # ------------------------------------------------------------ handlers
    def _supportedAppProtocolReq(self, body, now):
        best = None
        for ap in body.get("AppProtocol", []):
            if ap.get("ProtocolNamespace") != self.energy_ns or ap.get("VersionNumberMajor") != 1:
                continue
            if best is None or ap.get("Priority", 99) < best.get("Priority", 99):
                best = ap
        if best is None:
            self.closing = True
            self._lose("no_negotiation")
            return {"ResponseCode": "Failed_NoNegotiation"}
        self.st["ns"] = self.energy_ns
        self.st["state"] = S_SETUP
        code = "OK_SuccessfulNegotiation" if best.get("VersionNumberMinor") == 0 else "OK_SuccessfulNegotiationWithMinorDeviation"
        return {"ResponseCode": code, "SchemaID": best["SchemaID"]}

    def _SessionSetupReq(self, body, now):
        st = self.st
        req_sid = body["Header"]["SessionID"]
        code = "OK_NewSessionEstablished"
        if self.paused_sid is not None and req_sid == self.paused_sid:
            st["sid"] = req_sid
            code = "OK_OldSessionJoined"
        else:
            st["sid"] = self._new_sid()
        self.paused_sid = None
        self.counters["sessions"] += 1
        st["evcc_id"] = body.get("EVCCID")
        st["state"] = S_AUTH_SETUP
        return self._ok(body, {"EVSEID": self.evse_id}, code)

    def _AuthorizationSetupReq(self, body, now):
        self.st["state"] = S_AUTH
        return self._ok(body, {"AuthorizationServices": ["EIM"], "CertificateInstallationService": False,
                               "EIM_ASResAuthorizationMode": {}})

    def _AuthorizationReq(self, body, now):
        if body.get("SelectedAuthorizationService") != "EIM":
            return self._ok(body, {"EVSEProcessing": "Finished"}, "WARNING_AuthorizationSelectionInvalid")
        a = self.evse.authorized()
        if a == "pending":
            return self._ok(body, {"EVSEProcessing": "Ongoing"})
        if a != "ok":
            return self._ok(body, {"EVSEProcessing": "Finished"}, "WARNING_EIMAuthorizationFailure")
        self.st["state"] = S_DISCOVERY
        return self._ok(body, {"EVSEProcessing": "Finished"})

    def _ServiceDiscoveryReq(self, body, now):
        self.st["state"] = S_DETAIL
        svcs = [{"ServiceID": s, "FreeService": False} for s in self.services]
        return self._ok(body, {"ServiceRenegotiationSupported": False,
                               "EnergyTransferServiceList": {"Service": svcs}})

    def _parameter_sets(self, sid):
        lim = self.evse.limits()
        dc = sid in (SERVICE_DC, SERVICE_DC_BPT)
        nominal = int(lim.get("nominal_voltage", 400 if dc else 230))
        sets = []
        modes = ((1, SCHEDULED, 1), (2, DYNAMIC, 2), (3, DYNAMIC, 1))
        if self.cfg.get("control_mode") == "Dynamic":
            # an EV that takes the first parameter set offered gets the gateway's preference
            modes = ((2, DYNAMIC, 2), (3, DYNAMIC, 1), (1, SCHEDULED, 1))
        for psid, control, mobility in modes:
            p = [{"Name": "Connector", "intValue": 2},
                 {"Name": "EVSENominalVoltage", "intValue": nominal},
                 {"Name": "Pricing", "intValue": 0},
                 {"Name": "ControlMode", "intValue": control},
                 {"Name": "MobilityNeedsMode", "intValue": mobility}]
            if sid in BPT_SERVICES:
                p.append({"Name": "BPTChannel", "intValue": 1})  # unified
                p.append({"Name": "GeneratorMode", "intValue": 1})  # grid following
            sets.append({"ParameterSetID": psid, "Parameter": p})
        return sets

    def _ServiceDetailReq(self, body, now):
        sid = body["ServiceID"]
        if sid not in self.services:
            return self._fail_here(body, "ServiceDetailRes", "FAILED_ServiceIDInvalid")
        return self._ok(body, {"ServiceID": sid, "ServiceParameterList": {"ParameterSet": self._parameter_sets(sid)}})

    def _ServiceSelectionReq(self, body, now):
        sel = body["SelectedEnergyTransferService"]
        sid = sel["ServiceID"]
        psid = sel["ParameterSetID"]
        if sid not in self.services:
            return self._fail_here(body, "ServiceSelectionRes", "FAILED_ServiceSelectionInvalid")
        control = None
        for ps in self._parameter_sets(sid):
            if ps["ParameterSetID"] == psid:
                for p in ps["Parameter"]:
                    if p["Name"] == "ControlMode":
                        control = p["intValue"]
        if control is None:
            return self._fail_here(body, "ServiceSelectionRes", "FAILED_ServiceSelectionInvalid")
        st = self.st
        st["service"] = sid
        st["pset"] = psid
        st["control"] = control
        st["bpt"] = sid in BPT_SERVICES
        st["state"] = S_CPD
        return self._ok(body, {})

    def _DC_ChargeParameterDiscoveryReq(self, body, now):
        st = self.st
        key = "BPT_DC_CPDReqEnergyTransferMode" if st["bpt"] else "DC_CPDReqEnergyTransferMode"
        mode = body.get(key)
        if not isinstance(mode, dict):
            return self._fail_here(body, "DC_ChargeParameterDiscoveryRes", "FAILED_WrongChargeParameter")
        self.evse.ev_limits(numbers(mode))
        lim = self.evse.limits()
        names = ["MaximumChargePower", "MinimumChargePower", "MaximumChargeCurrent", "MinimumChargeCurrent",
                 "MaximumVoltage", "MinimumVoltage"]
        if st["bpt"]:
            names += ["MaximumDischargePower", "MinimumDischargePower", "MaximumDischargeCurrent",
                      "MinimumDischargeCurrent"]
        if "power_ramp_limitation" in lim:
            names.append("PowerRampLimitation")
        res_key = "BPT_DC_CPDResEnergyTransferMode" if st["bpt"] else "DC_CPDResEnergyTransferMode"
        st["state"] = S_SCHEDULE
        return self._ok(body, {res_key: _evse_fields(lim, names)})

    def _AC_ChargeParameterDiscoveryReq(self, body, now):
        st = self.st
        key = "BPT_AC_CPDReqEnergyTransferMode" if st["bpt"] else "AC_CPDReqEnergyTransferMode"
        mode = body.get(key)
        if not isinstance(mode, dict):
            return self._fail_here(body, "AC_ChargeParameterDiscoveryRes", "FAILED_WrongChargeParameter")
        self.evse.ev_limits(numbers(mode))
        lim = self.evse.limits()
        names = ["MaximumChargePower", "MinimumChargePower"]
        if st["bpt"]:
            names += ["MaximumDischargePower", "MinimumDischargePower"]
        names.append("NominalFrequency")
        if "power_ramp_limitation" in lim:
            names.append("PowerRampLimitation")
        f = _evse_fields(lim, names)
        f["EVSEPresentActivePower"] = rat(self.evse.present().get("power", 0))
        res_key = "BPT_AC_CPDResEnergyTransferMode" if st["bpt"] else "AC_CPDResEnergyTransferMode"
        st["state"] = S_SCHEDULE
        return self._ok(body, {res_key: f})

    def _ScheduleExchangeReq(self, body, now):
        st = self.st
        if st["control"] == SCHEDULED:
            mode = body.get("Scheduled_SEReqControlMode")
        else:
            mode = body.get("Dynamic_SEReqControlMode")
        if not isinstance(mode, dict):
            return self._fail_here(body, "ScheduleExchangeRes", "FAILED_ScheduleSelectionInvalid")
        req = numbers(mode)
        self.evse.ev_limits(req)
        st["state"] = S_CABLE if st["ns"] == NS_DC else S_POWER
        if st["control"] == DYNAMIC:
            res = {}
            if "departure_time" in req:
                res["DepartureTime"] = req["departure_time"]
            return self._ok(body, {"EVSEProcessing": "Finished", "Dynamic_SEResControlMode": res})
        lim = self.evse.limits()
        duration = req.get("departure_time") or 86400
        tup = {"ScheduleTupleID": 1,
               "ChargingSchedule": {"PowerSchedule": {"TimeAnchor": 0, "PowerScheduleEntries": {
                   "PowerScheduleEntry": [{"Duration": duration, "Power": rat(self._scheduled_power(lim))}]}},
                   "AbsolutePriceSchedule": self._price_schedule(1, duration)}}
        if st["bpt"]:
            tup["DischargingSchedule"] = {"PowerSchedule": {"TimeAnchor": 0, "PowerScheduleEntries": {
                "PowerScheduleEntry": [{"Duration": duration, "Power": rat(-lim.get("max_discharge_power", 0))}]}},
                "AbsolutePriceSchedule": self._price_schedule(2, duration)}
        return self._ok(body, {"EVSEProcessing": "Finished", "Scheduled_SEResControlMode": {"ScheduleTuple": [tup]}})

    def _scheduled_power(self, lim):
        """Power of the offered schedule: charging, or (config offer "discharge", BPT only)
        discharging, as the gateway's energy manager wants it (negative = discharge)."""
        if self.cfg.get("offer") == "discharge" and self.st["bpt"]:
            return -lim.get("max_discharge_power", 0)
        return lim.get("max_charge_power", 0)

    def _price_schedule(self, schedule_id, duration):
        """A flat tariff (config "tariff": currency, language, energy_fee per kWh).

        The schema makes the price schedule optional, but EVCCs in the field (Josev among
        them) refuse a schedule without one, so every schedule carries this minimal one.
        """
        t = self.cfg.get("tariff", {})
        return {"TimeAnchor": 0, "PriceScheduleID": schedule_id, "Currency": t.get("currency", "EUR"),
                "Language": t.get("language", "ENG"),
                "PriceAlgorithm": "urn:iso:std:iso:15118:-20:PriceAlgorithm:1-Power",
                "PriceRuleStacks": {"PriceRuleStack": [{"Duration": duration, "PriceRule": [
                    {"EnergyFee": rat(t.get("energy_fee", 0)), "PowerRangeStart": rat(0)}]}]}}

    def _DC_CableCheckReq(self, body, now):
        iso = self.evse.isolation()
        if iso == "pending":
            return self._ok(body, {"EVSEProcessing": "Ongoing"})
        if iso != "ok":
            return self._fail_here(body, "DC_CableCheckRes", "FAILED")
        self.st["state"] = S_PRECHARGE
        return self._ok(body, {"EVSEProcessing": "Finished"})

    def _DC_PreChargeReq(self, body, now):
        tgt = val(body["EVTargetVoltage"])
        self.evse.ev_target({"phase": "precharge", "voltage": tgt, "current": 0,
                             "present_voltage": val(body["EVPresentVoltage"])})
        return self._ok(body, {"EVSEPresentVoltage": rat(self.evse.present()["voltage"])})

    def _PowerDeliveryReq(self, body, now):
        st = self.st
        progress = body["ChargeProgress"]
        if progress == "Start":
            if st["state"] not in (S_PRECHARGE, S_POWER, S_LOOP):
                return self._fail_here(body, "PowerDeliveryRes", "FAILED_SequenceError")
            if body.get("EVProcessing") == "Ongoing":
                return self._ok(body, {})
            ch = body.get("BPT_ChannelSelection", "Charge")
            if ch not in ("Charge", "Discharge") or (ch == "Discharge" and not st["bpt"]):
                return self._fail_here(body, "PowerDeliveryRes", "FAILED_PowerDeliveryNotApplied")
            prof = body.get("EVPowerProfile")
            if isinstance(prof, dict):
                sch = prof.get("Scheduled_EVPPTControlMode")
                if st["control"] == SCHEDULED:
                    if not isinstance(sch, dict) or sch.get("SelectedScheduleTupleID") != 1:
                        return self._fail_here(body, "PowerDeliveryRes", "FAILED_ScheduleSelectionInvalid")
                elif sch is not None:
                    return self._fail_here(body, "PowerDeliveryRes", "FAILED_EVPowerProfileInvalid")
            st["channel"] = ch
            st["state"] = S_LOOP
            self.evse.output(ch)
            self.evse.ev_target({"channel": ch})
            return self._ok(body, {})
        if progress == "Stop":
            if st["state"] not in (S_LOOP, S_POWER, S_PRECHARGE):
                return self._fail_here(body, "PowerDeliveryRes", "FAILED_SequenceError")
            st["channel"] = None
            self.evse.output(None)
            self.evse.ev_target({"channel": None})
            st["state"] = S_WELDING if st["ns"] == NS_DC else S_STOP
            return self._ok(body, {})
        if progress == "Standby":
            return self._ok(body, {}, "WARNING_StandbyNotAllowed")
        return self._ok(body, {}, "WARNING_ScheduleRenegotiationFailed")

    def _loop_common(self, body, tgt):
        dp = body.get("DisplayParameters")
        if isinstance(dp, dict):
            if "PresentSOC" in dp:
                tgt["soc"] = dp["PresentSOC"]
            if "MinimumSOC" in dp:
                tgt["min_soc"] = dp["MinimumSOC"]
            if "ChargingComplete" in dp:
                tgt["charging_complete"] = dp["ChargingComplete"]

    def _DC_ChargeLoopReq(self, body, now):
        st = self.st
        bpt = st["bpt"]
        if st["control"] == SCHEDULED:
            key = "BPT_Scheduled_DC_CLReqControlMode" if bpt else "Scheduled_DC_CLReqControlMode"
        else:
            key = "BPT_Dynamic_DC_CLReqControlMode" if bpt else "Dynamic_DC_CLReqControlMode"
        mode = body.get(key)
        if not isinstance(mode, dict):
            return self._fail_here(body, "DC_ChargeLoopRes", "FAILED_WrongChargeParameter")
        req = numbers(mode)
        lim = self.evse.limits()
        tgt = {"present_voltage": val(body["EVPresentVoltage"])}
        self._loop_common(body, tgt)
        cur_lim = pow_lim = volt_lim = False
        if st["control"] == SCHEDULED:
            lims = {}
            for k in req:
                if k.startswith("max_") or k.startswith("min_"):
                    lims[k] = req[k]
            if lims:
                self.evse.ev_limits(lims)
            i = req["target_current"]
            v = req["target_voltage"]
            tgt["current"] = i
            tgt["voltage"] = v
            if st["channel"] == "Discharge":
                cur_lim = -i > lim.get("max_discharge_current", 0)
                pow_lim = abs(i * v) > lim.get("max_discharge_power", 0)
            else:
                cur_lim = i > lim.get("max_charge_current", 0)
                pow_lim = abs(i * v) > lim.get("max_charge_power", 0)
            volt_lim = v > lim.get("max_voltage", 0)
        else:
            self.evse.ev_limits(req)
            tgt["dynamic"] = True
        self.evse.ev_target(tgt)
        pres = self.evse.present()
        names = ["MaximumChargePower", "MinimumChargePower", "MaximumChargeCurrent", "MaximumVoltage"]
        if bpt:
            names += ["MaximumDischargePower", "MinimumDischargePower", "MaximumDischargeCurrent", "MinimumVoltage"]
        res_key = ("BPT_" if bpt else "") + ("Scheduled" if st["control"] == SCHEDULED else "Dynamic") + "_DC_CLResControlMode"
        if st["control"] == DYNAMIC:
            i = pres["current"]
            if i >= 0:
                cur_lim = i >= lim.get("max_charge_current", 0)
                pow_lim = pres["power"] >= lim.get("max_charge_power", 0)
            else:
                cur_lim = -i >= lim.get("max_discharge_current", 0)
                pow_lim = -pres["power"] >= lim.get("max_discharge_power", 0)
        return self._ok(body, {
            "EVSEPresentCurrent": rat(pres["current"]), "EVSEPresentVoltage": rat(pres["voltage"]),
            "EVSEPowerLimitAchieved": bool(pow_lim), "EVSECurrentLimitAchieved": bool(cur_lim),
            "EVSEVoltageLimitAchieved": bool(volt_lim), res_key: _evse_fields(lim, names)})

    def _AC_ChargeLoopReq(self, body, now):
        st = self.st
        bpt = st["bpt"]
        ctl = "Scheduled" if st["control"] == SCHEDULED else "Dynamic"
        key = ("BPT_" if bpt else "") + ctl + "_AC_CLReqControlMode"
        mode = body.get(key)
        if not isinstance(mode, dict):
            return self._fail_here(body, "AC_ChargeLoopRes", "FAILED_WrongChargeParameter")
        req = numbers(mode)
        lims = {}
        for k in req:
            if k.startswith("max_") or k.startswith("min_") or k.endswith("energy_request") or k == "departure_time":
                lims[k] = req[k]
        if lims:
            self.evse.ev_limits(lims)
        tgt = {"present_power": req.get("present_active_power", 0)}
        self._loop_common(body, tgt)
        if st["control"] == DYNAMIC:
            tgt["dynamic"] = True
        self.evse.ev_target(tgt)
        pres = self.evse.present()
        res = {"EVSETargetActivePower": rat(pres.get("target_power", 0)),
               "EVSEPresentActivePower": rat(pres.get("power", 0))}
        return self._ok(body, {("BPT_" if bpt else "") + ctl + "_AC_CLResControlMode": res})

    def _DC_WeldingDetectionReq(self, body, now):
        return self._ok(body, {"EVSEPresentVoltage": rat(self.evse.present()["voltage"])})

    def _SessionStopReq(self, body, now):
        st = self.st
        how = body["ChargingSession"]
        if how == "ServiceRenegotiation":
            return self._fail_here(body, "SessionStopRes", "FAILED_NoServiceRenegotiationSupported")
        if st["channel"] is not None:
            self.evse.output(None)
            st["channel"] = None
        if how == "Pause":
            self.paused_sid = st["sid"]
        res = self._ok(body, {})
        self.closing = True
        return res


def _random_sid():
    try:
        from os import urandom

        b = urandom(8)
    except (ImportError, AttributeError):
        import random

        b = bytes(random.getrandbits(8) for _ in range(8))
    if b == bytes(8):
        b = b"\x00" * 7 + b"\x01"
    return "".join("%02X" % x for x in b)


class Connection:
    """Glue for one TCP connection: V2GTP parser, injected codec, Secc.

    data_received(data, now) -> bytes to send; afterwards `closing` says whether to
    close the connection (once the bytes are sent). poll(now) -> True when a timeout
    requires closing. Decode errors of well-framed messages close the session (no
    response can be formed for an undecodable request).
    """

    def __init__(self, secc, codec, max_payload=None):
        from controller.iso15118 import v2gtp

        self.v2gtp = v2gtp
        self.secc = secc
        self.codec = codec
        self.parser = v2gtp.Parser(max_payload or v2gtp.DEFAULT_MAX_PAYLOAD)
        self.closing = False
        self.decode_errors = 0
        self.handled = 0

    def connection_made(self, now):
        self.secc.connection_made(now)

    def data_received(self, data, now):
        out = b""
        if self.closing:
            return out
        v = self.v2gtp
        for ptype, payload in self.parser.feed(data):
            ns = v.NS_OF_TYPE.get(ptype)
            try:
                msg = self.codec.decode(ns, payload)
            except Exception:
                self.decode_errors += 1
                msg = None
            if msg is None:
                self.secc.handle(ns, None, now)  # unknown message: the session ends
                self.closing = True
                break
            r = self.secc.handle(ns, msg, now)
            self.handled += 1
            if r is not None:
                out += v.frame(v.TYPE_OF_NS[r[0]], self.codec.encode(r[0], r[1]))
            if self.secc.closing:
                self.closing = True
                break
        if self.parser.closed:
            self.closing = True
            self.secc.connection_lost(now)
        return out

    def poll(self, now):
        if self.secc.poll(now):
            self.closing = True
        return self.closing

    def connection_lost(self, now):
        self.secc.connection_lost(now)


def serve_connection(sock, conn, ticks_us, should_stop=None, recv_size=2048):
    """Serve one accepted TCP socket until the session ends, a timeout fires, the peer
    closes or should_stop() is true. Works with CPython and MicroPython sockets
    (needs settimeout)."""
    conn.connection_made(ticks_us())
    sock.settimeout(0.05)
    try:
        while True:
            if should_stop is not None and should_stop():
                break
            try:
                data = sock.recv(recv_size)
            except OSError:  # timeout (socket.timeout is an OSError)
                data = None
            now = ticks_us()
            if data is not None:
                if not data:
                    break
                out = conn.data_received(data, now)
                if out:
                    sock.sendall(out) if hasattr(sock, "sendall") else sock.send(out)
                if conn.closing:
                    break
            if conn.poll(now):
                break
    finally:
        conn.connection_lost(ticks_us())
        try:
            sock.close()
        except OSError:
            pass
