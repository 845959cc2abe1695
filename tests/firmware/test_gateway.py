"""The gateway controller against a scripted site (run under MicroPython and CPython)."""

from controller import config, events
from controller.control import limits
from controller.control.gateway import Gateway
from sitebus import Site

PERIOD = 10000  # us


def _gw(mode="v2g", setpoint_kw=-6.0, **cfg):
    cfg.setdefault("mode", {"kind": mode, "setpoint_kw": setpoint_kw})
    cfg.setdefault("limits", {"ramp_up_kw_per_s": None})
    cfg.setdefault("control", {"recover_hold_ms": 0})
    site = Site()
    gw = Gateway(config.validate(cfg), site.gw_port)
    return gw, site


def _run(gw, site, t0, n, **send):
    t = t0
    for _ in range(n):
        site.send_all(**send)
        gw.poll(t)
        gw.tick(t)
        t += PERIOD
    return t


def _events(site):
    out = []
    for name, d in site.commands():
        if name == "GW_Event":
            out.append((d["EventCode"], d["EventDetail"]))
    return out


def test_no_power_before_inputs():
    gw, site = _gw()
    gw.tick(0)
    cmd = site.last("GW_InverterCmd")
    assert cmd["PSetpoint"] == 0
    assert gw.safe


def test_v2g_follows_setpoint_when_healthy():
    gw, site = _gw()
    _run(gw, site, 0, 5)
    cmd = site.last("GW_InverterCmd")
    assert not gw.safe
    assert cmd["InvModeReq"] == 1
    assert cmd["PSetpoint"] == -6000


def test_ev_limit_drop_fast_path():
    gw, site = _gw(setpoint_kw=-10.0)
    t = _run(gw, site, 0, 5)
    assert site.last("GW_InverterCmd")["PSetpoint"] == -10000
    site.ev["MaxDischargePower"] = 3000
    site.dev.send("EVCC_Limits", **site.ev)
    gw.poll(t)  # no tick: the fast path alone must act
    cmd = site.last("GW_InverterCmd")
    assert cmd is not None and cmd["PSetpoint"] == -3000


def test_meter_timeout_zero_power_and_recovery():
    gw, site = _gw()
    t = _run(gw, site, 0, 5)
    site.commands()
    t = _run(gw, site, t, 10, meter=False)  # 100 ms silent > 50 ms timeout
    assert gw.safe
    assert gw.p_cmd == 0.0
    t = _run(gw, site, t, 3)
    assert not gw.safe
    assert site.last("GW_InverterCmd")["PSetpoint"] == -6000


def test_timeout_and_restore_events():
    gw, site = _gw()
    t = _run(gw, site, 0, 5)
    site.commands()
    t = _run(gw, site, t, 10, meter=False)
    ev = _events(site)
    assert (events.INPUT_TIMEOUT, events.IN_METER) in ev
    assert (events.SAFE_STATE, events.IN_METER) in ev
    t = _run(gw, site, t, 3)
    ev = _events(site)
    assert (events.INPUT_RESTORED, events.IN_METER) in ev


def test_corrupt_frames_counted_and_refused():
    gw, site = _gw()
    t = _run(gw, site, 0, 5)
    before = gw.mtr_grid.values["GridVoltage"]
    # bad CRC
    buf = site.dev.send("MTR_Grid", GridVoltage=100.0, GridFrequency=50.0)
    buf[7] ^= 0xFF
    site.port.send(0x0A0, buf)
    # wrong length
    site.port.send(0x0A0, b"\x01\x02\x03")
    # unknown identifier
    site.port.send(0x555, b"\x00" * 8)
    gw.poll(t)
    assert gw.refused[events.R_CRC] >= 1
    assert gw.refused[events.R_LENGTH] == 1
    assert gw.refused[events.R_UNKNOWN_ID] == 1
    # the valid first MTR_Grid frame (100 V) was accepted, the replayed one refused
    assert gw.mtr_grid.values["GridVoltage"] == 100.0 and before == 230.0


