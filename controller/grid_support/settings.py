"""The grid-support settings in force: the site's grid-code profile, overridden by the
configuration's `grid_support` section.

resolve(cfg) returns plain data (a dict of numbers, tuples and strings) that
controller/grid_support/support.py builds its units from. Every number comes from the
profile of site.grid_code (controller/protection/grid_code_sources.py: default and the
range the standard allows, `k`, `min_k`, `max_k`) unless the configuration sets it; a
configured value outside the profile's range, or a curve whose points are not in
order, raises ConfigError naming the configuration key (the command exits 2).

Frequencies are in Hz at the site's nominal frequency (the profile converts them),
voltages and powers in per unit of the nominal voltage and the rating.
"""

from controller.config import ConfigError, Q_MODES
from controller.grid_support.curve import check

# The configuration's `grid_support` section (controller/config.py loads it from here while
# it validates; docs/configuration.md). null takes the value of the site.grid_code profile;
# a value must lie in the range that profile's standard allows (resolve()).
SCHEMA = {
    "p_of_f": ("bool", True, None, None),
    "q_mode": ("str", "profile", ("profile",) + Q_MODES, None),
    "volt_watt": ("bool", False, None, None),
    "f_of_hz": ("numornull", None, 45.0, 66.0),
    "f_uf_hz": ("numornull", None, 44.0, 65.0),
    "droop_of": ("numornull", None, 0.001, 1.0),
    "droop_uf": ("numornull", None, 0.001, 1.0),
    "p_of_f_delay_s": ("numornull", None, 0.0, 60.0),
    "p_of_f_olrt_s": ("numornull", None, 0.01, 600.0),
    "pf": ("numornull", None, 0.0, 1.0),
    "pf_excitation": ("str", "absorb", ("absorb", "inject"), None),
    "q_pu": ("numornull", None, -1.0, 1.0),
    "volt_var_v_pu": ("listornull", None, 4, None),
    "volt_var_q_pu": ("listornull", None, 4, None),
    "volt_var_olrt_s": ("numornull", None, 0.01, 600.0),
    "cos_phi_p_p_pu": ("listornull", None, 3, None),
    "cos_phi_p_y": ("listornull", None, 3, None),
    "volt_watt_v_pu": ("listornull", None, 2, None),
    "volt_watt_p_pu": ("listornull", None, 2, None),
    "volt_watt_olrt_s": ("numornull", None, 0.01, 600.0),
}

# configuration key -> (profile section, profile key)
SCALARS = (
    ("f_of_hz", "p_of_f", "f_of_hz"),
    ("f_uf_hz", "p_of_f", "f_uf_hz"),
    ("droop_of", "p_of_f", "droop_of"),
    ("droop_uf", "p_of_f", "droop_uf"),
    ("p_of_f_delay_s", "p_of_f", "delay_s"),
    ("p_of_f_olrt_s", "p_of_f", "olrt_s"),
    ("pf", "q", "pf"),
    ("q_pu", "q", "q_pu"),
    ("volt_var_olrt_s", "volt_var", "olrt_s"),
    ("volt_watt_olrt_s", "volt_watt", "olrt_s"),
)
# configuration key -> (profile section, the profile keys of its points in order)
CURVES = (
    ("volt_var_v_pu", "volt_var", ("v1_pu", "v2_pu", "v3_pu", "v4_pu"), True),
    ("volt_var_q_pu", "volt_var", ("q1_pu", "q2_pu", "q3_pu", "q4_pu"), False),
    ("cos_phi_p_p_pu", "cos_phi_p", ("p1_pu", "p2_pu", "p3_pu"), True),
    ("cos_phi_p_y", "cos_phi_p", ("y1", "y2", "y3"), False),
    ("volt_watt_v_pu", "volt_watt", ("v1_pu", "v2_pu"), True),
    ("volt_watt_p_pu", "volt_watt", ("p1_pu", "p2_pu"), False),
)


def _in_range(key, x, sec, k):
    lo = sec["min_" + k][0]
    hi = sec["max_" + k][0]
    # a hair of tolerance: converted frequencies (60 -> 50 Hz) are not exact decimals
    if x < lo - 1e-9 or x > hi + 1e-9:
        raise ConfigError(key, "%g is outside the range the grid code allows, %g..%g" % (x, lo, hi))
    return x


def resolve(cfg, prof=None):
    """The settings in force (dict), or ConfigError naming the configuration key."""
    from controller.protection import grid_codes

    if prof is None:
        prof = grid_codes.profile(cfg["site"]["grid_code"], cfg["site"]["nominal_frequency_hz"])
    gs = prof["grid_support"]
    c = cfg["grid_support"]
    out = {"p_of_f": c["p_of_f"], "volt_watt": c["volt_watt"], "f_nom_hz": prof["f_nom_hz"][0],
           "reference": gs["p_of_f"]["reference"], "q_max_pu": gs["q"]["q_max_pu"][0],
           "pf_excitation": 1 if c["pf_excitation"] == "inject" else -1,
           "cos_phi_p_kind": gs["cos_phi_p"]["kind"]}
    q_mode = c["q_mode"]
    out["q_mode"] = gs["q"]["mode"] if q_mode == "profile" else q_mode
    for key, sec, k in SCALARS:
        x = c[key]
        s = gs[sec]
        out[key] = s[k][0] if x is None else _in_range("grid_support." + key, x, s, k)
    for key, sec, keys, increasing in CURVES:
        x = c[key]
        s = gs[sec]
        if x is None:
            pts = tuple(s[k][0] for k in keys)
        else:
            for i in range(len(keys)):
                _in_range("grid_support.%s[%d]" % (key, i), x[i], s, keys[i])
            pts = tuple(x)
        if increasing:
            problem = check(pts, pts)
            if problem:
                raise ConfigError("grid_support." + key, problem)
        out[key] = pts
    f_nom = out["f_nom_hz"]
    if out["f_of_hz"] <= f_nom:
        raise ConfigError("grid_support.f_of_hz", "must be above the nominal frequency %g Hz" % f_nom)
    if out["f_uf_hz"] >= f_nom:
        raise ConfigError("grid_support.f_uf_hz", "must be below the nominal frequency %g Hz" % f_nom)
    if out["cos_phi_p_kind"] == "pf":
        # cos phi(P) as power factors: none below what the reactive capability holds
        pf_min = (1.0 - out["q_max_pu"] * out["q_max_pu"]) ** 0.5
        for i, y in enumerate(out["cos_phi_p_y"]):
            if abs(y) < pf_min - 1e-3:
                raise ConfigError("grid_support.cos_phi_p_y[%d]" % i, "power factor %g is below %.2f, what the "
                                  "reactive capability allows (sign: + over-, - under-excited)" % (y, pf_min))
    if out["pf"] < (1.0 - out["q_max_pu"] * out["q_max_pu"]) ** 0.5 - 1e-3:
        raise ConfigError("grid_support.pf", "%g is below what the reactive capability allows" % out["pf"])
    if abs(out["q_pu"]) > out["q_max_pu"] + 1e-9:
        raise ConfigError("grid_support.q_pu", "%g is beyond the reactive capability %g" % (out["q_pu"], out["q_max_pu"]))
    return out


def drop():
    """Forget this module once the settings are resolved (at start): a board keeps its
    bytecode and tables out of RAM; the next resolve() imports it again."""
    import sys

    if sys.implementation.name == "micropython":  # CPython keeps it
        from controller import forget

        forget("controller.grid_support.settings")
