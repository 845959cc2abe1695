"""Grid-code profiles with a source beside every number: the single source of truth.

build(name) returns a fresh dict for one of grid_codes.NAMES, at the frequency the code
is written for (f_base_hz). Every number in it is a pair (value, source): the source
string names the document and clause or table the value comes from, or says why the
value is None (not sourced publicly, or the code has no such function). Leaves that are
not numbers are plain strings (labels, sides, modes). docs/grid-codes.md shows the same
data as tables.

The firmware never imports this module: the source strings would take RAM on a board
for nothing. tools/gen_grid_codes.py turns each profile into a generated module of
numbers only (controller/protection/profiles/, a test keeps them current), which
grid_codes.profile() loads on demand; grid_codes.profile(name, f_nom_hz, sources=True)
builds the profile from here instead, for the tests, audits and docs. Frequency
conversion to the site's nominal frequency is grid_codes.profile()'s job.

Honesty notes (also in docs/grid-codes.md):
- IEEE 1547-2018 values were cross-checked against public implementations of the
  standard's tables (EPRI OpenDER defaults and ride-through code, pyUL1741SB, NREL
  PyDSS, SMA's Cat III manual) and public quotes of its clauses.
- EN 50549-1:2019 leaves most interface-protection *settings* to the DSO and only fixes
  functions and setting ranges. Where this profile needs a value, it is this project's
  default inside the range the standard allows, and the source string says so
  ("project default"). Clause numbers and ranges quoted "as recalled" were not
  re-verified against a public copy of the standard.
- The Danish profile contains only what public sources gave; everything else is None
  with the reason, including the trip stages: the DSO's settings must be entered.
"""

from controller.protection.grid_codes import MANDATORY, MOMENTARY_CESSATION, PERMISSIVE

_I = "IEEE 1547-2018"
_OPENDER = "EPRI OpenDER (github epri-dev/OpenDER)"
_RFG = "Commission Regulation (EU) 2016/631 (RfG)"
_EN = "EN 50549-1:2019"
_DK331 = ("Energinet TR 3.3.1 (energy storage), as summarised at besscompliance.com/grid-code/denmark/tr331")
_RECALLED = "as recalled from the standard's text, not re-verified against a public copy"
_PROJECT = "project default (the standard leaves the setting to the DSO)"


def _n(value, source):
    return (value, source)


def _none(reason):
    return (None, reason)


def _stage(label, thr_key, thr, t):
    return {"label": label, thr_key: thr, "clearing_time_s": t}


def _band(side, mode, lo_key, lo, hi_key, hi, t_lo, t_hi):
    return {"side": side, "mode": mode, lo_key: lo, hi_key: hi, "t_at_low_s": t_lo, "t_at_high_s": t_hi}


# --- IEEE 1547-2018 -------------------------------------------------------------

def _ieee_trip_f():
    # 6.5.1, Table 18 (same defaults for all categories); OpenDER common_file_format.py
    # defaults; pyUL1741SB eut.py FreqShallTripTable (Table 18 with ranges).
    t18 = _I + " 6.5.1 Table 18"
    return {
        "of2": _stage("OF2", "threshold_hz",
                      _n(62.0, t18 + " OF2 default (adjustable 61.8-66.0 Hz); " + _OPENDER + " OF2_TRIP_F"),
                      _n(0.16, t18 + " OF2 clearing time default (adjustable 0.16-1000 s)")),
        "of1": _stage("OF1", "threshold_hz",
                      _n(61.2, t18 + " OF1 default (adjustable 61.0-66.0 Hz); " + _OPENDER + " OF1_TRIP_F"),
                      _n(300.0, t18 + " OF1 clearing time default (adjustable 180-1000 s)")),
        "uf1": _stage("UF1", "threshold_hz",
                      _n(58.5, t18 + " UF1 default (adjustable 50.0-59.0 Hz); " + _OPENDER + " UF1_TRIP_F"),
                      _n(300.0, t18 + " UF1 clearing time default (adjustable 180-1000 s)")),
        "uf2": _stage("UF2", "threshold_hz",
                      _n(56.5, t18 + " UF2 default (adjustable 50.0-57.0 Hz); " + _OPENDER + " UF2_TRIP_F"),
                      _n(0.16, t18 + " UF2 clearing time default (adjustable 0.16-1000 s)")),
    }