def test_out_of_range_refused():
    gw, site = _gw()
    t = _run(gw, site, 0, 3)
    from controller.bus import candb
    msg = candb.BY_NAME["MTR_Grid"]
    # encode a raw value past the DBC maximum (400 V) with a valid CRC
    site.dev.send("MTR_Grid", GridVoltage=600.0, GridFrequency=50.0)
    gw.poll(t)
    assert gw.refused[events.R_RANGE] == 1
    assert gw.mtr_grid.values["GridVoltage"] == 230.0
    assert msg.check_range({"GridVoltage": 600.0, "GridFrequency": 50.0, "PhaseAngle": 0.0, "AliveCounter": 0, "Rocof": 0.0, "Crc": 0}) == "GridVoltage"


def test_v2h_covers_load_without_export():
    gw, site = _gw(mode="v2h")
    t = 0
    # closed loop against an ideal site: grid = load + inverter AC
    load = 2000.0
    for _ in range(60):
        p_ac = limits.batt_to_ac(gw.p_cmd, 0.97)
        site.p_inv = int(gw.p_cmd)
        site.p_grid = int(load + p_ac)
        t = _run(gw, site, t, 1)
    grid = load + limits.batt_to_ac(gw.p_cmd, 0.97)
    assert 0.0 <= grid <= 120.0, grid
    assert gw.p_cmd < -1900.0


def test_min_soc_stops_discharge():
    gw, site = _gw()
    site.soc = 19.5
    _run(gw, site, 0, 5)
    assert gw.p_cmd == 0.0
    assert gw.limiting == limits.MIN_SOC


def test_mode_request_from_ems():
    gw, site = _gw(mode="idle", setpoint_kw=0.0)
    t = _run(gw, site, 0, 3)
    assert gw.p_cmd == 0.0
    site.dev.send("EMS_ModeRequest", ModeReq=events.CHARGE, SetpointPower=4000)
    t = _run(gw, site, t, 3)
    assert gw.mode == events.CHARGE and gw.p_cmd == 4000.0


def test_idle_keeps_inverter_off():
    gw, site = _gw(mode="idle", setpoint_kw=0.0)
    _run(gw, site, 0, 3)
    cmd = site.last("GW_InverterCmd")
    assert cmd["InvModeReq"] == 0 and cmd["PSetpoint"] == 0


def test_inverter_fault_is_a_trip():
    gw, site = _gw()
    t = _run(gw, site, 0, 3)
    site.commands()
    site.dev.send("INV_Status", InvModeActual=0, InvState=3, FaultOverCurrent=1)
    gw.poll(t)
    gw.tick(t)
    ev = _events(site)
    assert (events.TRIP, events.T_INV_OVERCURRENT) in ev
    assert gw.safe and gw.p_cmd == 0.0


def test_meter_and_inverter_disagree_is_implausible():
    gw, site = _gw()
    t = _run(gw, site, 0, 5)
    site.commands()
    site.inv_v = 180.0  # a sensor drifts while its frames stay valid
    t = _run(gw, site, t, 30)  # 300 ms: not yet
    assert not gw.safe
    t = _run(gw, site, t, 30)  # 600 ms in all
    assert gw.safe and gw.p_cmd == 0.0
    ev = _events(site)
    assert (events.IMPLAUSIBLE, events.IN_PLAUSIBILITY) in ev
    assert (events.SAFE_STATE, events.IN_PLAUSIBILITY) in ev
    site.inv_v = None
    t = _run(gw, site, t, 70)
    assert not gw.safe


def test_rx_ids_are_the_inputs_and_the_diagnostic_requests():
    from controller.bus import candb
    from controller.diag.diagnostics import Diagnostics

    gw, site = _gw()
    inputs = ["MTR_Grid", "MTR_Power", "INV_Status", "INV_AcMeasure", "RLY_Feedback", "EVCC_Limits",
              "EVCC_Status", "INV_AcLossEvent", "EMS_ModeRequest", "EMS_FreqServiceHdr", "EMS_FreqServicePoint",
                  "EMS_PlanHdr", "EMS_PlanSlot", "EMS_PowerLimit"]
    ids = sorted((candb.BY_NAME[n].frame_id, False) for n in inputs)
    assert gw.rx_ids() == ids
    Diagnostics(gw, {"serial": "T", "sw_version": "t", "system_name": "t"}, b"\x11" * 32, 0)
    assert gw.rx_ids() == sorted(ids + [(0x7DF, False), (0x7E0, False)])


