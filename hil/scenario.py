"""Scenario files: validation and defaults (the format of docs/scenarios.md, a public interface).

load()/validate() return the scenario with every default filled in, or raise
ScenarioError naming the key path and the problem. Unknown keys are an error.
"""

import json
import math

from controller import config as ctl_config


class ScenarioError(ValueError):
    def __init__(self, key, problem):
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem

    def __reduce__(self):  # across processes (the soak's workers) with both its arguments
        return ScenarioError, (self.key, self.problem)


SITE_DEFAULTS = {
    "nominal_voltage_v": 230.0,
    "nominal_frequency_hz": 50.0,
    "phases": 3,
    "grid_code": "EN50549-1",
    "meter_period_ms": 10,
    "inverter_period_ms": 10,
    "relay_open_ms": 8,
    "relay_close_ms": 12,
    "grid_impedance": None,  # the source's series impedance {"r_ohm", "x_ohm"}; None: a stiff grid
    "start_utc": "2025-01-01T00:00:00Z",  # the wall time at plant time 0 (EMS_Time; docs/metering.md)
}
EV_DEFAULTS = {"soc": 0.8, "capacity_kwh": 94.0, "max_charge_kw": 11.0, "max_discharge_kw": 11.0, "min_soc": 0.2}
INVERTER_DEFAULTS = {"rating_kva": 11.0}
LOAD_DEFAULT = {"p_kw": 2.0, "q_kvar": 0.0}
MODE_DEFAULT = {"kind": "idle"}
NODES = ("meter", "inverter", "relay", "ev", "ems")  # hil/nodes.py NODES

# event kind -> {field: required?}
EVENT_FIELDS = {
    "grid_disconnect": {},
    "grid_reconnect": {},
    "grid_voltage": {"pu": True, "ramp_s": False},
    "grid_frequency": {"hz": True, "ramp_hz_per_s": False},
    "grid_phase_jump": {"deg": True},
    "load_step": {"p_kw": False, "q_kvar": False, "rlc": False},
    "ev_limits": {"max_charge_kw": False, "max_discharge_kw": False, "min_soc": False},
    "ev_session": {"active": True},
    "mode": {"mode": True, "setpoint_kw": False},
    "can_silence": {"node": True, "duration_s": True},
    "can_corrupt": {"node": True, "duration_s": True},
    "freq_service": {"service": True, "points": False, "baseline_kw": False, "valid_s": False},
    "grid_profile": {"quantity": True, "points": True},
    "plan": {"slots": True, "slot_s": False, "slot0_elapsed_s": False, "reserve_pct": False, "corrupt_slots": False},
}
# freq_service "service" -> the kind of EMS_FreqServiceHdr (controller/grid_support/freq_service.py)
FREQ_SERVICES = {"cancel": 0, "fcr_n": 1, "fcr_d_up": 2, "fcr_d_down": 3, "ffr": 4, "custom": 5}
FREQ_SERVICE_MAX_POINTS = 8
# plan: EMS_PlanHdr / EMS_PlanSlot (dbc/gateway.dbc); modes coded as EMS_ModeRequest.ModeReq
PLAN_MODES = ("idle", "charge", "v2h", "v2g")
PLAN_MAX_SLOTS = 48
PLAN_SLOT_S = (10, 3600)
GRID_IMPEDANCE_MAX_OHM = 10.0
GRID_PROFILE_MAX_POINTS = 1000
# grid_profile quantity -> (the event it becomes, value range, its unit)
GRID_PROFILE = {"frequency": ("grid_frequency", 40.0, 70.0, "Hz"), "voltage": ("grid_voltage", 0.0, 2.0, "pu")}


def _num(path, v, lo=None, hi=None, integer=False):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not math.isfinite(v)):
        raise ScenarioError(path, "must be a number")
    if integer and v != int(v):
        raise ScenarioError(path, "must be a whole number")
    if lo is not None and v < lo:
        raise ScenarioError(path, f"must be >= {lo}, not {v}")
    if hi is not None and v > hi:
        raise ScenarioError(path, f"must be <= {hi}, not {v}")
    return int(v) if integer else float(v)


