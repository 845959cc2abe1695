"""ocpp_link.smart_charging: the charging-profile store and scheduler (OCPP 2.1 block K, one EVSE).

Wire checks use the `ocpp` library itself: its camel/snake conversion and its JSON schemas
(GetCompositeScheduleResponse, ReportChargingProfilesRequest, SetChargingProfileResponse)."""

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ocpp.charge_point import camel_to_snake_case, snake_to_camel_case
from ocpp.messages import MessageType, get_validator

from ocpp_link.smart_charging import (REASONS, SUPPORTED_MODES, Command, ProfileError, ProfileStore, format_time,
                                      parse_time)

T0 = parse_time("2025-03-01T00:00:00Z")
RATED_C = 11000.0
RATED_D = 10000.0
HOUR = 3600.0


def iso(ts):
    return format_time(ts)


def period(start=0, **kw):
    p = {"start_period": start}
    p.update(kw)
    return p


def prof(pid=1, purpose="TxDefaultProfile", kind="Absolute", stack=0, periods=None, start=T0, unit="W",
         duration=None, **extra):
    sched = {"id": 1, "charging_rate_unit": unit,
             "charging_schedule_period": periods if periods is not None else [period(0, limit=7000)]}
    if start is not None:
        sched["start_schedule"] = iso(start)
    if duration is not None:
        sched["duration"] = duration
    p = {"id": pid, "stack_level": stack, "charging_profile_purpose": purpose, "charging_profile_kind": kind,
         "charging_schedule": [sched]}
    p.update(extra)
    return p


def store(**kw):
    return ProfileStore(RATED_C, RATED_D, **kw)


def accepted(s, evse, p, now=T0, tx_id=None):
    r = s.set(evse, p, now, tx_id=tx_id)
    assert r == ("Accepted", None, None), r
    return r


def validate(action, payload, call=True):
    """Validate a camelCase payload with the ocpp library's 2.1 schema; returns the error list."""
    v = get_validator(MessageType.Call if call else MessageType.CallResult, action, "2.1")
    return [e.message for e in v.iter_errors(payload)]


def composite_ok(comp):
    assert validate("GetCompositeSchedule", {"status": "Accepted", "schedule": snake_to_camel_case(comp)},
                    call=False) == []


# ------------------------------------------------------------------------------------------- rejections

def _tx(p, tx="tx-1"):
    p["transaction_id"] = tx
    return p


def _sched(p, **kw):
    p["charging_schedule"][0].update(kw)
    return p


def _drop(p, key):
    del p["charging_schedule"][0][key]
    return p


