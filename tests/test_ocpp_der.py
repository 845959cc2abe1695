"""DER controls and grid alarms (ocpp_link/der.py): what a platform may set, what the firmware
then gets as a discharge limit, and the alarms for the controller's trips, each payload checked
against the `ocpp` library's OCPP 2.1 schemas."""

import pytest
from ocpp.messages import Call, _validate_payload

from ocpp_link import der

T0 = 1.75e9  # 2025-06-15, UTC seconds


def _valid(action, payload):
    _validate_payload(Call(unique_id="1", action=action, payload=payload), "2.1")


def test_limit_max_discharge_is_the_only_control_a_platform_sets():
    d = der.DerControls(11000.0)
    assert d.set("a", "LimitMaxDischarge", False, {"priority": 2, "pct_max_discharge_power": 50.0}) == (
        "Accepted", None, [])
    assert d.discharge_limit_w(T0) == pytest.approx(5500.0)
    for ct in ("HVMustTrip", "VoltVar", "FreqDroop", "FixedPFInject", "EnterService"):
        assert d.set("b", ct, False, {"priority": 1})[:2] == ("NotSupported", "UnsupportedRequest")
    assert d.set("c", "LimitMaxDischarge", False, {"priority": 1})[:2] == ("Rejected", "MissingParam")
    assert d.set("c", "LimitMaxDischarge", False, {"priority": 1, "pct_max_discharge_power": 120})[:2] == (
        "Rejected", "ValueOutOfRange")
    bad_start = {"priority": 1, "pct_max_discharge_power": 10, "start_time": "tomorrow"}
    assert d.set("d", "LimitMaxDischarge", False, bad_start)[:2] == ("Rejected", "InvalidValue")
    assert d.set("d", "LimitMaxDischarge", False, {"priority": 1, "pct_max_discharge_power": 10,
                                                   "duration": -5})[:2] == ("Rejected", "InvalidValue")
    assert list(d.controls) == ["a"]  # refusals store nothing
    assert d.discharge_limit_w(T0) == pytest.approx(5500.0)


def test_priority_window_and_clear():
    d = der.DerControls(10000.0)
    d.set("low", "LimitMaxDischarge", True, {"priority": 5, "pct_max_discharge_power": 80.0})
    d.set("high", "LimitMaxDischarge", False, {"priority": 1, "pct_max_discharge_power": 20.0,
                                                "start_time": "2025-06-15T00:00:00Z", "duration": 3600})
    start = der._utc_s("2025-06-15T00:00:00Z")
    assert d.discharge_limit_w(start - 1) == pytest.approx(8000.0)  # not started: the default one
    assert d.discharge_limit_w(start + 10) == pytest.approx(2000.0)  # the higher priority (lower number)
    assert d.discharge_limit_w(start + 3600) == pytest.approx(8000.0)  # its duration is over
    rep = d.report(7, d.matching(), start + 10)
    _valid("ReportDERControl", rep)
    assert {i["id"]: i["isSuperseded"] for i in rep["limitMaxDischarge"]} == {"high": False, "low": True}
    assert d.clear(False, control_id="nope") == "NotFound"
    assert d.clear(True) == "Accepted" and list(d.controls) == ["high"]
    assert d.discharge_limit_w(start - 1) is None


def test_store_is_bounded():
    d = der.DerControls(10000.0)
    for i in range(der.MAX_CONTROLS):
        assert d.set("c%d" % i, "LimitMaxDischarge", False, {"priority": 1, "pct_max_discharge_power": 10})[0] == \
            "Accepted"
    assert d.set("one-more", "LimitMaxDischarge", False, {"priority": 1, "pct_max_discharge_power": 10})[:2] == (
        "Rejected", "OutOfStorage")
    assert d.set("c0", "LimitMaxDischarge", False, {"priority": 1, "pct_max_discharge_power": 30})[0] == "Accepted"


@pytest.mark.parametrize("reason, control, fault", [
    ("undervoltage_stage2", "LVMustTrip", "UnderVoltage"),
    ("overvoltage_10min_mean", "HVMustTrip", "OverVoltage"),
    ("underfrequency_stage1", "LFMustTrip", "UnderFrequency"),
    ("overfrequency_stage2", "HFMustTrip", "OverFrequency"),
])
def test_trips_become_der_alarms_and_the_relay_closing_ends_them(reason, control, fault):
    ts = "2025-06-15T12:00:00.000Z"
    a = der.alarm_for({"kind": "trip", "reason": reason}, ts, None)
    _valid("NotifyDERAlarm", a)
    assert (a["controlType"], a["gridEventFault"], a.get("alarmEnded")) == (control, fault, None)
    end = der.alarm_for({"kind": "relay_close"}, ts, (a["controlType"], a["gridEventFault"]))
    _valid("NotifyDERAlarm", end)
    assert end["alarmEnded"] is True and end["controlType"] == control


def test_events_without_an_alarm():
    ts = "2025-06-15T12:00:00.000Z"
    assert der.alarm_for({"kind": "trip", "reason": "inverter_overcurrent"}, ts, None) is None
    assert der.alarm_for({"kind": "relay_close"}, ts, None) is None  # no alarm in force
    assert der.alarm_for({"kind": "mode_change", "mode": "v2g"}, ts, None) is None