def _ieee_common(p, cat):
    p["f_base_hz"] = _n(60.0, _I + " states its frequency settings for 60 Hz systems")
    p["trip"].update(_ieee_trip_f())
    p["ov_10min"] = _none(_I + " has no 10-minute mean overvoltage function")
    p["rocof_trip"] = _none(_I + " defines no ROCOF trip; ROCOF is a ride-through requirement (6.5.2.5)")
    p["vector_shift_trip"] = _none(_I + " defines no vector-shift trip; 6.5.2.6 requires riding through phase jumps")
    rt = _I + " 6.5.2 frequency ride-through table (all categories); " + _OPENDER + " rt_crit.py Eq. 3.5.1-48..56"
    p["f_continuous"] = {"low_hz": _n(58.8, rt + ": continuous operation 58.8-61.2 Hz"),
                         "high_hz": _n(61.2, rt + ": continuous operation 58.8-61.2 Hz")}
    p["f_ride_through"] = [
        _band("under", MANDATORY, "low_hz", _n(57.0, rt + ": mandatory operation 57.0 <= f < 58.8 Hz"),
              "high_hz", _n(58.8, rt), _n(299.0, rt + ": minimum ride-through time 299 s"), _n(299.0, rt)),
        _band("over", MANDATORY, "low_hz", _n(61.2, rt + ": mandatory operation 61.2 < f <= 61.8 Hz"),
              "high_hz", _n(61.8, rt), _n(299.0, rt + ": minimum ride-through time 299 s"), _n(299.0, rt)),
    ]
    rocof = _n(2.0 if cat == "II" else 3.0,
               _I + " 6.5.2.5 ROCOF ride-through, Category " + cat + " (Cat I 0.5, Cat II 2.0, Cat III 3.0 Hz/s; "
               + _RECALLED + ")")
    p["rocof_ride_through"] = {"hz_s": rocof,
                               "window_s": _n(0.1, _I + " 6.5.2.5 ROCOF averaged over at least 0.1 s (" + _RECALLED + ")")}
    pj = _I + " 6.5.2.6 (quoted at onlinedocs.microchip.com, 'Voltage Phase Angle Changes Ride-Through')"
    p["phase_jump_ride_through"] = {
        "positive_sequence_deg": _n(20.0, pj + ": multi-phase DER ride through positive-sequence jumps <= 20 deg"),
        "per_phase_deg": _n(60.0, pj + ": individual phase angle changes < 60 deg"),
    }
    es = _I + " 4.10.2/4.10.3 enter service default; " + _OPENDER + " Parameters/AS-with std-values.csv ES_*"
    p["enter_service"] = {
        "v_low_pu": _n(0.917, es + " (ES_V_LOW, range 0.88-0.95 pu)"),
        "v_high_pu": _n(1.05, es + " (ES_V_HIGH, range 1.05-1.06 pu)"),
        "f_low_hz": _n(59.5, es + " (ES_F_LOW, range 59.0-59.9 Hz)"),
        "f_high_hz": _n(60.1, es + " (ES_F_HIGH, range 60.1-61.0 Hz)"),
        "delay_s": _n(300.0, es + " (ES_DELAY, range 0-600 s)"),
        "ramp_time_s": _n(300.0, es + " (ES_RAMP_RATE = enter-service period, range 1-1000 s)"),
    }
    p["island_clearing_s"] = _n(2.0, _I + " 8.1.2 (clause number " + _RECALLED + "): cease to energize within 2 s"
                               " of the formation of an island")
    p["grid_support"] = _gs_ieee()


