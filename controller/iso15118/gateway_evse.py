"""The SECC's `evse` backed by the gateway: ISO 15118-20 feeds the limit arbitration.

What the EV announces over ISO 15118-20 (maximum charge and discharge power, its state
of charge) becomes the gateway's EV input, exactly as an EVCC_Limits/EVCC_Status frame
would, with the same supervision: every charge-loop message refreshes it, and when the
session is lost (or times out) the input goes stale and the gateway brings the power to
zero within one control period. The gateway decides charge or discharge power within the
limits in force (its operating mode, the EV's limits, the inverter, the site); the SECC
grants exactly that (`target_power`), and reports the battery-side values measured by the
inverter as the EVSE's present values.

Guarantee: the power granted to the EV is the gateway's command, which the arbitration
keeps inside every limit in force, including the EV's own announced ones.
"""

from controller import events


class GatewayEvse:
    __slots__ = ("gw", "clock", "lim", "voltage", "channel", "lost", "isolation_state", "auth_state")

    def __init__(self, gw, ticks_us, max_voltage=500, min_voltage=150, nominal_voltage=400):
        self.gw = gw
        self.clock = ticks_us
        rating = gw.arbiter.rating_va
        self.lim = {"max_voltage": max_voltage, "min_voltage": min_voltage, "nominal_voltage": nominal_voltage,
                    "nominal_frequency": gw.f_nom, "power_ramp_limitation": 100,
                    "min_charge_power": 0, "min_discharge_power": 0, "min_charge_current": 0,
                    "min_discharge_current": 0, "rating": rating}
        self.voltage = 0.0
        self.channel = None
        self.lost = []
        self.isolation_state = "ok"
        self.auth_state = "ok"

    # -- what the SECC reads -------------------------------------------------------
    def limits(self):
        a = self.gw.arbiter
        rating = self.lim["rating"]
        v = self.voltage if self.voltage > 1.0 else self.lim["nominal_voltage"]
        d = dict(self.lim)
        # what the site can take or give now: the arbitration's bounds without the EV's own
        # limits would be ideal; the inverter rating is the honest upper bound to announce
        d["max_charge_power"] = rating
        d["max_discharge_power"] = rating
        d["max_charge_current"] = rating / v
        d["max_discharge_current"] = rating / v
        del d["rating"]
        return d

    def present(self):
        gw = self.gw
        p = float(gw.inv_status.values.get("PActual", 0)) if not gw.timed_out[events.IN_INVERTER] else 0.0
        v = self.voltage
        return {"voltage": v, "current": p / v if v > 1.0 else 0.0, "power": p, "target_power": gw.p_cmd}

    def isolation(self):
        return self.isolation_state

    def authorized(self):
        return self.auth_state

    # -- what the SECC reports --------------------------------------------------------
    def _ev_input(self, max_charge_w, max_discharge_w, soc):
        """Refresh the gateway's EV input as an accepted EVCC frame pair would."""
        gw = self.gw
        now = self.clock()
        lim = gw.ev_limits
        vals = lim.values
        if max_charge_w is not None:
            vals["MaxChargePower"] = max_charge_w
        if max_discharge_w is not None:
            vals["MaxDischargePower"] = max_discharge_w
        vals.setdefault("MaxChargePower", 0)
        vals.setdefault("MaxDischargePower", 0)
        vals.setdefault("MinSoc", 0.0)
        vals["SessionActive"] = 1 if self.channel is not None or self.lost == [] else 0
        lim.last_us = now
        lim.seen = True
        st = gw.ev_status
        if soc is not None:
            st.values["Soc"] = float(soc)
        st.values.setdefault("Soc", 50.0)
        st.values["BatteryVoltage"] = self.voltage
        st.last_us = now
        st.seen = True

    def ev_limits(self, d):
        self._ev_input(d.get("max_charge_power"), d.get("max_discharge_power"), d.get("soc"))

    def ev_target(self, d):
        for k in ("present_voltage", "voltage"):
            if d.get(k):
                self.voltage = float(d[k])
                break
        self._ev_input(d.get("max_charge_power"), d.get("max_discharge_power"), d.get("soc") or d.get("present_soc"))

    def output(self, channel):
        self.channel = channel
        if channel is None:
            self._stop()

    def session_lost(self, reason):
        self.lost.append(reason)
        self.channel = None
        self._stop()

    def _stop(self):
        # the EV is no longer a source or sink: its limits drop to zero at once (fast path
        # equivalent), and the input stops being refreshed, so it also times out
        vals = self.gw.ev_limits.values
        vals["MaxChargePower"] = 0
        vals["MaxDischargePower"] = 0
        vals["SessionActive"] = 0
