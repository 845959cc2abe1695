"""Controller events: codes shared by the firmware (GW_Event frames) and the HIL report.

The numeric codes are the VAL_ table of GW_Event.EventCode in dbc/gateway.dbc; the
names are the report's event kinds (docs/scenarios.md).
"""

MODE_CHANGE = 1
INPUT_TIMEOUT = 2
INPUT_RESTORED = 3
TRIP = 4
ISLAND_DETECTED = 5
RELAY_OPEN_COMMAND = 6
RELAY_OPEN = 7
GRID_FORMING = 8
RESYNC_START = 9
RELAY_CLOSE = 10
GRID_FOLLOWING = 11
SAFE_STATE = 12
SAFE_STATE_CLEARED = 13
FRAME_REFUSED = 14
LIMIT_CHANGE = 15
BACKUP_OVERLOAD = 16
BACKUP_END = 17
RELAY_FAULT = 18
IMPLAUSIBLE = 19
COMMAND_CLAMPED = 20

KIND = {
    MODE_CHANGE: "mode_change",
    INPUT_TIMEOUT: "input_timeout",
    INPUT_RESTORED: "input_restored",
    TRIP: "trip",
    ISLAND_DETECTED: "island_detected",
    RELAY_OPEN_COMMAND: "relay_open_command",
    RELAY_OPEN: "relay_open",
    GRID_FORMING: "grid_forming",
    RESYNC_START: "resync_start",
    RELAY_CLOSE: "relay_close",
    GRID_FOLLOWING: "grid_following",
    SAFE_STATE: "safe_state",
    SAFE_STATE_CLEARED: "safe_state_cleared",
    FRAME_REFUSED: "frame_refused",
    LIMIT_CHANGE: "limit_change",
    BACKUP_OVERLOAD: "backup_overload",
    BACKUP_END: "backup_end",
    RELAY_FAULT: "relay_fault",
    IMPLAUSIBLE: "implausible",
    COMMAND_CLAMPED: "command_clamped",
}

# Why backup ended or could not start (EventDetail of BACKUP_END)
B_UNAVAILABLE, B_EV_LIMIT = 1, 2
BACKUP_END_NAMES = {B_UNAVAILABLE: "ev_unavailable", B_EV_LIMIT: "ev_limit_or_min_soc"}

# Operating modes (GW_Status.OperatingMode, EMS_ModeRequest.ModeReq for the first four)
IDLE, CHARGE, V2H, V2G, BACKUP, SAFE = 0, 1, 2, 3, 4, 5
MODE_NAMES = ("idle", "charge", "v2h", "v2g", "backup", "safe_state")

# Supervised inputs (EventDetail of INPUT_TIMEOUT / INPUT_RESTORED)
IN_METER, IN_INVERTER, IN_RELAY, IN_EV, IN_PLAUSIBILITY, IN_EMS = 1, 2, 3, 4, 5, 6
INPUT_NAMES = {IN_METER: "meter", IN_INVERTER: "inverter", IN_RELAY: "relay", IN_EV: "ev",
               IN_PLAUSIBILITY: "meter_vs_inverter", IN_EMS: "ems"}

# Why a frame was refused (EventDetail of FRAME_REFUSED; EventValue = frame id)
R_LENGTH, R_CRC, R_COUNTER, R_RANGE, R_UNKNOWN_ID = 1, 2, 3, 4, 5
REFUSE_NAMES = {R_LENGTH: "length", R_CRC: "crc", R_COUNTER: "alive_counter", R_RANGE: "range", R_UNKNOWN_ID: "unknown_id"}

# Trip reasons (EventDetail of TRIP). Inverter-reported faults; protection stages join later.
# Codes 16..63 are the interface protection's (controller/protection/interface_protection.py REASON_NAMES).
T_INV_OVERCURRENT, T_INV_OVERTEMP, T_INV_DC, T_INV_AC_GRID, T_AC_LOSS, T_FREQ_DRIFT = 1, 2, 3, 4, 5, 6
# the inverter's report held against the command (controller/control/inverter_monitor.py)
T_INV_NOT_FOLLOWING, T_INV_UNCOMMANDED, T_INV_CMD_TIMEOUT, T_INV_FAULT_STATE, T_INV_E2E = 7, 8, 9, 10, 11
TRIP_NAMES = {
    T_INV_OVERCURRENT: "inverter_overcurrent",
    T_INV_OVERTEMP: "inverter_overtemperature",
    T_INV_DC: "inverter_dc_fault",
    T_INV_AC_GRID: "inverter_ac_grid_fault",
    T_AC_LOSS: "ac_voltage_loss",
    T_FREQ_DRIFT: "frequency_drift",
    T_INV_NOT_FOLLOWING: "inverter_not_following",
    T_INV_UNCOMMANDED: "inverter_running_uncommanded",
    T_INV_CMD_TIMEOUT: "inverter_command_timeout",
    T_INV_FAULT_STATE: "inverter_fault_state",
    T_INV_E2E: "inverter_refuses_commands",
}


def trip_name(code):
    """Name of a trip reason or islanding method code (inverter, AC loss or protection stage)."""
    if code in TRIP_NAMES:
        return TRIP_NAMES[code]
    from controller.protection.interface_protection import REASON_NAMES  # late: keeps this table module light

    return REASON_NAMES.get(code, code)


# What binds the power command (EventDetail of LIMIT_CHANGE; GW_Status.LimitingFactor)
LIMIT_NAMES = ("none", "ev_charge", "ev_discharge", "inverter_rating", "export_limit", "main_fuse", "min_soc",
               "ramp", "input_timeout", "enter_service", "mode_direction")


def describe(code, detail, value):
    """Report form of one event: a dict with 'kind' and the decoded detail."""
    kind = KIND.get(code, "unknown_%d" % code)
    d = {"kind": kind}
    if code == MODE_CHANGE or code == SAFE_STATE:
        if code == MODE_CHANGE:
            d["mode"] = MODE_NAMES[detail] if detail < len(MODE_NAMES) else detail
        else:
            d["cause"] = INPUT_NAMES.get(detail, "trip" if detail == 0 else detail)
    elif code == INPUT_TIMEOUT or code == INPUT_RESTORED or code == IMPLAUSIBLE:
        d["input"] = INPUT_NAMES.get(detail, detail)
    elif code == TRIP:
        d["reason"] = trip_name(detail)
    elif code == ISLAND_DETECTED:
        d["method"] = trip_name(detail)
    elif code == BACKUP_END:
        d["reason"] = BACKUP_END_NAMES.get(detail, detail)
    elif code == RELAY_FAULT:
        d["operation"] = "close" if detail else "open"
    elif code == LIMIT_CHANGE:
        d["by"] = LIMIT_NAMES[detail] if detail < len(LIMIT_NAMES) else detail
        d["p_w"] = value
    elif code == FRAME_REFUSED:
        d["reason"] = REFUSE_NAMES.get(detail, detail)
        d["frame_id"] = value & 0xFFFF
    elif code == COMMAND_CLAMPED:
        d["frame_id"] = value & 0xFFFF
    return d
