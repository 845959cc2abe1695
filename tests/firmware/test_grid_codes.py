"""Grid-code profiles: names, sources, frequency conversion, consistency (MicroPython and CPython).

The sources are read with profile(..., sources=True) (controller/protection/grid_code_sources.py,
the single source of truth); what the firmware gets, profile(name, f) from the generated modules,
must carry the very same numbers.
"""
import sys

from controller import config
from controller.protection import grid_codes
from controller.protection.ride_through_check import conflicts


def _all(sources=True):
    for name in grid_codes.NAMES:
        for f in (50.0, 60.0):
            yield name, f, grid_codes.profile(name, f, sources=sources)


def test_names_resolve_and_match_the_configuration():
    assert tuple(grid_codes.NAMES) == tuple(config.GRID_CODES)
    for name in grid_codes.NAMES:
        p = grid_codes.profile(name, 50.0)
        assert p["name"] == name
        assert p["f_nom_hz"][0] == 50.0


def test_unknown_name_raises_naming_the_known_ones():
    try:
        grid_codes.profile("MARS-1", 50.0)
    except ValueError as e:
        msg = str(e)
        assert "MARS-1" in msg
        for name in grid_codes.NAMES:
            assert name in msg
    else:
        assert False, "no ValueError"


def test_only_50_or_60_hz():
    try:
        grid_codes.profile("EN50549-1", 55.0)
    except ValueError:
        pass
    else:
        assert False, "55 Hz accepted"


def _bare_numbers(node, path, out):
    if isinstance(node, tuple):
        assert len(node) == 2, path
        return
    if isinstance(node, dict):
        for k in node:
            _bare_numbers(node[k], path + "." + k, out)
    elif isinstance(node, list):
        for i in range(len(node)):
            _bare_numbers(node[i], "%s[%d]" % (path, i), out)
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        out.append(path)


def test_every_number_carries_its_source():
    for name, f, p in _all():
        bare = []
        _bare_numbers(p, name, bare)
        assert not bare, bare
        nums = grid_codes.numbers(p)
        assert len(nums) > 20
        for path, v, src in nums:
            assert isinstance(src, str) and len(src) >= 12, (name, path)
            assert v is None or isinstance(v, (int, float)), (name, path)


def test_absent_values_say_why():
    for name, f, p in _all():
        for path, v, src in grid_codes.numbers(p):
            if v is None:
                assert ("not" in src or "no " in src or "optional" in src or "see " in src), (name, path, src)


def test_frequencies_convert_by_ratio():
    p60 = grid_codes.profile("IEEE1547-2018-CatII", 60.0, sources=True)
    p50 = grid_codes.profile("IEEE1547-2018-CatII", 50.0, sources=True)
    assert p60["trip"]["of2"]["threshold_hz"][0] == 62.0
    assert abs(p50["trip"]["of2"]["threshold_hz"][0] - 62.0 * 50.0 / 60.0) < 1e-9
    assert abs(p50["f_continuous"]["low_hz"][0] - 49.0) < 1e-9  # 58.8 Hz at 60 Hz
    assert "converted from 60 Hz" in p50["trip"]["of2"]["threshold_hz"][1]
    assert "converted" not in p60["trip"]["of2"]["threshold_hz"][1]
    e60 = grid_codes.profile("EN50549-1", 60.0)
    assert abs(e60["trip"]["uf1"]["threshold_hz"][0] - 57.0) < 1e-9  # 47.5 Hz at 50 Hz
    assert abs(e60["enter_service"]["f_high_hz"][0] - 50.2 * 1.2) < 1e-9
    # ROCOF is a frequency quantity too; voltages, times and angles are not converted
    assert abs(p50["rocof_ride_through"]["hz_s"][0] - 2.0 * 50.0 / 60.0) < 1e-9
    assert p50["trip"]["uv1"]["threshold_pu"][0] == 0.70
    assert p50["trip"]["of1"]["clearing_time_s"][0] == 300.0
    assert p50["phase_jump_ride_through"]["positive_sequence_deg"][0] == 20.0
    assert p50["f_base_hz"][0] == 60.0 and p50["f_nom_hz"][0] == 50.0


def test_ieee_values_spot_check():
    c2 = grid_codes.profile("IEEE1547-2018-CatII", 60.0)["trip"]
    assert [c2[k]["threshold_pu"][0] for k in ("ov2", "ov1", "uv1", "uv2")] == [1.20, 1.10, 0.70, 0.45]
    assert [c2[k]["clearing_time_s"][0] for k in ("ov2", "ov1", "uv1", "uv2")] == [0.16, 2.0, 10.0, 0.16]
    c3 = grid_codes.profile("IEEE1547-2018-CatIII", 60.0)["trip"]
    assert [c3[k]["threshold_pu"][0] for k in ("ov2", "ov1", "uv1", "uv2")] == [1.20, 1.10, 0.88, 0.50]
    assert c3["uv1"]["threshold_pu"][1] is None  # the firmware's copy carries no sources
    c3 = grid_codes.profile("IEEE1547-2018-CatIII", 60.0, sources=True)["trip"]
    assert [c3[k]["clearing_time_s"][0] for k in ("ov2", "ov1", "uv1", "uv2")] == [0.16, 13.0, 21.0, 2.0]
    assert [c3[k]["threshold_hz"][0] for k in ("of2", "of1", "uf1", "uf2")] == [62.0, 61.2, 58.5, 56.5]
    assert "Table 13" in c3["uv1"]["threshold_pu"][1]


