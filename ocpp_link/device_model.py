"""The charging station's OCPP 2.1 device model: its components and variables (Part 1's device
model; Part 2 block B, Provisioning: GetVariables, SetVariables, GetBaseReport / GetReport
answered by NotifyReport).

What a unit guarantees
----------------------
* ``get`` and ``set`` give the status the protocol defines (GetVariableStatusEnumType,
  SetVariableStatusEnumType) and, for a refused set, a reason code (StatusInfoType.reasonCode):
  ``ReadOnly`` for a read-only variable; for a value of the wrong form ``InvalidValue``; for a
  number below minLimit / above maxLimit ``ValueTooLow`` / ``ValueTooHigh``; for a string whose
  length is outside its limits ``ValueOutOfRange``; ``InternalError`` when the value could not be
  stored. Reading a write-only variable (SecurityCtrlr.BasicAuthPassword) is ``Rejected``.
* Values are strings on the wire and typed inside: integer -> int, decimal -> float,
  boolean -> bool ("true"/"false", any case on input), string -> str, OptionList -> str (one of
  valuesList), MemberList / SequenceList -> list of str (members of valuesList, no duplicates;
  a SequenceList keeps its order). Values leave canonical ("true", "60", "A,W").
* Component, variable and instance names match case-insensitively (the spec's ComponentType and
  VariableType say so) and are reported in the spelling below. A component that lives on an
  EVSE (EVSE, V2XChargingCtrlr) needs evse_id 1; the station-level ones need evse_id None.
  Only the ``Actual`` attribute exists; Target, MinSet and MaxSet are NotSupportedAttributeType.
* Values the CSMS writes (ReadWrite and WriteOnly variables) persist in ``path`` (a JSON file,
  replaced atomically: temp file, fsync, rename, fsync of the directory), so a torn write leaves
  the previous values; a file that is not the device model's JSON is refused
  (DeviceModelError), never silently reset. Stored values the current table no longer accepts
  (a variable removed or its range narrowed by an update) are skipped and counted in
  ``persisted_ignored``. Precedence: a stored value over ``overrides`` over the default.
* TxCtrlr.TxStartPoint and TxStopPoint answer RebootRequired: the new value is stored and takes
  effect at the next start (the station's transaction state machine is built from them at
  start); until then get/value/report give the value in force.
* ``on_change(component, variable, typed_value)`` is called after an accepted set that changes
  a value in force; an exception in it is logged and counted in ``callback_errors`` (the set
  stands: it is already stored).

Variables (component.variable[instance], type, default, mutability; unit, limits)
-------------------------------------------------------------------------------
Names are from the OCPP 2.0.1 / 2.1 referenced components and variables. Left out on purpose:
any DER controller (2.1 has ACDERCtrlr / DCDERCtrlr, not a "DERCtrlr", and the station does no
DER control over OCPP), SmartChargingCtrlr.SupportedAdditionalPurposes (PriorityCharging /
LocalGeneration are not implemented), V2XChargingCtrlr's per-operation-mode sampling variables.

OCPPCommCtrlr.HeartbeatInterval          integer  60    RW  s, 1..86400
OCPPCommCtrlr.MessageTimeout[Default]    integer  30    RW  s, 1..600
OCPPCommCtrlr.MessageAttempts[TransactionEvent]        integer  5   RW  0..100
OCPPCommCtrlr.MessageAttemptInterval[TransactionEvent] integer  60  RW  s, 1..86400
OCPPCommCtrlr.OfflineThreshold           integer  300   RW  s, 0..86400
OCPPCommCtrlr.RetryBackOffWaitMinimum    integer  10    RW  s, 0..3600
OCPPCommCtrlr.RetryBackOffRandomRange    integer  10    RW  s, 0..3600
OCPPCommCtrlr.RetryBackOffRepeatTimes    integer  5     RW  0..100
SampledDataCtrlr.Enabled                 boolean  true  RW
SampledDataCtrlr.TxStartedMeasurands     MemberList  Energy.Active.Import.Register,Energy.Active.Export.Register  RW
SampledDataCtrlr.TxUpdatedMeasurands     MemberList  Energy.Active.Import.Register,Energy.Active.Export.Register,
                                                     Power.Active.Import,Power.Active.Export,SoC  RW
SampledDataCtrlr.TxUpdatedInterval       integer  60    RW  s, 0..86400
SampledDataCtrlr.TxEndedMeasurands       MemberList  Energy.Active.Import.Register,Energy.Active.Export.Register  RW
SampledDataCtrlr.TxEndedInterval         integer  0     RW  s, 0..86400 (0: start and end values only)
AlignedDataCtrlr.Interval                integer  0     RW  s, 0..86400 (0: off)
AlignedDataCtrlr.Measurands              MemberList  Energy.Active.Import.Register,Energy.Active.Export.Register  RW
  (the measurand lists' valuesList: MEASURANDS below, all in MeasurandEnumType)
SmartChargingCtrlr.Enabled               boolean  true  RW
SmartChargingCtrlr.Available             boolean  true  RO
SmartChargingCtrlr.ProfileStackLevel     integer  8     RO  (the highest stackLevel accepted)
SmartChargingCtrlr.RateUnit              MemberList  A,W  RO
SmartChargingCtrlr.PeriodsPerSchedule    integer  48    RO
SmartChargingCtrlr.Entries[ChargingProfiles]  integer  0  RO  maxLimit 16 (profiles installed; the station updates it)
SmartChargingCtrlr.LimitChangeSignificance    decimal  10  RW  0..100 (relative change, percent)
V2XChargingCtrlr (EVSE 1).Enabled        boolean  true  RW
V2XChargingCtrlr (EVSE 1).Available      boolean  true  RO
V2XChargingCtrlr (EVSE 1).SupportedOperationModes  MemberList  ChargingOnly,CentralSetpoint,ExternalSetpoint,
                                         ExternalLimits,LocalFrequency,LocalLoadBalancing,Idle  RO (OperationModeEnumType)
V2XChargingCtrlr (EVSE 1).SupportedEnergyTransferModes  MemberList  AC_single_phase,AC_three_phase,AC_BPT  RO
                                         (EnergyTransferModeEnumType)
DeviceDataCtrlr.ItemsPerMessage[GetReport|GetVariables|SetVariables]  integer  32  RO
SecurityCtrlr.SecurityProfile            integer  1     RO  1..3 (changed through SetNetworkProfile, not here)
SecurityCtrlr.Identity                   string   v2xgw RO  at most 48 characters
SecurityCtrlr.BasicAuthPassword          string   (none) WO 16..40 characters
AuthCtrlr.Enabled                        boolean  false RW  (a home gateway charges without authorization)
TxCtrlr.EVConnectionTimeOut              integer  60    RW  s, 0..3600
TxCtrlr.TxStartPoint                     MemberList  EVConnected  RW, RebootRequired; of EVConnected,Authorized,
                                         PowerPathClosed,EnergyTransfer; at least one
TxCtrlr.TxStopPoint                      MemberList  EVConnected  as TxStartPoint
TxCtrlr.StopTxOnEVSideDisconnect         boolean  true  RO
ChargingStation.Model                    string   V2XGW RO  at most 20 characters (BootNotification's limit)
ChargingStation.VendorName               string   v2x-gateway RO  at most 50 characters
ChargingStation.Available                boolean  true  RO
ChargingStation.AvailabilityState        OptionList Available RO  Available,Occupied,Reserved,Unavailable,Faulted
EVSE (1).Available                       boolean  true  RO
EVSE (1).AvailabilityState               OptionList Available RO  as above
EVSE (1).Power                           decimal  0     RO  W, maxLimit = rated_power_w, minLimit = -rated_power_w
                                         (instantaneous power, negative while discharging)

Read-only values the station itself changes (availability, power, installed profiles) go
through ``update``; ``overrides`` set initial values of any variable, read-only ones included.

API: ``get`` / ``set`` for one variable; ``get_variables`` / ``set_variables`` turn a
GetVariablesRequest's / SetVariablesRequest's items into the response's results;
``report`` gives NotifyReportRequest.report_data (the station splits it into messages of
DeviceDataCtrlr.ItemsPerMessage[GetReport] items); ``value`` / ``update`` are the station's own
typed access. Payloads are snake_case, as the ``ocpp`` library hands them to handlers.
"""