def _obj(path, v, allowed):
    if not isinstance(v, dict):
        raise ScenarioError(path, "must be an object")
    for k in v:
        if k not in allowed:
            raise ScenarioError(f"{path}.{k}" if path else k, "unknown key")
    return v


RANGES = {
    "site.nominal_voltage_v": (100.0, 400.0, False),
    "site.nominal_frequency_hz": (45.0, 65.0, False),
    "site.phases": (1, 3, True),
    "site.meter_period_ms": (1, 1000, True),
    "site.inverter_period_ms": (1, 1000, True),
    "site.relay_open_ms": (0, 1000, True),
    "site.relay_close_ms": (0, 1000, True),
    "ev.soc": (0.0, 1.0, False),
    "ev.capacity_kwh": (0.1, 1000.0, False),
    "ev.max_charge_kw": (0.0, 350.0, False),
    "ev.max_discharge_kw": (0.0, 350.0, False),
    "ev.min_soc": (0.0, 1.0, False),
    "inverter.rating_kva": (0.1, 1000.0, False),
}


def _section(sc, name, defaults):
    raw = _obj(name, sc.get(name, {}), defaults)
    out = dict(defaults)
    for k, v in raw.items():
        path = f"{name}.{k}"
        if path in RANGES:
            lo, hi, integer = RANGES[path]
            out[k] = _num(path, v, lo, hi, integer)
        elif path == "site.grid_impedance":
            out[k] = _grid_impedance(path, v)
        elif path == "site.start_utc":
            utc_seconds(v, path)
            out[k] = v
        elif k == "grid_code":
            if v not in ctl_config.GRID_CODES:
                raise ScenarioError(path, "unknown grid code %r; known: %s" % (v, ", ".join(ctl_config.GRID_CODES)))
            out[k] = v
        else:
            out[k] = v
    return out


def utc_seconds(text, path="site.start_utc"):
    """Seconds since 1970 of an ISO 8601 UTC time 'YYYY-MM-DDTHH:MM:SSZ'; ScenarioError naming
    `path` otherwise."""
    import calendar
    import time

    try:
        if not isinstance(text, str) or not text.endswith("Z"):
            raise ValueError
        return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        raise ScenarioError(path, "must be a UTC time like 2025-01-01T00:00:00Z, not %r" % (text,)) from None


def _grid_impedance(path, v):
    if v is None:
        return None
    _obj(path, v, ("r_ohm", "x_ohm"))
    out = {}
    for k in ("r_ohm", "x_ohm"):
        if k not in v:
            raise ScenarioError(f"{path}.{k}", "missing")
        out[k] = _num(f"{path}.{k}", v[k], 0.0, GRID_IMPEDANCE_MAX_OHM)
    return out


def _pairs(path, v, lo_n, hi_n):
    """A list of lo_n..hi_n [number, number] pairs (checked as numbers, not yet in range)."""
    if not isinstance(v, list):
        raise ScenarioError(path, "must be a list of [x, y] pairs")
    if not lo_n <= len(v) <= hi_n:
        raise ScenarioError(path, f"must hold {lo_n}..{hi_n} points, not {len(v)}")
    out = []
    for j, pt in enumerate(v):
        if not isinstance(pt, list) or len(pt) != 2:
            raise ScenarioError(f"{path}[{j}]", "must be a pair [x, y]")
        out.append((_num(f"{path}[{j}][0]", pt[0]), _num(f"{path}[{j}][1]", pt[1])))
    return out