def _ieee_cat2():
    t12 = _I + " 6.4.1 Table 12 (Cat II)"
    src = " ; same default in " + _OPENDER + " common_file_format.py and pyUL1741SB eut.py"
    p = {"name": "IEEE1547-2018-CatII", "trip": {
        "ov2": _stage("OV2", "threshold_pu", _n(1.20, t12 + " OV2 (fixed)" + src), _n(0.16, t12 + " OV2 (fixed)")),
        "ov1": _stage("OV1", "threshold_pu", _n(1.10, t12 + " OV1 default (adjustable 1.10-1.20 pu)" + src),
                      _n(2.0, t12 + " OV1 default (adjustable 1.0-13.0 s)")),
        "uv1": _stage("UV1", "threshold_pu", _n(0.70, t12 + " UV1 default (adjustable 0.0-0.88 pu)" + src),
                      _n(10.0, t12 + " UV1 default (adjustable 2.0-21.0 s)")),
        "uv2": _stage("UV2", "threshold_pu", _n(0.45, t12 + " UV2 default (adjustable 0.0-0.50 pu)" + src),
                      _n(0.16, t12 + " UV2 default (adjustable 0.16-2.0 s)")),
    }}
    rt = _I + " 6.4.2 Cat II voltage ride-through table; " + _OPENDER + " rt_crit.py Eq. 3.5.1-21..32"
    p["v_continuous"] = {"low_pu": _n(0.88, rt + ": continuous operation 0.88-1.10 pu"),
                         "high_pu": _n(1.10, rt + ": continuous operation 0.88-1.10 pu")}
    p["v_ride_through"] = [
        _band("over", PERMISSIVE, "low_pu", _n(1.10, rt + ": permissive 1.10 < V <= 1.15"), "high_pu", _n(1.15, rt),
              _n(1.0, rt + ": 1 s"), _n(1.0, rt)),
        _band("over", PERMISSIVE, "low_pu", _n(1.15, rt + ": permissive 1.15 < V <= 1.175"), "high_pu", _n(1.175, rt),
              _n(0.5, rt + ": 0.5 s"), _n(0.5, rt)),
        _band("over", PERMISSIVE, "low_pu", _n(1.175, rt + ": permissive 1.175 < V <= 1.20"), "high_pu", _n(1.20, rt),
              _n(0.2, rt + ": 0.2 s"), _n(0.2, rt)),
        _band("under", MANDATORY, "low_pu", _n(0.65, rt + ": mandatory 0.65 <= V < 0.88"), "high_pu", _n(0.88, rt),
              _n(3.0, rt + ": 3 s + 8.7 s/pu x (V - 0.65 pu), at 0.65 pu"),
              _n(5.001, rt + ": 3 s + 8.7 s/pu x (V - 0.65 pu), at 0.88 pu")),
        _band("under", PERMISSIVE, "low_pu", _n(0.45, rt + ": permissive 0.45 <= V < 0.65"), "high_pu", _n(0.65, rt),
              _n(0.32, rt + ": 0.32 s"), _n(0.32, rt)),
        _band("under", PERMISSIVE, "low_pu", _n(0.30, rt + ": permissive 0.30 <= V < 0.45"), "high_pu", _n(0.45, rt),
              _n(0.16, rt + ": 0.16 s"), _n(0.16, rt)),
    ]
    _ieee_common(p, "II")
    return p


def _ieee_cat3():
    t13 = _I + " 6.4.1 Table 13 (Cat III)"
    src = " ; same default in " + _OPENDER + " common_file_format.py, pyUL1741SB eut.py and SMA's US manual"
    p = {"name": "IEEE1547-2018-CatIII", "trip": {
        "ov2": _stage("OV2", "threshold_pu", _n(1.20, t13 + " OV2 (fixed)" + src), _n(0.16, t13 + " OV2 (fixed)")),
        "ov1": _stage("OV1", "threshold_pu", _n(1.10, t13 + " OV1 default (adjustable 1.10-1.20 pu)" + src),
                      _n(13.0, t13 + " OV1 default (adjustable 1.0-13.0 s)")),
        "uv1": _stage("UV1", "threshold_pu", _n(0.88, t13 + " UV1 default (adjustable 0.0-0.88 pu)" + src),
                      _n(21.0, t13 + " UV1 default (adjustable 21.0-50.0 s)")),
        "uv2": _stage("UV2", "threshold_pu", _n(0.50, t13 + " UV2 default (adjustable 0.0-0.50 pu)" + src),
                      _n(2.0, t13 + " UV2 default (adjustable 2.0-21.0 s)")),
    }}
    rt = _I + " 6.4.2 Cat III voltage ride-through table; " + _OPENDER + " rt_crit.py Eq. 3.5.1-35..46"
    p["v_continuous"] = {"low_pu": _n(0.88, rt + ": continuous operation 0.88-1.10 pu"),
                         "high_pu": _n(1.10, rt + ": continuous operation 0.88-1.10 pu")}
    p["v_ride_through"] = [
        _band("over", MOMENTARY_CESSATION, "low_pu", _n(1.10, rt + ": momentary cessation 1.10 < V <= 1.20"),
              "high_pu", _n(1.20, rt), _n(12.0, rt + ": 12 s"), _n(12.0, rt)),
        _band("under", MANDATORY, "low_pu", _n(0.70, rt + ": mandatory 0.70 <= V < 0.88"), "high_pu", _n(0.88, rt),
              _n(20.0, rt + ": 20 s"), _n(20.0, rt)),
        _band("under", MANDATORY, "low_pu", _n(0.50, rt + ": mandatory 0.50 <= V < 0.70"), "high_pu", _n(0.70, rt),
              _n(10.0, rt + ": 10 s"), _n(10.0, rt)),
        _band("under", MOMENTARY_CESSATION, "low_pu", _n(0.0, rt + ": momentary cessation V < 0.50"),
              "high_pu", _n(0.50, rt), _n(1.0, rt + ": 1 s"), _n(1.0, rt)),
    ]
    _ieee_common(p, "III")
    return p


# --- EN 50549-1 -----------------------------------------------------------------