# (name, evse, profile, running tx or None, reason)
REJECTIONS = [
    ("evse 2", 2, prof(), None, "UnknownEvse"),
    ("evse -1", -1, prof(), None, "UnknownEvse"),
    ("external constraints", 0, prof(purpose="ChargingStationExternalConstraints"), None, "UnsupportedPurpose"),
    ("priority charging", 1, prof(purpose="PriorityCharging"), None, "UnsupportedPurpose"),
    ("local generation", 0, prof(purpose="LocalGeneration"), None, "UnsupportedPurpose"),
    ("unknown purpose", 1, prof(purpose="Whatever"), None, "InvalidProfile"),
    ("max profile on evse 1", 1, prof(purpose="ChargingStationMaxProfile"), None, "InvalidProfile"),
    ("max profile relative", 0, prof(purpose="ChargingStationMaxProfile", kind="Relative", start=None), None,
     "InvalidProfile"),
    ("tx profile on evse 0", 0, _tx(prof(purpose="TxProfile")), "tx-1", "InvalidProfile"),
    ("transaction id on a default", 1, _tx(prof()), "tx-1", "InvalidProfile"),
    ("id not an integer", 1, dict(prof(), id="7"), None, "InvalidProfile"),
    ("no charging schedule key", 1, {k: v for k, v in prof().items() if k != "charging_schedule"}, None,
     "InvalidProfile"),
    ("tx profile without transaction id", 1, prof(purpose="TxProfile"), "tx-1", "TxNotFound"),
    ("tx profile, no transaction", 1, _tx(prof(purpose="TxProfile")), None, "TxNotFound"),
    ("tx profile, other transaction", 1, _tx(prof(purpose="TxProfile"), "tx-0"), "tx-1", "TxNotFound"),
    ("stack level -1", 1, prof(stack=-1), None, "InvalidStackLevel"),
    ("stack level above max", 1, prof(stack=100), None, "InvalidStackLevel"),
    ("unknown kind", 1, prof(kind="Sometimes"), None, "UnsupportedKind"),
    ("recurring without recurrency", 1, prof(kind="Recurring"), None, "InvalidSchedule"),
    ("recurring without start", 1, prof(kind="Recurring", start=None, recurrency_kind="Daily"), None,
     "InvalidSchedule"),
    ("relative with start", 1, prof(kind="Relative"), None, "InvalidSchedule"),
    ("absolute without start", 1, prof(start=None), None, "InvalidSchedule"),
    ("bad start schedule", 1, _sched(prof(), start_schedule="yesterday"), None, "InvalidSchedule"),
    ("no periods", 1, prof(periods=[]), None, "InvalidSchedule"),
    ("first period not at 0", 1, prof(periods=[period(10, limit=1)]), None, "InvalidSchedule"),
    ("periods not increasing", 1, prof(periods=[period(0, limit=1), period(60, limit=2), period(60, limit=3)]),
     None, "InvalidSchedule"),
    ("period after the end", 1, prof(periods=[period(0, limit=1), period(600, limit=2)], duration=600), None,
     "InvalidSchedule"),
    ("zero duration", 1, prof(duration=0), None, "InvalidSchedule"),
    ("dynamic with two periods", 1, prof(kind="Dynamic", periods=[period(0, limit=1), period(60, limit=2)]),
     None, "InvalidSchedule"),
    ("central setpoint without setpoint", 1, prof(periods=[period(0, operation_mode="CentralSetpoint")]), None,
     "InvalidSchedule"),
    ("setpoint above limit", 1, prof(periods=[period(0, operation_mode="CentralSetpoint", limit=3000,
                                                     setpoint=3500)]), None, "InvalidSchedule"),
    ("setpoint below discharge limit", 1, prof(periods=[period(0, operation_mode="CentralSetpoint",
                                                               discharge_limit=-3000, setpoint=-3500)]), None,
     "InvalidSchedule"),
    ("charging only, negative setpoint", 1, prof(periods=[period(0, operation_mode="ChargingOnly",
                                                                 setpoint=-100)]), None, "InvalidSchedule"),
    ("charging only, discharge limit", 1, prof(periods=[period(0, operation_mode="ChargingOnly",
                                                               discharge_limit=-100)]), None, "InvalidSchedule"),
    ("default mode is charging only", 1, prof(periods=[period(0, limit=5000, discharge_limit=-100)]), None,
     "InvalidSchedule"),
    ("curve of one point", 1, prof(periods=[period(0, operation_mode="LocalFrequency",
                                                   v2x_freq_watt_curve=[{"frequency": 50.0, "power": 0}])]),
     None, "InvalidSchedule"),
    ("curve of nine points", 1, prof(periods=[period(0, operation_mode="LocalFrequency", v2x_freq_watt_curve=[
        {"frequency": 49.6 + 0.1 * i, "power": 0} for i in range(9)])]), None, "InvalidSchedule"),
    ("curve not increasing", 1, prof(periods=[period(0, operation_mode="LocalFrequency", v2x_freq_watt_curve=[
        {"frequency": 50.2, "power": -1000}, {"frequency": 49.8, "power": 1000}])]), None, "InvalidSchedule"),
    ("two schedules", 1, dict(prof(), charging_schedule=prof()["charging_schedule"] * 2), None, "TooManyElements"),
    ("central frequency", 1, prof(periods=[period(0, operation_mode="CentralFrequency")]), None,
     "InvalidOperationMode"),
    ("unknown mode", 1, prof(periods=[period(0, operation_mode="Turbo")]), None, "InvalidOperationMode"),
    ("setpoint mode on max profile", 0, prof(purpose="ChargingStationMaxProfile", periods=[
        period(0, operation_mode="CentralSetpoint", setpoint=0)]), None, "InvalidOperationMode"),
    ("local frequency without curve", 1, prof(periods=[period(0, operation_mode="LocalFrequency")]), None,
     "NoFreqWattCurve"),
    ("negative limit", 1, prof(periods=[period(0, limit=-1)]), None, "InvalidValue"),
    ("positive discharge limit", 1, prof(periods=[period(0, operation_mode="ExternalLimits",
                                                         discharge_limit=5)]), None, "InvalidValue"),
    ("limit not finite", 1, prof(periods=[period(0, limit=float("nan"))]), None, "InvalidValue"),
    ("limit a string", 1, prof(periods=[period(0, limit="7000")]), None, "InvalidValue"),
    ("valid to in the past", 1, prof(valid_to=iso(T0 - 1)), None, "InvalidValue"),
    ("valid to before valid from", 1, prof(valid_from=iso(T0 + 100), valid_to=iso(T0 + 50)), None,
     "InvalidValue"),
    ("valid from not a date", 1, prof(valid_from="soon"), None, "InvalidValue"),
    ("negative max offline", 1, prof(max_offline_duration=-1), None, "InvalidValue"),
    ("negative update interval", 1, prof(kind="Dynamic", dyn_update_interval=-5), None, "InvalidValue"),
    ("kilowatts", 1, prof(unit="kW"), None, "UnsupportedRateUnit"),
    ("per-phase limit", 1, prof(periods=[period(0, limit=7000, limit_l2=2000)]), None, "UnsupportedParam"),
    ("phase to use", 1, prof(periods=[period(0, limit=7000, number_phases=1, phase_to_use=2)]), None,
     "UnsupportedParam"),
    ("limit at soc", 1, _sched(prof(), limit_at_soc={"soc": 80, "limit": 3000}), None, "UnsupportedParam"),
    ("local time", 1, _sched(prof(), use_local_time=True), None, "UnsupportedParam"),
    ("randomized delay", 1, _sched(prof(), randomized_delay=600), None, "UnsupportedParam"),
    ("unknown field", 1, dict(prof(), colour="blue"), None, "UnsupportedParam"),
    ("number of phases 4", 1, prof(periods=[period(0, limit=16, number_phases=4)], unit="A"), None,
     "ValueOutOfRange"),
]


@pytest.mark.parametrize("name,evse,profile,tx,reason", REJECTIONS, ids=[r[0] for r in REJECTIONS])
def test_rejection_reasons(name, evse, profile, tx, reason):
    s = store()
    if tx is not None:
        s.start_transaction(tx, T0)
    accepted(s, 1, prof(pid=99, stack=7))
    before = s.get()
    status, got, info = s.set(evse, copy.deepcopy(profile), T0)
    assert (status, got) == ("Rejected", reason), info
    assert info and len(info) <= 1024
    assert s.get() == before  # nothing stored, nothing replaced
    assert s.rejected[reason] == 1
    # the answer is a valid SetChargingProfileResponse
    assert validate("SetChargingProfile", {"status": status, "statusInfo": {"reasonCode": got,
                                                                            "additionalInfo": info}},
                    call=False) == []