def _freq_service(path, ev, out):
    service = ev["service"]
    if service not in FREQ_SERVICES:
        raise ScenarioError(path + ".service", "must be one of %s, not %r" % (", ".join(FREQ_SERVICES), service))
    out["service"] = service
    if service == "cancel":
        for f in ("points", "baseline_kw", "valid_s"):
            if f in ev:
                raise ScenarioError(f"{path}.{f}", "not with service cancel")
        return out
    for f in ("points", "valid_s"):
        if f not in ev:
            raise ScenarioError(f"{path}.{f}", "missing")
    pts = _pairs(path + ".points", ev["points"], 2, FREQ_SERVICE_MAX_POINTS)
    prev = None
    for j, (hz, kw) in enumerate(pts):
        _num(f"{path}.points[{j}][0]", hz, _FREQ_LO, _FREQ_HI)
        # the curve goes on the bus in mHz: the frequencies must increase there too
        mhz = round(hz * 1000.0)
        if prev is not None and mhz <= prev:
            raise ScenarioError(f"{path}.points[{j}][0]", "frequencies must increase strictly (in steps of at "
                                "least 0.001 Hz)")
        prev = mhz
        if not _DELTA_LO <= kw * 1000.0 <= _DELTA_HI:
            raise ScenarioError(f"{path}.points[{j}][1]", "%g kW is beyond what EMS_FreqServicePoint.DeltaPower "
                                "carries (%g..%g W)" % (kw, _DELTA_LO, _DELTA_HI))
    out["points"] = [[hz, kw] for hz, kw in pts]
    base = _num(path + ".baseline_kw", ev.get("baseline_kw", 0.0))
    if not _BASE_LO <= base * 1000.0 <= _BASE_HI:
        raise ScenarioError(path + ".baseline_kw", "%g kW is beyond what EMS_FreqServiceHdr.BaselinePower carries "
                            "(%g..%g W)" % (base, _BASE_LO, _BASE_HI))
    out["baseline_kw"] = base
    out["valid_s"] = _num(path + ".valid_s", ev["valid_s"], _VALID_LO, _VALID_HI, integer=True)
    return out


def _plan(path, ev, out):
    """A plan event: slots [{"mode", "kw"}] (none: cancel), slot_s, slot0_elapsed_s, reserve_pct,
    corrupt_slots (fault injection: those slots' frames are sent refusable)."""
    slots = ev["slots"]
    if not isinstance(slots, list) or len(slots) > PLAN_MAX_SLOTS:
        raise ScenarioError(path + ".slots", "must be a list of at most %d slots" % PLAN_MAX_SLOTS)
    out["slots"] = []
    for j, s in enumerate(slots):
        p = f"{path}.slots[{j}]"
        _obj(p, s, ("mode", "kw"))
        if s.get("mode") not in PLAN_MODES:
            raise ScenarioError(p + ".mode", "must be one of %s, not %r" % (", ".join(PLAN_MODES), s.get("mode")))
        kw = _num(p + ".kw", s.get("kw", 0.0), _SETPOINT_LO / 1000.0, _SETPOINT_HI / 1000.0)
        out["slots"].append({"mode": s["mode"], "kw": kw})
    if slots:
        if "slot_s" not in ev:
            raise ScenarioError(path + ".slot_s", "missing")
        out["slot_s"] = _num(path + ".slot_s", ev["slot_s"], *PLAN_SLOT_S, integer=True)
        out["slot0_elapsed_s"] = _num(path + ".slot0_elapsed_s", ev.get("slot0_elapsed_s", 0), 0,
                                      out["slot_s"] - 1, integer=True)
    elif "slot_s" in ev or "slot0_elapsed_s" in ev:
        raise ScenarioError(path + (".slot_s" if "slot_s" in ev else ".slot0_elapsed_s"), "not with a cancel (no slots)")
    out["reserve_pct"] = _num(path + ".reserve_pct", ev.get("reserve_pct", 0), 0, 100, integer=True)
    bad = ev.get("corrupt_slots", [])
    if not isinstance(bad, list):
        raise ScenarioError(path + ".corrupt_slots", "must be a list of slot indices")
    for j, i in enumerate(bad):
        _num(f"{path}.corrupt_slots[{j}]", i, 0, len(slots) - 1, integer=True)
    out["corrupt_slots"] = [int(i) for i in bad]