def _en_uvrt(src_note):
    # EN 50549-1 4.5.3.2 (non-synchronous technology) uses the fault-ride-through shape
    # of RfG Art. 14(3)(a): U_ret until t_clear, then a straight line to U_rec2 = 0.85 pu
    # at t_rec3. Values chosen inside the RfG Table 7.1 ranges: U_ret = U_clear = 0.15 pu
    # (0.05-0.15), t_clear = 0.15 s (0.14-0.15), t_rec3 = 3.0 s (1.5-3.0, the longest).
    s = (_EN + " 4.5.3.2 UVRT curve, parameters inside the ranges of " + _RFG
         + " Art. 14(3)(a) Table 7.1 (ranges " + _RECALLED + "): U_ret = 0.15 pu, t_clear = 0.15 s, U_rec2 = 0.85 pu,"
         " t_rec3 = 3.0 s; " + src_note)
    return [_band("under", MANDATORY, "low_pu", _n(0.15, s), "high_pu", _n(0.85, s),
                  _n(0.15, s + "; duration at U_ret is t_clear"),
                  _n(3.0, s + "; line from (0.15 s, 0.15 pu) to (3.0 s, 0.85 pu) reaches 0.85 pu at t_rec3"))]


def _en_f_bands(src):
    return [
        _band("under", MANDATORY, "low_hz", _n(47.5, src + ": 47.5-49.0 Hz at least 30 min"), "high_hz", _n(49.0, src),
              _n(1800.0, src + ": not less than 30 min"), _n(1800.0, src)),
        _band("over", MANDATORY, "low_hz", _n(51.0, src + ": 51.0-51.5 Hz 30 min"), "high_hz", _n(51.5, src),
              _n(1800.0, src + ": 30 min"), _n(1800.0, src)),
    ]


