"""The site's CAN nodes: meter, inverter, relay, EVCC bridge and energy manager.

They speak the DBC files and connect the bus to the plant (hil/plant.py): measurements
out at each device's cycle time, commands in. Each device behaves like its real
counterpart on the bus: the inverter drops to Off and the relay opens when the
gateway's command goes missing (armed by the first command) or fails its end-to-end
check. Scenario faults `can_silence` and `can_corrupt` act here, per node (meter,
inverter, relay, ev, ems): a silent node sends nothing (it still obeys commands), a
corrupt one sends only frames the controller must refuse.

For the site invariants (hil/invariants.py) the devices keep, independently of the
controller, what they put on the bus: per cyclic message the plant time of the last
*intact* frame (right length, CRC and values inside the DBC range; `_Tx.good_us`),
the contact state the relay last reported in an intact frame, and when the EV's
present limits first went out intact.

The bus is either a python-can bus (real time, socketcand, `virtual`) or a port from
controller.bus.ports (the in-process MemoryBus of the lockstep runner); frames cross as
(can_id, extended, data).

Frame codec (`codec=`):
- "cantools" encodes and decodes with cantools, an implementation independent of the
  firmware's generated codec, so that the two check each other;
- "candb" uses the generated codec controller.bus.candb (about ten times faster). The
  lockstep runner uses it by default; tests/test_lockstep_bus.py runs scenarios with
  both and requires identical reports, so cantools stays the checker.
The end-to-end CRC is always the HIL's own (hil/e2e_ref.py).
"""

import random

import can

from hil.dbcdb import database
from hil.e2e_ref import _TABLE as _CRC_TABLE
from hil.e2e_ref import data_id
from hil.scenario import FREQ_SERVICES, utc_seconds

CODECS = ("candb", "cantools")
NODES = ("meter", "inverter", "relay", "ev", "ems")  # the scenario's can_silence / can_corrupt nodes
RELAY_MOVING = 2
RELAY_CLOSED = 1
E2E_MAX_DELTA = 3  # the controller's alive-counter tolerance (dbc/README.md)


def _crc_prefix(did):
    """CRC-8 J1850 register after the data id's two bytes (hil/e2e_ref.e2e_crc, split)."""
    crc = 0xFF
    for b in (did & 0xFF, did >> 8):
        crc = _CRC_TABLE[crc ^ b]
    return crc


def _crc(crc0, d, t=_CRC_TABLE):
    """hil/e2e_ref.e2e_crc(data_id, d) from the data id's register crc0: bytes 0..6, final XOR."""
    return t[t[t[t[t[t[t[crc0 ^ d[0]] ^ d[1]] ^ d[2]] ^ d[3]] ^ d[4]] ^ d[5]] ^ d[6]] ^ 0xFF


class _Tx:
    __slots__ = ("msg", "name", "frame_id", "did", "crc0", "counter", "period_us", "next_us", "counter_sig",
                 "sig", "encode_into", "buf", "good_us", "lost_run", "resync")

    def __init__(self, msg, period_ms, codec):
        self.msg = msg
        self.name = msg.name
        self.frame_id = msg.frame_id
        self.did = data_id(msg)
        self.crc0 = _crc_prefix(self.did)
        self.counter = 0
        self.period_us = int(period_ms * 1000)
        self.next_us = 0
        self.counter_sig = "AliveCounter" if any(s.name == "AliveCounter" for s in msg.signals) else None
        self.sig = {}  # the signal values of the frame being built (reused)
        self.buf = bytearray(msg.length)
        self.good_us = 0  # plant time of the last intact frame (0 before the first: the devices start at t = 0)
        # frames lost to a bad CRC or length since the last frame that passes the CRC; more than
        # the receiver's max_delta - 1 (dbc/README.md, E2E) and the next intact frame only resynchronises
        self.lost_run = 0
        self.resync = False  # the last intact frame may have been refused for its alive-counter jump
        if codec == "candb":
            from controller.bus import candb

            self.encode_into = candb.BY_NAME[msg.name].encode_into
        else:
            def encode_into(values, buf):
                buf[:] = msg.encode(values, scaling=True, strict=False)

            self.encode_into = encode_into