def _grid_profile(path, ev, t0, duration):
    """The grid_frequency / grid_voltage events a profile stands for: the quantity steps to
    the first point's value at t_s + its dt_s, then runs linearly from point to point
    (a ramp per segment; two points at one time: a step; an unchanged value: nothing)."""
    q = ev["quantity"]
    if q not in GRID_PROFILE:
        raise ScenarioError(path + ".quantity", "must be one of %s, not %r" % (", ".join(GRID_PROFILE), q))
    kind, lo, hi, unit = GRID_PROFILE[q]
    pts = _pairs(path + ".points", ev["points"], 1, GRID_PROFILE_MAX_POINTS)
    for j, (dt, v) in enumerate(pts):
        _num(f"{path}.points[{j}][0]", dt, 0.0, duration - t0)
        _num(f"{path}.points[{j}][1]", v, lo, hi)
        if j and dt < pts[j - 1][0]:
            raise ScenarioError(f"{path}.points[{j}][0]", "times must not decrease")
    key = "hz" if kind == "grid_frequency" else "pu"
    events = [{"t_s": t0 + pts[0][0], "kind": kind, key: pts[0][1]}]
    for j in range(1, len(pts)):
        (d0, v0), (d1, v1) = pts[j - 1], pts[j]
        if v1 == v0:
            continue
        e = {"t_s": t0 + d0, "kind": kind, key: v1}
        if d1 > d0:
            if kind == "grid_frequency":
                rate = abs(v1 - v0) / (d1 - d0)
                if not 0.001 <= rate <= 100.0:
                    raise ScenarioError(f"{path}.points[{j}]", "a ramp of %g Hz/s; the plant ramps at 0.001..100 "
                                        "Hz/s (use a step: two points at one time)" % rate)
                e["ramp_hz_per_s"] = rate
            else:
                e["ramp_s"] = d1 - d0
        events.append(e)
    return events


def _load(path, v):
    _obj(path, v, ("p_kw", "q_kvar", "rlc"))
    if "rlc" in v:
        if len(v) != 1:
            raise ScenarioError(path, "give either rlc or p_kw/q_kvar, not both")
        r = _obj(path + ".rlc", v["rlc"], ("p_kw", "q_factor", "reactive_mismatch_pct"))
        for k in ("p_kw", "q_factor"):
            if k not in r:
                raise ScenarioError(f"{path}.rlc.{k}", "missing")
        return {"rlc": {
            "p_kw": _num(path + ".rlc.p_kw", r["p_kw"], 0.001, 1000.0),
            "q_factor": _num(path + ".rlc.q_factor", r["q_factor"], 0.0, 100.0),
            "reactive_mismatch_pct": _num(path + ".rlc.reactive_mismatch_pct", r.get("reactive_mismatch_pct", 0.0), -100.0, 100.0),
        }}
    if "p_kw" not in v:
        raise ScenarioError(path + ".p_kw", "missing")
    return {"p_kw": _num(path + ".p_kw", v["p_kw"], -1000.0, 1000.0),
            "q_kvar": _num(path + ".q_kvar", v.get("q_kvar", 0.0), -1000.0, 1000.0)}


def _mode(path, v):
    _obj(path, v, ("kind", "setpoint_kw"))
    kind = v.get("kind")
    if kind not in ctl_config.MODES:
        raise ScenarioError(path + ".kind", "must be one of %s, not %r" % (", ".join(ctl_config.MODES), kind))
    sp = _num(path + ".setpoint_kw", v.get("setpoint_kw", 0.0), -1000.0, 1000.0)
    if kind in ("charge", "v2g") and "setpoint_kw" not in v:
        raise ScenarioError(path + ".setpoint_kw", f"required for mode {kind}")
    # a setpoint against the mode's direction (charge < 0, v2g > 0) is valid input: the
    # controller must hold zero power (limiting factor mode_direction)
    return {"kind": kind, "setpoint_kw": sp}


