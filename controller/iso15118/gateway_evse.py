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
from controller.bus import candb
from controller.control.commands import Frame


class GatewayEvse:
    __slots__ = ("gw", "clock", "lim", "voltage", "channel", "lost", "isolation_state", "auth_state",
                 "ev", "st", "tx_lim", "tx_st")

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
        # the EV input as an EVCC bridge would send it; nothing known yet
        self.ev = {"MaxChargePower": 0, "MaxDischargePower": 0, "MinSoc": 0.0, "SessionActive": 0,
                   "MinSocValid": 0, "AliveCounter": 0, "Crc": 0}
        self.st = {"Soc": 0.0, "SocValid": 0, "BatteryCapacity": 0.0, "BatteryVoltage": 0.0,
                   "AliveCounter": 0, "Crc": 0}
        self.tx_lim = Frame(candb.BY_NAME["EVCC_Limits"])
        self.tx_st = Frame(candb.BY_NAME["EVCC_Status"])

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
    def _ev_input(self, max_charge_w, max_discharge_w, soc, min_soc=None):
        """Feed what the EV announced through the gateway's own EV input path, as the
        EVCC_Limits / EVCC_Status frames of a CAN EVCC bridge would arrive: the same
        length, end-to-end, range and timeout checks, the same fast path. A value the EV
        has not announced restricts: no discharge without a known state of charge and
        minimum (SocValid / MinSocValid 0)."""
        if max_charge_w is not None:
            self.ev["MaxChargePower"] = max_charge_w
        if max_discharge_w is not None:
            self.ev["MaxDischargePower"] = max_discharge_w
        if soc is not None:
            self.st["Soc"] = float(soc)
            self.st["SocValid"] = 1
        if min_soc is not None:
            self.ev["MinSoc"] = float(min_soc)
            self.ev["MinSocValid"] = 1
        self.ev["SessionActive"] = 1 if self.channel is not None or self.lost == [] else 0
        self.st["BatteryVoltage"] = self.voltage
        self._send()

    def _send(self):
        now = self.clock()
        for tx, values in ((self.tx_lim, self.ev), (self.tx_st, self.st)):
            msg = tx.msg
            try:
                msg.encode_into(values, tx.buf)
            except (OverflowError, ValueError, TypeError):
                # beyond what the frame can carry: refused like a bad frame, the input
                # goes stale and the gateway stops the power
                self.gw.refuse(events.R_RANGE, msg.frame_id)
                continue
            tx.e2e.seal(tx.buf)
            self.gw.on_frame(msg.frame_id, tx.buf, now)

    def ev_limits(self, d):
        self._ev_input(d.get("max_charge_power"), d.get("max_discharge_power"), d.get("soc"))

    def ev_target(self, d):
        for k in ("present_voltage", "voltage"):
            if d.get(k):
                self.voltage = float(d[k])
                break
        soc = d.get("soc")
        self._ev_input(d.get("max_charge_power"), d.get("max_discharge_power"),
                       d.get("present_soc") if soc is None else soc, d.get("min_soc"))

    def output(self, channel):
        self.channel = channel
        if channel is None:
            self._stop()

    def session_lost(self, reason):
        self.lost.append(reason)
        self.channel = None
        self._stop()

    def _stop(self):
        # the EV is no longer a source or sink: its limits drop to zero at once (the fast
        # path), and the input stops being refreshed, so it also times out
        self.ev["MaxChargePower"] = 0
        self.ev["MaxDischargePower"] = 0
        self.ev["SessionActive"] = 0
        self._send()