def test_every_reason_is_exercised_and_fits_the_wire():
    covered = {r[4] for r in REJECTIONS} | {"DuplicateProfile", "OutOfStorage", "RateLimitExceeded", "NotFound"}
    assert covered == set(REASONS)
    assert all(len(r) <= 20 for r in REASONS)  # StatusInfo.reasonCode maxLength


def test_duplicate_profile_rule():
    s = store()
    accepted(s, 1, prof(pid=1, stack=2, valid_to=iso(T0 + HOUR)))
    # same purpose, stack level and EVSE, overlapping validity
    assert s.set(1, prof(pid=2, stack=2), T0)[:2] == ("Rejected", "DuplicateProfile")
    # evse 0's default applies to evse 1 as well
    assert s.set(0, prof(pid=2, stack=2), T0)[:2] == ("Rejected", "DuplicateProfile")
    # validities that do not overlap, another stack level, another purpose: fine
    accepted(s, 1, prof(pid=3, stack=2, valid_from=iso(T0 + HOUR)))
    accepted(s, 1, prof(pid=4, stack=3))
    accepted(s, 0, prof(pid=5, stack=2, purpose="ChargingStationMaxProfile", valid_to=iso(T0 + HOUR)))
    # the same id replaces: it does not clash with itself, but may with another
    accepted(s, 1, prof(pid=1, stack=2, valid_to=iso(T0 + HOUR), periods=[period(0, limit=1234)]))
    assert s.set(1, prof(pid=1, stack=3), T0)[:2] == ("Rejected", "DuplicateProfile")  # clashes with 4
    assert [p["id"] for _, p in s.get()] == [5, 1, 3, 4]
    assert s.get(profile_ids=[1])[0][1]["charging_schedule"][0]["charging_schedule_period"][0]["limit"] == 1234
    # TxProfiles clash only within one transaction
    s.start_transaction("tx-1", T0)
    accepted(s, 1, _tx(prof(pid=6, purpose="TxProfile", stack=2)))
    assert s.set(1, _tx(prof(pid=7, purpose="TxProfile", stack=2)), T0)[:2] == ("Rejected", "DuplicateProfile")


def test_same_id_replaces_and_a_refused_replacement_keeps_the_old_one():
    s = store()
    accepted(s, 1, prof(pid=1, periods=[period(0, limit=5000)]))
    accepted(s, 1, prof(pid=1, periods=[period(0, limit=6000)]))
    assert len(s.get()) == 1 and s.command(1, T0).limit_w == 6000
    assert s.set(1, prof(pid=1, periods=[period(0, limit=-1)]), T0)[0] == "Rejected"
    assert s.command(1, T0).limit_w == 6000


def test_out_of_storage_and_rate_limit():
    s = store(max_profiles=3)
    for i in range(3):
        accepted(s, 1, prof(pid=i, stack=i))
    assert s.set(1, prof(pid=9, stack=9), T0)[:2] == ("Rejected", "OutOfStorage")
    accepted(s, 1, prof(pid=2, stack=5))  # replacing needs no room
    s = store(min_set_interval_s=10)
    accepted(s, 1, prof(pid=1, stack=1))
    assert s.set(1, prof(pid=2, stack=2), T0 + 5)[:2] == ("Rejected", "RateLimitExceeded")
    accepted(s, 0, prof(pid=3, purpose="ChargingStationMaxProfile"), now=T0 + 5)  # another purpose
    accepted(s, 1, prof(pid=2, stack=2), now=T0 + 10)


def test_beyond_rating_is_accepted_and_clamped():
    s = store()
    accepted(s, 1, prof(periods=[period(0, operation_mode="CentralSetpoint", limit=50000, discharge_limit=-40000,
                                        setpoint=-30000)]))
    c = s.command(1, T0)
    assert (c.limit_w, c.discharge_limit_w, c.setpoint_w) == (RATED_C, RATED_D, -RATED_D)


@given(st.recursive(st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=True) | st.text(max_size=5),
                    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(
                        st.sampled_from(["id", "stack_level", "charging_profile_purpose", "charging_profile_kind",
                                         "charging_schedule", "charging_schedule_period", "start_period", "limit",
                                         "charging_rate_unit", "operation_mode", "transaction_id", "x"]),
                        kids, max_size=6), max_leaves=20),
       st.integers(-1, 3))
@settings(max_examples=300, deadline=None)
def test_garbage_is_refused_never_raised(obj, evse):
    s = store()
    status, reason, info = s.set(evse, obj, T0)
    assert status == "Rejected" and reason in REASONS and isinstance(info, str)
    assert s.get() == []


# ------------------------------------------------------------------------------------------- wire round trip