def _event(path, ev, duration):
    if not isinstance(ev, dict):
        raise ScenarioError(path, "must be an object")
    kind = ev.get("kind")
    if kind not in EVENT_FIELDS:
        raise ScenarioError(path + ".kind", "unknown event kind %r; known: %s" % (kind, ", ".join(EVENT_FIELDS)))
    fields = EVENT_FIELDS[kind]
    _obj(path, ev, ("t_s", "kind") + tuple(fields))
    if "t_s" not in ev:
        raise ScenarioError(path + ".t_s", "missing")
    out = {"t_s": _num(path + ".t_s", ev["t_s"], 0.0, duration), "kind": kind}
    for f, req in fields.items():
        if req and f not in ev:
            raise ScenarioError(f"{path}.{f}", "missing")
    if kind == "grid_voltage":
        out["pu"] = _num(path + ".pu", ev["pu"], 0.0, 2.0)
        if "ramp_s" in ev:
            out["ramp_s"] = _num(path + ".ramp_s", ev["ramp_s"], 0.0, 3600.0)
    elif kind == "grid_frequency":
        out["hz"] = _num(path + ".hz", ev["hz"], 40.0, 70.0)
        if "ramp_hz_per_s" in ev:
            out["ramp_hz_per_s"] = _num(path + ".ramp_hz_per_s", ev["ramp_hz_per_s"], 0.001, 100.0)
    elif kind == "grid_phase_jump":
        out["deg"] = _num(path + ".deg", ev["deg"], -180.0, 180.0)
    elif kind == "load_step":
        out.update(_load(path, {k: ev[k] for k in ("p_kw", "q_kvar", "rlc") if k in ev}))
    elif kind == "ev_limits":
        if len(ev) == 2:
            raise ScenarioError(path, "ev_limits needs at least one of max_charge_kw, max_discharge_kw, min_soc")
        for f, hi in (("max_charge_kw", 350.0), ("max_discharge_kw", 350.0), ("min_soc", 1.0)):
            if f in ev:
                out[f] = _num(f"{path}.{f}", ev[f], 0.0, hi)
    elif kind == "ev_session":
        if not isinstance(ev["active"], bool):
            raise ScenarioError(path + ".active", "must be true or false")
        out["active"] = ev["active"]
    elif kind == "mode":
        # the event's own "kind" is taken, so the new mode comes as "mode": either the
        # mode object of the top level, or its kind as a string beside "setpoint_kw"
        m = ev["mode"]
        if isinstance(m, str):
            m = {"kind": m}
            if "setpoint_kw" in ev:
                m["setpoint_kw"] = ev["setpoint_kw"]
        elif "setpoint_kw" in ev:
            raise ScenarioError(path + ".setpoint_kw", "goes inside the mode object")
        out["mode"] = _mode(path + ".mode", m)
    elif kind == "freq_service":
        _freq_service(path, ev, out)
    elif kind == "plan":
        _plan(path, ev, out)
    elif kind == "grid_profile":
        return _grid_profile(path, ev, out["t_s"], duration)
    elif kind in ("can_silence", "can_corrupt"):
        if ev["node"] not in NODES:
            raise ScenarioError(path + ".node", "must be one of %s, not %r" % (", ".join(NODES), ev["node"]))
        out["node"] = ev["node"]
        out["duration_s"] = _num(path + ".duration_s", ev["duration_s"], 0.0, 86400.0)
    return out


TOP = ("name", "description", "duration_s", "seed", "site", "ev", "inverter", "load", "mode", "controller", "events")


