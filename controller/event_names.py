"""Names of the controller's event codes (controller/events.py) and the report form of
a GW_Event: describe(code, detail, value).

For the HIL report (hil/runner.py), the tools, diagnostics text and the tests: the
firmware's runtime never imports this module, so its names cost a board no RAM. The
names are the report's event kinds (docs/scenarios.md); the numeric codes are the
VAL_ table of GW_Event.EventCode in dbc/gateway.dbc.
"""

from controller.energy import schedule as plan
from controller.events import (
    B_EV_LIMIT, B_UNAVAILABLE, BACKUP_END, BACKUP_OVERLOAD, COMMAND_CLAMPED, FRAME_REFUSED, GRID_FOLLOWING,
    GRID_FORMING, GRID_SUPPORT, GS_FREQ_SERVICE, GS_P_OF_F, GS_VOLT_WATT, IMPLAUSIBLE, IN_EMS, IN_EV, IN_INVERTER, IN_METER, IN_PLAUSIBILITY, IN_RELAY, INPUT_RESTORED,
    INPUT_TIMEOUT, ISLAND_DETECTED, LIMIT_CHANGE, MODE_CHANGE, PLAN_ACCEPTED, PLAN_ENDED, R_COUNTER, R_CRC, R_LENGTH, R_RANGE, R_UNKNOWN_ID,
    RELAY_CLOSE, RELAY_FAULT, RELAY_OPEN, RELAY_OPEN_COMMAND, RESYNC_START, SAFE_STATE, SAFE_STATE_CLEARED,
    T_AC_LOSS, T_FREQ_DRIFT, T_INV_AC_GRID, T_INV_CMD_TIMEOUT, T_INV_DC, T_INV_E2E, T_INV_FAULT_STATE,
    T_INV_NOT_FOLLOWING, T_INV_OVERCURRENT, T_INV_OVERTEMP, T_INV_UNCOMMANDED, TRIP,
)

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
    GRID_SUPPORT: "grid_support",
    PLAN_ACCEPTED: "plan_accepted",
    PLAN_ENDED: "plan_ended",
}

GRID_SUPPORT_NAMES = {GS_P_OF_F: "p_of_f", GS_VOLT_WATT: "volt_watt", GS_FREQ_SERVICE: "freq_service"}

# why a plan ended (EventDetail of PLAN_ENDED: controller.energy.schedule.END_*), and why a
# set was refused (its EventValue with "refused": schedule.R_*)
PLAN_END_NAMES = {plan.END_EXPIRED: "expired", plan.END_CANCELLED: "cancelled", plan.END_REFUSED: "refused"}
PLAN_REFUSE_NAMES = {plan.R_INCOMPLETE: "incomplete", plan.R_INDEX: "index", plan.R_DUPLICATE: "duplicate",
                     plan.R_ELAPSED: "slot0_elapsed", plan.R_SLOT_LENGTH: "slot_length"}

BACKUP_END_NAMES = {B_UNAVAILABLE: "ev_unavailable", B_EV_LIMIT: "ev_limit_or_min_soc"}

# by operating mode code (events.IDLE .. events.FREQ_SERVICE)
MODE_NAMES = ("idle", "charge", "v2h", "v2g", "backup", "safe_state", "freq_service")

INPUT_NAMES = {IN_METER: "meter", IN_INVERTER: "inverter", IN_RELAY: "relay", IN_EV: "ev",
               IN_PLAUSIBILITY: "meter_vs_inverter", IN_EMS: "ems"}

REFUSE_NAMES = {R_LENGTH: "length", R_CRC: "crc", R_COUNTER: "alive_counter", R_RANGE: "range", R_UNKNOWN_ID: "unknown_id"}

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

# What binds the power command (EventDetail of LIMIT_CHANGE; GW_Status.LimitingFactor)
LIMIT_NAMES = ("none", "ev_charge", "ev_discharge", "inverter_rating", "export_limit", "main_fuse", "min_soc",
               "ramp", "input_timeout", "enter_service", "mode_direction", "grid_support", "reserve", "external")


def trip_name(code):
    """Name of a trip reason or islanding method code (inverter, AC loss or protection stage)."""
    if code in TRIP_NAMES:
        return TRIP_NAMES[code]
    from controller.protection.interface_protection import REASON_NAMES  # late: keeps this table module light

    return REASON_NAMES.get(code, code)


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
    elif code == GRID_SUPPORT:
        d["function"] = GRID_SUPPORT_NAMES.get(detail, detail)
        d["active"] = bool(value)
    elif code == PLAN_ACCEPTED:
        d["plan_id"] = detail
        d["slots"] = value
    elif code == PLAN_ENDED:
        d["reason"] = PLAN_END_NAMES.get(detail, detail)
        if detail == plan.END_REFUSED:
            d["refused"] = PLAN_REFUSE_NAMES.get(value, value)
        else:
            d["plan_id"] = value
    return d
