"""The grid-support settings in force: the profile's defaults, configuration overrides
inside the standard's ranges, refusals naming the key (MicroPython and CPython)."""

from controller import config
from controller.grid_support import settings


def _err(override):
    try:
        config.validate(override)
    except config.ConfigError as e:
        return e
    return None


def _resolved(override):
    return settings.resolve(config.validate(override))


def test_en50549_defaults():
    s = _resolved({})
    assert s["p_of_f"] and s["f_nom_hz"] == 50.0
    assert s["f_of_hz"] == 50.2 and s["f_uf_hz"] == 49.8  # EN 50549-1 4.6.1 / 4.6.2
    assert s["droop_of"] == 0.05 and s["droop_uf"] == 0.05
    assert s["reference"] == "momentary" and s["p_of_f_delay_s"] == 0.0
    assert s["q_mode"] == "unity_pf" and not s["volt_watt"]
    assert s["q_max_pu"] == 0.436  # cos phi 0.90 capability


def test_ieee_defaults_at_60_and_converted_to_50_hz():
    s = _resolved({"site": {"grid_code": "IEEE1547-2018-CatII", "nominal_frequency_hz": 60.0}})
    assert abs(s["f_of_hz"] - 60.036) < 1e-9 and abs(s["f_uf_hz"] - 59.964) < 1e-9  # Table 24 dbOF/dbUF
    assert s["reference"] == "rated" and s["p_of_f_olrt_s"] == 5.0
    assert s["volt_var_v_pu"] == (0.92, 0.98, 1.02, 1.08) and s["volt_var_q_pu"] == (0.44, 0.0, 0.0, -0.44)
    assert s["cos_phi_p_kind"] == "q" and s["cos_phi_p_y"] == (0.0, 0.0, -0.44)
    s50 = _resolved({"site": {"grid_code": "IEEE1547-2018-CatII", "nominal_frequency_hz": 50.0}})
    assert abs(s50["f_of_hz"] - 50.03) < 1e-9  # same deviation relative to nominal


def test_danish_lfsm_o_breakpoint():
    s = _resolved({"site": {"grid_code": "DK-EN50549-1"}})
    assert s["f_of_hz"] == 50.2
    # DK2 (Nordic) uses 50.5 Hz: inside the range, accepted as an override
    assert _resolved({"site": {"grid_code": "DK-EN50549-1"}, "grid_support": {"f_of_hz": 50.5}})["f_of_hz"] == 50.5


def test_overrides_inside_the_range_taken():
    s = _resolved({"grid_support": {"droop_of": 0.04, "p_of_f_delay_s": 0.5, "q_mode": "volt_var",
                                    "volt_var_v_pu": [0.9, 0.97, 1.03, 1.1], "volt_var_q_pu": [0.3, 0, 0, -0.3]}})
    assert s["droop_of"] == 0.04 and s["p_of_f_delay_s"] == 0.5 and s["q_mode"] == "volt_var"
    assert s["volt_var_v_pu"] == (0.9, 0.97, 1.03, 1.1) and s["volt_var_q_pu"] == (0.3, 0.0, 0.0, -0.3)


def test_outside_the_standard_range_refused_with_the_key():
    e = _err({"grid_support": {"f_of_hz": 50.1}})  # EN 50549-1: 50.2-52.0 Hz
    assert e.key == "grid_support.f_of_hz" and "50.2" in e.problem
    e = _err({"grid_support": {"droop_of": 0.15}})  # EN: 2-12 %
    assert e.key == "grid_support.droop_of"
    e = _err({"grid_support": {"p_of_f_delay_s": 3.0}})  # EN: 0-2 s
    assert e.key == "grid_support.p_of_f_delay_s"
    e = _err({"site": {"grid_code": "IEEE1547-2018-CatII", "nominal_frequency_hz": 60.0},
              "grid_support": {"droop_uf": 0.01}})  # IEEE Table 24: 0.02-0.07
    assert e.key == "grid_support.droop_uf"
    e = _err({"grid_support": {"volt_var_v_pu": [0.9, 0.97, 0.99, 1.1]}})  # V3 >= 1.0 in EN's range here
    assert e.key == "grid_support.volt_var_v_pu[2]"
    e = _err({"grid_support": {"q_pu": 0.5}})
    assert e.key == "grid_support.q_pu"


def test_curves_must_be_lists_of_numbers_in_order():
    e = _err({"grid_support": {"volt_var_v_pu": [0.9, 1.0]}})
    assert e.key == "grid_support.volt_var_v_pu" and "4" in e.problem
    e = _err({"grid_support": {"volt_var_v_pu": [0.9, "x", 1.03, 1.1]}})
    assert e.key == "grid_support.volt_var_v_pu[1]"
    e = _err({"grid_support": {"volt_watt_v_pu": [1.08, 1.07]}})
    assert e is not None and e.key in ("grid_support.volt_watt_v_pu", "grid_support.volt_watt_v_pu[1]")
    e = _err({"grid_support": {"cos_phi_p_p_pu": [0.5, 0.5, 1.0]}})
    assert e.key == "grid_support.cos_phi_p_p_pu" and "not strictly increasing at point 2" in e.problem


def test_unknown_mode_and_nominal_frequency_without_profile_refused():
    e = _err({"grid_support": {"q_mode": "cos_phi"}})
    assert e.key == "grid_support.q_mode"
    e = _err({"site": {"nominal_frequency_hz": 55.0}})
    assert e.key == "site.nominal_frequency_hz"


def test_power_factors_below_the_capability_refused():
    e = _err({"grid_support": {"cos_phi_p_y": [1.0, 0.0, -0.9]}})
    assert e.key == "grid_support.cos_phi_p_y[1]"
    e = _err({"grid_support": {"cos_phi_p_y": [1.0, 1.0, -0.85]}})  # EN: 0.90 at most
    assert e.key == "grid_support.cos_phi_p_y[2]"


def test_every_mode_builds_its_unit_for_every_profile():
    from controller.grid_support.support import GridSupport

    for code, f in (("EN50549-1", 50.0), ("DK-EN50549-1", 50.0), ("IEEE1547-2018-CatII", 60.0),
                    ("IEEE1547-2018-CatIII", 60.0)):
        for mode in config.Q_MODES:
            cfg = config.validate({"site": {"grid_code": code, "nominal_frequency_hz": f},
                                   "grid_support": {"q_mode": mode, "volt_watt": True}})
            gs = GridSupport(settings.resolve(cfg), 11000.0)
            q = gs.q_var(1.0, 11000.0, 0)
            assert -0.44 * 11000.0 - 1e-6 <= q <= 0.44 * 11000.0 + 1e-6
            assert gs.p_w(f, 1.0, 5000.0, -11000.0, 11000.0, 0) == 5000.0  # nominal: the schedule
            gs.reset(10000)
