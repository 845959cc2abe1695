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
    return p


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