def test_acceptance_filter_drops_foreign_ids_before_the_gateway():
    gw, site = _gw()
    assert gw.apply_acceptance_filter() is False  # a MemoryPort filters in the port
    t = _run(gw, site, 0, 5)
    site.port.send(0x555, b"\x00" * 8)
    site.port.send(0x0A0, b"\x01\x02\x03")  # an input's id with a wrong length: still refused
    gw.poll(t)
    assert gw.refused[events.R_UNKNOWN_ID] == 0 and gw.port.rx_filtered == 1
    assert gw.refused[events.R_LENGTH] == 1
    assert not gw.safe  # and the site's own frames go on arriving


def test_acceptance_filter_off_by_configuration():
    gw, site = _gw(control={"recover_hold_ms": 0, "acceptance_filter": False})
    assert gw.apply_acceptance_filter() is False
    site.port.send(0x555, b"\x00" * 8)
    gw.poll(0)
    assert gw.refused[events.R_UNKNOWN_ID] == 1 and gw.port.rx_filtered == 0


def _ems(site, mode, setpoint_w, valid_for_s=0):
    site.dev.send("EMS_ModeRequest", ModeReq=mode, SetpointPower=setpoint_w, ValidFor=valid_for_s)


def test_ems_request_expires_to_the_configured_mode():
    gw, site = _gw(mode="idle", setpoint_kw=0.0)
    seen = []
    gw.listeners.append(lambda code, detail, value: seen.append((code, detail)))
    t = 0
    for _ in range(5):  # the energy manager repeats its request every second
        _ems(site, events.V2G, -6000)
        t = _run(gw, site, t, 100)
    assert gw.mode == events.V2G and gw.p_cmd == -6000.0
    t = _run(gw, site, t, 190)  # the last request came 2.9 s ago: still in force
    assert gw.mode == events.V2G and gw.p_cmd == -6000.0
    t = _run(gw, site, t, 20)  # past 3 s (EMS_ModeRequest's receive timeout): idle again
    assert gw.mode == events.IDLE and gw.p_cmd == 0.0
    assert (events.INPUT_TIMEOUT, events.IN_EMS) in seen
    site.commands()
    t = _run(gw, site, t, 20)
    assert site.last("GW_Status")["TimeoutEms"] == 1
    _ems(site, events.CHARGE, 3000)
    t = _run(gw, site, t, 20)
    assert gw.mode == events.CHARGE and gw.p_cmd == 3000.0
    assert (events.INPUT_RESTORED, events.IN_EMS) in seen
    assert site.last("GW_Status")["TimeoutEms"] == 0


def test_ems_request_holds_for_its_validity():
    gw, site = _gw(mode="idle", setpoint_kw=0.0, control={"recover_hold_ms": 0, "period_ms": 100})
    _ems(site, events.V2G, -4000, valid_for_s=900)  # a plan slot: 15 minutes
    t = 0
    for _ in range(8990):  # 899 s in 100 ms periods, without a repetition
        site.send_all()
        gw.poll(t)
        gw.tick(t)
        t += 100000
    assert gw.mode == events.V2G and gw.p_cmd == -4000.0
    for _ in range(20):
        site.send_all()
        gw.poll(t)
        gw.tick(t)
        t += 100000
    assert gw.mode == events.IDLE and gw.p_cmd == 0.0


def test_charge_never_discharges_and_v2g_never_charges():
    gw, site = _gw(mode="idle", setpoint_kw=0.0)
    _ems(site, events.CHARGE, -5000)  # a charge request with a discharge setpoint
    t = _run(gw, site, 0, 5)
    assert gw.mode == events.CHARGE and gw.p_cmd == 0.0 and gw.limiting == limits.MODE_DIRECTION
    _ems(site, events.V2G, 5000)  # an export request with a charge setpoint
    t = _run(gw, site, t, 5)
    assert gw.mode == events.V2G and gw.p_cmd == 0.0 and gw.limiting == limits.MODE_DIRECTION
    _ems(site, events.V2G, -5000)
    _run(gw, site, t, 5)
    assert gw.p_cmd == -5000.0


