"""Configuration validation (run under MicroPython and CPython)."""

from controller import config


def _err(override):
    try:
        config.validate(override)
    except config.ConfigError as e:
        return e
    return None


def test_defaults_complete():
    c = config.defaults()
    full = config.schema()
    for sec in full:
        for key in full[sec]:
            assert key in c[sec]
    assert c["control"]["period_ms"] == 10
    assert config.timeout_ms(c, "meter") == 50


def test_unknown_keys_named():
    e = _err({"control": {"period_ms": 10, "perod": 1}})
    assert e is not None and e.key == "control.perod" and "unknown" in e.problem
    e = _err({"nonsense": {}})
    assert e.key == "nonsense"


def test_types_and_ranges_named():
    e = _err({"control": {"period_ms": "10"}})
    assert e.key == "control.period_ms" and "number" in e.problem
    e = _err({"control": {"period_ms": 0}})
    assert e.key == "control.period_ms"
    e = _err({"control": {"period_ms": 10.5}})
    assert e.key == "control.period_ms" and "whole" in e.problem
    e = _err({"site": {"grid_code": "XX"}})
    assert e.key == "site.grid_code"
    e = _err({"limits": {"ramp_up_kw_per_s": True}})
    assert e.key == "limits.ramp_up_kw_per_s"
    e = _err({"site": 3})
    assert e.key == "site"


def test_timeout_follows_period():
    c = config.validate({"meter": {"period_ms": 100}})
    assert config.timeout_ms(c, "meter") == 500
    c = config.validate({"meter": {"period_ms": 100, "timeout_ms": 250}})
    assert config.timeout_ms(c, "meter") == 250


def test_override_on_base_keeps_base():
    base = config.validate({"site": {"main_fuse_a": 25}})
    c = config.validate({"anti_islanding": {"active_method": "off"}}, base=base)
    assert c["site"]["main_fuse_a"] == 25.0
    assert c["anti_islanding"]["active_method"] == "off"
    assert c["site"]["export_limit_kw"] is None


def _refused(override):
    try:
        config.validate(override)
    except config.ConfigError as e:
        return e.key
    return None


def test_values_the_bus_cannot_carry_are_refused_at_load():
    # each names the key; the message says which signal and its range
    assert _refused({"mode": {"kind": "v2g", "setpoint_kw": -40.0}}) == "mode.setpoint_kw"  # PSetpoint +-32 kW
    assert _refused({"mode": {"kind": "charge", "setpoint_kw": 33.0}}) == "mode.setpoint_kw"
    assert _refused({"inverter": {"rating_kva": 100.0}, "site": {"phases": 1}}) == "inverter.rating_kva"
    assert _refused({"inverter": {"rating_kva": 31.5}}) == "inverter.rating_kva"  # 32.5 kW on the battery side
    assert _refused({"inverter": {"rating_kva": 30.0}, "site": {"phases": 1, "nominal_voltage_v": 100.0}}) is None
    assert _refused({"inverter": {"rating_kva": 30.0, "efficiency": 0.9}, "site": {"phases": 1,
                     "nominal_voltage_v": 100.0}}) == "inverter.rating_kva"  # 33 kW
    assert _refused({"site": {"nominal_frequency_hz": 65.0}}) == "site.nominal_frequency_hz"
    assert _refused({"site": {"nominal_frequency_hz": 60.0}}) is None


def test_a_mode_setpoint_of_the_wrong_sign_is_refused():
    assert _refused({"mode": {"kind": "charge", "setpoint_kw": -3.0}}) == "mode.setpoint_kw"
    assert _refused({"mode": {"kind": "v2g", "setpoint_kw": 3.0}}) == "mode.setpoint_kw"
    assert _refused({"mode": {"kind": "v2h", "setpoint_kw": 3.0}}) is None  # ignored by v2h