def test_profiles_have_no_ride_through_conflicts():
    # IEEE 1547-2018 clause 6: no trip stage may clear faster than the ride-through it covers
    for sources in (True, False):
        for name, f, p in _all(sources):
            assert conflicts(p) == [], (name, f, conflicts(p))


def _shape(node):
    """The tree with every (value, source) pair replaced by its value."""
    if isinstance(node, tuple):
        return node[0]
    if isinstance(node, dict):
        return {k: _shape(node[k]) for k in node}
    if isinstance(node, list):
        return [_shape(x) for x in node]
    return node


def test_firmware_profiles_are_the_sourced_numbers_without_sources():
    # the generated modules (tools/gen_grid_codes.py) against their source of truth,
    # after the frequency conversion too: same tree, same numbers (bit for bit), no sources
    for name, f, sourced in _all(True):
        fw = grid_codes.profile(name, f)
        assert _shape(fw) == _shape(sourced), (name, f)
        a, b = grid_codes.numbers(fw), grid_codes.numbers(sourced)
        assert sorted(x[0] for x in a) == sorted(x[0] for x in b), (name, f)
        want = {path: v for path, v, _ in b}
        for path, v, src in a:
            assert src is None, (name, path)
            assert type(v) is type(want[path]) and v == want[path], (name, f, path)


def test_only_the_selected_profile_stays_loaded():
    full = [grid_codes.PROFILES + "." + grid_codes.module_name(n) for n in grid_codes.NAMES]
    p = grid_codes.profile("IEEE1547-2018-CatIII", 50.0)
    assert p["name"] == "IEEE1547-2018-CatIII"
    for m in full:
        assert m not in sys.modules, m  # built, then dropped again


def test_conflict_check_finds_a_bad_setting():
    p = grid_codes.profile("IEEE1547-2018-CatII", 60.0)
    p["trip"]["uv1"]["threshold_pu"] = (0.88, "test: UV1 at the top of its range")
    p["trip"]["uv1"]["clearing_time_s"] = (2.0, "test: UV1 at the bottom of its range")
    c = conflicts(p)
    assert len(c) == 1 and c[0].startswith("uv1")  # cuts into the 0.65-0.88 pu mandatory band (3-5 s)
    p["trip"]["uv1"]["clearing_time_s"] = (5.001, "test")
    assert conflicts(p) == []
    p = grid_codes.profile("EN50549-1", 50.0)
    p["rocof_trip"] = {"setting_hz_s": (1.0, "test"), "delay_s": (0.0, "test"), "window_s": (0.5, "test")}
    assert len(conflicts(p)) == 1


def test_danish_profile_sources_or_labelled_fallback():
    p = grid_codes.profile("DK-EN50549-1", 50.0, sources=True)
    en = grid_codes.profile("EN50549-1", 50.0, sources=True)
    # no public Danish protection settings: the EN values stand in, and every source says so
    for k in grid_codes.STAGE_KEYS:
        if isinstance(en["trip"][k], dict):
            assert p["trip"][k]["clearing_time_s"][0] == en["trip"][k]["clearing_time_s"][0]
            assert "no public Danish setting" in p["trip"][k]["clearing_time_s"][1]
    assert p["enter_service"]["delay_s"][0] == en["enter_service"]["delay_s"][0]
    assert "no public Danish setting" in p["enter_service"]["delay_s"][1]
    assert p["rocof_ride_through"]["hz_s"][0] == 2.0
    assert p["phase_jump_ride_through"]["positive_sequence_deg"][0] == 20.0
    assert p["f_continuous"]["low_hz"][0] == 49.0 and p["v_continuous"]["low_pu"][0] == 0.85
    for path, v, src in grid_codes.numbers(p):
        if v is not None and path != "f_nom_hz":
            assert ("TR 3.3.1" in src or "IEC 62116" in src or "Danish" in src), (path, src)


def test_profiles_are_fresh_copies():
    for sources in (False, True):
        a = grid_codes.profile("EN50549-1", 50.0, sources=sources)
        a["trip"]["uv1"]["threshold_pu"] = (0.5, "changed")
        a["v_ride_through"].append("changed")
        b = grid_codes.profile("EN50549-1", 50.0, sources=sources)
        assert b["trip"]["uv1"]["threshold_pu"][0] == 0.85
        assert "changed" not in b["v_ride_through"]
