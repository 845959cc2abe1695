"""The OCPP station's device model: every GetVariables / SetVariables status, typing and range
checks with their reason codes, read-only and write-only variables, persistence across a
restart (and a torn temp file), and reports and results that validate against the OCPP 2.1
JSON schemas of the `ocpp` library after its snake_case -> camelCase conversion."""

import json
import os
import pathlib

import jsonschema
import ocpp
import pytest
from ocpp.charge_point import camel_to_snake_case, snake_to_camel_case

from ocpp_link import device_model
from ocpp_link.device_model import DeviceModel, DeviceModelError

SCHEMAS = pathlib.Path(ocpp.__file__).parent / "v21" / "schemas"
PASSWORD = "0123456789abcdefXYZ"


def schema(name):
    return json.loads((SCHEMAS / (name + ".json")).read_text())


def enum(schema_name, type_name):
    return schema(schema_name)["definitions"][type_name]["enum"]


def validate_wire(schema_name, payload):
    """Convert a snake_case payload as the library does, check every key comes back unchanged,
    and validate it against the library's schema."""
    wire = snake_to_camel_case(payload)
    assert camel_to_snake_case(wire) == payload, "a key does not survive the library's case conversion"
    jsonschema.Draft6Validator(schema(schema_name), format_checker=jsonschema.FormatChecker()).validate(wire)
    return wire


@pytest.fixture
def dm():
    return DeviceModel()


# --- GetVariables ------------------------------------------------------------------------------

def test_get_gives_every_get_variable_status(dm):
    seen = {}
    cases = [
        (("OCPPCommCtrlr", "HeartbeatInterval"), {}, ("Accepted", "60")),
        (("ocppcommctrlr", "MESSAGETIMEOUT"), {"instance": "default"}, ("Accepted", "30")),
        (("EVSE", "Power"), {"evse_id": 1}, ("Accepted", "0")),
        (("SecurityCtrlr", "BasicAuthPassword"), {}, ("Rejected", None)),
        (("NoSuchCtrlr", "Enabled"), {}, ("UnknownComponent", None)),
        (("EVSE", "Power"), {}, ("UnknownComponent", None)),  # an EVSE component needs its id
        (("EVSE", "Power"), {"evse_id": 2}, ("UnknownComponent", None)),
        (("OCPPCommCtrlr", "HeartbeatInterval"), {"evse_id": 1}, ("UnknownComponent", None)),
        (("OCPPCommCtrlr", "NoSuchVariable"), {}, ("UnknownVariable", None)),
        (("OCPPCommCtrlr", "MessageTimeout"), {}, ("UnknownVariable", None)),  # instance Default missing
        (("OCPPCommCtrlr", "MessageAttempts"), {"instance": "Default"}, ("UnknownVariable", None)),
        (("OCPPCommCtrlr", "HeartbeatInterval"), {"attribute": "Target"}, ("NotSupportedAttributeType", None)),
        (("OCPPCommCtrlr", "HeartbeatInterval"), {"attribute": "MaxSet"}, ("NotSupportedAttributeType", None)),
    ]
    for args, kw, want in cases:
        got = dm.get(*args, **kw)
        assert got == want, (args, kw)
        seen[got[0]] = True
    assert sorted(seen) == sorted(enum("GetVariablesResponse", "GetVariableStatusEnumType"))


def test_get_results_validate_inside_a_get_variables_response(dm):
    dm.set("SecurityCtrlr", "BasicAuthPassword", PASSWORD)
    data = [
        {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}},
        {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "MessageTimeout", "instance": "Default"},
         "attribute_type": "Actual"},
        {"component": {"name": "V2XChargingCtrlr", "evse": {"id": 1}}, "variable": {"name": "SupportedOperationModes"}},
        {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"}},
        {"component": {"name": "Nope"}, "variable": {"name": "X"}},
        {"component": {"name": "EVSE", "evse": {"id": 1, "connector_id": 1}}, "variable": {"name": "Power"}},
        {"component": {"name": "TxCtrlr", "instance": "Main"}, "variable": {"name": "TxStartPoint"}},
        {"component": {"name": "TxCtrlr"}, "variable": {"name": "Nope"}},
        {"component": {"name": "TxCtrlr"}, "variable": {"name": "TxStartPoint"}, "attribute_type": "MinSet"},
    ]
    validate_wire("GetVariablesRequest", {"get_variable_data": data})
    results = dm.get_variables(data)
    validate_wire("GetVariablesResponse", {"get_variable_result": results})
    assert [r["attribute_status"] for r in results] == [
        "Accepted", "Accepted", "Accepted", "Rejected", "UnknownComponent", "UnknownComponent",
        "UnknownComponent", "UnknownVariable", "NotSupportedAttributeType"]
    assert results[2]["attribute_value"] == ("ChargingOnly,CentralSetpoint,ExternalSetpoint,ExternalLimits,"
                                             "LocalFrequency,LocalLoadBalancing,Idle")
    assert "attribute_value" not in results[3] and results[3]["attribute_status_info"] == {"reason_code": "WriteOnly"}
    assert all(r["component"] == d["component"] and r["variable"] == d["variable"] for r, d in zip(results, data))


