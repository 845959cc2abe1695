"""The station's site bus bridge (ocpp_link/site_bus.py): frames in, checked against cantools
and the E2E CRC; commands out, decoded by cantools from the DBC files (not by the bridge)."""

import pytest

from controller.bus import e2e
from hil.dbcdb import database
from ocpp_link.site_bus import SiteBus

DB = database()


def frame(name, counter=0, **values):
    """An intact frame of `name` (E2E as the senders make it), encoded by cantools."""
    m = DB.get_message_by_name(name)
    full = {s.name: 0 for s in m.signals}
    full.update(values)
    if "AliveCounter" in full:
        full["AliveCounter"] = counter
    if "Crc" in full:
        full["Crc"] = 0
    data = bytearray(m.encode(full, scaling=True, strict=True))
    if "E2EDataID" in m.dbc.attributes and m.dbc.attributes["E2EDataID"].value:
        data[7] = e2e.crc8_j1850(m.dbc.attributes["E2EDataID"].value, data, 7)
    return m.frame_id, bytes(data)


def decode(can_id, data):
    m = DB.get_message_by_frame_id(can_id)
    did = m.dbc.attributes["E2EDataID"].value
    assert e2e.crc8_j1850(did, data, 7) == data[7], m.name
    return m.name, m.decode(data, decode_choices=False)


def test_ev_state_and_session_from_frames():
    sb = SiteBus()
    assert sb.session is None
    sb.on_frame(*frame("EVCC_Limits", MaxChargePower=11000, MaxDischargePower=9000, MinSoc=20, SessionActive=1,
                       MinSocValid=1), 0.0)
    sb.on_frame(*frame("EVCC_Status", Soc=64.5, SocValid=1, BatteryCapacity=94.0, BatteryVoltage=400), 0.0)
    assert sb.session is True
    assert (sb.ev_max_charge_w, sb.ev_max_discharge_w, sb.ev_min_soc) == (11000, 9000, 20)
    assert sb.soc == pytest.approx(64.5)
    assert sb.capacity_kwh == pytest.approx(94.0)
    sb.on_frame(*frame("EVCC_Status", Soc=10, SocValid=0, BatteryCapacity=94.0), 0.1)
    assert sb.soc is None  # not reported: never a made-up SoC
    sb.on_frame(*frame("EVCC_Limits", SessionActive=0), 0.2)
    assert sb.session is False


def test_energy_registers_integrate_per_direction_across_zero():
    sb = SiteBus(import_wh=100.0, export_wh=5.0)
    # 3.6 kW for 1 s = 1 Wh into the EV; then a ramp from +3.6 kW to -3.6 kW over 2 s:
    # 0.5 Wh in, 0.5 Wh out; then -3.6 kW for 1 s = 1 Wh out
    for t, p in ((0.0, 3600), (1.0, 3600), (3.0, -3600), (4.0, -3600)):
        sb.on_frame(*frame("INV_Status", PActual=p), t)
    assert sb.import_wh == pytest.approx(101.5)
    assert sb.export_wh == pytest.approx(6.5)
    # a silent inverter: a gap longer than MAX_GAP_S is not integrated
    sb.on_frame(*frame("INV_Status", PActual=-3600), 4.0 + sb.MAX_GAP_S + 1.0)
    assert sb.export_wh == pytest.approx(6.5)


def test_refused_frames_are_counted_and_change_nothing():
    sb = SiteBus()
    fid, data = frame("EVCC_Limits", MaxChargePower=11000, SessionActive=1)
    bad = bytearray(data)
    bad[7] ^= 0x55
    sb.on_frame(fid, bytes(bad), 0.0)
    sb.on_frame(fid, data[:7], 0.0)
    assert sb.rx_refused == 2
    assert sb.session is None
    sb.on_frame(0x7FF, b"\x00" * 8, 0.0)  # not ours: ignored, not refused
    assert sb.rx_refused == 2


def test_gateway_events_are_described_and_gaps_counted():
    sb = SiteBus()
    sb.on_frame(*frame("GW_Event", EventCode=5, EventDetail=0, EventSeq=10), 1.0)
    sb.on_frame(*frame("GW_Event", EventCode=1, EventDetail=4, EventSeq=13), 1.1)
    kinds = [e["kind"] for _, e in sb.events]
    assert kinds == ["island_detected", "mode_change"]
    assert sb.events[1][1]["mode"] == "backup"
    assert sb.events_lost == 2


def test_commands_decode_with_cantools_and_carry_e2e():
    sb = SiteBus()
    (fid, data), = sb.mode_request("v2g", -5000.4, 3)
    name, v = decode(fid, data)
    assert name == "EMS_ModeRequest"
    assert (v["ModeReq"], v["SetpointPower"], v["ValidFor"]) == (3, -5000, 3)
    (fid2, data2), = sb.mode_request("idle", 0, 3)
    assert decode(fid2, data2)[1]["AliveCounter"] == (v["AliveCounter"] + 1) & 15
    # beyond the signal's range: clamped to it, never an encoding error on the bus
    (fid, data), = sb.mode_request("charge", 1e9, 10 ** 6)
    v = decode(fid, data)[1]
    assert (v["SetpointPower"], v["ValidFor"]) == (32000, 65535)


def test_power_limit_and_frequency_curve_frames():
    sb = SiteBus()
    (fid, data), = sb.power_limit(7000.7, 11000, 3)
    name, v = decode(fid, data)
    assert name == "EMS_PowerLimit"
    assert (v["MaxChargePower"], v["MaxDischargePower"], v["ValidFor"]) == (7000, 11000, 3)
    frames = sb.freq_service([(49.5, -6000.0), (49.9, 0.0), (50.1, 0.0), (50.5, 6000.0)], -1000.0, 3, new_curve=True)
    hdr = decode(*frames[0])[1]
    assert (hdr["Kind"], hdr["NumPoints"], hdr["BaselinePower"], hdr["ValidFor"]) == (5, 4, -1000, 3)
    pts = [decode(*f)[1] for f in frames[1:]]
    assert [p["Index"] for p in pts] == [0, 1, 2, 3]
    assert [round(p["Frequency"], 3) for p in pts] == [49.5, 49.9, 50.1, 50.5]
    assert [p["DeltaPower"] for p in pts] == [-6000, 0, 0, 6000]
    assert {p["CurveId"] for p in pts} == {hdr["CurveId"]}
    again = decode(*sb.freq_service([(49.5, -6000.0), (50.5, 6000.0)], 0, 3)[0])[1]
    assert again["CurveId"] == hdr["CurveId"]  # a repetition keeps the id
    with pytest.raises(ValueError):
        sb.freq_service([(50.0, 0.0)], 0, 3)
    cancel = decode(*sb.freq_cancel()[0])[1]
    assert cancel["NumPoints"] == 0