import json
import logging
import math
import os
import re

log = logging.getLogger(__name__)

ATTRIBUTES = ("Actual", "Target", "MinSet", "MaxSet")  # AttributeEnumType
REPORT_CRITERIA = ("Active", "Available", "Enabled", "Problem")  # ComponentCriterionEnumType
MEASURANDS = ("Energy.Active.Import.Register,Energy.Active.Export.Register,Power.Active.Import,"
              "Power.Active.Export,Current.Import,Current.Export,Voltage,Frequency,SoC")
ENERGY_REGISTERS = "Energy.Active.Import.Register,Energy.Active.Export.Register"
OPERATION_MODES = ("Idle,ChargingOnly,CentralSetpoint,ExternalSetpoint,ExternalLimits,CentralFrequency,"
                   "LocalFrequency,LocalLoadBalancing")
ENERGY_TRANSFER_MODES = ("AC_single_phase,AC_two_phase,AC_three_phase,DC,AC_BPT,AC_BPT_DER,AC_DER,DC_BPT,"
                         "DC_ACDP,DC_ACDP_BPT,WPT")
AVAILABILITY_STATES = "Available,Occupied,Reserved,Unavailable,Faulted"
TX_POINTS = "EVConnected,Authorized,PowerPathClosed,EnergyTransfer"