WIRE_PROFILE = {
    "id": 12, "stackLevel": 1, "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Recurring",
    "recurrencyKind": "Daily", "validFrom": "2025-03-01T00:00:00Z", "maxOfflineDuration": 3600,
    "invalidAfterOfflineDuration": False,
    "chargingSchedule": [{
        "id": 3, "startSchedule": "2025-03-01T17:00:00Z", "chargingRateUnit": "W", "minChargingRate": 1400.0,
        "chargingSchedulePeriod": [
            {"startPeriod": 0, "limit": 0.0, "dischargeLimit": -7000.0, "setpoint": -5000.0,
             "setpointReactive": 200.0, "operationMode": "CentralSetpoint"},
            {"startPeriod": 7200, "operationMode": "LocalFrequency", "v2xBaseline": 0.0, "limit": 7000.0,
             "dischargeLimit": -7000.0,
             "v2xFreqWattCurve": [{"frequency": 49.8, "power": 7000.0}, {"frequency": 50.2, "power": -7000.0}]},
            {"startPeriod": 14400, "limit": 11000.0, "numberPhases": 3}]}],
    "customData": {"vendorId": "example"},
}


def test_wire_profile_round_trips_through_the_library_conversion():
    assert validate("SetChargingProfile", {"evseId": 1, "chargingProfile": WIRE_PROFILE}) == []
    s = store()
    accepted(s, 1, camel_to_snake_case(WIRE_PROFILE))
    [(evse, p)] = s.get()
    assert evse == 1 and snake_to_camel_case(p) == WIRE_PROFILE
    reqs = s.report_requests(42)
    assert len(reqs) == 1 and reqs[0]["tbc"] is False
    assert validate("ReportChargingProfiles", snake_to_camel_case(reqs[0])) == []


def test_get_filters_and_reports_validate():
    s = store()
    s.start_transaction("tx-1", T0)
    accepted(s, 0, prof(pid=1, purpose="ChargingStationMaxProfile", stack=0,
                        periods=[period(0, limit=9000, discharge_limit=-6000)]))
    accepted(s, 0, prof(pid=2, stack=0))
    accepted(s, 1, prof(pid=3, stack=1, kind="Relative", start=None))
    accepted(s, 1, _tx(prof(pid=4, purpose="TxProfile", stack=0, kind="Dynamic", start=None,
                            periods=[period(0, operation_mode="CentralSetpoint", setpoint=1000)],
                            dyn_update_interval=60)))
    assert [p["id"] for _, p in s.get()] == [1, 2, 3, 4]
    assert [p["id"] for _, p in s.get(evse_id=0)] == [1, 2]
    assert [p["id"] for _, p in s.get(purpose="TxDefaultProfile")] == [2, 3]
    assert [p["id"] for _, p in s.get(stack_level=1)] == [3]
    assert [p["id"] for _, p in s.get(profile_ids=[4, 1, 77])] == [1, 4]
    assert s.get(evse_id=1, purpose="ChargingStationMaxProfile") == []
    assert s.update_dynamic(4, {"setpoint": -2000, "discharge_limit": -3000}, T0 + 10) == ("Accepted", None)
    reqs = s.report_requests(7)
    assert [(r["evse_id"], r["tbc"], len(r["charging_profile"])) for r in reqs] == [(0, True, 2), (1, False, 2)]
    for r in reqs:
        assert validate("ReportChargingProfiles", snake_to_camel_case(r)) == []
    assert s.report_requests(7, purpose="TxProfile")[0]["charging_profile"][0]["dyn_update_time"] == iso(T0 + 10)
    assert s.report_requests(7, evse_id=1, purpose="ChargingStationMaxProfile") == []
    # what get() hands out is a copy
    s.get()[0][1]["stack_level"] = 99
    assert s.get()[0][1]["stack_level"] == 0


def test_clear():
    s = store()
    accepted(s, 0, prof(pid=1, purpose="ChargingStationMaxProfile"))
    accepted(s, 0, prof(pid=2, stack=0))
    accepted(s, 1, prof(pid=3, stack=1))
    accepted(s, 1, prof(pid=4, stack=2))
    assert s.clear(profile_id=77) == "Unknown"
    assert s.clear(profile_id=4, purpose="ChargingStationMaxProfile") == "Accepted"  # id wins over criteria
    assert s.clear(evse_id=1, purpose="ChargingStationMaxProfile") == "Unknown"
    assert s.clear(purpose="TxDefaultProfile", stack_level=1) == "Accepted"
    assert [p["id"] for _, p in s.get()] == [1, 2]
    assert s.clear(evse_id=0) == "Accepted" and s.get() == []
    accepted(s, 1, prof(pid=5))
    assert s.clear() == "Accepted" and s.clear() == "Unknown"


# ------------------------------------------------------------------------------------------- composition

def test_stack_precedence_and_fall_back_when_the_higher_one_ends():
    s = store()
    accepted(s, 1, prof(pid=1, stack=0, periods=[period(0, limit=3000)]))
    accepted(s, 1, prof(pid=2, stack=5, periods=[period(0, limit=6000)], duration=1800))
    accepted(s, 1, prof(pid=3, stack=2, periods=[period(0, limit=4000)], start=T0 + 3600))
    c = s.command(1, T0 + 10)
    assert (c.limit_w, c.profile_id, c.stack_level, c.until_s) == (6000, 2, 5, T0 + 1800)
    assert s.command(1, T0 + 1800).limit_w == 3000
    assert s.command(1, T0 + 3600).profile_id == 3


def test_tx_profile_over_tx_default_and_evse1_default_over_evse0():
    s = store()
    accepted(s, 0, prof(pid=1, stack=9, periods=[period(0, limit=1000)]))
    assert s.command(1, T0).limit_w == 1000
    accepted(s, 1, prof(pid=2, stack=0, periods=[period(0, limit=2000)]))
    assert s.command(1, T0).limit_w == 2000  # evse 1's default wins whatever the stack levels
    s.start_transaction("tx-1", T0)
    accepted(s, 1, _tx(prof(pid=3, purpose="TxProfile", stack=0, periods=[period(0, limit=3000)])))
    assert s.command(1, T0).limit_w == 3000
    assert s.command(1, T0, tx_id="tx-other").limit_w == 2000  # another transaction: not its profile
    assert s.on_transaction_end("tx-1") == 1
    assert s.get(purpose="TxProfile") == []
    assert s.command(1, T0 + 1).limit_w == 2000
    s.clear(evse_id=1)
    assert s.command(1, T0 + 1).limit_w == 1000