def validate(sc):
    """The scenario with defaults filled in; ScenarioError names the first bad key."""
    _obj("", sc, TOP)
    if "name" not in sc or not isinstance(sc["name"], str) or not sc["name"]:
        raise ScenarioError("name", "missing or not a non-empty string")
    if "description" in sc and not isinstance(sc["description"], str):
        raise ScenarioError("description", "must be a string")
    if "duration_s" not in sc:
        raise ScenarioError("duration_s", "missing")
    duration = _num("duration_s", sc["duration_s"], 0.001, 86400.0)
    out = {
        "name": sc["name"],
        "description": sc.get("description", ""),
        "duration_s": duration,
        "seed": _num("seed", sc.get("seed", 0), 0, 2**31 - 1, integer=True),
        "site": _section(sc, "site", SITE_DEFAULTS),
        "ev": _section(sc, "ev", EV_DEFAULTS),
        "inverter": _section(sc, "inverter", INVERTER_DEFAULTS),
        "load": _load("load", sc.get("load", LOAD_DEFAULT)),
        "mode": _mode("mode", sc.get("mode", MODE_DEFAULT)),
    }
    if out["site"]["phases"] not in (1, 3):
        raise ScenarioError("site.phases", "must be 1 or 3")
    ctl = sc.get("controller", {})
    try:
        ctl_config.validate(ctl)
    except ctl_config.ConfigError as e:
        raise ScenarioError("controller." + e.key, e.problem) from None
    out["controller"] = ctl
    evs = sc.get("events", [])
    if not isinstance(evs, list):
        raise ScenarioError("events", "must be a list")
    events = []
    for i, ev in enumerate(evs):
        e = _event(f"events[{i}]", ev, duration)
        if isinstance(e, list):  # a grid_profile: the plant's own events, so plant and runner need no change
            events.extend(e)
        else:
            events.append(e)
    out["events"] = sorted(events, key=lambda e: e["t_s"])  # stable: same-time events keep file order
    # the controller configuration the scenario implies must be one the controller accepts
    # (its values fit the CAN signals they feed): name the scenario key that breaks it
    try:
        controller_config(out)
    except ctl_config.ConfigError as e:
        key = _SCENARIO_KEY_OF.get(e.key, "controller." + e.key)
        raise ScenarioError(key, e.problem) from None
    for i, ev in enumerate(out["events"]):
        # a mode event is the energy manager's request on the bus: any sign (the controller
        # must keep the mode's direction itself), within what EMS_ModeRequest carries
        if ev["kind"] == "mode" and not _SETPOINT_LO <= ev["mode"]["setpoint_kw"] * 1000.0 <= _SETPOINT_HI:
            raise ScenarioError(f"events[{i}].mode.setpoint_kw", "%g kW is beyond what EMS_ModeRequest.SetpointPower "
                                "carries (%g..%g W)" % (ev["mode"]["setpoint_kw"], _SETPOINT_LO, _SETPOINT_HI))
    return out


def _signal_range(msg, sig):
    from controller.bus import candb

    for s in candb.BY_NAME[msg].signals:
        if s[0] == sig:
            return s[1], s[2]


_SETPOINT_LO, _SETPOINT_HI = _signal_range("EMS_ModeRequest", "SetpointPower")
_FREQ_LO, _FREQ_HI = _signal_range("EMS_FreqServicePoint", "Frequency")
_DELTA_LO, _DELTA_HI = _signal_range("EMS_FreqServicePoint", "DeltaPower")
_BASE_LO, _BASE_HI = _signal_range("EMS_FreqServiceHdr", "BaselinePower")
_VALID_LO, _VALID_HI = _signal_range("EMS_FreqServiceHdr", "ValidFor")


# controller configuration key -> the scenario key it comes from (controller_config())
_SCENARIO_KEY_OF = {
    "site.nominal_voltage_v": "site.nominal_voltage_v",
    "site.nominal_frequency_hz": "site.nominal_frequency_hz",
    "site.phases": "site.phases",
    "inverter.rating_kva": "inverter.rating_kva",
    "mode.setpoint_kw": "mode.setpoint_kw",
}


def load(path):
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise ScenarioError(str(path), f"cannot read: {e.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ScenarioError(str(path), f"not valid JSON: {e}") from None
    return validate(data)


def controller_config(sc):
    """Controller configuration for this scenario: site facts, then the scenario's overrides.

    The scenario's mode is also the controller's configured (local) mode. A setpoint
    against that mode's direction (charge < 0, v2g > 0), which the energy manager sends
    as it is, is configured as 0: the controller's configuration refuses such a setpoint."""
    site = sc["site"]
    mode = dict(sc["mode"])
    if (mode["kind"] == "charge" and mode["setpoint_kw"] < 0) or (mode["kind"] == "v2g" and mode["setpoint_kw"] > 0):
        mode["setpoint_kw"] = 0.0
    base = ctl_config.validate({
        "site": {"nominal_voltage_v": site["nominal_voltage_v"], "nominal_frequency_hz": site["nominal_frequency_hz"],
                 "phases": site["phases"], "grid_code": site["grid_code"]},
        "inverter": {"rating_kva": sc["inverter"]["rating_kva"], "period_ms": site["inverter_period_ms"]},
        "meter": {"period_ms": site["meter_period_ms"]},
        "mode": mode,
    })
    return ctl_config.validate(sc["controller"], base=base)