def _en50549():
    rng = " (" + _RECALLED + ")"
    p = {"name": "EN50549-1", "f_base_hz": _n(50.0, _EN + " is written for 50 Hz systems"), "trip": {
        "uv1": _stage("U< (27<)", "threshold_pu",
                      _n(0.85, _PROJECT + "; inside " + _EN + " 4.9.3 U< range 0.2-1.0 Un" + rng
                         + "; at the lower edge of the continuous operating range (4.4.4)"),
                      _n(3.0, _PROJECT + "; inside 4.9.3 range 0.1-100 s" + rng
                         + "; not shorter than the UVRT curve's t_rec3 = 3.0 s (4.5.3.2)")),
        "uv2": _stage("U<< (27<<)", "threshold_pu",
                      _n(0.20, _PROJECT + "; inside " + _EN + " 4.9.3 U<< range 0.2-1.0 Un" + rng),
                      _n(0.40, _PROJECT + "; inside 4.9.3 range 0.1-5 s" + rng
                         + "; longer than the UVRT duration at 0.20 pu (0.354 s)")),
        "ov1": _stage("U> (59>)", "threshold_pu",
                      _n(1.15, _PROJECT + "; inside " + _EN + " 4.9.3 U> range 1.0-1.2 Un" + rng),
                      _n(0.2, _PROJECT + "; inside 4.9.3 range 0.1-100 s" + rng)),
        "ov2": _stage("U>> (59>>)", "threshold_pu",
                      _n(1.25, _PROJECT + "; inside " + _EN + " 4.9.3 U>> range 1.0-1.3 Un" + rng),
                      _n(0.1, _PROJECT + "; inside 4.9.3 range 0.1-5 s" + rng)),
        "uf1": _stage("f< (81<)", "threshold_hz",
                      _n(47.5, _PROJECT + "; inside " + _EN + " 4.9.3 f< range 47.0-50.0 Hz" + rng
                         + "; lower edge of the operating range 47.5 Hz (" + _RFG + " Art. 13(1)(a) Table 2, EN 4.4.2)"),
                      _n(0.1, _PROJECT + "; inside 4.9.3 range 0.1-100 s" + rng + "; no ride-through below 47.5 Hz")),
        "uf2": _none(_EN + " 4.9.3: second f< stage optional; not activated in this profile"),
        "of1": _stage("f> (81>)", "threshold_hz",
                      _n(51.5, _PROJECT + "; inside " + _EN + " 4.9.3 f> range 50.0-52.0 Hz" + rng
                         + "; upper edge of the operating range 51.5 Hz (" + _RFG + " Art. 13(1)(a) Table 2, EN 4.4.2)"),
                      _n(0.1, _PROJECT + "; inside 4.9.3 range 0.1-100 s" + rng + "; no ride-through above 51.5 Hz")),
        "of2": _none(_EN + " 4.9.3: second f> stage optional; not activated in this profile"),
    }}
    m = _EN + " 4.9.3.4 overvoltage 10 min mean protection (clause confirmed by the OCPP 2.1 DER-control schema)"
    p["ov_10min"] = {
        "threshold_pu": _n(1.10, m + "; range 1.0-1.15 Un" + rng + "; 1.10 Un is the EN 50160 limit for 10-min mean"
                           " supply voltage that this function protects (230 V + 10 % = 253 V)"),
        "trip_delay_s": _n(0.0, m + ": no delay beyond the evaluation interval; trip within 3 s" + rng),
        "window_s": _n(600.0, m + ": mean over 10 min"),
        "interval_s": _n(3.0, m + ": a new 10-min value at least every 3 s"),
    }
    p["rocof_trip"] = _none(_EN + " leaves loss-of-mains (ROCOF) settings to the DSO; no public default was found")
    p["vector_shift_trip"] = _none(_EN + " specifies no vector-shift setting; no public default was found")
    cont = _EN + " 4.4.4 continuous operating voltage range 0.85-1.10 Un (" + _RECALLED + "); same range in " + _DK331
    p["v_continuous"] = {"low_pu": _n(0.85, cont), "high_pu": _n(1.10, cont)}
    p["v_ride_through"] = _en_uvrt("required for Type B; for Type A where the responsible party requires it")
    fr = _RFG + " Art. 13(1)(a) Table 2 (Continental Europe), " + _EN + " 4.4.2"
    p["f_continuous"] = {"low_hz": _n(49.0, fr + ": 49.0-51.0 Hz unlimited"),
                         "high_hz": _n(51.0, fr + ": 49.0-51.0 Hz unlimited")}
    p["f_ride_through"] = _en_f_bands(fr)
    p["rocof_ride_through"] = {
        "hz_s": _n(2.0, _EN + " 4.5.2 ROCOF immunity (value set by the responsible party); 2 Hz/s as in " + _DK331
                   + " and the ENTSO-E guidance 'RoCoF withstand capability' (2018)"),
        "window_s": _n(0.5, "ENTSO-E guidance 'RoCoF withstand capability' (2018): 2 Hz/s over 500 ms (" + _RECALLED + ")"),
    }
    p["phase_jump_ride_through"] = {
        "positive_sequence_deg": _none(_EN + "+A1:2023 has no phase-jump immunity clause (its contents list 4.5.2 ROCOF,"
                                       " 4.5.3 UVRT, 4.5.4 OVRT); EN 50549-2 A1 adds 4.5.5 for MV plants"),
        "per_phase_deg": _none("see positive_sequence_deg"),
    }
    es = _EN + " 4.10 automatic reconnection after tripping, default settings (" + _RECALLED + ")"
    p["enter_service"] = {
        "v_low_pu": _n(0.85, es), "v_high_pu": _n(1.10, es),
        "f_low_hz": _n(49.5, es), "f_high_hz": _n(50.2, es),
        "delay_s": _n(60.0, es + ": observation time 60 s"),
        "ramp_time_s": _n(600.0, es + ": gradient 10 % Pn/min (also the reconnection gradient in Sungrow's EU setting,"
                          " SG2K5-S manual) = 600 s to full power"),
    }
    p["island_clearing_s"] = _n(2.0, "IEC 62116 islanding test: cease to energize within 2 s")
    p["grid_support"] = _gs_en()
    return p


# --- Denmark --------------------------------------------------------------------

def _annotate(node, note):
    """A copy of node with note appended to the source of every number in it."""
    if isinstance(node, dict):
        out = {}
        for k in node:
            out[k] = _annotate(node[k], note)
        return out
    if isinstance(node, list):
        return [_annotate(x, note) for x in node]
    if isinstance(node, tuple) and len(node) == 2 and isinstance(node[1], str):
        return (node[0], node[1] + note) if node[0] is not None else node
    return node