def test_max_profile_clamps_limits_and_setpoint():
    s = store()
    accepted(s, 0, prof(pid=1, purpose="ChargingStationMaxProfile",
                        periods=[period(0, limit=6000, discharge_limit=-4000)]))
    c = s.command(1, T0)  # only the station limit: local behaviour within it
    assert (c.mode, c.setpoint_w, c.limit_w, c.discharge_limit_w, c.profile_id) == (None, None, 6000, 4000, 1)
    accepted(s, 1, prof(pid=2, periods=[period(0, operation_mode="CentralSetpoint", limit=9000,
                                               discharge_limit=-3000, setpoint=8000)]))
    c = s.command(1, T0)
    assert (c.mode, c.setpoint_w, c.limit_w, c.discharge_limit_w, c.profile_id) == (
        "CentralSetpoint", 6000, 6000, 3000, 2)
    accepted(s, 1, prof(pid=2, periods=[period(0, operation_mode="CentralSetpoint", setpoint=-9000)]))
    c = s.command(1, T0)  # no limits in the Tx period: the rating, then the Max profile
    assert (c.setpoint_w, c.limit_w, c.discharge_limit_w) == (-4000, 6000, 4000)
    # a Max profile in ChargingOnly forbids discharge at the connection
    accepted(s, 0, prof(pid=3, purpose="ChargingStationMaxProfile", stack=1,
                        periods=[period(0, limit=8000, operation_mode="ChargingOnly")]))
    c = s.command(1, T0)
    assert (c.setpoint_w, c.limit_w, c.discharge_limit_w) == (0, 8000, 0)


def test_idle_and_charging_only_and_local_frequency():
    s = store()
    accepted(s, 1, prof(pid=1, periods=[period(0, operation_mode="Idle", limit=5000, setpoint=3000),
                                        period(600, limit=5000, setpoint=2000),
                                        period(1200, operation_mode="LocalFrequency", limit=4000,
                                               discharge_limit=-3000, v2x_baseline=1000, v2x_freq_watt_curve=[
                                                   {"frequency": 49.8, "power": 6000},
                                                   {"frequency": 50.0, "power": 0},
                                                   {"frequency": 50.2, "power": -6000}])]))
    c = s.command(1, T0)
    assert (c.mode, c.setpoint_w, c.limit_w, c.discharge_limit_w) == ("Idle", 0, 0, 0)
    c = s.command(1, T0 + 600)
    assert (c.mode, c.setpoint_w, c.limit_w, c.discharge_limit_w) == ("ChargingOnly", 2000, 5000, 0)
    c = s.command(1, T0 + 1200)
    assert (c.mode, c.setpoint_w, c.baseline_w) == ("LocalFrequency", None, 1000)
    # baseline + curve stays within [-3000, 4000]
    assert c.freq_curve == [(49.8, 3000), (50.0, 0), (50.2, -4000)]


def test_amps_convert_to_watts():
    a_profile = prof(pid=1, unit="A", periods=[period(0, limit=16), period(60, limit=16, number_phases=1),
                                               period(120, operation_mode="CentralSetpoint", limit=10,
                                                      discharge_limit=-8, setpoint=-5)])
    s = ProfileStore(22000, 22000)
    accepted(s, 1, a_profile)
    assert s.command(1, T0).limit_w == pytest.approx(16 * 230 * 3)
    assert s.command(1, T0 + 60).limit_w == pytest.approx(16 * 230)
    c = s.command(1, T0 + 120)
    assert (c.limit_w, c.discharge_limit_w, c.setpoint_w) == pytest.approx((6900, 5520, -3450))
    comp = s.composite(1, 180, T0, unit="A")
    composite_ok(comp)
    assert [(p["start_period"], p["limit"], p["discharge_limit"], p["number_phases"])
            for p in comp["charging_schedule_period"]] == [(0, 16.0, 0.0, 3), (60, 16.0, 0.0, 1), (120, 10.0, -8.0, 3)]
    assert comp["charging_schedule_period"][2]["setpoint"] == -5.0
    one = ProfileStore(RATED_C, RATED_D, nominal_voltage_v=240.0, phases=1)
    accepted(one, 1, prof(pid=1, unit="A", periods=[period(0, limit=16, number_phases=3)]))
    assert one.command(1, T0).limit_w == pytest.approx(16 * 240)  # a 1-phase station uses 1 phase
    small = store()  # 11 kW: 16 A x 3 x 230 V = 11.04 kW is above the rating
    accepted(small, 1, a_profile)
    assert small.command(1, T0).limit_w == RATED_C
    assert small.composite(1, 60, T0, unit="A")["charging_schedule_period"][0]["limit"] == 15.942


def test_relative_counts_from_the_transaction_start():
    s = store()
    accepted(s, 1, prof(pid=1, kind="Relative", start=None, periods=[period(0, limit=2000), period(1800, limit=5000)]))
    assert s.command(1, T0 + 500) == Command()  # no transaction: not in force
    s.start_transaction("tx-1", T0 + 100)
    c = s.command(1, T0 + 1000)
    assert (c.limit_w, c.until_s) == (2000, T0 + 1900)
    assert s.command(1, T0 + 1900).limit_w == 5000
    s.on_transaction_end("tx-1")
    assert s.command(1, T0 + 2000).mode is None


