"""ISO 15118-20 feeds the gateway: the EV's announced limits bind the power the gateway
commands, the SECC grants that power, and a lost session brings it to zero."""

import sys
import pathlib

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "firmware"))

from controller import config  # noqa: E402
from controller.control import limits
from controller.control.gateway import Gateway  # noqa: E402
from controller.iso15118.gateway_evse import GatewayEvse  # noqa: E402
from controller.iso15118.secc import Secc  # noqa: E402
from hil.evcc import Evcc, inprocess_exchange  # noqa: E402
from sitebus import Site  # noqa: E402


class _Clock:
    def __init__(self):
        self.t = 0

    def __call__(self):
        return self.t


def _setup(mode, setpoint_kw):
    cfg = config.validate({"mode": {"kind": mode, "setpoint_kw": setpoint_kw}, "limits": {"ramp_up_kw_per_s": None},
                           "control": {"recover_hold_ms": 0}})
    site = Site()
    gw = Gateway(cfg, site.gw_port)
    clock = _Clock()
    evse = GatewayEvse(gw, clock)
    secc = Secc(evse, {"energy": "DC", "control_mode": "Dynamic"})
    return site, gw, clock, evse, secc


def _period(site, gw, clock):
    site.send_all(ev=False)  # no EVCC frames: the EV speaks ISO 15118-20 only
    gw.poll(clock.t)
    gw.tick(clock.t)
    site.commands()
    clock.t += 10000


def test_ev_limits_from_iso15118_bind_the_gateway_and_the_secc_grants_its_command():
    # the gateway wants 15 kW of V2G; the simulated EV announces 11 kW of discharge over
    # ISO 15118-20 (the inverter alone would allow 11 kW / 0.97): the EV's limit binds
    site, gw, clock, evse, secc = _setup("v2g", -15.0)
    granted = []
    binding = []

    def exchange(ns, msg):
        for _ in range(3):
            _period(site, gw, clock)
        r = ex(ns, msg)
        granted.append(evse.present()["target_power"])
        binding.append(gw.limiting)
        return r

    ex = inprocess_exchange(secc, clock_us=clock)
    Evcc(energy="DC", bpt=True, control="Dynamic", channel="Discharge", loops=8).run(exchange)
    assert min(granted) == -11000.0  # exactly the EV's announced discharge limit, never beyond
    assert limits.EV_DISCHARGE in binding


def test_lost_session_brings_power_to_zero_within_a_period():
    site, gw, clock, evse, secc = _setup("v2g", -5.0)
    evse.voltage = 400.0
    evse.ev_limits({"max_charge_power": 11000, "max_discharge_power": 11000, "soc": 60})
    evse.output("Discharge")
    for _ in range(5):
        evse.ev_target({"present_voltage": 400.0, "soc": 60, "min_soc": 20})
        _period(site, gw, clock)
    assert gw.p_cmd == -5000.0
    evse.session_lost("connection_lost")
    _period(site, gw, clock)
    assert gw.p_cmd == 0.0
    assert evse.present()["target_power"] == 0.0


def test_ev_input_times_out_without_charge_loop_messages():
    site, gw, clock, evse, secc = _setup("charge", 4.0)
    evse.voltage = 400.0
    evse.ev_limits({"max_charge_power": 3000, "max_discharge_power": 0, "soc": 40})
    evse.output("Charge")
    for _ in range(5):
        evse.ev_target({"present_voltage": 400.0})
        _period(site, gw, clock)
    assert gw.p_cmd == 3000.0 and gw.limiting == limits.EV_CHARGE
    for _ in range(60):  # 600 ms without a message from the EV: longer than the EV input timeout
        _period(site, gw, clock)
    assert gw.p_cmd == 0.0 and gw.safe


def test_values_the_ev_did_not_announce_restrict_and_never_enable():
    # no state of charge or no minimum announced: the gateway does not discharge the EV,
    # whatever it asks for (it used to invent SoC 50 % and minimum 0 %)
    for announced in ({}, {"soc": 60}, {"min_soc": 20}):
        site, gw, clock, evse, secc = _setup("v2g", -5.0)
        evse.voltage = 400.0
        evse.ev_limits({"max_charge_power": 11000, "max_discharge_power": 11000})
        evse.output("Discharge")
        for _ in range(5):
            evse.ev_target(dict({"present_voltage": 400.0}, **announced))
            _period(site, gw, clock)
        assert gw.p_cmd == 0.0 and gw.limiting == limits.MIN_SOC, announced
    # both known and above the minimum: the discharge the EV allows
    evse.ev_target({"present_voltage": 400.0, "soc": 60, "min_soc": 20})
    _period(site, gw, clock)
    assert gw.p_cmd == -5000.0