def _dk():
    miss = ("Danish national setting not found in a public source (Energinet TR 3.2.1/TR 3.3.1 protection tables,"
            " Dansk Energi LV connection requirements): enter the DSO's setting")
    # Where no Danish setting is public, the EN 50549-1 values of this module stand in, each
    # source saying so: a gateway must not run without interface protection or enter-service
    # rules while the DSO's settings are awaited.
    en = _en50549()
    fallback = "; no public Danish setting found, the EN50549-1 profile's value stands in: enter the DSO's setting"
    p = {"name": "DK-EN50549-1", "f_base_hz": _n(50.0, "Danish rules are written for 50 Hz (DK1 and DK2)")}
    p["trip"] = _annotate(en["trip"], fallback)
    p["ov_10min"] = _annotate(en["ov_10min"], fallback)
    p["rocof_trip"] = _none(miss + " (a df/dt function is known to appear in Danish rules; value not confirmed)")
    p["vector_shift_trip"] = _none(miss)
    cont = _DK331 + ": continuous voltage range (<= 1 kV) 0.85-1.10 Un"
    p["v_continuous"] = {"low_pu": _n(0.85, cont), "high_pu": _n(1.10, cont)}
    s = (_DK331 + ": UV-FRT for distribution-connected Type B/C, 0.15 pu for 250 ms then a line to 0.90 pu at 1.5 s;"
         " a <= 11 kW gateway is Type A (RfG sets no UVRT for Type A); kept as the region this controller rides through")
    p["v_ride_through"] = [
        _band("under", MANDATORY, "low_pu", _n(0.15, s), "high_pu", _n(0.85, s), _n(0.25, s),
              _n(1.4167, s + "; line from (0.25 s, 0.15 pu) to (1.5 s, 0.90 pu) evaluated at 0.85 pu")),
    ]
    fr = _DK331 + ": continuous 49.0-51.0 Hz, 30 min in 47.5-49.0 and 51.0-51.5 Hz"
    p["f_continuous"] = {"low_hz": _n(49.0, fr), "high_hz": _n(51.0, fr)}
    p["f_ride_through"] = _en_f_bands(fr)
    p["rocof_ride_through"] = {"hz_s": _n(2.0, _DK331 + ": RoCoF withstand +-2 Hz/s"),
                               "window_s": _none("measurement window not given in the public summary")}
    p["phase_jump_ride_through"] = {
        "positive_sequence_deg": _n(20.0, _DK331 + ": phase jump withstand up to 20 deg transitory"),
        "per_phase_deg": _none("not given in the public summary"),
    }
    p["enter_service"] = _annotate(en["enter_service"], fallback)
    p["island_clearing_s"] = _n(2.0, "IEC 62116 islanding test: cease to energize within 2 s (no Danish value found)")
    p["grid_support"] = _gs_dk()
    return p



# --- grid support (controller/grid_support/) -------------------------------------
# Every setting is a triple of keys: the default `k`, and the range the standard allows
# for it, `min_k` and `max_k` (configuration overrides outside it are refused). The
# names end in their unit, so frequencies convert with the profile like every other.

def _setting(out, key, default, lo, hi, src, range_src=None):
    out[key] = _n(default, src)
    r = range_src or src
    out["min_" + key] = _n(lo, r)
    out["max_" + key] = _n(hi, r)