# --- SetVariables ------------------------------------------------------------------------------

def test_set_gives_every_set_variable_status(dm):
    cases = [
        (("OCPPCommCtrlr", "HeartbeatInterval", "300"), {}, ("Accepted", None)),
        (("OCPPCommCtrlr", "HeartbeatInterval", "0"), {}, ("Rejected", "ValueTooLow")),
        (("SmartChargingCtrlr", "ProfileStackLevel", "3"), {}, ("Rejected", "ReadOnly")),
        (("NoSuchCtrlr", "Enabled", "true"), {}, ("UnknownComponent", None)),
        (("V2XChargingCtrlr", "Enabled", "true"), {}, ("UnknownComponent", None)),  # lives on EVSE 1
        (("AuthCtrlr", "NoSuchVariable", "1"), {}, ("UnknownVariable", None)),
        (("AuthCtrlr", "Enabled", "true"), {"attribute": "Target"}, ("NotSupportedAttributeType", None)),
        (("TxCtrlr", "TxStartPoint", "EVConnected,Authorized"), {}, ("RebootRequired", None)),
    ]
    seen = set()
    for args, kw, want in cases:
        assert dm.set(*args, **kw) == want, (args, kw)
        seen.add(want[0])
    assert seen == set(enum("SetVariablesResponse", "SetVariableStatusEnumType"))
    assert dm.value("OCPPCommCtrlr", "HeartbeatInterval") == 300
    assert dm.value("V2XChargingCtrlr", "Enabled", evse_id=1) is True


def test_set_results_validate_inside_a_set_variables_response(dm):
    data = [
        {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}, "attribute_value": "90"},
        {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}, "attribute_value": "x"},
        {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "Identity"}, "attribute_value": "other"},
        {"component": {"name": "TxCtrlr"}, "variable": {"name": "TxStopPoint"}, "attribute_value": "Authorized"},
        {"component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "Power"}, "attribute_value": "1",
         "attribute_type": "MaxSet"},
        {"component": {"name": "EVSE", "evse": {"id": 3}}, "variable": {"name": "Power"}, "attribute_value": "1"},
        {"component": {"name": "AuthCtrlr"}, "variable": {"name": "Enabled", "instance": "X"}, "attribute_value": "1"},
    ]
    validate_wire("SetVariablesRequest", {"set_variable_data": data})
    results = dm.set_variables(data)
    validate_wire("SetVariablesResponse", {"set_variable_result": results})
    assert [(r["attribute_status"], r.get("attribute_status_info", {}).get("reason_code")) for r in results] == [
        ("Accepted", None), ("Rejected", "InvalidValue"), ("Rejected", "ReadOnly"), ("RebootRequired", None),
        ("NotSupportedAttributeType", None), ("UnknownComponent", None), ("UnknownVariable", None)]