def test_recurring_daily_across_midnight():
    s = store()
    start = parse_time("2025-03-01T22:00:00Z")
    accepted(s, 1, prof(pid=1, kind="Recurring", recurrency_kind="Daily", start=start,
                        periods=[period(0, limit=3000), period(4 * 3600, limit=7000)]))
    assert s.command(1, parse_time("2025-03-01T21:00:00Z")).limit_w is None  # not yet started
    c = s.command(1, parse_time("2025-03-05T23:30:00Z"))
    assert (c.limit_w, c.until_s) == (3000, parse_time("2025-03-06T02:00:00Z"))
    assert s.command(1, parse_time("2025-03-06T01:59:59Z")).limit_w == 3000
    assert s.command(1, parse_time("2025-03-06T02:00:00Z")).limit_w == 7000
    c = s.command(1, parse_time("2025-03-06T21:59:00Z"))
    assert (c.limit_w, c.until_s) == (7000, parse_time("2025-03-06T22:00:00Z"))
    assert s.command(1, parse_time("2025-03-06T22:00:00Z")).limit_w == 3000
    comp = s.composite(1, 86400, parse_time("2025-03-06T00:00:00Z"))
    composite_ok(comp)
    assert [(p["start_period"], p["limit"]) for p in comp["charging_schedule_period"]] == [
        (0, 3000), (7200, 7000), (79200, 3000)]


def test_recurring_weekly_with_duration():
    s = store()
    accepted(s, 1, prof(pid=1, kind="Recurring", recurrency_kind="Weekly", start=T0, duration=3600,
                        periods=[period(0, limit=4000)]))
    assert s.command(1, T0 + 7 * 86400 + 100).limit_w == 4000
    assert s.command(1, T0 + 7 * 86400 + 3600).limit_w is None
    assert s.command(1, T0 + 86400 + 100).limit_w is None
    assert s.command(1, T0 + 86400 + 100).until_s == T0 + 7 * 86400


def test_absolute_with_duration_ends():
    s = store()
    accepted(s, 1, prof(pid=1, duration=3600, periods=[period(0, operation_mode="CentralSetpoint", setpoint=2000,
                                                              discharge_limit=-1000)]))
    c = s.command(1, T0 + 3599)
    assert (c.setpoint_w, c.until_s) == (2000, T0 + 3600)
    assert s.command(1, T0 + 3600) == Command()
    comp = s.composite(1, 7200, T0)
    composite_ok(comp)
    assert comp["charging_schedule_period"] == [
        {"start_period": 0, "limit": RATED_C, "discharge_limit": -1000.0, "operation_mode": "CentralSetpoint",
         "setpoint": 2000.0},
        {"start_period": 3600, "limit": RATED_C, "discharge_limit": -RATED_D}]
    assert s.composite(1, 600, T0 + 3600) is None


def test_valid_from_and_valid_to():
    s = store()
    accepted(s, 1, prof(pid=1, valid_from=iso(T0 + 100), valid_to=iso(T0 + 200)))
    assert s.command(1, T0).until_s == T0 + 100
    c = s.command(1, T0 + 150)
    assert (c.limit_w, c.until_s) == (7000, T0 + 200)
    assert s.command(1, T0 + 200) == Command()
    assert s.get() == []  # dropped once past validTo


def test_dynamic_update_and_its_interval():
    s = store()
    s.start_transaction("tx-1", T0)
    accepted(s, 1, _tx(prof(pid=5, purpose="TxProfile", kind="Dynamic", start=None, dyn_update_interval=60,
                            periods=[period(0, operation_mode="CentralSetpoint", limit=7000, discharge_limit=-7000,
                                            setpoint=1000)])))
    accepted(s, 1, prof(pid=6, periods=[period(0, limit=3000)]))  # a plain one to update in vain
    c = s.command(1, T0 + 10)
    assert (c.setpoint_w, c.until_s) == (1000, T0 + 60)
    assert s.pull_due(T0 + 59) == []
    assert s.update_dynamic(5, {"setpoint": -4000, "limit": 5000}, T0 + 30) == ("Accepted", None)
    c = s.command(1, T0 + 31)
    assert (c.setpoint_w, c.limit_w, c.discharge_limit_w, c.until_s) == (-4000, 5000, 7000, T0 + 90)
    p = s.get(profile_ids=[5])[0][1]
    assert p["dyn_update_time"] == iso(T0 + 30)
    assert p["charging_schedule"][0]["charging_schedule_period"][0]["setpoint"] == -4000
    # the interval runs out: the station should pull; the values stay in force meanwhile
    assert s.pull_due(T0 + 90) == [5]
    c = s.command(1, T0 + 95)
    assert (c.setpoint_w, c.until_s) == (-4000, None)
    # refused updates change nothing
    assert s.update_dynamic(5, {"limit": -1}, T0 + 96) == ("Rejected", "InvalidValue")
    assert s.update_dynamic(5, {"setpoint": 6000}, T0 + 96) == ("Rejected", "InvalidSchedule")  # above limit
    assert s.update_dynamic(5, {"limit_l2": 1000}, T0 + 96) == ("Rejected", "UnsupportedParam")
    assert s.update_dynamic(6, {"limit": 1000}, T0 + 96) == ("Rejected", "InvalidProfile")
    assert s.update_dynamic(77, {"limit": 1000}, T0 + 96) == ("Rejected", "NotFound")
    assert s.command(1, T0 + 97).setpoint_w == -4000 and s.pull_due(T0 + 97) == [5]
    assert s.update_dynamic(5, {"setpoint": 0}, T0 + 100) == ("Accepted", None)
    assert s.pull_due(T0 + 100) == [] and s.command(1, T0 + 100).until_s == T0 + 160


