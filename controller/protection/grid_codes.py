"""Grid-code profiles: trip stages, ride-through regions, immunities, enter service.

profile(name, f_nom_hz) returns a fresh dict for one of NAMES. Every number in it is a
pair (value, source), read with value(). The sources themselves stay out of the
firmware's RAM: on the board the pairs are (value, None), built from the generated
module of that one profile (controller/protection/profiles/, numbers only), which is
imported for the call and dropped again, so the other profiles never take RAM.
profile(name, f_nom_hz, sources=True) gives the same numbers with their source strings,
from controller/protection/grid_code_sources.py, the single source of truth that the
generated modules come from (tools/gen_grid_codes.py) and that docs/grid-codes.md and
the tests read. Leaves that are not numbers are plain strings (labels, sides, modes).

Frequencies. IEEE 1547-2018 states its frequencies for 60 Hz systems, EN 50549-1 and
the Danish rules for 50 Hz. profile() converts every frequency-valued number (keys
ending in _hz, and ROCOF in hz_s) by the ratio f_nom/f_base, i.e. it keeps the
relative deviation f/f_nom of the original table (58.8 Hz at 60 Hz -> 49.0 Hz at 50 Hz).
With sources, the conversion is appended to the source string. Voltages (pu), times
and angles are not converted.
"""

import sys

from controller import forget

NAMES = ("EN50549-1", "IEEE1547-2018-CatII", "IEEE1547-2018-CatIII", "DK-EN50549-1")

# Trip stage keys in evaluation order (stage 2 = the faster, more severe stage).
V_STAGES = ("uv2", "uv1", "ov2", "ov1")
F_STAGES = ("uf2", "uf1", "of2", "of1")
STAGE_KEYS = V_STAGES + F_STAGES

# Ride-through band modes (IEEE 1547-2018 6.4.2 terms).
MANDATORY = "mandatory"
PERMISSIVE = "permissive"
MOMENTARY_CESSATION = "momentary_cessation"

PROFILES = "controller.protection.profiles"


def module_name(name):
    """The generated module of profile `name`: 'IEEE1547-2018-CatII' -> 'ieee1547_2018_catii'."""
    return name.lower().replace("-", "_")


def _load(name):
    """Build profile `name` from its generated module, then drop the module again."""
    full = PROFILES + "." + module_name(name)
    __import__(full)
    p = sys.modules[full].build()
    forget(full)
    return p


def _scale(node, ratio, note):
    """Convert every *_hz / *hz_s number under node by ratio (in place)."""
    if isinstance(node, list):
        for item in node:
            _scale(item, ratio, note)
        return
    if not isinstance(node, dict):
        return
    for k in node:
        v = node[k]
        if isinstance(v, tuple):
            if v[0] is not None and k != "f_base_hz" and (k.endswith("_hz") or k.endswith("hz_s")):
                node[k] = (v[0] * ratio, v[1] + note if note else v[1])
        else:
            _scale(v, ratio, note)


def profile(name, f_nom_hz=50.0, sources=False):
    """The profile `name` (one of NAMES) for a site of nominal frequency f_nom_hz (50 or
    60); with sources=True every pair carries its source string instead of None."""
    if name not in NAMES:
        raise ValueError("unknown grid code %s; known: %s" % (name, ", ".join(NAMES)))
    if f_nom_hz != 50.0 and f_nom_hz != 60.0:
        raise ValueError("nominal frequency must be 50 or 60 Hz, not %s" % f_nom_hz)
    src = None
    if sources:
        from controller.protection import grid_code_sources as src

        p = src.build(name)
    else:
        p = _load(name)
    base = p["f_base_hz"][0]
    if f_nom_hz != base:
        _scale(p, f_nom_hz / base, src.scale_note(f_nom_hz, base) if src else None)
    p["f_nom_hz"] = (float(f_nom_hz), src.F_NOM_SOURCE if src else None)
    return p


def value(entry):
    """The number of a (value, source) pair, or None for an absent entry."""
    if isinstance(entry, tuple):
        return entry[0]
    return None


def numbers(p):
    """Every (path, value, source) in a profile, for audits and the source-string test."""
    out = []

    def walk(node, path):
        if isinstance(node, tuple):
            out.append((path, node[0], node[1]))
        elif isinstance(node, dict):
            for k in node:
                walk(node[k], path + "." + k if path else k)
        elif isinstance(node, list):
            for i in range(len(node)):
                walk(node[i], "%s[%d]" % (path, i))

    walk(p, "")
    return out