CHECKS = [
    # component, variable, kw, wire value in, (status, reason), typed value after, wire value after
    ("OCPPCommCtrlr", "HeartbeatInterval", {}, "+30", ("Accepted", None), 30, "30"),
    ("OCPPCommCtrlr", "HeartbeatInterval", {}, "86400", ("Accepted", None), 86400, "86400"),
    ("OCPPCommCtrlr", "HeartbeatInterval", {}, "86401", ("Rejected", "ValueTooHigh"), 60, "60"),
    ("OCPPCommCtrlr", "HeartbeatInterval", {}, "-5", ("Rejected", "ValueTooLow"), 60, "60"),
    ("OCPPCommCtrlr", "HeartbeatInterval", {}, "1.5", ("Rejected", "InvalidValue"), 60, "60"),
    ("OCPPCommCtrlr", "HeartbeatInterval", {}, " 60", ("Rejected", "InvalidValue"), 60, "60"),
    ("OCPPCommCtrlr", "HeartbeatInterval", {}, "", ("Rejected", "InvalidValue"), 60, "60"),
    ("OCPPCommCtrlr", "HeartbeatInterval", {}, "\u0665", ("Rejected", "InvalidValue"), 60, "60"),  # Arabic 5
    ("OCPPCommCtrlr", "HeartbeatInterval", {}, None, ("Rejected", "InvalidValue"), 60, "60"),
    ("OCPPCommCtrlr", "MessageAttempts", {"instance": "TransactionEvent"}, "0", ("Accepted", None), 0, "0"),
    ("SmartChargingCtrlr", "LimitChangeSignificance", {}, "12.5", ("Accepted", None), 12.5, "12.5"),
    ("SmartChargingCtrlr", "LimitChangeSignificance", {}, "2e1", ("Accepted", None), 20.0, "20"),
    ("SmartChargingCtrlr", "LimitChangeSignificance", {}, ".5", ("Accepted", None), 0.5, "0.5"),
    ("SmartChargingCtrlr", "LimitChangeSignificance", {}, "100.01", ("Rejected", "ValueTooHigh"), 10.0, "10"),
    ("SmartChargingCtrlr", "LimitChangeSignificance", {}, "-0.1", ("Rejected", "ValueTooLow"), 10.0, "10"),
    ("SmartChargingCtrlr", "LimitChangeSignificance", {}, "nan", ("Rejected", "InvalidValue"), 10.0, "10"),
    ("SmartChargingCtrlr", "LimitChangeSignificance", {}, "inf", ("Rejected", "InvalidValue"), 10.0, "10"),
    ("SmartChargingCtrlr", "LimitChangeSignificance", {}, "1e999", ("Rejected", "InvalidValue"), 10.0, "10"),
    ("SmartChargingCtrlr", "LimitChangeSignificance", {}, "1,5", ("Rejected", "InvalidValue"), 10.0, "10"),
    ("AuthCtrlr", "Enabled", {}, "TRUE", ("Accepted", None), True, "true"),
    ("AuthCtrlr", "Enabled", {}, "1", ("Rejected", "InvalidValue"), False, "false"),
    ("AuthCtrlr", "Enabled", {}, "yes", ("Rejected", "InvalidValue"), False, "false"),
    ("SampledDataCtrlr", "TxUpdatedMeasurands", {}, " SoC , Voltage ", ("Accepted", None), ["SoC", "Voltage"],
     "SoC,Voltage"),
    ("SampledDataCtrlr", "TxUpdatedMeasurands", {}, "", ("Accepted", None), [], ""),
    ("SampledDataCtrlr", "TxUpdatedMeasurands", {}, "SoC,SoC", ("Rejected", "InvalidValue"), None, None),
    ("SampledDataCtrlr", "TxUpdatedMeasurands", {}, "SoC,,Voltage", ("Rejected", "InvalidValue"), None, None),
    ("SampledDataCtrlr", "TxUpdatedMeasurands", {}, "Temperature", ("Rejected", "InvalidValue"), None, None),
    ("SampledDataCtrlr", "TxUpdatedMeasurands", {}, "soc", ("Rejected", "InvalidValue"), None, None),
    ("TxCtrlr", "TxStartPoint", {}, "", ("Rejected", "InvalidValue"), ["EVConnected"], "EVConnected"),
    ("TxCtrlr", "TxStartPoint", {}, "DataSigned", ("Rejected", "InvalidValue"), ["EVConnected"], "EVConnected"),
    ("TxCtrlr", "TxStartPoint", {}, "EVConnected", ("Accepted", None), ["EVConnected"], "EVConnected"),
    ("SecurityCtrlr", "BasicAuthPassword", {}, "x" * 15, ("Rejected", "ValueOutOfRange"), None, None),
    ("SecurityCtrlr", "BasicAuthPassword", {}, "x" * 41, ("Rejected", "ValueOutOfRange"), None, None),
    ("SecurityCtrlr", "BasicAuthPassword", {}, "x" * 40, ("Accepted", None), "x" * 40, None),
]