_INT = re.compile(r"[+-]?[0-9]+")
_DEC = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_KEY = re.compile(r"([A-Za-z0-9_]+)(?:\[([0-9]+)\])?\.([A-Za-z0-9_]+)(?:\[([^\]]+)\])?")


class DeviceModelError(ValueError):
    """Bad overrides, an unknown variable asked for by the station's own code, or a persisted
    file that is not the device model's."""


class VarDef:
    """One component-variable: its type, limits, mutability and default (a wire string)."""

    __slots__ = ("component", "evse_id", "variable", "instance", "data_type", "default", "mutability",
                 "unit", "min_limit", "max_limit", "values", "min_len", "min_items", "reboot", "dynamic")

    def __init__(self, component, variable, data_type, default, mutability="ReadWrite", instance=None,
                 evse_id=None, unit=None, min_limit=None, max_limit=None, values=None, min_len=None,
                 min_items=0, reboot=False, dynamic=False):
        self.component = component
        self.evse_id = evse_id
        self.variable = variable
        self.instance = instance
        self.data_type = data_type
        self.default = default
        self.mutability = mutability
        self.unit = unit
        self.min_limit = min_limit
        self.max_limit = max_limit
        self.values = tuple(values.split(",")) if values else None
        self.min_len = min_len
        self.min_items = min_items
        self.reboot = reboot
        self.dynamic = dynamic  # read-only but changed by the station at run time

    @property
    def key(self):
        """The canonical name: Component[evse].Variable[instance]."""
        s = self.component
        if self.evse_id is not None:
            s += "[%d]" % self.evse_id
        s += "." + self.variable
        if self.instance is not None:
            s += "[%s]" % self.instance
        return s

    @property
    def persistent(self):
        return self.mutability != "ReadOnly"