def test_out_of_range_ev_values_are_refused_like_bad_frames():
    from controller import events

    site, gw, clock, evse, secc = _setup("charge", 4.0)
    evse.voltage = 400.0
    evse.output("Charge")
    for _ in range(5):
        evse.ev_target({"present_voltage": 400.0, "max_charge_power": 3000, "soc": 40, "min_soc": 20})
        _period(site, gw, clock)
    assert gw.p_cmd == 3000.0
    before = gw.refused[events.R_RANGE]
    evse.ev_target({"present_voltage": 400.0, "soc": 140.0})  # no such state of charge
    assert gw.refused[events.R_RANGE] == before + 1
    assert gw.ev_status.values["Soc"] == 40.0  # the last good value stays


def test_refused_values_are_not_kept_and_the_last_good_ones_go_on():
    from controller import events

    site, gw, clock, evse, secc = _setup("v2g", -5.0)
    evse.output("Discharge")
    for _ in range(5):
        evse.ev_target({"present_voltage": 400.0, "max_discharge_power": 11000, "soc": 60, "min_soc": 20})
        _period(site, gw, clock)
    assert gw.p_cmd == -5000.0
    before = gw.refused[events.R_RANGE]
    # a discharge limit beyond what an EVCC_Limits frame may carry (350 kW), and a battery
    # voltage beyond EVCC_Status' range: both frames refused, counted like bad CAN frames
    evse.ev_target({"present_voltage": 1200.0, "max_discharge_power": 400000, "soc": 61, "min_soc": 20})
    assert gw.refused[events.R_RANGE] == before + 2
    assert gw.ev_limits.values["MaxDischargePower"] == 11000 and gw.ev_status.values["BatteryVoltage"] == 400.0
    assert evse.voltage == 400.0  # the refused voltage is not used for the EVSE's present values either
    # the next message without those values is accepted again: nothing refused is kept
    evse.ev_target({"present_voltage": 400.0, "soc": 61, "min_soc": 20})
    assert gw.refused[events.R_RANGE] == before + 2
    assert gw.ev_status.values["Soc"] == 61.0 and gw.ev_limits.values["MaxDischargePower"] == 11000
    # a negative limit cannot be carried at all (unsigned signal): refused the same way
    evse.ev_limits({"max_discharge_power": -11000})
    assert gw.refused[events.R_RANGE] == before + 3
    _period(site, gw, clock)
    assert gw.p_cmd == -5000.0


def test_out_of_range_values_in_a_charge_loop_message_are_refused():
    from controller import events
    from controller.iso15118.secc import rat

    site, gw, clock, evse, secc = _setup("v2g", -5.0)
    ex = inprocess_exchange(secc, clock_us=clock)
    ev = Evcc(energy="DC", bpt=True, control="Dynamic", channel="Discharge", loops=2)
    sent = []

    def exchange(ns, msg):
        _period(site, gw, clock)
        if "DC_ChargeLoopReq" in msg and len(sent) == 1:
            body = msg["DC_ChargeLoopReq"]
            body["BPT_Dynamic_DC_CLReqControlMode"]["EVMaximumChargePower"] = rat(500000)
            body["DisplayParameters"]["PresentSOC"] = 100
        if "DC_ChargeLoopReq" in msg:
            sent.append(msg)
            before[0] = gw.refused[events.R_RANGE]
        r = ex(ns, msg)
        if "DC_ChargeLoopReq" in msg:
            after.append(gw.refused[events.R_RANGE] - before[0])
        return r

    before, after = [0], []
    ev.run(exchange)
    # the session goes on (the SECC answers OK, as a CAN sender is not told either); the
    # first loop message is accepted, the second's 500 kW charge limit is refused (one
    # frame, counted) and its state of charge, in the other frame, is taken
    assert ev.log[-1][0] == "SessionStopReq" and all(r["ResponseCode"].startswith("OK") for _, r in ev.log)
    assert after == [0, 1]
    assert gw.ev_status.values["Soc"] == 100.0