@pytest.mark.parametrize("comp,var,kw,wire,want,typed,after", CHECKS)
def test_values_are_typed_and_range_checked(dm, comp, var, kw, wire, want, typed, after):
    default = dm.value(comp, var, **kw)
    assert dm.set(comp, var, wire, **kw) == want
    if typed is None and after is None and want[0] == "Rejected":
        assert dm.value(comp, var, **kw) == default  # a refused value leaves the old one
        return
    assert dm.value(comp, var, **kw) == typed
    assert type(dm.value(comp, var, **kw)) is type(typed)
    if after is not None:
        assert dm.get(comp, var, **kw) == ("Accepted", after)


def test_read_only_variables_refuse_every_write(dm):
    ro = [d for d in dm.definitions() if d.mutability == "ReadOnly"]
    assert len(ro) >= 15
    for d in ro:
        before = dm.get(d.component, d.variable, evse_id=d.evse_id, instance=d.instance)
        assert before[0] == "Accepted"
        assert dm.set(d.component, d.variable, before[1], evse_id=d.evse_id, instance=d.instance) == \
            ("Rejected", "ReadOnly")
        assert dm.get(d.component, d.variable, evse_id=d.evse_id, instance=d.instance) == before


def test_write_only_password_is_never_read_back(dm):
    assert dm.set("SecurityCtrlr", "BasicAuthPassword", PASSWORD) == ("Accepted", None)
    assert dm.get("SecurityCtrlr", "BasicAuthPassword") == ("Rejected", None)
    assert dm.value("SecurityCtrlr", "BasicAuthPassword") == PASSWORD  # the station itself needs it
    entry, = [e for e in dm.report() if e["variable"]["name"] == "BasicAuthPassword"]
    assert entry["variable_attribute"] == [{"type": "Actual", "mutability": "WriteOnly", "persistent": True,
                                            "constant": False}]
    assert PASSWORD not in json.dumps(dm.report())


def test_on_change_sees_typed_values_once(dm):
    calls = []
    dm.on_change = lambda c, v, val: calls.append((c, v, val))
    dm.set("OCPPCommCtrlr", "HeartbeatInterval", "120")
    dm.set("OCPPCommCtrlr", "HeartbeatInterval", "120")  # unchanged: no call
    dm.set("OCPPCommCtrlr", "HeartbeatInterval", "x")  # refused: no call
    dm.set("AlignedDataCtrlr", "Measurands", "SoC")
    dm.set("TxCtrlr", "TxStopPoint", "Authorized")  # takes effect at restart: no call now
    assert calls == [("OCPPCommCtrlr", "HeartbeatInterval", 120), ("AlignedDataCtrlr", "Measurands", ["SoC"])]

    def boom(*a):
        raise RuntimeError("listener bug")

    dm.on_change = boom
    assert dm.set("OCPPCommCtrlr", "HeartbeatInterval", "30") == ("Accepted", None)
    assert dm.callback_errors == 1 and dm.value("OCPPCommCtrlr", "HeartbeatInterval") == 30


# --- persistence -------------------------------------------------------------------------------

def test_written_values_persist_across_a_restart(tmp_path):
    path = tmp_path / "dm.json"
    dm = DeviceModel(path=path, overrides={"SecurityCtrlr.Identity": "station-7", "OCPPCommCtrlr.OfflineThreshold": 120})
    assert dm.set("OCPPCommCtrlr", "HeartbeatInterval", "240") == ("Accepted", None)
    assert dm.set("SampledDataCtrlr", "TxUpdatedMeasurands", "SoC,Power.Active.Import") == ("Accepted", None)
    assert dm.set("SecurityCtrlr", "BasicAuthPassword", PASSWORD) == ("Accepted", None)
    assert dm.set("TxCtrlr", "TxStartPoint", "PowerPathClosed") == ("RebootRequired", None)
    assert dm.set("V2XChargingCtrlr", "Enabled", "false", evse_id=1) == ("Accepted", None)
    dm.update("EVSE", "AvailabilityState", "Occupied", evse_id=1)  # run-time state: not stored
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"  # the file holds the password
    dm2 = DeviceModel(path=path, overrides={"SecurityCtrlr.Identity": "station-7",
                                            "OCPPCommCtrlr.HeartbeatInterval": 15})
    assert dm2.value("OCPPCommCtrlr", "HeartbeatInterval") == 240  # stored beats override
    assert dm2.value("SampledDataCtrlr", "TxUpdatedMeasurands") == ["SoC", "Power.Active.Import"]
    assert dm2.value("SecurityCtrlr", "BasicAuthPassword") == PASSWORD
    assert dm2.value("TxCtrlr", "TxStartPoint") == ["PowerPathClosed"]  # in force after the restart
    assert dm2.value("V2XChargingCtrlr", "Enabled", evse_id=1) is False
    assert dm2.value("SecurityCtrlr", "Identity") == "station-7"
    assert dm2.value("OCPPCommCtrlr", "OfflineThreshold") == 300  # the first run's override was not stored
    assert dm2.value("EVSE", "AvailabilityState", evse_id=1) == "Available"
    assert dm2.persisted_ignored == 0