def _definitions(rated_power_w):
    RO, WO = "ReadOnly", "WriteOnly"
    C = "OCPPCommCtrlr"
    defs = [
        VarDef(C, "HeartbeatInterval", "integer", "60", unit="s", min_limit=1, max_limit=86400),
        VarDef(C, "MessageTimeout", "integer", "30", instance="Default", unit="s", min_limit=1, max_limit=600),
        VarDef(C, "MessageAttempts", "integer", "5", instance="TransactionEvent", min_limit=0, max_limit=100),
        VarDef(C, "MessageAttemptInterval", "integer", "60", instance="TransactionEvent", unit="s",
               min_limit=1, max_limit=86400),
        VarDef(C, "OfflineThreshold", "integer", "300", unit="s", min_limit=0, max_limit=86400),
        VarDef(C, "RetryBackOffWaitMinimum", "integer", "10", unit="s", min_limit=0, max_limit=3600),
        VarDef(C, "RetryBackOffRandomRange", "integer", "10", unit="s", min_limit=0, max_limit=3600),
        VarDef(C, "RetryBackOffRepeatTimes", "integer", "5", min_limit=0, max_limit=100),
    ]
    S = "SampledDataCtrlr"
    defs += [
        VarDef(S, "Enabled", "boolean", "true"),
        VarDef(S, "TxStartedMeasurands", "MemberList", ENERGY_REGISTERS, values=MEASURANDS),
        VarDef(S, "TxUpdatedMeasurands", "MemberList",
               "Energy.Active.Import.Register,Energy.Active.Export.Register,Power.Active.Import,"
               "Power.Active.Export,SoC", values=MEASURANDS),
        VarDef(S, "TxUpdatedInterval", "integer", "60", unit="s", min_limit=0, max_limit=86400),
        VarDef(S, "TxEndedMeasurands", "MemberList", ENERGY_REGISTERS, values=MEASURANDS),
        VarDef(S, "TxEndedInterval", "integer", "0", unit="s", min_limit=0, max_limit=86400),
        VarDef("AlignedDataCtrlr", "Interval", "integer", "0", unit="s", min_limit=0, max_limit=86400),
        VarDef("AlignedDataCtrlr", "Measurands", "MemberList", ENERGY_REGISTERS, values=MEASURANDS),
    ]
    SC = "SmartChargingCtrlr"
    defs += [
        VarDef(SC, "Enabled", "boolean", "true"),
        VarDef(SC, "Available", "boolean", "true", RO),
        VarDef(SC, "ProfileStackLevel", "integer", "8", RO, min_limit=0),
        VarDef(SC, "RateUnit", "MemberList", "A,W", RO, values="A,W"),
        VarDef(SC, "PeriodsPerSchedule", "integer", "48", RO, min_limit=1),
        VarDef(SC, "Entries", "integer", "0", RO, instance="ChargingProfiles", min_limit=0, max_limit=16,
               dynamic=True),
        VarDef(SC, "LimitChangeSignificance", "decimal", "10", min_limit=0, max_limit=100),
    ]
    V = "V2XChargingCtrlr"
    defs += [
        VarDef(V, "Enabled", "boolean", "true", evse_id=1),
        VarDef(V, "Available", "boolean", "true", RO, evse_id=1),
        VarDef(V, "SupportedOperationModes", "MemberList",
               "ChargingOnly,CentralSetpoint,ExternalSetpoint,ExternalLimits,LocalFrequency,LocalLoadBalancing,Idle",
               RO, evse_id=1, values=OPERATION_MODES, min_items=1),
        VarDef(V, "SupportedEnergyTransferModes", "MemberList", "AC_single_phase,AC_three_phase,AC_BPT", RO,
               evse_id=1, values=ENERGY_TRANSFER_MODES, min_items=1),
    ]
    defs += [VarDef("DeviceDataCtrlr", "ItemsPerMessage", "integer", "32", RO, instance=i, min_limit=1)
             for i in ("GetReport", "GetVariables", "SetVariables")]
    SE = "SecurityCtrlr"
    defs += [
        VarDef(SE, "SecurityProfile", "integer", "1", RO, min_limit=1, max_limit=3),
        VarDef(SE, "Identity", "string", "v2xgw", RO, max_limit=48, min_len=1),
        VarDef(SE, "BasicAuthPassword", "string", None, WO, max_limit=40, min_len=16),
        VarDef("AuthCtrlr", "Enabled", "boolean", "false"),
    ]
    T = "TxCtrlr"
    defs += [
        VarDef(T, "EVConnectionTimeOut", "integer", "60", unit="s", min_limit=0, max_limit=3600),
        VarDef(T, "TxStartPoint", "MemberList", "EVConnected", values=TX_POINTS, min_items=1, reboot=True),
        VarDef(T, "TxStopPoint", "MemberList", "EVConnected", values=TX_POINTS, min_items=1, reboot=True),
        VarDef(T, "StopTxOnEVSideDisconnect", "boolean", "true", RO),
    ]
    CS = "ChargingStation"
    defs += [
        VarDef(CS, "Model", "string", "V2XGW", RO, max_limit=20, min_len=1),
        VarDef(CS, "VendorName", "string", "v2x-gateway", RO, max_limit=50, min_len=1),
        VarDef(CS, "Available", "boolean", "true", RO, dynamic=True),
        VarDef(CS, "AvailabilityState", "OptionList", "Available", RO, values=AVAILABILITY_STATES, dynamic=True),
        VarDef("EVSE", "Available", "boolean", "true", RO, evse_id=1, dynamic=True),
        VarDef("EVSE", "AvailabilityState", "OptionList", "Available", RO, evse_id=1, values=AVAILABILITY_STATES,
               dynamic=True),
        VarDef("EVSE", "Power", "decimal", "0", RO, evse_id=1, unit="W", min_limit=-float(rated_power_w),
               max_limit=float(rated_power_w), dynamic=True),
    ]
    return defs