def _gs_ieee():
    t24 = _I + " 6.5.2.7 Table 24 frequency droop, Category B/II/III (" + _RECALLED + "); " + _OPENDER + " PF_* defaults"
    pf = {"mandatory": "yes", "reference": "rated"}
    _setting(pf, "f_of_hz", 60.036, 60.017, 61.0, t24 + ": dbOF 0.036 Hz (range 0.017-1.0 Hz) above 60 Hz")
    _setting(pf, "f_uf_hz", 59.964, 59.0, 59.983, t24 + ": dbUF 0.036 Hz (range 0.017-1.0 Hz) below 60 Hz")
    _setting(pf, "droop_of", 0.05, 0.02, 0.07, t24 + ": kOF 0.05 (range 0.02-0.07)")
    _setting(pf, "droop_uf", 0.05, 0.02, 0.07, t24 + ": kUF 0.05 (range 0.02-0.07)")
    _setting(pf, "delay_s", 0.0, 0.0, 0.0, _I + " frequency droop has no intentional delay")
    _setting(pf, "olrt_s", 5.0, 0.2, 10.0, t24 + ": open-loop response time 5 s (range 0.2-10 s for Category III, "
             "1-10 s for I and II)")
    t7 = _I + " 5.2 Table 7, Category B: reactive power capability 44 % of nameplate apparent power, injection and absorption"
    q = {"mode": "unity_pf"}
    q["q_max_pu"] = _n(0.44, t7)
    _setting(q, "pf", 1.0, 0.90, 1.0, _I + " 5.3.2 constant power factor: default unity; Category B range 0.90 "
             "injecting to 0.90 absorbing (" + _RECALLED + ")")
    _setting(q, "q_pu", 0.0, -0.44, 0.44, _I + " 5.3.5 constant reactive power: range the Table 7 capability, "
             "+-0.44 of nameplate (Category B)")
    t8 = _I + " 5.3.3 Table 8 volt-var, Category B (" + _RECALLED + "); " + _OPENDER + " QV_* defaults"
    vv = {}
    _setting(vv, "v1_pu", 0.92, 0.82, 0.98, t8 + ": V1 = VRef - 0.08 (range VRef - 0.18 .. V2 - 0.02)")
    _setting(vv, "v2_pu", 0.98, 0.97, 1.0, t8 + ": V2 = VRef - 0.02 (range VRef - 0.03 .. VRef)")
    _setting(vv, "v3_pu", 1.02, 1.0, 1.03, t8 + ": V3 = VRef + 0.02 (range VRef .. VRef + 0.03)")
    _setting(vv, "v4_pu", 1.08, 1.02, 1.18, t8 + ": V4 = VRef + 0.08 (range V3 + 0.02 .. VRef + 0.18)")
    _setting(vv, "q1_pu", 0.44, 0.0, 1.0, t8 + ": Q1 44 % injection (range 0 .. 100 % of the injection capability)")
    _setting(vv, "q2_pu", 0.0, -1.0, 1.0, t8 + ": Q2 0 (range 100 % absorption .. 100 % injection)")
    _setting(vv, "q3_pu", 0.0, -1.0, 1.0, t8 + ": Q3 0 (range 100 % absorption .. 100 % injection)")
    _setting(vv, "q4_pu", -0.44, -1.0, 0.0, t8 + ": Q4 44 % absorption (range 0 .. 100 % of the absorption capability)")
    _setting(vv, "olrt_s", 5.0, 1.0, 90.0, t8 + ": open-loop response time 5 s (range 1-90 s)")
    t10 = _I + " 5.3.4 Table 10 watt-var, Category B (" + _RECALLED + "); " + _OPENDER + " QP_* defaults"
    wv = {"kind": "q"}
    _setting(wv, "p1_pu", 0.2, 0.0, 0.7, t10 + ": P1 = 0.2 P_rated (range P_min .. P2 - 0.1)")
    _setting(wv, "p2_pu", 0.5, 0.4, 0.8, t10 + ": P2 = 0.5 P_rated (range P1 + 0.1 .. P3 - 0.1)")
    _setting(wv, "p3_pu", 1.0, 0.5, 1.0, t10 + ": P3 = P_rated (range P2 + 0.1 .. P_rated)")
    _setting(wv, "y1", 0.0, -1.0, 1.0, t10 + ": Q1 0 (range 100 % absorption .. 100 % injection), of the capability")
    _setting(wv, "y2", 0.0, -1.0, 1.0, t10 + ": Q2 0, of the capability")
    _setting(wv, "y3", -0.44, -1.0, 1.0, t10 + ": Q3 44 % absorption (of nameplate)")
    t11 = _I + " 5.4.2 Table 11 volt-watt, Category B (" + _RECALLED + "); " + _OPENDER + " PV_* defaults"
    vw = {}
    _setting(vw, "v1_pu", 1.06, 1.05, 1.09, t11 + ": V1 1.06 pu (range 1.05-1.09)")
    _setting(vw, "v2_pu", 1.10, 1.06, 1.10, t11 + ": V2 1.10 pu (range V1 + 0.01 .. 1.10)")
    _setting(vw, "p1_pu", 1.0, 1.0, 1.0, t11 + ": P1 = P_rated")
    _setting(vw, "p2_pu", 0.2, -1.0, 1.0, t11 + ": P2 = min(0.2 P_rated, P'min); a unit that can absorb may go "
             "to its absorbing limit")
    _setting(vw, "olrt_s", 10.0, 0.5, 60.0, t11 + ": open-loop response time 10 s (range 0.5-60 s)")
    return {"p_of_f": pf, "q": q, "volt_var": vv, "cos_phi_p": wv, "volt_watt": vw}