def test_dynamic_charging_only_cannot_be_updated_into_discharge():
    s = store()
    accepted(s, 0, prof(pid=1, kind="Dynamic", start=None, periods=[period(0, limit=4000)]))
    assert s.update_dynamic(1, {"discharge_limit": -1000}, T0) == ("Rejected", "InvalidSchedule")
    accepted(s, 0, prof(pid=2, purpose="ChargingStationMaxProfile", kind="Dynamic", start=None,
                        periods=[period(0, limit=9000)]))
    assert s.update_dynamic(2, {"limit": 2500, "discharge_limit": -1500}, T0) == ("Accepted", None)
    c = s.command(1, T0)
    assert (c.limit_w, c.discharge_limit_w) == (2500, 0)  # the Tx default is ChargingOnly


def test_offline_duration():
    s = store()
    accepted(s, 1, prof(pid=1, stack=0, periods=[period(0, limit=2000)]))
    accepted(s, 1, prof(pid=2, stack=1, periods=[period(0, limit=5000)], max_offline_duration=600))
    accepted(s, 1, prof(pid=3, stack=2, periods=[period(0, limit=9000)], max_offline_duration=300,
                        invalid_after_offline_duration=True, valid_from=iso(T0 + 10000)))
    s.set_offline(T0 + 1000)
    c = s.command(1, T0 + 1599)
    assert (c.limit_w, c.until_s) == (5000, T0 + 1600)
    assert s.command(1, T0 + 1600).limit_w == 2000
    comp = s.composite(1, 1200, T0 + 1000)
    assert [(p["start_period"], p["limit"]) for p in comp["charging_schedule_period"]] == [(0, 5000), (600, 2000)]
    s.set_offline(None, now_s=T0 + 1700)  # back online: profile 2 holds again, profile 3 is gone for good
    assert s.command(1, T0 + 1700).limit_w == 5000
    assert [p["id"] for _, p in s.get()] == [1, 2]
    # 0 means invalid as soon as the station is offline
    accepted(s, 1, prof(pid=4, stack=3, periods=[period(0, limit=100)], max_offline_duration=0))
    assert s.command(1, T0 + 1800).limit_w == 100
    s.set_offline(T0 + 1800)
    assert s.command(1, T0 + 1800).limit_w == 5000  # profile 2 holds for its 600 s yet


def test_composite_merges_identical_neighbours_and_validates():
    s = store()
    accepted(s, 0, prof(pid=1, purpose="ChargingStationMaxProfile", periods=[period(0, limit=8000),
                                                                             period(1800, limit=4000)]))
    accepted(s, 1, prof(pid=2, periods=[period(0, limit=6000), period(600, limit=6000), period(1200, limit=5000),
                                        period(2400, limit=5000, setpoint=3000)], duration=3000))
    comp = s.composite(1, 4000, T0 + 0.7)
    composite_ok(comp)
    assert comp["schedule_start"] == "2025-03-01T00:00:00Z" and comp["duration"] == 4000
    assert comp["evse_id"] == 1 and comp["charging_rate_unit"] == "W"
    got = [(p["start_period"], p["limit"], p.get("setpoint"), p.get("operation_mode"))
           for p in comp["charging_schedule_period"]]
    assert got == [(0, 6000, None, "ChargingOnly"), (1200, 5000, None, "ChargingOnly"),
                   (1800, 4000, None, "ChargingOnly"), (2400, 4000, 3000, "ChargingOnly"),
                   (3000, 4000, None, None)]
    periods = comp["charging_schedule_period"]
    strip = [{k: v for k, v in p.items() if k != "start_period"} for p in periods]
    assert all(a != b for a, b in zip(strip, strip[1:]))
    grid = s.composite(0, 4000, T0)
    assert grid["evse_id"] == 0 and grid["charging_schedule_period"] == periods
    assert store().composite(1, 3600, T0) is None
    for bad, reason in (((2, 60, T0), "UnknownEvse"), ((1, -1, T0), "ValueOutOfRange")):
        with pytest.raises(ProfileError) as ex:
            s.composite(*bad)
        assert ex.value.reason == reason
    with pytest.raises(ProfileError) as ex:
        s.composite(1, 60, T0, unit="kW")
    assert ex.value.reason == "UnsupportedRateUnit"
    with pytest.raises(ProfileError):
        s.command(3, T0)


def test_composite_of_a_v2x_day_validates():
    s = store()
    s.start_transaction("tx-1", T0)
    accepted(s, 1, camel_to_snake_case(WIRE_PROFILE))
    accepted(s, 1, _tx(prof(pid=3, purpose="TxProfile", kind="Dynamic", start=T0 + 20 * HOUR, duration=3600,
                            periods=[period(0, operation_mode="Idle")])))
    comp = s.composite(1, 86400, T0)
    composite_ok(comp)
    composite_ok(s.composite(1, 86400, T0, unit="A"))
    modes = [p.get("operation_mode") for p in comp["charging_schedule_period"]]
    # 17:00 setpoint, 19:00 frequency, 20:00 the Idle TxProfile over both, 21:00 charging
    assert modes == [None, "CentralSetpoint", "LocalFrequency", "Idle", "ChargingOnly"]
    assert [p["start_period"] for p in comp["charging_schedule_period"]] == [0, 17 * 3600, 19 * 3600, 20 * 3600,
                                                                             21 * 3600]


