"""Consistency of a grid-code profile: no protection stage can trip inside a
ride-through region before that region's duration is over (IEEE 1547-2018 clause 6
arbitration of trips against ride-through).

A check of the profile data, for the tests and for whoever edits a profile; the
firmware never needs it at run time (it is not imported by the control loop, so it
costs a board no RAM).
"""

from controller.protection import grid_codes
from controller.protection.interface_protection import _bands, _t_at, _val


def _stage_conflicts(key, st, thr_key, bands, lo_key, hi_key):
    out = []
    if not isinstance(st, dict):
        return out
    thr, t = _val(st[thr_key]), _val(st["clearing_time_s"])
    if thr is None or t is None:
        return out
    over = key[0] == "o"
    for b in _bands(bands, lo_key, hi_key):
        if b[0] != over:
            continue
        lo, hi = b[1], b[2]
        if over:
            a = thr if thr > lo else lo
            if a >= hi:
                continue
            need = max(_t_at(b, a), _t_at(b, hi))
        else:
            z = thr if thr < hi else hi
            if lo >= z:
                continue
            need = max(_t_at(b, lo), _t_at(b, z))
        if t + 1e-9 < need:
            out.append("%s %s (%g, %g s) is shorter than the ride-through of %g s in (%g, %g)"
                       % (key, st["label"], thr, t, need, lo, hi))
    return out


def conflicts(profile):
    """Stages that could trip inside a ride-through region before its duration is over
    (IEEE 1547-2018 clause 6 arbitration); [] for a consistent profile."""
    out = []
    trip = profile["trip"]
    for key in grid_codes.V_STAGES:
        out += _stage_conflicts(key, trip[key], "threshold_pu", profile["v_ride_through"], "low_pu", "high_pu")
    for key in grid_codes.F_STAGES:
        out += _stage_conflicts(key, trip[key], "threshold_hz", profile["f_ride_through"], "low_hz", "high_hz")
    imm = _val(profile["rocof_ride_through"]["hz_s"])
    r = profile["rocof_trip"]
    if isinstance(r, dict) and imm is not None and _val(r["setting_hz_s"]) is not None:
        if _val(r["setting_hz_s"]) < imm:
            out.append("rocof setting %g Hz/s is below the ROCOF immunity %g Hz/s" % (_val(r["setting_hz_s"]), imm))
    pj = _val(profile["phase_jump_ride_through"]["positive_sequence_deg"])
    v = profile["vector_shift_trip"]
    if isinstance(v, dict) and pj is not None and _val(v["setting_deg"]) is not None:
        if _val(v["setting_deg"]) < pj:
            out.append("vector shift setting %g deg is below the phase-jump immunity %g deg" % (_val(v["setting_deg"]), pj))
    return out
