"""The load-time half of controller/config.py: SCHEMA and the checks.

controller.config.validate() imports this module, validates, and drops it again, so a
board does not keep the schema and the checks in RAM while it runs. Call config.validate()
/ config.schema(), not this module.
"""

from controller.config import FORMING_STEER_HZ, FORMING_STEER_PU, GRID_CODES, MODES, ConfigError

# Leaf: (kind, default, a, b). kind "int"/"num": a..b bounds (None = open);
# "str": a = tuple of allowed values; "numornull": like num, None allowed;
# "listornull": None or a list of numbers, a = its length (a curve's points).
SCHEMA = {
    "control": {
        "period_ms": ("int", 10, 1, 1000),
        "status_period_ms": ("int", 100, 10, 10000),
        "recover_hold_ms": ("int", 100, 0, 60000),
        "acceptance_filter": ("bool", True, None, None),
        "watchdog_ms": ("int", 1000, 0, 60000),
        "gc_every_bytes": ("int", 2048, 0, 1048576),
    },
    "site": {
        "nominal_voltage_v": ("num", 230.0, 100.0, 400.0),
        "nominal_frequency_hz": ("num", 50.0, 45.0, 65.0),
        "phases": ("int", 3, 1, 3),
        "grid_code": ("str", "EN50549-1", GRID_CODES, None),
        "main_fuse_a": ("num", 35.0, 1.0, 400.0),
        "export_limit_kw": ("numornull", None, 0.0, 1000.0),
    },
    "inverter": {
        "rating_kva": ("num", 11.0, 0.1, 1000.0),
        "efficiency": ("num", 0.97, 0.5, 1.0),
        "period_ms": ("int", 10, 1, 10000),
        "timeout_ms": ("intornull", None, 1, 60000),
    },
    "meter": {
        "period_ms": ("int", 10, 1, 10000),
        "window_ms": ("int", 20, 1, 10000),
        "timeout_ms": ("intornull", None, 1, 60000),
    },
    "relay": {
        "timeout_ms": ("intornull", None, 1, 60000),
    },
    "ev": {
        "timeout_ms": ("intornull", None, 1, 60000),
    },
    "limits": {
        "ramp_up_kw_per_s": ("numornull", 20.0, 0.001, 100000.0),
        "v2h_import_bias_w": ("num", 50.0, 0.0, 10000.0),
        "v2h_gain": ("num", 0.5, 0.01, 1.0),
        "enter_service_ramp": ("str", "after_trip", ("off", "after_trip", "always"), None),
    },
    "backup": {
        "enabled": ("bool", True, None, None),
        "reserve_soc_pct": ("num", 20.0, 0.0, 100.0),
    },
    # grid support: its keys live in controller/grid_support/settings.py (SCHEMA), loaded
    # only while a configuration is validated (a board keeps them out of RAM)
    "grid_support": "controller.grid_support.settings",
    "anti_islanding": {
        "active_method": ("str", "sfs", ("off", "sfs"), None),
    },
    # the energy manager's plan (controller/energy/follow.py, docs/plan-execution.md)
    "plan": {
        "fallback": ("str", "v2h", ("v2h", "idle", "mode"), None),
    },
    # energy metering (controller/metering/, docs/metering.md)
    "metering": {
        "enabled": ("bool", True, None, None),
        "interval_s": ("int", 900, 60, 3600),
        "persist_wh": ("int", 100, 1, 100000),
        "history_days": ("int", 35, 1, 400),
    },
    "mode": {
        "kind": ("str", "idle", MODES, None),
        "setpoint_kw": ("num", 0.0, -1000.0, 1000.0),
    },
}


def _leaf(path, spec, value):
    kind, _default, a, b = spec
    if kind in ("numornull", "intornull", "listornull") and value is None:
        return None
    if kind == "listornull":
        if not isinstance(value, list) or len(value) != a:
            raise ConfigError(path, "must be a list of %d numbers or null" % a)
        out = []
        for i in range(a):
            x = value[i]
            if isinstance(x, bool) or not isinstance(x, (int, float)) or x != x:
                raise ConfigError("%s[%d]" % (path, i), "must be a number")
            out.append(float(x))
        return out
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(path, "must be true or false")
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise ConfigError(path, "must be a string")
        if a and value not in a:
            raise ConfigError(path, "must be one of %s, not %s" % (", ".join(a), value))
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(path, "must be a number")
    if kind in ("int", "intornull"):
        if isinstance(value, float):
            if value != int(value):
                raise ConfigError(path, "must be a whole number")
            value = int(value)
    else:
        value = float(value)
    if value != value:  # NaN
        raise ConfigError(path, "must be a number")
    if a is not None and value < a:
        raise ConfigError(path, "must be >= %s, not %s" % (a, value))
    if b is not None and value > b:
        raise ConfigError(path, "must be <= %s, not %s" % (b, value))
    return value


def _lazy(name):
    """A section whose schema lives in module `name` (its SCHEMA)."""
    import sys

    __import__(name)
    return sys.modules[name].SCHEMA