def test_a_torn_temp_file_leaves_the_old_values(tmp_path):
    path = tmp_path / "dm.json"
    dm = DeviceModel(path=path)
    dm.set("OCPPCommCtrlr", "HeartbeatInterval", "240")
    good = path.read_bytes()
    (tmp_path / "dm.json.tmp").write_bytes(good[:len(good) // 2])  # a cut while writing the next version
    dm2 = DeviceModel(path=path)
    assert dm2.value("OCPPCommCtrlr", "HeartbeatInterval") == 240
    assert not (tmp_path / "dm.json.tmp").exists()


def test_a_cut_before_the_rename_leaves_the_old_values(tmp_path, monkeypatch):
    path = tmp_path / "dm.json"
    dm = DeviceModel(path=path, fsync=False)
    dm.set("OCPPCommCtrlr", "HeartbeatInterval", "240")
    good = path.read_bytes()

    def cut(src, dst):
        raise OSError(5, "power cut before the rename")

    monkeypatch.setattr(os, "replace", cut)
    assert dm.set("OCPPCommCtrlr", "HeartbeatInterval", "500") == ("Rejected", "InternalError")
    monkeypatch.undo()
    assert dm.value("OCPPCommCtrlr", "HeartbeatInterval") == 240  # memory matches the disk
    assert path.read_bytes() == good and not (tmp_path / "dm.json.tmp").exists()
    assert DeviceModel(path=path).value("OCPPCommCtrlr", "HeartbeatInterval") == 240


def test_an_unreadable_file_is_refused_and_stale_entries_skipped(tmp_path):
    path = tmp_path / "dm.json"
    for bad in (b"{not json", b"\xff\xfe", b"[]", b'{"version": 2, "values": {}}', b'{"version": 1}'):
        path.write_bytes(bad)
        with pytest.raises(DeviceModelError, match="unreadable"):
            DeviceModel(path=path)
    path.write_text(json.dumps({"version": 1, "values": {
        "OCPPCommCtrlr.HeartbeatInterval": "45",
        "OCPPCommCtrlr.RemovedInAnUpdate": "1",
        "OCPPCommCtrlr.OfflineThreshold": "99999999",
        "SecurityCtrlr.Identity": "sneaky",  # read-only: never written by the CSMS
        "AuthCtrlr.Enabled": True,
        "not a key": "1",
    }}))
    dm = DeviceModel(path=path)
    assert dm.persisted_ignored == 5
    assert dm.value("OCPPCommCtrlr", "HeartbeatInterval") == 45
    assert dm.value("OCPPCommCtrlr", "OfflineThreshold") == 300
    assert dm.value("SecurityCtrlr", "Identity") == "v2xgw"
    assert dm.value("AuthCtrlr", "Enabled") is False


# --- the station's side ------------------------------------------------------------------------

def test_overrides_and_updates_are_checked(tmp_path):
    dm = DeviceModel(overrides={"SecurityCtrlr.SecurityProfile": 2, "EVSE[1].Power": 1500,
                                "SmartChargingCtrlr.Entries[ChargingProfiles]": "3",
                                "V2XChargingCtrlr[1].SupportedEnergyTransferModes": ["AC_BPT"],
                                "SecurityCtrlr.BasicAuthPassword": PASSWORD},
                     rated_power_w=7400)
    assert dm.get("SecurityCtrlr", "SecurityProfile") == ("Accepted", "2")
    assert dm.get("EVSE", "Power", evse_id=1) == ("Accepted", "1500")
    assert dm.get("V2XChargingCtrlr", "SupportedEnergyTransferModes", evse_id=1) == ("Accepted", "AC_BPT")
    for bad in ({"SecurityCtrlr.SecurityProfile": 4}, {"SecurityCtrlr.SecurityProfile": True},
                {"SecurityCtrlr.SecurityProfile": 1.0}, {"EVSE.Power": 1}, {"EVSE[1].Power": 7401},
                {"Nope.Enabled": "true"}, {"AuthCtrlr.Enabled": "maybe"}, {"AuthCtrlr": "true"},
                {"ChargingStation.Model": "M" * 21}):
        with pytest.raises(DeviceModelError):
            DeviceModel(overrides=bad, rated_power_w=7400)
    path = tmp_path / "dm.json"
    dm = DeviceModel(path=path)
    dm.update("EVSE", "Power", -3300.5, evse_id=1)
    dm.update("ChargingStation", "AvailabilityState", "Faulted")
    dm.update("OCPPCommCtrlr", "HeartbeatInterval", 900)  # from BootNotificationResponse: stored
    assert dm.get("EVSE", "Power", evse_id=1) == ("Accepted", "-3300.5")
    assert dm.get("ChargingStation", "AvailabilityState") == ("Accepted", "Faulted")
    with pytest.raises(DeviceModelError):
        dm.update("ChargingStation", "AvailabilityState", "Broken")
    with pytest.raises(DeviceModelError):
        dm.update("EVSE", "Power", -11000.5, evse_id=1)
    with pytest.raises(DeviceModelError):
        dm.value("OCPPCommCtrlr", "Nope")
    with pytest.raises(DeviceModelError, match="read-only"):
        dm.update("SecurityCtrlr", "SecurityProfile", 2, persist=True)  # would be ignored at the next start
    dm2 = DeviceModel(path=path)
    assert dm2.value("OCPPCommCtrlr", "HeartbeatInterval") == 900
    assert dm2.value("EVSE", "Power", evse_id=1) == 0.0


# --- reports -----------------------------------------------------------------------------------

def notify_report(report_data):
    return {"request_id": 7, "generated_at": "2025-06-01T12:00:00Z", "tbc": False, "seq_no": 0,
            "report_data": report_data}


def test_full_report_validates_inside_a_notify_report_request(dm):
    dm.set("SecurityCtrlr", "BasicAuthPassword", PASSWORD)
    dm.set("SampledDataCtrlr", "TxEndedMeasurands", "")
    dm.update("EVSE", "Power", 7200.25, evse_id=1)
    data = dm.report()
    wire = validate_wire("NotifyReportRequest", notify_report(data))
    assert len(wire["reportData"]) == len(dm.definitions())
    keys = set()

    def walk(x):
        if isinstance(x, dict):
            for k, v in x.items():
                keys.add(k)
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(wire["reportData"])
    assert keys <= {"component", "name", "evse", "id", "variable", "instance", "variableAttribute", "type",
                    "value", "mutability", "persistent", "constant", "variableCharacteristics", "dataType",
                    "supportsMonitoring", "unit", "minLimit", "maxLimit", "valuesList"}
    for e in data:  # the report says what get says
        c, v = e["component"], e["variable"]
        status, value = dm.get(c["name"], v["name"], evse_id=c.get("evse", {}).get("id"), instance=v.get("instance"))
        attr = e["variable_attribute"][0]
        assert attr.get("value") == value and attr["mutability"] in ("ReadOnly", "ReadWrite", "WriteOnly")
        assert (status == "Rejected") == (attr["mutability"] == "WriteOnly")


def test_value_lists_use_the_schema_enumerations(dm):
    by = {(e["component"]["name"], e["variable"]["name"], e["variable"].get("instance")): e for e in dm.report()}
    measurands = set(enum("MeterValuesRequest", "MeasurandEnumType"))
    for key in [("SampledDataCtrlr", n, None) for n in ("TxStartedMeasurands", "TxUpdatedMeasurands",
                                                         "TxEndedMeasurands")] + [("AlignedDataCtrlr", "Measurands", None)]:
        ch = by[key]["variable_characteristics"]
        assert set(ch["values_list"].split(",")) <= measurands
        assert set(by[key]["variable_attribute"][0]["value"].split(",")) <= set(ch["values_list"].split(","))
    modes = by[("V2XChargingCtrlr", "SupportedOperationModes", None)]
    assert modes["variable_characteristics"]["values_list"].split(",") == enum("SetChargingProfileRequest",
                                                                                "OperationModeEnumType")
    etm = by[("V2XChargingCtrlr", "SupportedEnergyTransferModes", None)]
    assert etm["variable_characteristics"]["values_list"].split(",") == enum("NotifyEVChargingNeedsRequest",
                                                                              "EnergyTransferModeEnumType")
    assert etm["variable_attribute"][0]["value"] == "AC_single_phase,AC_three_phase,AC_BPT"
    assert modes["component"] == {"name": "V2XChargingCtrlr", "evse": {"id": 1}}
    rate = by[("SmartChargingCtrlr", "RateUnit", None)]
    assert set(rate["variable_attribute"][0]["value"].split(",")) == set(enum("SetChargingProfileRequest",
                                                                             "ChargingRateUnitEnumType"))
    for name in ("ChargingStation", "EVSE"):
        st = by[(name, "AvailabilityState", None)]["variable_characteristics"]["values_list"]
        assert st.split(",") == enum("StatusNotificationRequest", "ConnectorStatusEnumType")
    power = by[("EVSE", "Power", None)]["variable_characteristics"]
    assert (power["unit"], power["max_limit"], power["min_limit"]) == ("W", 11000.0, -11000.0)


def test_configuration_and_filtered_reports(dm):
    conf = dm.report(report_base="ConfigurationInventory")
    validate_wire("NotifyReportRequest", notify_report(conf))
    assert conf and all(e["variable_attribute"][0]["mutability"] != "ReadOnly" for e in conf)
    assert any(e["variable"]["name"] == "BasicAuthPassword" for e in conf)

    def comps(report):
        return {(e["component"]["name"], e["component"].get("evse", {}).get("id")) for e in report}

    enabled = dm.report(criteria=["Enabled"])
    assert comps(enabled) == {("SampledDataCtrlr", None), ("SmartChargingCtrlr", None), ("V2XChargingCtrlr", 1)}
    dm.set("AuthCtrlr", "Enabled", "true")
    assert ("AuthCtrlr", None) in comps(dm.report(criteria=["Enabled"]))
    assert comps(dm.report(criteria=["Available"])) == {("SmartChargingCtrlr", None), ("V2XChargingCtrlr", 1),
                                                        ("ChargingStation", None), ("EVSE", 1)}
    assert dm.report(criteria=["Problem"]) == [] and dm.report(criteria=["Active"]) == []
    one = dm.report(component_variables=[{"component": {"name": "ocppcommctrlr"},
                                          "variable": {"name": "MessageTimeout", "instance": "Default"}}])
    assert [e["variable"] for e in one] == [{"name": "MessageTimeout", "instance": "Default"}]
    evse = dm.report(component_variables=[{"component": {"name": "EVSE", "evse": {"id": 1}}}])
    assert [e["variable"]["name"] for e in evse] == ["Available", "AvailabilityState", "Power"]
    assert dm.report(component_variables=[{"component": {"name": "EVSE", "evse": {"id": 2}}}]) == []
    both = dm.report(criteria=["Enabled"], component_variables=[{"component": {"name": "AuthCtrlr"}}])
    assert [(e["component"]["name"], e["variable"]["name"]) for e in both] == [("AuthCtrlr", "Enabled")]
    with pytest.raises(ValueError):
        dm.report(report_base="SummaryInventory")
    with pytest.raises(ValueError):
        dm.report(criteria=["Shiny"])


def test_every_definition_is_consistent():
    dm = DeviceModel()
    types = set(enum("NotifyReportRequest", "DataEnumType"))
    keys = set()
    for d in dm.definitions():
        assert d.data_type in types and d.mutability in enum("NotifyReportRequest", "MutabilityEnumType")
        assert len(d.component) <= 50 and len(d.variable) <= 50
        assert d.key not in keys
        keys.add(d.key)
        if d.default is not None:
            assert device_model.parse_value(d, d.default)[1] is None, d.key
            assert device_model.to_wire(d, device_model.parse_value(d, d.default)[0]) == d.default, d.key
        if d.data_type in ("OptionList", "MemberList", "SequenceList"):
            assert d.values
