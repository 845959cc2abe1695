"""Controller events: the numeric codes the firmware sends in GW_Event frames.

The codes are the VAL_ table of GW_Event.EventCode in dbc/gateway.dbc. Their names, the
report's event kinds (docs/scenarios.md), and describe(), which turns a GW_Event into
its report form, are in controller/event_names.py: only the HIL, the tools and the tests
need them, and the firmware's runtime never imports that module (names cost RAM on a
board).
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
GRID_SUPPORT = 21  # a grid-support function starts (value 1) or ends (0) acting; detail GS_*
PLAN_ACCEPTED = 22  # an operating plan taken: detail plan id, value its slots (controller/energy/follow.py)
PLAN_ENDED = 23  # detail controller.energy.schedule.END_*: expired, cancelled, or a new set refused

# Why backup ended or could not start (EventDetail of BACKUP_END)
B_UNAVAILABLE, B_EV_LIMIT = 1, 2

# Operating modes (GW_Status.OperatingMode, EMS_ModeRequest.ModeReq for the first four)
IDLE, CHARGE, V2H, V2G, BACKUP, SAFE = 0, 1, 2, 3, 4, 5
FREQ_SERVICE = 6  # a frequency-response service sets the power (reported mode)

# Which grid-support function (EventDetail of GRID_SUPPORT)
GS_P_OF_F, GS_VOLT_WATT, GS_FREQ_SERVICE = 1, 2, 3

# Supervised inputs (EventDetail of INPUT_TIMEOUT / INPUT_RESTORED)
IN_METER, IN_INVERTER, IN_RELAY, IN_EV, IN_PLAUSIBILITY, IN_EMS = 1, 2, 3, 4, 5, 6

# Why a frame was refused (EventDetail of FRAME_REFUSED; EventValue = frame id)
R_LENGTH, R_CRC, R_COUNTER, R_RANGE, R_UNKNOWN_ID = 1, 2, 3, 4, 5

# Trip reasons (EventDetail of TRIP). Inverter-reported faults; protection stages join later.
# Codes 16..63 are the interface protection's (controller/protection/interface_protection.py REASON_NAMES).
T_INV_OVERCURRENT, T_INV_OVERTEMP, T_INV_DC, T_INV_AC_GRID, T_AC_LOSS, T_FREQ_DRIFT = 1, 2, 3, 4, 5, 6
# the inverter's report held against the command (controller/control/inverter_monitor.py)
T_INV_NOT_FOLLOWING, T_INV_UNCOMMANDED, T_INV_CMD_TIMEOUT, T_INV_FAULT_STATE, T_INV_E2E = 7, 8, 9, 10, 11

# What binds the power command (EventDetail of LIMIT_CHANGE; GW_Status.LimitingFactor):
# the codes of controller/control/limits.py, named by event_names.LIMIT_NAMES