def schema():
    """SCHEMA with every lazy section loaded: the whole tree (docs, tests, tools)."""
    out = {}
    for sec in SCHEMA:
        spec = SCHEMA[sec]
        out[sec] = _lazy(spec) if isinstance(spec, str) else spec
    return out


def _merge(path, schema, base, override):
    if not isinstance(override, dict):
        raise ConfigError(path or "(top)", "must be an object")
    for key in override:
        if key not in schema:
            raise ConfigError(path + key if not path else path + "." + key, "unknown key")
    out = {}
    for key in schema:
        spec = schema[key]
        p = key if not path else path + "." + key
        if isinstance(spec, str):
            spec = _lazy(spec)
        if isinstance(spec, dict):
            sub = base.get(key, {}) if base else {}
            out[key] = _merge(p, spec, sub, override.get(key, {}))
        elif key in override:
            out[key] = _leaf(p, spec, override[key])
        elif base and key in base:
            out[key] = base[key]
        else:
            out[key] = spec[1]
    return out




def _check_bus(cfg):
    """The values the configuration makes the gateway send fit their DBC signals."""
    from controller.bus import candb

    def rng(msg, sig):
        for s in candb.BY_NAME[msg].signals:
            if s[0] == sig:
                return s[1], s[2]

    p_lo, p_hi = rng("GW_InverterCmd", "PSetpoint")
    sp = cfg["mode"]["setpoint_kw"] * 1000.0
    if not p_lo <= sp <= p_hi:
        raise ConfigError("mode.setpoint_kw", "%g kW is beyond what GW_InverterCmd.PSetpoint carries (%g..%g W)"
                          % (sp / 1000.0, p_lo, p_hi))
    kind = cfg["mode"]["kind"]
    if (kind == "charge" and sp < 0) or (kind == "v2g" and sp > 0):
        raise ConfigError("mode.setpoint_kw", "must be %s for %s, not %g" % (">= 0" if kind == "charge" else "<= 0",
                                                                              kind, sp / 1000.0))
    inv = cfg["inverter"]
    s = inv["rating_kva"] * 1000.0
    # the largest battery power the rating allows: discharging, the stage's losses come on top
    p_max = s / inv["efficiency"]
    if p_max > p_hi or -p_max < p_lo:
        raise ConfigError("inverter.rating_kva", "%g kVA at efficiency %g needs battery power up to %d W, beyond "
                          "what GW_InverterCmd.PSetpoint carries (%g..%g W)"
                          % (inv["rating_kva"], inv["efficiency"], int(p_max), p_lo, p_hi))
    site = cfg["site"]
    i_lo, i_hi = rng("GW_InverterLimits", "IacMax")
    i_rated = s / (site["phases"] * site["nominal_voltage_v"])
    if i_rated > i_hi:
        raise ConfigError("inverter.rating_kva", "%g kVA on %d phase(s) at %g V is %.1f A per phase, beyond what "
                          "GW_InverterLimits.IacMax carries (%g A)"
                          % (inv["rating_kva"], site["phases"], site["nominal_voltage_v"], i_rated, i_hi))
    f_lo, f_hi = rng("GW_InverterForming", "FrequencySetpoint")
    f = site["nominal_frequency_hz"]
    if f - FORMING_STEER_HZ < f_lo or f + FORMING_STEER_HZ > f_hi:
        raise ConfigError("site.nominal_frequency_hz", "%g Hz: the island is steered within +-%g Hz of it, beyond "
                          "what GW_InverterForming.FrequencySetpoint carries (%g..%g Hz)" % (f, FORMING_STEER_HZ, f_lo, f_hi))
    v_lo, v_hi = rng("GW_InverterForming", "VoltageSetpoint")
    v = site["nominal_voltage_v"] * (1.0 + FORMING_STEER_PU)
    if v > v_hi:
        raise ConfigError("site.nominal_voltage_v", "%g V: the island is steered up to %g V, beyond what "
                          "GW_InverterForming.VoltageSetpoint carries (%g V)" % (site["nominal_voltage_v"], v, v_hi))
    return cfg


def _check_grid_support(cfg):
    """The grid-support settings lie in the ranges the site's grid code allows."""
    f = cfg["site"]["nominal_frequency_hz"]
    if f != 50.0 and f != 60.0:
        raise ConfigError("site.nominal_frequency_hz", "must be 50 or 60 Hz (the grid-code profiles are), not %g" % f)
    from controller.grid_support import settings

    settings.resolve(cfg)
    settings.drop()
    return cfg


def _check_metering(cfg):
    i = cfg["metering"]["interval_s"]
    if 86400 % i:
        raise ConfigError("metering.interval_s",
                          "must divide a day (86400 s) so that intervals align to UTC, not %d" % i)
    return cfg


def validate(override=None, base=None):
    """A complete, checked configuration from `override` on top of `base` (or defaults)."""
    merged = _merge("", SCHEMA, base, override if override is not None else {})
    return _check_metering(_check_grid_support(_check_bus(merged)))


