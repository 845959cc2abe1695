"""The operating mode and its power target: idle, charge, V2H (power the home), V2G (export).

The configured mode (configuration `mode`) is the site's local behaviour. A request
from the energy manager (EMS_ModeRequest) replaces it for its validity: ValidFor
seconds after its reception, or the message's receive timeout (3 s, three cycle times)
when ValidFor is 0, renewed by every repetition. When it expires the configured mode is
in force again (an EMS that dies mid-export does not keep the site exporting).

The target is battery-side power (positive = charging the EV) before ramp and limits:
- charge: the setpoint, never below zero (charge never discharges the EV);
- v2g: the setpoint, never above zero (export never charges the EV from the grid);
- v2h: cover the home load from the EV, keeping a small import (v2h_import_bias_w) so
  that V2H never exports; a first-order controller on each new meter sample, in AC
  power, converted to battery power through the inverter efficiency;
- idle: zero.
A plan's slot (controller/energy/follow.py) sets mode and setpoint when no request is
in force; its V2H slot may cap the discharge (v2h_cap_w).
Guarantees: target() never has the sign its mode forbids (v2h and idle never charge,
charge never discharges), and a request never outlives its validity (Elapsed: right
for any duration); the limit arbitration (controller/control/limits.py) bounds the
target afterwards.
"""

from controller import events
from controller.timing import Elapsed, split_us

MODE_NAMES = ("idle", "charge", "v2h", "v2g")


class OperatingMode:
    __slots__ = ("mode", "setpoint_w", "local_mode", "local_setpoint_w", "bias_w", "gain", "eff", "v2h_ac",
                 "requested", "expired", "_valid", "_valid_s", "_valid_us", "_default_s", "_default_us",
                 "direction_limited", "_eff_up", "v2h_cap_w")

    def __init__(self, cfg, request_timeout_ms):
        """request_timeout_ms: how long a request with ValidFor 0 holds."""
        self.local_mode = MODE_NAMES.index(cfg["mode"]["kind"])
        self.local_setpoint_w = int(round(cfg["mode"]["setpoint_kw"] * 1000.0))
        self.mode = self.local_mode
        self.setpoint_w = self.local_setpoint_w
        # whole watts and per-mille: the V2H controller runs in small ints (no heap
        # allocation per period under MicroPython)
        self.bias_w = int(cfg["limits"]["v2h_import_bias_w"])
        self.gain = int(cfg["limits"]["v2h_gain"] * 1000.0 + 0.5)
        e = cfg["inverter"]["efficiency"] * 1000.0
        self.eff = int(e)
        self._eff_up = self.eff if self.eff == e else self.eff + 1
        self.v2h_ac = 0
        self.requested = False  # an energy-manager request is in force
        self.expired = False  # the last one expired (GW_Status.TimeoutEms)
        self._valid = Elapsed()
        self._default_s, self._default_us = split_us(request_timeout_ms * 1000)
        self._valid_s = self._default_s
        self._valid_us = self._default_us
        self.direction_limited = False
        self.v2h_cap_w = 0  # V2H discharge cap (battery W, magnitude; 0: none): a plan's V2H slot

    def request(self, mode, setpoint_w, valid_for_s, now):
        """A mode request from the energy manager (EMS_ModeRequest); unknown modes are
        ignored. Returns True if it ends an expiry (the energy manager is back)."""
        if mode > events.V2G:
            return False
        self.mode = mode
        self.setpoint_w = setpoint_w
        self.v2h_cap_w = 0
        self.requested = True
        self._valid.restart(now)
        if valid_for_s > 0:
            self._valid_s, self._valid_us = valid_for_s, 0
        else:
            self._valid_s, self._valid_us = self._default_s, self._default_us
        back = self.expired
        self.expired = False
        return back

    def expire(self, now):
        """Every period: True once, when the request in force has outlived its validity
        and the configured mode takes over again."""
        if not self.requested:
            return False
        v = self._valid
        v.update(now)
        if not v.reached(self._valid_s, self._valid_us):
            return False
        self.requested = False
        self.expired = True
        self.v2h_cap_w = 0
        self.mode = self.local_mode
        self.setpoint_w = self.local_setpoint_w
        return True

    def target(self, new_sample, load_w):
        """Battery power this mode asks for. new_sample: a meter sample arrived since the
        last call (the V2H controller moves only on new measurements); load_w: the home
        load estimate at the point of connection."""
        m = self.mode
        self.direction_limited = False
        if m == events.CHARGE or m == events.V2G:
            p = self.setpoint_w
            if (m == events.CHARGE and p < 0.0) or (m == events.V2G and p > 0.0):
                self.direction_limited = True
                return 0
            return p
        if m == events.V2H:
            if new_sample:
                want = self.bias_w - int(load_w)
                if want > 0:
                    want = 0
                self.v2h_ac += self.gain * (want - self.v2h_ac) // 1000
            a = self.v2h_ac  # AC power (<= 0): the battery gives a / eff
            p = -(-a * 1000 // self._eff_up) if a < 0 else 0
            c = self.v2h_cap_w
            return -c if c and p < -c else p
        self.v2h_ac = 0
        return 0