def test_minimum_soc_from_schedule_exchange_holds_for_the_session():
    # Josev's EV announces MinimumSOC in Dynamic_SEReqControlMode, not in DisplayParameters
    site, gw, clock, evse, secc = _setup("v2g", -5.0)
    evse.ev_limits({"max_charge_power": 11000, "max_discharge_power": 11000})
    evse.ev_limits({"departure_time": 7200, "min_soc": 30, "target_soc": 80})
    evse.output("Discharge")
    for _ in range(60):
        evse.ev_target({"present_voltage": 400.0, "soc": 60})
        _period(site, gw, clock)
    assert gw.ev_limits.values["MinSoc"] == 30.0 and gw.p_cmd == -5000.0
    for _ in range(3):
        evse.ev_target({"present_voltage": 400.0, "soc": 30})  # at the minimum: no more discharge
        _period(site, gw, clock)
    assert gw.p_cmd == 0.0 and gw.limiting == limits.MIN_SOC


def test_a_state_of_charge_not_announced_again_expires_and_stops_discharge():
    site, gw, clock, evse, secc = _setup("v2g", -5.0)
    evse.output("Discharge")
    evse.ev_target({"present_voltage": 400.0, "max_discharge_power": 11000, "soc": 60, "min_soc": 20})
    for _ in range(5):
        evse.ev_target({"present_voltage": 400.0})
        _period(site, gw, clock)
    assert gw.p_cmd == -5000.0
    for _ in range(60):  # 600 ms of loop messages without DisplayParameters: the EV input stays fresh
        evse.ev_target({"present_voltage": 400.0})
        _period(site, gw, clock)
    # the minimum is a limit and holds for the session; the measurement has expired
    assert not gw.safe and gw.ev_status.values["SocValid"] == 0 and gw.ev_limits.values["MinSocValid"] == 1
    assert gw.p_cmd == 0.0 and gw.limiting == limits.MIN_SOC
    evse.ev_target({"present_voltage": 400.0, "soc": 60})  # announced again
    _period(site, gw, clock)
    assert gw.p_cmd == -5000.0


def test_no_power_before_power_delivery_and_a_new_session_forgets_the_last_ev():
    site, gw, clock, evse, secc = _setup("v2g", -5.0)
    for _ in range(5):  # limits and battery state known, but PowerDelivery has not started
        evse.ev_target({"present_voltage": 400.0, "max_discharge_power": 11000, "soc": 60, "min_soc": 20})
        _period(site, gw, clock)
    assert gw.ev_limits.values["SessionActive"] == 0 and gw.p_cmd == 0.0
    evse.output("Discharge")
    evse.ev_target({"present_voltage": 400.0})
    _period(site, gw, clock)
    assert gw.p_cmd == -5000.0
    evse.output(None)
    secc.connection_made(clock.t)  # the next EV connects: it has announced nothing yet
    evse.output("Discharge")
    for _ in range(5):
        evse.ev_target({"present_voltage": 400.0, "max_discharge_power": 11000})
        _period(site, gw, clock)
    assert gw.ev_status.values["SocValid"] == 0 and gw.p_cmd == 0.0 and gw.limiting == limits.MIN_SOC


def test_evcc_frames_on_the_bus_are_not_mixed_into_the_ev_input():
    # the EV speaks ISO 15118-20 to this gateway: EVCC frames from the bus (a bridge left
    # connected, a simulated site, a rogue node) cannot add limits or a state of charge
    site, gw, clock, evse, secc = _setup("v2g", -5.0)
    evse.output("Discharge")
    for _ in range(5):
        site.send_all(ev=True)  # the bus EV announces 11 kW, SoC 80 %, minimum 20 %
        evse.ev_target({"present_voltage": 400.0, "max_discharge_power": 3000})  # this EV: no SoC yet
        gw.poll(clock.t)
        gw.tick(clock.t)
        site.commands()
        clock.t += 10000
    assert evse.bus_dropped == 10 and gw.refused_total == 0
    assert gw.ev_limits.values["MaxDischargePower"] == 3000 and gw.ev_status.values["SocValid"] == 0
    assert gw.p_cmd == 0.0 and gw.limiting == limits.MIN_SOC
