"""The operating mode and its power target: idle, charge, V2H (power the home), V2G (export).

The mode comes from the configuration and from the energy manager (EMS_ModeRequest).
The target is battery-side power (positive = charging the EV) before ramp and limits:
- charge, v2g: the commanded setpoint;
- v2h: cover the home load from the EV, keeping a small import (v2h_import_bias_w) so
  that V2H never exports; a first-order controller on each new meter sample, in AC
  power, converted to battery power through the inverter efficiency;
- idle: zero.
Guarantee: target() depends only on the mode, the setpoint and the load estimate; the
limit arbitration (controller/control/limits.py) bounds it afterwards.
"""

from controller import events
from controller.control.limits import ac_to_batt

MODE_NAMES = ("idle", "charge", "v2h", "v2g")


class OperatingMode:
    __slots__ = ("mode", "setpoint_w", "bias_w", "gain", "eff", "v2h_ac")

    def __init__(self, cfg):
        self.mode = MODE_NAMES.index(cfg["mode"]["kind"])
        self.setpoint_w = cfg["mode"]["setpoint_kw"] * 1000.0
        self.bias_w = cfg["limits"]["v2h_import_bias_w"]
        self.gain = cfg["limits"]["v2h_gain"]
        self.eff = cfg["inverter"]["efficiency"]
        self.v2h_ac = 0.0

    def request(self, mode, setpoint_w):
        """A mode request from the energy manager (EMS_ModeRequest); unknown modes are ignored."""
        if mode <= events.V2G:
            self.mode = mode
            self.setpoint_w = float(setpoint_w)

    def target(self, new_sample, load_w):
        """Battery power this mode asks for. new_sample: a meter sample arrived since the
        last call (the V2H controller moves only on new measurements); load_w: the home
        load estimate at the point of connection."""
        m = self.mode
        if m == events.CHARGE or m == events.V2G:
            return self.setpoint_w
        if m == events.V2H:
            if new_sample:
                want = self.bias_w - load_w
                if want > 0.0:
                    want = 0.0
                self.v2h_ac += self.gain * (want - self.v2h_ac)
            return ac_to_batt(self.v2h_ac, self.eff)
        self.v2h_ac = 0.0
        return 0.0
