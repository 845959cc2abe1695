"""DER controls and grid events between the platform and the firmware's grid functions
(OCPP 2.1 functional block R, "DER control": SetDERControl, GetDERControl, ClearDERControl,
ReportDERControl, NotifyDERAlarm).

What a home V2X gateway lets a platform set (docs/ocpp.md, "DER control"):

- LimitMaxDischarge: accepted. `pctMaxDischargePower` percent of the station's rated discharge
  power becomes a discharge limit, sent to the firmware as EMS_PowerLimit with any charging
  profile's limit (the tighter wins), from startTime for duration (or until cleared).
- Every other control type (trip curves, ride-through, volt-var, volt-watt, freq-droop, fixed
  PF, enter service, gradients): NotSupported. Those settings come from the grid-code profile
  the installer commissions (controller/protection/profiles/, docs/grid-codes.md); a grid code
  such as EN 50549-1 requires them protected against change, so a platform does not rewrite
  them remotely. GetDERControl reports only what was set here.

Grid events: `alarm_for(event)` maps a controller event (controller/event_names.describe form)
to a NotifyDERAlarm payload: a protection trip names the trip curve that acted
(LV/HV/LF/HF MustTrip) and the grid fault (UnderVoltage, OverFrequency, ...); the relay
closing again after a trip ends it (alarmEnded true).
"""

# trip reason (controller/protection/interface_protection.REASON_NAMES) -> (controlType, gridEventFault)
TRIP_ALARMS = {
    "undervoltage_stage1": ("LVMustTrip", "UnderVoltage"),
    "undervoltage_stage2": ("LVMustTrip", "UnderVoltage"),
    "overvoltage_stage1": ("HVMustTrip", "OverVoltage"),
    "overvoltage_stage2": ("HVMustTrip", "OverVoltage"),
    "overvoltage_10min_mean": ("HVMustTrip", "OverVoltage"),
    "underfrequency_stage1": ("LFMustTrip", "UnderFrequency"),
    "underfrequency_stage2": ("LFMustTrip", "UnderFrequency"),
    "overfrequency_stage1": ("HFMustTrip", "OverFrequency"),
    "overfrequency_stage2": ("HFMustTrip", "OverFrequency"),
}
SUPPORTED = ("LimitMaxDischarge",)
MAX_CONTROLS = 24


def alarm_for(event, timestamp, active):
    """NotifyDERAlarm payload (camelCase) for a trip event, or None for other events.
    active: the (controlType, gridEventFault) of the alarm in force, for a relay close that
    ends it (event kind relay_close)."""
    k = event.get("kind")
    if k == "trip":
        ct = TRIP_ALARMS.get(event.get("reason"))
        if ct is None:
            return None
        return {"controlType": ct[0], "gridEventFault": ct[1], "timestamp": timestamp,
                "extraInfo": str(event.get("reason"))[:200]}
    if k == "relay_close" and active is not None:
        return {"controlType": active[0], "gridEventFault": active[1], "alarmEnded": True, "timestamp": timestamp}
    return None


def _utc_s(text):
    import datetime

    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class DerControls:
    """The DER controls a platform set (snake_case, as the ocpp library hands them over)."""

    def __init__(self, rated_discharge_w):
        self.rated_discharge_w = float(rated_discharge_w)
        self.controls = {}  # control_id -> (is_default, control_type, settings dict)

    def set(self, control_id, control_type, is_default, settings):
        """(status, reason or None, superseded ids) per SetDERControlResponse."""
        if control_type not in SUPPORTED:
            return "NotSupported", "UnsupportedRequest", []
        if settings is None:
            return "Rejected", "MissingParam", []
        pct = settings.get("pct_max_discharge_power")
        if pct is None:
            return "Rejected", "MissingParam", []
        if not 0.0 <= pct <= 100.0:
            return "Rejected", "ValueOutOfRange", []
        # the schema's date-time format is not checked by the library's validator: a start
        # that does not parse is refused here, never met later in the station's loop
        if settings.get("start_time") is not None:
            try:
                _utc_s(settings["start_time"])
            except (TypeError, ValueError):
                return "Rejected", "InvalidValue", []
        d = settings.get("duration")
        if d is not None and not (isinstance(d, (int, float)) and d >= 0):
            return "Rejected", "InvalidValue", []
        if control_id not in self.controls and len(self.controls) >= MAX_CONTROLS:
            return "Rejected", "OutOfStorage", []
        self.controls[control_id] = (bool(is_default), control_type, dict(settings))
        return "Accepted", None, []

    def clear(self, is_default, control_type=None, control_id=None):
        gone = [cid for cid, (d, t, _) in self.controls.items()
                if d == bool(is_default) and (control_type is None or t == control_type)
                and (control_id is None or cid == control_id)]
        for cid in gone:
            del self.controls[cid]
        return "Accepted" if gone else "NotFound"

    def matching(self, is_default=None, control_type=None, control_id=None):
        return [(cid, d, t, s) for cid, (d, t, s) in sorted(self.controls.items())
                if (is_default is None or d == is_default) and (control_type is None or t == control_type)
                and (control_id is None or cid == control_id)]

    def report(self, request_id, found, now_s):
        """ReportDERControl payload (camelCase) for matching() results; isSuperseded: not the
        control in force at now_s."""
        from ocpp.charge_point import snake_to_camel_case

        act = self._active(now_s)
        best = act[0][2] if act else None
        items = [{"id": cid, "isDefault": d, "isSuperseded": cid != best,
                  "limitMaxDischarge": snake_to_camel_case(s)} for cid, d, t, s in found]
        return {"requestId": request_id, "limitMaxDischarge": items} if items else {"requestId": request_id}

    def _active(self, now_s):
        out = []
        for cid, (d, t, s) in self.controls.items():
            start = _utc_s(s["start_time"]) if s.get("start_time") else None
            if start is not None and now_s < start:
                continue
            if start is not None and s.get("duration") is not None and now_s >= start + s["duration"]:
                continue
            out.append((s.get("priority", 0), d, cid, s))  # a non-default control before a default one
        return sorted(out, key=lambda x: (x[0], x[1], x[2]))

    def discharge_limit_w(self, now_s):
        """The discharge limit (W, magnitude) in force, or None: the control of the highest
        priority (lowest number) active now."""
        act = self._active(now_s)
        if not act:
            return None
        return self.rated_discharge_w * act[0][3]["pct_max_discharge_power"] / 100.0