class _Rx:
    """Command supervision on the device side: E2E check and receive timeout."""

    __slots__ = ("msg", "frame_id", "length", "did", "crc0", "last_counter", "last_us", "armed", "timeout_us",
                 "refused", "decode")

    def __init__(self, msg, timeout_ms, codec):
        self.msg = msg
        self.frame_id = msg.frame_id
        self.length = msg.length
        self.did = data_id(msg)
        self.crc0 = _crc_prefix(self.did)
        self.last_counter = None
        self.last_us = 0
        self.armed = False
        self.timeout_us = timeout_ms * 1000
        self.refused = 0
        if codec == "candb":
            from controller.bus import candb

            dec = candb.BY_NAME[msg.name].decode_into

            def decode(data):
                return dec(data, {})
        else:
            def decode(data):
                return msg.decode(bytes(data), decode_choices=False)
        self.decode = decode

    def check(self, data, now_us):
        """The decoded frame if it passes length, CRC and alive counter, else None."""
        if len(data) != self.length:
            self.refused += 1
            return None
        d = None
        if self.did:
            if data[7] != _crc(self.crc0, data):
                self.refused += 1
                return None
            d = self.decode(data)
            c = d["AliveCounter"]
            if self.last_counter is not None and c == self.last_counter:
                self.refused += 1
                return None
            self.last_counter = c
        self.armed = True
        self.last_us = now_us
        return d if d is not None else self.decode(data)

    def timed_out(self, now_us):
        return self.armed and now_us - self.last_us > self.timeout_us


class _CanLink:
    """A python-can bus as the devices' link."""

    __slots__ = ("bus",)

    def __init__(self, bus):
        self.bus = bus

    def send(self, can_id, data):
        self.bus.send(can.Message(arbitration_id=can_id, data=data, is_extended_id=False))

    def recv(self):
        msg = self.bus.recv(timeout=0)
        if msg is None:
            return None
        return msg.arbitration_id, msg.is_extended_id, msg.data


