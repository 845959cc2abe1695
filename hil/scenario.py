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
    "mode": {"mode": True, "setpoint_kw": False},
    "can_silence": {"node": True, "duration_s": True},
    "can_corrupt": {"node": True, "duration_s": True},
}


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
        elif k == "grid_code":
            if v not in ctl_config.GRID_CODES:
                raise ScenarioError(path, "unknown grid code %r; known: %s" % (v, ", ".join(ctl_config.GRID_CODES)))
            out[k] = v
        else:
            out[k] = v
    return out


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
    events = [_event(f"events[{i}]", ev, duration) for i, ev in enumerate(evs)]
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
