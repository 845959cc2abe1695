"""The simulated site's CAN nodes: meter, inverter, relay, EVCC bridge and energy manager.

They speak the DBC files through cantools (an implementation independent of the
firmware's generated codec) on any python-can bus, and connect the bus to the plant
(hil/plant.py): measurements out at each device's cycle time, commands in. Each
device behaves like its real counterpart on the bus: the inverter drops to Off and
the relay opens when the gateway's command goes missing (armed by the first command)
or fails its end-to-end check. Scenario faults `can_silence` and `can_corrupt` act
here, per node.
"""

import random

import can

from hil.dbcdb import database
from hil.e2e_ref import data_id, e2e_crc


class _Tx:
    __slots__ = ("msg", "did", "counter", "period_us", "next_us", "counter_sig")

    def __init__(self, msg, period_ms):
        self.msg = msg
        self.did = data_id(msg)
        self.counter = 0
        self.period_us = int(period_ms * 1000)
        self.next_us = 0
        self.counter_sig = "AliveCounter" if any(s.name == "AliveCounter" for s in msg.signals) else None


class _Rx:
    """Command supervision on the device side: E2E check and receive timeout."""

    __slots__ = ("msg", "did", "last_counter", "last_us", "armed", "timeout_us", "refused")

    def __init__(self, msg, timeout_ms):
        self.msg = msg
        self.did = data_id(msg)
        self.last_counter = None
        self.last_us = 0
        self.armed = False
        self.timeout_us = timeout_ms * 1000
        self.refused = 0

    def check(self, data, now_us):
        if len(data) != self.msg.length:
            self.refused += 1
            return False
        if self.did:
            if data[7] != e2e_crc(self.did, data):
                self.refused += 1
                return False
            c = self.msg.decode(bytes(data), decode_choices=False, scaling=False)["AliveCounter"]
            if self.last_counter is not None and c == self.last_counter:
                self.refused += 1
                return False
            self.last_counter = c
        self.armed = True
        self.last_us = now_us
        return True

    def timed_out(self, now_us):
        return self.armed and now_us - self.last_us > self.timeout_us