def _gs_en():
    rng = " (" + _RECALLED + ")"
    o = _EN + " 4.6.1 LFSM-O" + rng + "; " + _RFG + " Art. 13(2)"
    u = _EN + " 4.6.2 LFSM-U for units able to raise output or lower consumption (storage, an EV)" + rng + "; " \
        + _RFG + " Art. 15(2)(c)"
    pf = {"mandatory": "yes", "reference": "momentary"}
    _setting(pf, "f_of_hz", 50.2, 50.2, 52.0, o + ": threshold f1 50.2 Hz (range 50.2-52.0 Hz)")
    _setting(pf, "f_uf_hz", 49.8, 46.0, 49.8, u + ": threshold 49.8 Hz (range 46.0-49.8 Hz)")
    _setting(pf, "droop_of", 0.05, 0.02, 0.12, o + ": droop s 5 % (range 2-12 %), reference P_M (the power at activation)")
    _setting(pf, "droop_uf", 0.05, 0.02, 0.12, u + ": droop s 5 % (range 2-12 %)")
    _setting(pf, "delay_s", 0.0, 0.0, 2.0, o + ": intentional delay, default 0 s (range 0-2 s)")
    _setting(pf, "olrt_s", 2.0, 0.1, 10.0, _PROJECT + ": " + _EN + " 4.6.1 asks for a response as fast as technically "
             "feasible" + rng + ", " + _RFG + " Art. 13(2)(g) an initial delay as short as possible; 90 % within 2 s "
             "here; range this project's")
    q = {"mode": "unity_pf"}
    q["q_max_pu"] = _n(0.436, _EN + " 4.7.2.2 reactive power capability cos phi 0.90 under- to 0.90 over-excited"
                       + rng + ": sin(acos 0.90) = 0.436 of S_max")
    _setting(q, "pf", 1.0, 0.90, 1.0, _EN + " 4.7.2.3 cos phi setpoint mode, range 0.90 under- to 0.90 over-excited"
             + rng + "; default 1 (" + _PROJECT + ")")
    _setting(q, "q_pu", 0.0, -0.436, 0.436, _EN + " 4.7.2.3 Q setpoint mode, range the 4.7.2.2 capability" + rng
             + "; default 0 (" + _PROJECT + ")")
    qu = _EN + " 4.7.2.3 Q(U) characteristic, points set by the DSO" + rng + "; these points: " + _PROJECT \
        + ", a symmetric curve to the 4.7.2.2 capability"
    vv = {}
    _setting(vv, "v1_pu", 0.92, 0.80, 1.0, qu)
    _setting(vv, "v2_pu", 0.96, 0.80, 1.0, qu)
    _setting(vv, "v3_pu", 1.04, 1.0, 1.20, qu)
    _setting(vv, "v4_pu", 1.08, 1.0, 1.20, qu)
    _setting(vv, "q1_pu", 0.436, 0.0, 0.436, qu)
    _setting(vv, "q2_pu", 0.0, -0.436, 0.436, qu)
    _setting(vv, "q3_pu", 0.0, -0.436, 0.436, qu)
    _setting(vv, "q4_pu", -0.436, -0.436, 0.0, qu)
    _setting(vv, "olrt_s", 10.0, 3.0, 60.0, _EN + " 4.7.2.3 Q(U): first-order response, time settable 3-60 s" + rng
             + "; default 10 s (" + _PROJECT + ")")
    cp = _EN + " 4.7.2.3 cos phi(P) characteristic, points set by the DSO" + rng + "; these points: " + _PROJECT \
        + " (cos phi 1 up to half power, 0.90 under-excited at rated power, the common German/Danish shape)"
    wv = {"kind": "pf"}
    _setting(wv, "p1_pu", 0.2, 0.0, 1.0, cp)
    _setting(wv, "p2_pu", 0.5, 0.0, 1.0, cp)
    _setting(wv, "p3_pu", 1.0, 0.0, 1.0, cp)
    _setting(wv, "y1", 1.0, -1.0, 1.0, cp + "; signed power factor: + over-excited (injecting), - under-excited")
    _setting(wv, "y2", 1.0, -1.0, 1.0, cp)
    _setting(wv, "y3", -0.90, -1.0, 1.0, cp)
    pu = _EN + " 4.7.3 voltage-related active power reduction, optional, settings by the DSO" + rng + "; these: " \
        + _PROJECT + " (the IEEE 1547 Category B shape, ending at the 10-minute mean limit 1.10 Un)"
    vw = {}
    _setting(vw, "v1_pu", 1.06, 1.0, 1.15, pu)
    _setting(vw, "v2_pu", 1.10, 1.0, 1.20, pu)
    _setting(vw, "p1_pu", 1.0, 1.0, 1.0, pu)
    _setting(vw, "p2_pu", 0.0, -1.0, 1.0, pu)
    _setting(vw, "olrt_s", 10.0, 0.5, 60.0, pu)
    return {"p_of_f": pf, "q": q, "volt_var": vv, "cos_phi_p": wv, "volt_watt": vw}


def _gs_dk():
    """EN 50549-1's grid support with the Danish values public sources give."""
    gs = _annotate(_gs_en(), "; no public Danish setting found for a Type A unit, the EN50549-1 value stands in")
    dk = (_DK331 + " (Rev. 6, V2G in scope): LFSM-O breakpoint 50.20 Hz in DK1; DK2 uses 50.50 Hz, enter it as "
          "grid_support.f_of_hz there")
    gs["p_of_f"]["f_of_hz"] = _n(50.2, dk)
    return gs

_BUILD = {
    "EN50549-1": _en50549,
    "IEEE1547-2018-CatII": _ieee_cat2,
    "IEEE1547-2018-CatIII": _ieee_cat3,
    "DK-EN50549-1": _dk,
}


def build(name):
    """The profile `name` with its sources, at its own base frequency (no f_nom_hz yet)."""
    return _BUILD[name]()


def scale_note(f_nom_hz, base):
    """What grid_codes.profile() appends to the source of a converted frequency."""
    return "; converted from %g Hz by the ratio %g/%g (same f/f_nom)" % (base, f_nom_hz, base)


F_NOM_SOURCE = "site nominal frequency (site.nominal_frequency_hz)"
