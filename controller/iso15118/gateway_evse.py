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
from controller.clock import ticks_diff
from controller.control.commands import Frame


class GatewayEvse:
    __slots__ = ("gw", "clock", "lim", "voltage", "channel", "lost", "isolation_state", "auth_state",
                 "ev", "st", "tx_lim", "tx_st", "soc_at", "max_age_us", "ev_ids", "bus_dropped")

    def __init__(self, gw, ticks_us, max_voltage=500, min_voltage=150, nominal_voltage=400):
        self.gw = gw
        self.clock = ticks_us
        rating = gw.arbiter.rating_va
        self.lim = {"max_voltage": max_voltage, "min_voltage": min_voltage, "nominal_voltage": nominal_voltage,
                    "nominal_frequency": gw.f_nom, "power_ramp_limitation": 100,
                    "min_charge_power": 0, "min_discharge_power": 0, "min_charge_current": 0,
                    "min_discharge_current": 0, "rating": rating}
        self.lost = []
        self.isolation_state = "ok"
        self.auth_state = "ok"
        # a state of charge is known for as long as a frame carrying it would be fresh:
        # the EV must announce it again within the EV input timeout
        self.max_age_us = gw.ev_status.timeout_us
        self.tx_lim = Frame(candb.BY_NAME["EVCC_Limits"])
        self.tx_st = Frame(candb.BY_NAME["EVCC_Status"])
        self.new_session()
        # the EV input has one source, this session: EVCC frames on the bus are dropped
        self.ev_ids = (self.tx_lim.msg.frame_id, self.tx_st.msg.frame_id)
        self.bus_dropped = 0
        gw.taps.append(self)

    def new_session(self):
        """An EV connected (Secc.connection_made): nothing announced before counts. The
        frames' alive counters go on, so the gateway sees one continuous EV input."""
        self.voltage = 0.0
        self.channel = None
        # the EV input as an EVCC bridge would send it; nothing known yet
        self.ev = {"MaxChargePower": 0, "MaxDischargePower": 0, "MinSoc": 0.0, "SessionActive": 0,
                   "MinSocValid": 0, "AliveCounter": 0, "Crc": 0}
        self.st = {"Soc": 0.0, "SocValid": 0, "BatteryCapacity": 0.0, "BatteryVoltage": 0.0,
                   "AliveCounter": 0, "Crc": 0}
        self.soc_at = 0

    # -- the gateway's bus (a tap, like diagnostics) ------------------------------------
    def rx_ids(self):
        return []

    def on_port_frame(self, frame, now):
        """An EVCC_Limits / EVCC_Status frame from the bus is not this EV's (a CAN EVCC
        bridge left on the bus, a simulated site, a rogue node): dropped and counted
        (bus_dropped, and the gateway's `ignored`), never mixed into the EV input."""
        if not frame[1] and frame[0] in self.ev_ids:
            self.bus_dropped += 1
            self.gw.ignored += 1
            return True
        return False

    def poll(self, now):
        pass

    # -- what the SECC reads -------------------------------------------------------
    def limits(self):
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
    def _ev_input(self, max_charge_w, max_discharge_w, soc, min_soc=None, voltage=None):
        """Feed what the EV announced through the gateway's own EV input path, as the
        EVCC_Limits / EVCC_Status frames of a CAN EVCC bridge would arrive: the same
        length, end-to-end, range and timeout checks, the same fast path.

        - A value the EV has not announced restricts: no discharge without a known state
          of charge and minimum (SocValid / MinSocValid 0). The state of charge is a
          measurement: announced longer ago than the EV input timeout, it is no longer
          known. The minimum is a limit, like the maximum powers: it holds for the
          session (from ScheduleExchangeReq in Dynamic mode or DisplayParameters) until
          the EV announces another.
        - A frame the gateway refuses (a value out of its range) is counted like a bad
          frame and changes nothing here either: the values it carried are not kept, so
          the last good ones go on until the EV announces new ones (or they expire)."""
        now = self.clock()
        ev = dict(self.ev)
        st = dict(self.st)
        if max_charge_w is not None:
            ev["MaxChargePower"] = max_charge_w
        if max_discharge_w is not None:
            ev["MaxDischargePower"] = max_discharge_w
        if min_soc is not None:
            ev["MinSoc"] = float(min_soc)
            ev["MinSocValid"] = 1
        if soc is not None:
            st["Soc"] = float(soc)
            st["SocValid"] = 1
        elif st["SocValid"] and ticks_diff(now, self.soc_at) > self.max_age_us:
            st["SocValid"] = 0
        # session active: the EV takes or gives power now (PowerDelivery Start until Stop)
        ev["SessionActive"] = 1 if self.channel is not None else 0
        if voltage is not None:
            st["BatteryVoltage"] = float(voltage)
        if self._send(self.tx_lim, ev, now):
            self.ev = ev
        if self._send(self.tx_st, st, now):
            self.st = st
            self.voltage = st["BatteryVoltage"]
            if soc is not None:
                self.soc_at = now

    def _send(self, tx, values, now):
        """One frame through gw.on_frame; True when the gateway accepted it."""
        gw = self.gw
        msg = tx.msg
        try:
            msg.encode_into(values, tx.buf)
        except (OverflowError, ValueError, TypeError):
            # beyond what the frame can carry: refused like a bad frame
            gw.refuse(events.R_RANGE, msg.frame_id)
            return False
        tx.e2e.seal(tx.buf)
        before = gw.refused_total
        gw.on_frame(msg.frame_id, tx.buf, now)
        return gw.refused_total == before

    def ev_limits(self, d):
        self._ev_input(d.get("max_charge_power"), d.get("max_discharge_power"), d.get("soc"), d.get("min_soc"))

    def ev_target(self, d):
        v = None
        for k in ("present_voltage", "voltage"):
            if d.get(k) is not None:
                v = d[k]
                break
        soc = d.get("soc")
        self._ev_input(d.get("max_charge_power"), d.get("max_discharge_power"),
                       d.get("present_soc") if soc is None else soc, d.get("min_soc"), v)

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
        ev = self.ev
        ev["MaxChargePower"] = 0
        ev["MaxDischargePower"] = 0
        ev["SessionActive"] = 0
        ev["MinSocValid"] = 0
        self.st["SocValid"] = 0
        now = self.clock()
        self._send(self.tx_lim, ev, now)
        self._send(self.tx_st, self.st, now)