class SiteNodes:
    """All simulated devices on one python-can bus, driven by plant time (microseconds)."""

    def __init__(self, site, bus: can.BusABC, scenario, seed=0):
        db = database()
        self.db = db
        self.site = site
        self.bus = bus
        self.rng = random.Random(seed)
        s = scenario["site"]
        m = db.get_message_by_name
        mp, ip = s["meter_period_ms"], s["inverter_period_ms"]
        self.tx = {
            "meter": [_Tx(m("MTR_Grid"), mp), _Tx(m("MTR_Power"), mp), _Tx(m("MTR_Energy"), 1000)],
            "inverter": [_Tx(m("INV_Status"), ip), _Tx(m("INV_AcMeasure"), ip), _Tx(m("INV_DcMeasure"), 100)],
            "relay": [_Tx(m("RLY_Feedback"), 10)],
            "ev": [_Tx(m("EVCC_Limits"), 100), _Tx(m("EVCC_Status"), 100)],
            "ems": [_Tx(m("EMS_ModeRequest"), 1000)],
        }
        self.tx_loss = _Tx(m("INV_AcLossEvent"), 0)
        self.rx_cmd = _Rx(m("GW_InverterCmd"), 50)
        self.rx_lim = _Rx(m("GW_InverterLimits"), 50)
        self.rx_form = _Rx(m("GW_InverterForming"), 50)
        self.rx_relay = _Rx(m("GW_RelayCmd"), 50)
        self.rx_by_id = {r.msg.frame_id: r for r in (self.rx_cmd, self.rx_lim, self.rx_form, self.rx_relay)}
        self.silent_until = {"meter": -1, "inverter": -1}
        self.corrupt_until = {"meter": -1, "inverter": -1}
        self.mode = scenario["mode"]
        self.last_relay_state = None
        self.last_ev = None
        self.frames_sent = 0
        self.on_frame = None  # observer of every frame the devices receive (the controller's)
        self.on_sent = None  # observer of every frame the devices send
        self.timeouts = 0

    # ------------------------------------------------------------ scenario faults
    def apply_event(self, ev, now_us):
        k = ev["kind"]
        if k == "can_silence":
            self.silent_until[ev["node"]] = now_us + int(ev["duration_s"] * 1e6)
        elif k == "can_corrupt":
            self.corrupt_until[ev["node"]] = now_us + int(ev["duration_s"] * 1e6)
        elif k == "mode":
            self.mode = ev["mode"]
            self.tx["ems"][0].next_us = now_us  # sent at once on a change
        else:
            return False
        return True

    # ------------------------------------------------------------ transmit
    def _send(self, tx, values, now_us, node=None):
        msg = tx.msg
        if tx.counter_sig:
            values[tx.counter_sig] = tx.counter
            tx.counter = (tx.counter + 1) & 15
        if tx.did:
            values["Crc"] = 0
        corrupt = node is not None and now_us < self.corrupt_until[node]
        if corrupt:
            values = self._corrupt_values(msg, values)
        data = bytearray(msg.encode(values, scaling=True, strict=False))
        if tx.did:
            data[7] = e2e_crc(tx.did, data)
        if corrupt:
            data = self._corrupt_frame(tx, data)
        frame = can.Message(arbitration_id=msg.frame_id, data=data, is_extended_id=False)
        self.bus.send(frame)
        self.frames_sent += 1
        if self.on_sent is not None:
            self.on_sent(frame, now_us)

    def _corrupt_values(self, msg, values):
        # implausible: a measurement pushed past its DBC range (CRC stays valid: a sick device, not noise)
        v = dict(values)
        for s in msg.signals:
            if s.name in ("AliveCounter", "Crc") or s.maximum is None:
                continue
            raw_max = (1 << (s.length - 1)) - 1 if s.is_signed else (1 << s.length) - 1
            top = raw_max * s.scale + s.offset
            if top > s.maximum:
                v[s.name] = top
                break
        return v

    def _corrupt_frame(self, tx, data):
        r = self.rng.random()
        if r < 0.25 and tx.did:
            data[7] ^= 0x5A  # transmission error: CRC no longer matches
        elif r < 0.5:
            data = data[:5]  # wrong length
        return data

    def transmit(self, now_us):
        site = self.site
        if now_us >= self.silent_until["meter"]:
            for tx in self.tx["meter"]:
                if now_us >= tx.next_us:
                    tx.next_us += tx.period_us
                    self._send(tx, self._meter_values(tx.msg.name), now_us, "meter")
        else:
            for tx in self.tx["meter"]:
                while tx.next_us <= now_us:
                    tx.next_us += tx.period_us
        if now_us >= self.silent_until["inverter"]:
            loss = site.take_ac_loss()
            if loss is not None:
                self._send(self.tx_loss, {"LossReason": loss["reason"], "VoltageAtEvent": min(400.0, loss["voltage_v"])}, now_us, "inverter")
            for tx in self.tx["inverter"]:
                if now_us >= tx.next_us:
                    tx.next_us += tx.period_us
                    self._send(tx, self._inverter_values(tx.msg.name), now_us, "inverter")
        else:
            site.take_ac_loss()
            for tx in self.tx["inverter"]:
                while tx.next_us <= now_us:
                    tx.next_us += tx.period_us
        rv = site.relay_values()
        tx = self.tx["relay"][0]
        if now_us >= tx.next_us or rv["state"] != self.last_relay_state:
            self.last_relay_state = rv["state"]
            tx.next_us = now_us + tx.period_us
            self._send(tx, {"ContactState": rv["state"], "UtilityVoltagePresent": 1 if rv["utility_present"] else 0,
                            "UtilityVoltage": _clip(rv["utility_v"], 0, 400), "SyncPhaseDiff": _clip(rv["phase_diff_deg"], -180, 179.9)}, now_us)
        ev = site.ev_values()
        key = (ev["max_charge_w"], ev["max_discharge_w"], ev["min_soc"])
        lim, st = self.tx["ev"]
        if now_us >= lim.next_us or key != self.last_ev:
            self.last_ev = key
            lim.next_us = now_us + lim.period_us
            self._send(lim, {"MaxChargePower": ev["max_charge_w"], "MaxDischargePower": ev["max_discharge_w"],
                             "MinSoc": ev["min_soc"] * 100.0, "SessionActive": 1 if ev["session_active"] else 0}, now_us)
        if now_us >= st.next_us:
            st.next_us += st.period_us
            self._send(st, {"Soc": ev["soc"] * 100.0, "BatteryCapacity": ev["capacity_kwh"], "BatteryVoltage": ev["v_batt"]}, now_us)
        tx = self.tx["ems"][0]
        if now_us >= tx.next_us:
            tx.next_us = now_us + tx.period_us
            mode = self.mode
            code = ("idle", "charge", "v2h", "v2g").index(mode["kind"])
            self._send(tx, {"ModeReq": code, "SetpointPower": int(mode.get("setpoint_kw", 0.0) * 1000.0)}, now_us)

    def _meter_values(self, name):
        mv = self.site.meter_values()
        if name == "MTR_Grid":
            return {"GridVoltage": _clip(mv["voltage_v"], 0, 400), "GridFrequency": _clip(mv["frequency_hz"], 0, 65),
                    "PhaseAngle": _clip(mv["phase_deg"], -180, 179.9), "Rocof": _clip(mv["rocof_hz_s"], -5, 5)}
        if name == "MTR_Power":
            return {"ActivePower": int(_clip(mv["p_w"], -200000, 200000)), "ReactivePower": int(_clip(mv["q_var"], -200000, 200000)),
                    "CurrentMax": _clip(mv["i_max_a"], 0, 125)}
        return {"EnergyImport": int(mv["e_import_wh"]), "EnergyExport": int(mv["e_export_wh"])}

    def _inverter_values(self, name):
        iv = self.site.inverter_values()
        if name == "INV_Status":
            return {"InvModeActual": iv["mode"], "InvState": iv["state"],
                    "FaultOverCurrent": int(iv["fault_overcurrent"]), "FaultOverTemp": int(iv["fault_overtemp"]),
                    "FaultDc": int(iv["fault_dc"]), "FaultAcGrid": int(iv["fault_ac_grid"]),
                    "FaultCmdTimeout": int(iv["fault_cmd_timeout"]), "FaultE2E": 1 if self.rx_cmd.refused else 0,
                    "PActual": int(_clip(iv["p_w"], -32000, 32000)), "QActual": int(_clip(iv["q_var"], -32000, 32000)), "ClearFaults": 0}
        if name == "INV_AcMeasure":
            return {"AcVoltage": _clip(iv["v_ac"], 0, 400), "AcFrequency": _clip(iv["f_ac"], 0, 65), "AcCurrent": _clip(iv["i_ac"], 0, 400)}
        return {"DcVoltage": _clip(iv["v_dc"], 0, 1000), "DcCurrent": _clip(iv["i_dc"], -1000, 1000), "HeatsinkTemp": _clip(iv["temp_c"], -40, 150)}

    # ------------------------------------------------------------ receive
    def receive(self, now_us, poll=True):
        """Take the controller's frames from the bus and act on them like the real devices.

        poll=False skips reading the bus (the caller knows nothing was sent) and only
        runs the devices' command supervision."""
        site = self.site
        while poll:
            msg = self.bus.recv(timeout=0)
            if msg is None:
                break
            if self.on_frame is not None:
                self.on_frame(msg, now_us)
            rx = self.rx_by_id.get(msg.arbitration_id)
            if rx is None or msg.is_extended_id:
                continue
            if not rx.check(msg.data, now_us):
                continue
            d = rx.msg.decode(bytes(msg.data), decode_choices=False)
            if rx is self.rx_cmd:
                site.inverter_command(int(d["InvModeReq"]), float(d["PSetpoint"]), float(d["QSetpoint"]))
            elif rx is self.rx_lim:
                site.inverter_limits(d["IacMax"], d["IdcChargeMax"], d["IdcDischargeMax"])
            elif rx is self.rx_form:
                site.inverter_forming(d["VoltageSetpoint"], d["FrequencySetpoint"], bool(d["DroopEnable"]))
            elif rx is self.rx_relay:
                site.relay_command(bool(d["RelayCloseReq"]))
        # fail-safe behaviour of the devices when the gateway goes quiet
        if self.rx_cmd.timed_out(now_us):
            self.rx_cmd.armed = False
            self.timeouts += 1
            site.inverter_command_timeout()
        if self.rx_relay.timed_out(now_us):
            self.rx_relay.armed = False
            self.timeouts += 1
            site.relay_command(False)


def _clip(x, lo, hi):
    return lo if x < lo else hi if x > hi else x