def _fmt_decimal(x):
    s = repr(float(x))
    return s[:-2] if s.endswith(".0") else s


def to_wire(d, typed):
    """The wire string of a typed value of variable `d`."""
    if d.data_type == "boolean":
        return "true" if typed else "false"
    if d.data_type == "decimal":
        return _fmt_decimal(typed)
    if d.data_type in ("MemberList", "SequenceList"):
        return ",".join(typed)
    return str(typed)


def parse_value(d, s):
    """(typed, None) for a valid wire string of variable `d`, else (None, reasonCode)."""
    t = d.data_type
    if not isinstance(s, str):
        return None, "InvalidValue"
    if t == "integer" or t == "decimal":
        if t == "integer":
            if not _INT.fullmatch(s):
                return None, "InvalidValue"
            v = int(s)
        else:
            if not _DEC.fullmatch(s):
                return None, "InvalidValue"
            v = float(s)
            if not math.isfinite(v):
                return None, "InvalidValue"
        if d.min_limit is not None and v < d.min_limit:
            return None, "ValueTooLow"
        if d.max_limit is not None and v > d.max_limit:
            return None, "ValueTooHigh"
        return v, None
    if t == "boolean":
        low = s.lower()
        if low not in ("true", "false"):
            return None, "InvalidValue"
        return low == "true", None
    if t == "string":
        if (d.min_len is not None and len(s) < d.min_len) or (d.max_limit is not None and len(s) > d.max_limit):
            return None, "ValueOutOfRange"
        return s, None
    if t == "OptionList":
        if s not in d.values:
            return None, "InvalidValue"
        return s, None
    if t in ("MemberList", "SequenceList"):
        if d.max_limit is not None and len(s) > d.max_limit:
            return None, "ValueOutOfRange"
        items = [x.strip() for x in s.split(",")] if s.strip() else []
        if len(items) < d.min_items or any(x not in d.values for x in items) or len(set(items)) != len(items):
            return None, "InvalidValue"
        return items, None
    return None, "InvalidValue"


def _typed_to_wire_checked(d, value):
    """Wire string for an override given typed or as a string; DeviceModelError if it does not fit."""
    if isinstance(value, str):
        s = value
    elif d.data_type == "boolean" and isinstance(value, bool):
        s = to_wire(d, value)
    elif d.data_type == "integer" and isinstance(value, int) and not isinstance(value, bool):
        s = str(value)
    elif d.data_type == "decimal" and isinstance(value, (int, float)) and not isinstance(value, bool):
        s = _fmt_decimal(value)
    elif d.data_type in ("MemberList", "SequenceList") and isinstance(value, (list, tuple)) \
            and all(isinstance(x, str) for x in value):
        s = ",".join(value)
    else:
        raise DeviceModelError("%s: %r is not a %s" % (d.key, value, d.data_type))
    typed, reason = parse_value(d, s)
    if reason:
        raise DeviceModelError("%s: %r refused (%s)" % (d.key, value, reason))
    return s, typed


