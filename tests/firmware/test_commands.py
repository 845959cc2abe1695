"""The frames the gateway sends (controller/control/commands.py): sending never raises,
every value lands inside its DBC signal's range, and what had to be fitted is counted.
Run under MicroPython and CPython."""

from controller.bus import candb
from controller.bus.ports.memory import memory_pair
from controller.control.commands import Commands


def _decoded(port):
    out = {}
    while True:
        f = port.recv()
        if f is None:
            return out
        msg = candb.MESSAGES[f[0]]
        d = msg.decode(f[2])
        assert msg.check_range(d) is None, (msg.name, d)  # a receiver would accept it
        out[msg.name] = d


def test_values_beyond_their_signals_are_fitted_counted_and_never_raise():
    gw_port, dev = memory_pair(64)
    c = Commands(gw_port)
    inf = float("inf")
    nan = float("nan")
    c.send_inverter(1, 40000.0, -inf, True)
    c.send_limits(1000.0, nan, -5.0)
    c.send_forming(900.0, 80.0)
    got = _decoded(dev)
    assert got["GW_InverterCmd"]["PSetpoint"] == 32000 and got["GW_InverterCmd"]["QSetpoint"] == -32000
    assert got["GW_InverterLimits"]["IacMax"] == 409.5
    assert got["GW_InverterLimits"]["IdcChargeMax"] == 0.0 and got["GW_InverterLimits"]["IdcDischargeMax"] == 0.0
    assert got["GW_InverterForming"]["VoltageSetpoint"] == 500.0
    assert got["GW_InverterForming"]["FrequencySetpoint"] == 65.0
    assert c.clamped == 7 and c.clamped_id == candb.ID_GW_InverterForming
    assert c.tx_errors == 0 and c.sent == 3


def test_values_inside_their_signals_pass_unchanged():
    gw_port, dev = memory_pair(64)
    c = Commands(gw_port)
    c.send_inverter(1, -6000.7, 220.0, True)
    c.send_limits(15.9, 28.2, 28.2)
    got = _decoded(dev)
    assert got["GW_InverterCmd"]["PSetpoint"] == -6000  # truncated toward zero: never above the bound
    assert got["GW_InverterLimits"]["IacMax"] == 15.9
    assert c.clamped == 0


def test_event_values_of_any_size_are_sent():
    gw_port, dev = memory_pair(64)
    c = Commands(gw_port)
    for v in (0, 0x7FF, -5000, 40000, 70000, -70000):
        c.send_event(15, 1, v)
        d = _decoded(dev)["GW_Event"]
        assert d["EventValue"] == ((v & 0xFFFF) ^ 0x8000) - 0x8000