def test_unknown_soc_or_minimum_means_no_discharge():
    gw, site = _gw()
    site.ev["MinSocValid"] = 0
    _run(gw, site, 0, 5)
    assert gw.p_cmd == 0.0 and gw.limiting == limits.MIN_SOC
    gw, site = _gw(mode="charge", setpoint_kw=3.0)
    site.ev["MinSocValid"] = 0  # charging needs neither
    _run(gw, site, 0, 5)
    assert gw.p_cmd == 3000.0


# -- the inverter's report against the command (control/inverter_monitor.py) ------------
def _trips(seen):
    return [d for c, d in seen if c == events.TRIP]


def test_inverter_running_while_commanded_off_opens_the_relay():
    gw, site = _gw(mode="idle", setpoint_kw=0.0)
    seen = []
    gw.listeners.append(lambda c, d, v: seen.append((c, d)))
    t = _run(gw, site, 0, 10)
    assert gw.inv_mode == 0 and not gw.safe
    site.inv_mode = 1  # it runs grid-following although commanded off
    t = _run(gw, site, t, 15)  # 150 ms: not yet
    assert events.T_INV_UNCOMMANDED not in _trips(seen)
    t = _run(gw, site, t, 10)
    assert events.T_INV_UNCOMMANDED in _trips(seen)
    assert site.last("GW_RelayCmd")["RelayCloseReq"] == 0  # the relay is its only off switch
    assert gw.safe and gw.backup.state != 0


def test_inverter_not_following_its_command_is_a_fault_then_retried():
    gw, site = _gw()
    seen = []
    gw.listeners.append(lambda c, d, v: seen.append((c, d)))
    t = _run(gw, site, 0, 10)
    assert gw.p_cmd == -6000.0
    site.inv_mode = 0  # commanded grid-following, stays off, no flag says why
    t = _run(gw, site, t, 40)
    assert events.T_INV_NOT_FOLLOWING not in _trips(seen) and not gw.safe
    t = _run(gw, site, t, 20)
    assert events.T_INV_NOT_FOLLOWING in _trips(seen)
    assert gw.safe and gw.p_cmd == 0.0 and not gw._can_backup()
    site.inv_mode = None  # it follows again
    t = _run(gw, site, t, 900)  # within the 10 s retry time: still out
    assert gw.safe
    _run(gw, site, t, 200)
    assert not gw.safe and gw.p_cmd == -6000.0
    assert _trips(seen).count(events.T_INV_NOT_FOLLOWING) == 1


def test_inverter_off_with_an_ac_fault_flag_is_not_a_mismatch():
    gw, site = _gw()
    seen = []
    gw.listeners.append(lambda c, d, v: seen.append((c, d)))
    t = _run(gw, site, 0, 10)
    site.inv_mode = 0
    site.inv_flags = {"FaultAcGrid": 1}
    site.grid_v = 0.4 * 230.0  # a deep sag the grid code rides through (momentary cessation)
    t = _run(gw, site, t, 15)
    assert events.T_INV_NOT_FOLLOWING not in _trips(seen)
    assert gw.separated_by == 0  # no separation inside ride-through


def test_inverter_ac_fault_outside_ride_through_separates():
    gw, site = _gw()
    seen = []
    gw.listeners.append(lambda c, d, v: seen.append((c, d)))
    t = _run(gw, site, 0, 10)
    site.inv_flags = {"FaultAcGrid": 1}  # the meter sees a healthy grid: nothing to ride through
    _run(gw, site, t, 2)
    assert gw.separated_by == events.T_INV_AC_GRID


def test_command_timeout_reported_by_the_inverter_holds_the_safe_state():
    gw, site = _gw()
    seen = []
    gw.listeners.append(lambda c, d, v: seen.append((c, d)))
    t = _run(gw, site, 0, 10)
    site.inv_flags = {"FaultCmdTimeout": 1}
    t = _run(gw, site, t, 3)
    assert events.T_INV_CMD_TIMEOUT in _trips(seen) and gw.safe
    site.inv_flags = {}
    _run(gw, site, t, 5)
    assert not gw.safe


