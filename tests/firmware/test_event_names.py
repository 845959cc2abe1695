"""Event names and the report form (controller/event_names.py) over the codes of
controller/events.py (MicroPython and CPython)."""

from controller import event_names, events
from controller.control import limits


def test_every_event_code_has_a_kind():
    codes = [events.MODE_CHANGE, events.INPUT_TIMEOUT, events.INPUT_RESTORED, events.TRIP, events.ISLAND_DETECTED,
             events.RELAY_OPEN_COMMAND, events.RELAY_OPEN, events.GRID_FORMING, events.RESYNC_START,
             events.RELAY_CLOSE, events.GRID_FOLLOWING, events.SAFE_STATE, events.SAFE_STATE_CLEARED,
             events.FRAME_REFUSED, events.LIMIT_CHANGE, events.BACKUP_OVERLOAD, events.BACKUP_END,
             events.RELAY_FAULT, events.IMPLAUSIBLE, events.COMMAND_CLAMPED, events.GRID_SUPPORT,
             events.PLAN_ACCEPTED, events.PLAN_ENDED]
    assert sorted(codes) == list(range(1, 24))
    assert sorted(event_names.KIND) == sorted(codes)
    assert len(set(event_names.KIND.values())) == len(codes)


def test_names_follow_the_codes():
    assert event_names.MODE_NAMES[events.V2H] == "v2h" and event_names.MODE_NAMES[events.SAFE] == "safe_state"
    assert event_names.INPUT_NAMES[events.IN_PLAUSIBILITY] == "meter_vs_inverter"
    assert event_names.REFUSE_NAMES[events.R_COUNTER] == "alive_counter"
    assert event_names.TRIP_NAMES[events.T_FREQ_DRIFT] == "frequency_drift"
    assert event_names.LIMIT_NAMES[limits.ENTER_SERVICE] == "enter_service"
    assert event_names.LIMIT_NAMES[limits.NONE] == "none"
    assert event_names.LIMIT_NAMES[limits.MODE_DIRECTION] == "mode_direction"
    assert event_names.LIMIT_NAMES[limits.GRID_SUPPORT] == "grid_support"
    assert event_names.LIMIT_NAMES[limits.RESERVE] == "reserve"
    assert event_names.LIMIT_NAMES[limits.EXTERNAL] == "external"
    assert len(event_names.LIMIT_NAMES) == limits.EXTERNAL + 1
    assert event_names.MODE_NAMES[events.FREQ_SERVICE] == "freq_service"
    d = event_names.describe(events.GRID_SUPPORT, events.GS_P_OF_F, 1)
    assert d == {"kind": "grid_support", "function": "p_of_f", "active": True}
    assert event_names.describe(events.GRID_SUPPORT, events.GS_FREQ_SERVICE, 0)["active"] is False
    assert event_names.INPUT_NAMES[events.IN_EMS] == "ems"
    for code in (events.T_INV_NOT_FOLLOWING, events.T_INV_UNCOMMANDED, events.T_INV_CMD_TIMEOUT,
                 events.T_INV_FAULT_STATE, events.T_INV_E2E):
        assert event_names.TRIP_NAMES[code].startswith("inverter_")


def test_describe_report_form():
    d = event_names.describe
    assert d(events.MODE_CHANGE, events.BACKUP, 0) == {"kind": "mode_change", "mode": "backup"}
    assert d(events.SAFE_STATE, 0, 0) == {"kind": "safe_state", "cause": "trip"}
    assert d(events.SAFE_STATE, events.IN_METER, 0) == {"kind": "safe_state", "cause": "meter"}
    assert d(events.INPUT_TIMEOUT, events.IN_EV, 0) == {"kind": "input_timeout", "input": "ev"}
    assert d(events.TRIP, events.T_AC_LOSS, 0) == {"kind": "trip", "reason": "ac_voltage_loss"}
    assert d(events.TRIP, 16, 0) == {"kind": "trip", "reason": "undervoltage_stage2"}
    assert d(events.ISLAND_DETECTED, 27, 0) == {"kind": "island_detected", "method": "islanding"}
    assert d(events.BACKUP_END, events.B_EV_LIMIT, 0) == {"kind": "backup_end", "reason": "ev_limit_or_min_soc"}
    assert d(events.RELAY_FAULT, 1, 0) == {"kind": "relay_fault", "operation": "close"}
    assert d(events.LIMIT_CHANGE, limits.FUSE, -3200) == {"kind": "limit_change", "by": "main_fuse", "p_w": -3200}
    assert d(events.FRAME_REFUSED, events.R_CRC, 0x100A0) == {"kind": "frame_refused", "reason": "crc",
                                                               "frame_id": 0xA0}
    assert d(99, 0, 0) == {"kind": "unknown_99"}