class DeviceModel:
    """The station's components and variables; see the module docstring for the table and the
    guarantees. path: JSON file for values written by the CSMS (None: nothing persists);
    overrides: {"Component[evse].Variable[instance]": value} initial values (typed or wire
    strings; [..] parts only where the variable has them); rated_power_w: EVSE 1's rating."""

    def __init__(self, overrides=None, path=None, rated_power_w=11000.0, fsync=True):
        self.path = os.fspath(path) if path is not None else None
        self.fsync = fsync
        self.on_change = None
        self.persisted_ignored = 0
        self.callback_errors = 0
        self._defs = _definitions(rated_power_w)
        self._by_key = {}
        self._components = set()
        for d in self._defs:
            self._by_key[self._norm(d.component, d.evse_id, d.variable, d.instance)] = d
            self._components.add((d.component.lower(), d.evse_id))
        self._value = {}  # VarDef -> typed value in force
        for d in self._defs:
            if d.default is not None:
                self._value[d] = parse_value(d, d.default)[0]
        for key, value in (overrides or {}).items():
            d = self._def_by_name(key)
            self._value[d] = _typed_to_wire_checked(d, value)[1]
        self._written = {}  # key -> wire string: what the CSMS wrote, as stored in `path`
        if self.path is not None:
            self._load()

    # --- lookup --------------------------------------------------------------------------------

    @staticmethod
    def _norm(component, evse_id, variable, instance):
        return (component.lower(), evse_id, variable.lower(), (instance or "").lower())

    def _lookup(self, component, variable, evse_id, instance):
        """(VarDef, None) or (None, UnknownComponent | UnknownVariable)."""
        if not isinstance(component, str) or (evse_id is not None and type(evse_id) is not int):
            return None, "UnknownComponent"
        if (component.lower(), evse_id) not in self._components:
            return None, "UnknownComponent"
        if not isinstance(variable, str) or (instance is not None and not isinstance(instance, str)):
            return None, "UnknownVariable"
        d = self._by_key.get(self._norm(component, evse_id, variable, instance))
        if d is None:
            return None, "UnknownVariable"
        return d, None

    def _def_by_name(self, key):
        m = _KEY.fullmatch(key) if isinstance(key, str) else None
        if m is None:
            raise DeviceModelError("%r is not Component[evse].Variable[instance]" % (key,))
        comp, evse, var, inst = m.groups()
        d, err = self._lookup(comp, var, int(evse) if evse else None, inst)
        if err:
            raise DeviceModelError("%s: %s" % (key, err))
        return d

    def _def(self, component, variable, instance, evse_id):
        d, err = self._lookup(component, variable, evse_id, instance)
        if err:
            raise DeviceModelError("%s.%s: %s" % (component, variable, err))
        return d

    # --- the CSMS's view -----------------------------------------------------------------------

    def get(self, component, variable, attribute="Actual", evse_id=None, instance=None):
        """(GetVariableStatusEnumType, wire value or None)."""
        d, err = self._lookup(component, variable, evse_id, instance)
        if err:
            return err, None
        if (attribute or "Actual") != "Actual":
            return "NotSupportedAttributeType", None
        if d.mutability == "WriteOnly":
            return "Rejected", None
        v = self._value.get(d)
        return "Accepted", (None if v is None else to_wire(d, v))

    def set(self, component, variable, value_str, attribute="Actual", evse_id=None, instance=None):
        """(SetVariableStatusEnumType, reasonCode or None); see the module docstring."""
        d, err = self._lookup(component, variable, evse_id, instance)
        if err:
            return err, None
        if (attribute or "Actual") != "Actual":
            return "NotSupportedAttributeType", None
        if d.mutability == "ReadOnly":
            return "Rejected", "ReadOnly"
        typed, reason = parse_value(d, value_str)
        if reason:
            return "Rejected", reason
        wire = to_wire(d, typed)
        if self._written.get(d.key) != wire:
            written = dict(self._written)
            written[d.key] = wire
            try:
                self._store(written)
            except OSError as e:
                log.error("device model: cannot store %s: %s", d.key, e)
                return "Rejected", "InternalError"
            self._written = written
        if d.reboot:
            return ("Accepted", None) if self._value.get(d) == typed else ("RebootRequired", None)
        self._apply(d, typed)
        return "Accepted", None

    def _apply(self, d, typed):
        old = self._value.get(d)
        self._value[d] = typed
        if old != typed and self.on_change is not None:
            try:
                self.on_change(d.component, d.variable, typed)
            except Exception:
                self.callback_errors += 1
                log.exception("device model: on_change for %s failed", d.key)

    def get_variables(self, get_variable_data):
        """GetVariablesResponse.get_variable_result (snake_case) for GetVariablesRequest's
        get_variable_data, one result per item, in order."""
        out = []
        for item in get_variable_data:
            comp, var = item.get("component") or {}, item.get("variable") or {}
            attr = item.get("attribute_type") or "Actual"
            evse = comp.get("evse")
            if (evse and evse.get("connector_id") is not None) or comp.get("instance") is not None:
                status, value = "UnknownComponent", None  # no connector-level components, no instances
            else:
                status, value = self.get(comp.get("name"), var.get("name"), attr,
                                         evse.get("id") if evse else None, var.get("instance"))
            r = {"attribute_status": status, "attribute_type": attr, "component": dict(comp),
                 "variable": dict(var)}
            if value is not None:
                r["attribute_value"] = value
            if status == "Rejected":
                r["attribute_status_info"] = {"reason_code": "WriteOnly"}
            out.append(r)
        return out

    def set_variables(self, set_variable_data):
        """SetVariablesResponse.set_variable_result (snake_case) for SetVariablesRequest's
        set_variable_data, processed in order, one result per item."""
        out = []
        for item in set_variable_data:
            comp, var = item.get("component") or {}, item.get("variable") or {}
            attr = item.get("attribute_type") or "Actual"
            evse = comp.get("evse")
            if (evse and evse.get("connector_id") is not None) or comp.get("instance") is not None:
                status, reason = "UnknownComponent", None
            else:
                status, reason = self.set(comp.get("name"), var.get("name"), item.get("attribute_value"), attr,
                                          evse.get("id") if evse else None, var.get("instance"))
            r = {"attribute_status": status, "attribute_type": attr, "component": dict(comp),
                 "variable": dict(var)}
            if reason:
                r["attribute_status_info"] = {"reason_code": reason}
            out.append(r)
        return out

    def report(self, criteria=None, component_variables=None, report_base="FullInventory"):
        """NotifyReportRequest.report_data (snake_case) for GetBaseReport (report_base
        FullInventory or ConfigurationInventory: the variables the CSMS may write) or GetReport
        (criteria: ComponentCriterionEnumType values, a component matching any; and/or
        component_variables: [{component: {name, evse?}, variable?: {name, instance?}}]).
        SummaryInventory is not supported (ValueError): the station answers NotSupported."""
        if report_base not in ("FullInventory", "ConfigurationInventory"):
            raise ValueError("report base %r not supported" % (report_base,))
        for c in criteria or ():
            if c not in REPORT_CRITERIA:
                raise ValueError("unknown component criterion %r" % (c,))
        out = []
        for d in self._defs:
            if report_base == "ConfigurationInventory" and d.mutability == "ReadOnly":
                continue
            if criteria and not any(self._component_flag(d, c) for c in criteria):
                continue
            if component_variables is not None and not any(self._cv_match(d, cv) for cv in component_variables):
                continue
            out.append(self._report_entry(d))
        return out

    def _component_flag(self, d, name):
        """The component of `d` has a boolean variable `name` that is true."""
        f = self._by_key.get(self._norm(d.component, d.evse_id, name, None))
        return f is not None and f.data_type == "boolean" and self._value.get(f) is True

    @staticmethod
    def _cv_match(d, cv):
        comp, var = cv.get("component") or {}, cv.get("variable")
        if not isinstance(comp.get("name"), str) or comp["name"].lower() != d.component.lower():
            return False
        evse = comp.get("evse")
        if evse is not None and (evse.get("id") != d.evse_id or evse.get("connector_id") is not None):
            return False
        if comp.get("instance") is not None:
            return False
        if var:
            if not isinstance(var.get("name"), str) or var["name"].lower() != d.variable.lower():
                return False
            if var.get("instance") is not None and (var["instance"] or "").lower() != (d.instance or "").lower():
                return False
        return True

    def _report_entry(self, d):
        comp = {"name": d.component}
        if d.evse_id is not None:
            comp["evse"] = {"id": d.evse_id}
        var = {"name": d.variable}
        if d.instance is not None:
            var["instance"] = d.instance
        attr = {"type": "Actual", "mutability": d.mutability, "persistent": d.persistent,
                "constant": d.mutability == "ReadOnly" and not d.dynamic}
        v = self._value.get(d)
        if d.mutability != "WriteOnly" and v is not None:
            attr["value"] = to_wire(d, v)
        ch = {"data_type": d.data_type, "supports_monitoring": False}
        if d.unit:
            ch["unit"] = d.unit
        if d.min_limit is not None:
            ch["min_limit"] = d.min_limit
        if d.max_limit is not None:
            ch["max_limit"] = d.max_limit
        if d.values:
            ch["values_list"] = ",".join(d.values)
        return {"component": comp, "variable": var, "variable_attribute": [attr], "variable_characteristics": ch}

    # --- the station's view --------------------------------------------------------------------

    def value(self, component, variable, instance=None, evse_id=None):
        """The typed value in force (write-only ones included: the station needs its password).
        DeviceModelError for a variable the table does not have."""
        return self._value.get(self._def(component, variable, instance, evse_id))

    def update(self, component, variable, value, instance=None, evse_id=None, persist=None):
        """The station changes a value itself (availability, power, installed profiles, the
        heartbeat interval from BootNotificationResponse): any mutability, typed or wire string,
        checked against the table (DeviceModelError). Stored in `path` when `persist` (default:
        when the variable is one the CSMS writes). Does not call on_change."""
        d = self._def(component, variable, instance, evse_id)
        wire, typed = _typed_to_wire_checked(d, value)
        if persist is None:
            persist = d.persistent
        elif persist and not d.persistent:
            raise DeviceModelError("%s is read-only: its value is not stored" % d.key)
        if persist and self._written.get(d.key) != wire:
            written = dict(self._written)
            written[d.key] = wire
            self._store(written)
            self._written = written
        self._value[d] = typed

    def definitions(self):
        """The table, in report order (VarDef objects; read them, do not change them)."""
        return list(self._defs)

    # --- persistence ---------------------------------------------------------------------------

    def _load(self):
        try:
            os.unlink(self.path + ".tmp")  # an unfinished replacement: the old file stands
        except FileNotFoundError:
            pass
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return
        try:
            doc = json.loads(raw.decode("utf-8"))
            if doc.get("version") != 1 or not isinstance(doc.get("values"), dict):
                raise ValueError("not a version-1 device model file")
        except (ValueError, UnicodeDecodeError, AttributeError) as e:
            raise DeviceModelError("device model file %s is unreadable (%s); refusing to reset the "
                                   "station's configuration" % (self.path, e)) from e
        for key, wire in doc["values"].items():
            try:
                d = self._def_by_name(key)
                if d.mutability == "ReadOnly":
                    raise DeviceModelError("read-only")
                if not isinstance(wire, str):
                    raise DeviceModelError("not a string")
                typed = _typed_to_wire_checked(d, wire)[1]
            except DeviceModelError as e:
                self.persisted_ignored += 1
                log.warning("device model: stored %s=%r ignored: %s", key, wire, e)
                continue
            self._written[d.key] = wire
            self._value[d] = typed

    def _store(self, written):
        if self.path is None:
            return
        data = json.dumps({"version": 1, "values": written}, indent=1, sort_keys=True).encode("utf-8")
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the Basic auth password
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        if self.fsync:
            dfd = os.open(os.path.dirname(os.path.abspath(self.path)), os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