def test_no_grid_forming_command_once_the_relay_reports_closed():
    # a whole outage and return on the scripted site: the command sent in reply to the
    # relay's 'closed' feedback, and every one after it, is grid-following or off
    gw, site = _gw(mode="v2h")
    t = _run(gw, site, 0, 20)
    site.dev.send("INV_AcLossEvent", LossReason=1, VoltageAtEvent=20.0)
    gw.poll(t)
    assert gw.backup.state == 1  # opening
    site.grid_v = 0.0
    site.relay_state = 0
    site.inv_v = 230.0  # the island, formed by the inverter
    t = _run(gw, site, t, 5)
    assert gw.backup.state == 2 and gw.inv_mode == 2  # backup, grid-forming
    site.grid_v = 230.0  # the grid is back (meter and relay see it)
    # EN 50549-1 observation time, then resync: phase and frequency already match here
    for _ in range(7000):
        t = _run(gw, site, t, 1)
        if gw.backup.state == 5:  # closing
            break
    assert gw.backup.state == 5
    site.commands()
    site.relay_state = 1
    site.dev.send("RLY_Feedback", ContactState=1, UtilityVoltagePresent=1, UtilityVoltage=230.0)
    gw.poll(t)
    cmds = [d for n, d in site.commands() if n == "GW_InverterCmd"]
    assert cmds and all(c["InvModeReq"] != 2 for c in cmds), cmds
    t = _run(gw, site, t, 10)
    cmds = [d for n, d in site.commands() if n == "GW_InverterCmd"]
    assert cmds and all(c["InvModeReq"] != 2 for c in cmds)
    assert gw.gfm_refused == 0  # the state machine never asked for it; the guard stayed idle


def _service(site, curve_id=1, points=((49.5, -11000), (49.7, 0)), n=None, kind=4, valid_s=60):
    site.dev.send("EMS_FreqServiceHdr", Kind=kind, CurveId=curve_id, NumPoints=len(points) if n is None else n,
                  BaselinePower=0, ValidFor=valid_s)
    for i, (hz, dp) in enumerate(points):
        site.dev.send("EMS_FreqServicePoint", CurveId=curve_id, Index=i, Frequency=hz, DeltaPower=dp)


def test_a_frequency_service_over_can_sets_the_power_and_bad_sets_are_refused():
    gw, site = _gw(mode="idle", setpoint_kw=0.0)
    t = _run(gw, site, 0, 30)
    assert gw.gs.fsvc is None  # no service frame yet: the unit is not even loaded
    # a point before any header, then a set whose points belong to another curve: refused, counted
    site.dev.send("EMS_FreqServicePoint", CurveId=1, Index=0, Frequency=49.5, DeltaPower=-11000)
    gw.poll(t)
    assert gw.refused_total == 1
    site.dev.send("EMS_FreqServiceHdr", Kind=4, CurveId=3, NumPoints=2, BaselinePower=0, ValidFor=60)
    site.dev.send("EMS_FreqServicePoint", CurveId=4, Index=0, Frequency=49.5, DeltaPower=-11000)
    gw.poll(t)
    assert gw.refused_total == 2 and not gw.gs.fsvc.in_force and gw.gs.fsa.refused == 1
    # a proper FFR set: in force; at nominal frequency the baseline (0), the mode reported freq_service
    _service(site)
    t = _run(gw, site, t, 20)
    assert gw.gs.fsvc.in_force and gw.gs.service and gw.reported_mode == events.FREQ_SERVICE
    assert gw.p_cmd == 0
    # the grid frequency falls to 49.5 Hz: full export (11 kW AC from the battery, within the EV's limit)
    site.grid_f = 49.5
    t = _run(gw, site, t, 20)
    assert -11000 <= gw.p_cmd < -10000 and gw.limiting in (limits.GRID_SUPPORT, limits.EV_DISCHARGE)
    # a cancel: back to idle
    site.dev.send("EMS_FreqServiceHdr", Kind=0, CurveId=5, NumPoints=0, BaselinePower=0, ValidFor=1)
    t = _run(gw, site, t, 20)
    assert not gw.gs.service and gw.p_cmd == 0 and gw.reported_mode == events.IDLE