# ------------------------------------------------------------------------------------------- property


@st.composite
def profile_case(draw, pid, purpose):
    """A valid Absolute single-schedule profile and its periods in W, for an independent model."""
    unit = draw(st.sampled_from(["W", "A"]))
    k = 230.0 * 3 if unit == "A" else 1.0
    top = 60.0 if unit == "A" else 20000.0
    n = draw(st.integers(1, 4))
    starts = sorted(draw(st.sets(st.integers(1, 7200), min_size=n - 1, max_size=n - 1)))
    periods = []
    model = []
    for sp in [0] + starts:
        limit = draw(st.floats(0, top) | st.none())
        dl = draw(st.floats(-top, 0) | st.none())
        mode = None if purpose == "ChargingStationMaxProfile" else draw(st.sampled_from(SUPPORTED_MODES))
        if mode == "ChargingOnly":
            dl = None
        p = period(sp)
        if limit is not None:
            p["limit"] = limit
        if dl is not None:
            p["discharge_limit"] = dl
        setpoint = None
        if mode is not None and (mode == "CentralSetpoint" or draw(st.booleans())):
            lo = 0.0 if mode == "ChargingOnly" else (dl if dl is not None else -top)
            hi = limit if limit is not None else top
            setpoint = draw(st.floats(lo, hi))
            p["setpoint"] = setpoint
        if mode == "LocalFrequency":
            p["v2x_freq_watt_curve"] = [{"frequency": 49.8, "power": 5000.0}, {"frequency": 50.2, "power": -5000.0}]
        if mode is not None:
            p["operation_mode"] = mode
        periods.append(p)
        model.append((sp, None if limit is None else limit * k, None if dl is None else -dl * k, mode))
    start = T0 + draw(st.integers(0, 3600))
    duration = draw(st.none() | st.integers(7201, 20000))
    stack = draw(st.integers(0, 3))
    return prof(pid=pid, purpose=purpose, stack=stack, periods=periods, start=start, unit=unit,
                duration=duration), (start, duration, stack, model)


def model_period(case, t):
    start, duration, stack, model = case
    if t < start or (duration is not None and t >= start + duration):
        return None
    return [m for m in model if m[0] <= t - start][-1]


@given(st.data())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_setpoint_stays_within_rating_and_every_limit_in_force(data):
    rc = data.draw(st.floats(1000, 22000))
    rd = data.draw(st.floats(0, 22000))
    s = ProfileStore(rc, rd)
    s.start_transaction("tx-1", T0)
    cases = []  # (evse, purpose, case) of the accepted ones
    plan = [(0, "ChargingStationMaxProfile")] * data.draw(st.sampled_from([0, 1, 1, 2])) + \
        [(1, "TxProfile")] * data.draw(st.integers(0, 2)) + \
        [data.draw(st.sampled_from([(0, "TxDefaultProfile"), (1, "TxDefaultProfile")]))
         for _ in range(data.draw(st.integers(0, 3)))]
    for i, (evse, purpose) in enumerate(plan):
        p, case = data.draw(profile_case(i + 1, purpose))
        if purpose == "TxProfile":
            p["transaction_id"] = "tx-1"
        if s.set(evse, p, T0)[0] == "Accepted":
            cases.append((evse, purpose, case))
        else:
            assert s.set(evse, p, T0)[1] == "DuplicateProfile"  # the only way a generated one fails
    t = T0 + data.draw(st.floats(0, 12000) | st.floats(0, 30000))
    c = s.command(1, t)
    comp = s.composite(1, 600, t)
    if comp is not None:
        composite_ok(comp)

    def top(group):
        live = [(case[2], model_period(case, t)) for case in group]
        live = [x for x in live if x[1] is not None]
        return max(live, key=lambda x: x[0])[1] if live else None

    tx = None
    for evse, purpose in ((1, "TxProfile"), (1, "TxDefaultProfile"), (0, "TxDefaultProfile")):
        tx = top([case for e, p, case in cases if e == evse and p == purpose])
        if tx is not None:
            break
    mx = top([case for e, p, case in cases if p == "ChargingStationMaxProfile"])
    assert c.mode == (None if tx is None else tx[3])
    eps = 1e-6
    if tx is None and mx is None:
        assert c == Command(until_s=c.until_s)
        return
    charge, dis = [rc], [rd]
    for m in (tx, mx):
        if m is not None:
            charge += [m[1]] if m[1] is not None else []
            dis += [m[2]] if m[2] is not None else []
    if tx is not None and tx[3] == "ChargingOnly":
        dis.append(0.0)
    if tx is not None and tx[3] == "Idle":
        charge.append(0.0)
        dis.append(0.0)
    assert c.limit_w == pytest.approx(min(charge)) and c.discharge_limit_w == pytest.approx(min(dis))
    if c.setpoint_w is not None:
        assert -rd - eps <= c.setpoint_w <= rc + eps
        for lim in charge:
            assert c.setpoint_w <= lim + eps
        for lim in dis:
            assert c.setpoint_w >= -lim - eps
    if c.freq_curve is not None:
        base = c.baseline_w or 0.0
        for _, w in c.freq_curve:
            assert -min(dis) - eps <= base + w <= min(charge) + eps
    if c.until_s is not None:
        assert c.until_s > t