class SiteNodes:
    """All simulated devices on one bus, driven by plant time (microseconds).

    `bus`: a python-can BusABC, or a controller.bus.ports port (send(can_id, data), recv()).
    transmit(now_us) sends what is due; `next_due_us` is the earliest time a cyclic frame
    is due, and the plant's `notify` flag marks event-driven frames (AC loss, relay
    contact, EV limits), so a caller may skip transmit() while
    `now_us < next_due_us and not site.notify` (the lockstep runner does).
    """

    def __init__(self, site, bus, scenario, seed=0, codec="cantools"):
        if codec not in CODECS:
            raise ValueError("codec must be one of %s" % (CODECS,))
        db = database()
        self.db = db
        self.codec = codec
        self.site = site
        self.bus = bus
        self.link = _CanLink(bus) if isinstance(bus, can.BusABC) else bus
        self.rng = random.Random(seed)
        s = scenario["site"]
        m = db.get_message_by_name
        mp, ip = s["meter_period_ms"], s["inverter_period_ms"]

        def tx(name, period_ms):
            return _Tx(m(name), period_ms, codec)

        self.tx_meter = [tx("MTR_Grid", mp), tx("MTR_Power", mp), tx("MTR_Energy", 1000)]
        self.tx_inverter = [tx("INV_Status", ip), tx("INV_AcMeasure", ip), tx("INV_DcMeasure", 100)]
        self.tx_relay = tx("RLY_Feedback", 10)
        self.tx_ev_limits = tx("EVCC_Limits", 100)
        self.tx_ev_status = tx("EVCC_Status", 100)
        self.tx_ems = tx("EMS_ModeRequest", 1000)
        # the energy manager's wall time: plant time on the scenario's start_utc (metering)
        self.tx_time = tx("EMS_Time", 10000)
        self.utc0 = utc_seconds(s.get("start_utc", "2025-01-01T00:00:00Z"))
        # a frequency-response service (scenario event freq_service): its curve as a header and
        # its points, sent when the event fires and again every second with the validity that
        # remains, so that a set lost to a fault is repaired within a second while the service
        # still ends when the scenario said (a repetition with the full validity would prolong it)
        self.tx_fs_hdr = tx("EMS_FreqServiceHdr", 1000)
        self.tx_fs_pt = tx("EMS_FreqServicePoint", 1000)
        self.fs = None  # the freq_service event in force (None: none)
        self.fs_curve_id = 0
        self.fs_until_us = 0
        self.fs_next_us = float("inf")
        self.fs_sets_sent = 0
        from hil.ems_plan import PlanSender  # operating plans (scenario event plan)

        self.ems_plan = PlanSender(tx("EMS_PlanHdr", 0), tx("EMS_PlanSlot", 0))
        self.tx = {"meter": self.tx_meter, "inverter": self.tx_inverter, "relay": [self.tx_relay],
                   "ev": [self.tx_ev_limits, self.tx_ev_status], "ems": [self.tx_ems, self.tx_time]}
        self._all_tx = [t for group in self.tx.values() for t in group]
        # the cyclic messages each supervised input of the controller needs (docs/protection.md)
        self.supervised = {"meter": self.tx_meter[:2], "inverter": self.tx_inverter[:2], "relay": [self.tx_relay],
                           "ev": [self.tx_ev_limits, self.tx_ev_status]}
        # False when the EV speaks ISO 15118-20 to the SECC instead (v2xgw hil secc --site)
        self.ev_on_can = True
        self.tx_loss = tx("INV_AcLossEvent", 0)
        self.rx_cmd = _Rx(m("GW_InverterCmd"), 50, codec)
        self.rx_lim = _Rx(m("GW_InverterLimits"), 50, codec)
        self.rx_form = _Rx(m("GW_InverterForming"), 50, codec)
        self.rx_relay = _Rx(m("GW_RelayCmd"), 50, codec)
        self.rx_by_id = {r.frame_id: r for r in (self.rx_cmd, self.rx_lim, self.rx_form, self.rx_relay)}
        self.silent_until = {n: -1 for n in NODES}
        self.corrupt_until = {n: -1 for n in NODES}
        # what the devices reported in intact frames (the invariants read these, never the controller)
        self.relay_reported = None  # ContactState of the last intact RLY_Feedback
        self.relay_closed_since_us = None  # since when it says closed (None: it does not)
        self.ev_key_seen = None  # the EV's limits (max charge, max discharge, min soc) as the plant has them
        self.ev_announced = True  # ... and whether an intact EVCC_Limits frame carried them since they changed
        self.ev_announced_us = 0
        self.mode = scenario["mode"]
        # False when another energy manager on the bus sends the mode requests (hil serve --ocpp:
        # the OCPP station); the plant's EMS then sends only EMS_Time and the scenario's services
        self.ems_requests = True
        self.last_relay_state = None
        self.last_ev = None
        self.frames_sent = 0
        self.next_due_us = 0
        self._mv = self._iv = None
        # observers, f(can_id, extended, data, now_us): every frame the devices receive (the
        # controller's), every frame they send
        self.on_frame = None
        self.on_sent = None
        # f(can_id, decoded, now_us): an inverter command or forming frame the inverter accepted
        self.on_command = None
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
            self.ems_plan.active = False  # live requests again, above any plan
            self.tx_ems.next_us = now_us  # sent at once on a change
            if now_us < self.next_due_us:
                self.next_due_us = now_us
        elif k == "plan":
            self.ems_plan.event(ev, now_us)
            if now_us < self.next_due_us:
                self.next_due_us = now_us
        elif k == "freq_service":
            self.fs = ev
            if ev["service"] != "cancel":
                self.fs_curve_id = (self.fs_curve_id + 1) & 15  # a new curve takes a new id
                self.fs_until_us = now_us + int(ev["valid_s"] * 1e6)
            self.fs_next_us = now_us  # sent at once
            if now_us < self.next_due_us:
                self.next_due_us = now_us
        else:
            return False
        return True

    # ------------------------------------------------------------ transmit
    def _send(self, tx, values, now_us, corrupt=False):
        if tx.counter_sig:
            values["AliveCounter"] = tx.counter
            tx.counter = (tx.counter + 1) & 15
        did = tx.did
        if did:
            values["Crc"] = 0
        pushed = False
        if corrupt:
            values, pushed = self._corrupt_values(tx.msg, values)
        data = tx.buf
        tx.encode_into(values, data)
        if did:
            data[7] = _crc(tx.crc0, data)
        if corrupt:
            data = self._corrupt_frame(tx, data, pushed)
        else:
            tx.resync = tx.lost_run >= E2E_MAX_DELTA
            tx.lost_run = 0
            tx.good_us = now_us
        self.link.send(tx.frame_id, data)
        self.frames_sent += 1
        if self.on_sent is not None:
            self.on_sent(tx.frame_id, False, data, now_us)
        return not corrupt

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
                return v, True
        return v, False

    def _corrupt_frame(self, tx, data, pushed):
        """Every corrupted frame is one the controller must refuse: a broken CRC, a wrong
        length, or (pushed) a value beyond its DBC range; a message with no value that can
        leave its range gets a broken CRC or length instead."""
        r = self.rng.random()
        if r < 0.25 and tx.did:
            data[7] ^= 0x5A  # transmission error: CRC no longer matches
        elif r < 0.5:
            data = data[:5]  # wrong length
        elif not pushed:
            if tx.did:
                data[7] ^= 0x5A
            else:
                data = data[:5]
        else:
            tx.lost_run = 0  # CRC intact: the receiver's alive counter follows this frame
            return data
        tx.lost_run += 1
        return data

    def transmit(self, now_us):
        site = self.site
        site.notify = False
        self._mv = self._iv = None  # the measurements of this instant, taken once
        if now_us >= self.silent_until["meter"]:
            corrupt = now_us < self.corrupt_until["meter"]
            for tx in self.tx_meter:
                if now_us >= tx.next_us:
                    tx.next_us += tx.period_us
                    self._send(tx, self._meter_values(tx), now_us, corrupt)
        else:
            for tx in self.tx_meter:
                while tx.next_us <= now_us:
                    tx.next_us += tx.period_us
        if now_us >= self.silent_until["inverter"]:
            corrupt = now_us < self.corrupt_until["inverter"]
            loss = site.take_ac_loss()
            if loss is not None:
                v = self.tx_loss.sig
                v["LossReason"] = loss["reason"]
                v["VoltageAtEvent"] = min(400.0, loss["voltage_v"])
                self._send(self.tx_loss, v, now_us, corrupt)
            for tx in self.tx_inverter:
                if now_us >= tx.next_us:
                    tx.next_us += tx.period_us
                    self._send(tx, self._inverter_values(tx), now_us, corrupt)
        else:
            site.take_ac_loss()
            for tx in self.tx_inverter:
                while tx.next_us <= now_us:
                    tx.next_us += tx.period_us
        tx = self.tx_relay
        state = site.relay_state()
        if now_us >= tx.next_us or state != self.last_relay_state:
            tx.next_us = now_us + tx.period_us
            if now_us >= self.silent_until["relay"]:
                rv = site.relay_values()
                self.last_relay_state = rv["state"]
                v = tx.sig
                v["ContactState"] = rv["state"]
                v["UtilityVoltagePresent"] = 1 if rv["utility_present"] else 0
                v["UtilityVoltage"] = _clip(rv["utility_v"], 0, 400)
                v["SyncPhaseDiff"] = _clip(rv["phase_diff_deg"], -180, 179.9)
                if self._send(tx, v, now_us, now_us < self.corrupt_until["relay"]):
                    self._relay_reported(rv["state"], now_us, tx)
        lim, st = self.tx_ev_limits, self.tx_ev_status
        key = (site.max_charge_w, site.max_discharge_w, site.min_soc)
        if key != self.ev_key_seen:
            self.ev_key_seen = key
            self.ev_announced = False
        # with the EV on ISO 15118 (ev_on_can False) its data reach the controller through the SECC alone
        if self.ev_on_can and (now_us >= lim.next_us or now_us >= st.next_us or key != self.last_ev):
            if now_us >= self.silent_until["ev"]:
                corrupt = now_us < self.corrupt_until["ev"]
                ev = site.ev_values()
                if now_us >= lim.next_us or key != self.last_ev:
                    self.last_ev = key
                    lim.next_us = now_us + lim.period_us
                    v = lim.sig
                    v["MaxChargePower"] = ev["max_charge_w"]
                    v["MaxDischargePower"] = ev["max_discharge_w"]
                    v["MinSoc"] = ev["min_soc"] * 100.0
                    v["SessionActive"] = 1 if ev["session_active"] else 0
                    v["MinSocValid"] = 1
                    if self._send(lim, v, now_us, corrupt) and not self.ev_announced:
                        self.ev_announced = True
                        self.ev_announced_us = now_us
                if now_us >= st.next_us:
                    st.next_us += st.period_us
                    v = st.sig
                    v["Soc"] = ev["soc"] * 100.0
                    v["SocValid"] = 1
                    v["BatteryCapacity"] = ev["capacity_kwh"]
                    v["BatteryVoltage"] = ev["v_batt"]
                    self._send(st, v, now_us, corrupt)
            else:  # silent: the cycle goes on, a change goes out when the silence ends
                if now_us >= lim.next_us:
                    lim.next_us = now_us + lim.period_us
                while st.next_us <= now_us:
                    st.next_us += st.period_us
        tx = self.tx_ems
        if now_us >= tx.next_us:
            tx.next_us = now_us + tx.period_us
            if now_us >= self.silent_until["ems"] and not self.ems_plan.active and self.ems_requests:
                mode = self.mode
                v = tx.sig
                v["ModeReq"] = ("idle", "charge", "v2h", "v2g").index(mode["kind"])
                v["SetpointPower"] = int(mode.get("setpoint_kw", 0.0) * 1000.0)
                v["ValidFor"] = 0  # holds until three cycle times pass without a repetition
                self._send(tx, v, now_us, now_us < self.corrupt_until["ems"])
        tx = self.tx_time
        if now_us >= tx.next_us:
            tx.next_us += tx.period_us
            if now_us >= self.silent_until["ems"]:
                tx.sig["UnixTime"] = self.utc0 + now_us // 1000000
                self._send(tx, tx.sig, now_us, now_us < self.corrupt_until["ems"])
        if now_us >= self.fs_next_us:
            self._send_freq_service(now_us)
        if now_us >= self.ems_plan.next_us:
            self.ems_plan.send(self, now_us)
        due = self.tx_ems.next_us if self.tx_ems.next_us < self.fs_next_us else self.fs_next_us
        for tx in self._all_tx:
            if tx.next_us < due:
                due = tx.next_us
        self.next_due_us = due

    def _send_freq_service(self, now_us):
        """The service's header and points (battery convention, as the scenario gives them);
        a cancel goes once, a curve again every second while validity remains."""
        ev = self.fs
        cancel = ev["service"] == "cancel"
        remaining = 0 if cancel else -(-(self.fs_until_us - now_us) // 1000000)  # whole seconds, rounded up
        if not cancel and remaining < 1:
            self.fs_next_us = float("inf")  # expired: nothing more to repeat
            return
        self.fs_next_us = float("inf") if cancel else now_us + 1000000
        if now_us < self.silent_until["ems"]:
            return
        corrupt = now_us < self.corrupt_until["ems"]
        pts = [] if cancel else ev["points"]
        v = self.tx_fs_hdr.sig
        v["Kind"] = FREQ_SERVICES[ev["service"]]
        v["CurveId"] = self.fs_curve_id
        v["NumPoints"] = len(pts)
        v["BaselinePower"] = 0 if cancel else int(round(ev["baseline_kw"] * 1000.0))
        v["ValidFor"] = 1 if cancel else int(remaining)
        self._send(self.tx_fs_hdr, v, now_us, corrupt)
        v = self.tx_fs_pt.sig
        for i, (hz, kw) in enumerate(pts):
            v["CurveId"] = self.fs_curve_id
            v["Index"] = i
            v["Frequency"] = hz
            v["DeltaPower"] = int(round(kw * 1000.0))
            self._send(self.tx_fs_pt, v, now_us, corrupt)
        self.fs_sets_sent += 1

    def _relay_reported(self, state, now_us, tx):
        """An intact RLY_Feedback left with `state`: since when the relay reports closed. After
        lost frames the controller may refuse that frame for its alive-counter jump and take
        the next one, a relay cycle later."""
        if state == RELAY_CLOSED:
            if self.relay_closed_since_us is None:
                self.relay_closed_since_us = now_us + (tx.period_us if tx.resync else 0)
        else:
            self.relay_closed_since_us = None
        self.relay_reported = state

    def _meter_values(self, tx):
        mv = self._mv
        if mv is None:
            mv = self._mv = self.site.meter_values()
        v = tx.sig
        name = tx.name
        if name == "MTR_Grid":
            x = mv["voltage_v"]
            v["GridVoltage"] = 0 if x < 0 else 400 if x > 400 else x
            x = mv["frequency_hz"]
            v["GridFrequency"] = 0 if x < 0 else 65 if x > 65 else x
            x = mv["phase_deg"]
            v["PhaseAngle"] = -180 if x < -180 else 179.9 if x > 179.9 else x
            x = mv["rocof_hz_s"]
            v["Rocof"] = -5 if x < -5 else 5 if x > 5 else x
        elif name == "MTR_Power":
            x = mv["p_w"]
            v["ActivePower"] = int(-200000 if x < -200000 else 200000 if x > 200000 else x)
            x = mv["q_var"]
            v["ReactivePower"] = int(-200000 if x < -200000 else 200000 if x > 200000 else x)
            x = mv["i_max_a"]
            v["CurrentMax"] = 0 if x < 0 else 125 if x > 125 else x
        else:
            v["EnergyImport"] = int(mv["e_import_wh"])
            v["EnergyExport"] = int(mv["e_export_wh"])
        return v

    def _inverter_values(self, tx):
        iv = self._iv
        if iv is None:
            iv = self._iv = self.site.inverter_values()
        v = tx.sig
        name = tx.name
        if name == "INV_Status":
            v["InvModeActual"] = iv["mode"]
            v["InvState"] = iv["state"]
            v["FaultOverCurrent"] = int(iv["fault_overcurrent"])
            v["FaultOverTemp"] = int(iv["fault_overtemp"])
            v["FaultDc"] = int(iv["fault_dc"])
            v["FaultAcGrid"] = int(iv["fault_ac_grid"])
            v["FaultCmdTimeout"] = int(iv["fault_cmd_timeout"])
            v["FaultE2E"] = 1 if self.rx_cmd.refused else 0
            x = iv["p_w"]
            v["PActual"] = int(-32000 if x < -32000 else 32000 if x > 32000 else x)
            x = iv["q_var"]
            v["QActual"] = int(-32000 if x < -32000 else 32000 if x > 32000 else x)
            v["ClearFaults"] = 0
        elif name == "INV_AcMeasure":
            x = iv["v_ac"]
            v["AcVoltage"] = 0 if x < 0 else 400 if x > 400 else x
            x = iv["f_ac"]
            v["AcFrequency"] = 0 if x < 0 else 65 if x > 65 else x
            x = iv["i_ac"]
            v["AcCurrent"] = 0 if x < 0 else 400 if x > 400 else x
        else:
            v["DcVoltage"] = _clip(iv["v_dc"], 0, 1000)
            v["DcCurrent"] = _clip(iv["i_dc"], -1000, 1000)
            v["HeatsinkTemp"] = _clip(iv["temp_c"], -40, 150)
        return v

    # ------------------------------------------------------------ receive
    def receive(self, now_us, poll=True):
        """Take the controller's frames from the bus and act on them like the real devices.

        poll=False skips reading the bus (the caller knows nothing was sent) and only
        runs the devices' command supervision."""
        site = self.site
        link = self.link
        rx_by_id = self.rx_by_id
        while poll:
            f = link.recv()
            if f is None:
                break
            can_id, ext, data = f
            if self.on_frame is not None:
                self.on_frame(can_id, ext, data, now_us)
            rx = rx_by_id.get(can_id)
            if rx is None or ext:
                continue
            d = rx.check(data, now_us)
            if d is None:
                continue
            if rx is self.rx_cmd:
                site.inverter_command(int(d["InvModeReq"]), float(d["PSetpoint"]), float(d["QSetpoint"]))
                if self.on_command is not None:
                    self.on_command(can_id, d, now_us)
            elif rx is self.rx_lim:
                site.inverter_limits(d["IacMax"], d["IdcChargeMax"], d["IdcDischargeMax"])
            elif rx is self.rx_form:
                site.inverter_forming(d["VoltageSetpoint"], d["FrequencySetpoint"], bool(d["DroopEnable"]))
                if self.on_command is not None:
                    self.on_command(can_id, d, now_us)
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
