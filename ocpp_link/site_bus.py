"""The charging station's view of the site: what it reads from the gateway's CAN bus and the
commands it puts on it (dbc/*.dbc).

The station is one more energy manager on the bus (docs/ocpp.md, "How a platform reaches the
firmware"): it never drives the inverter itself. It reads

- EVCC_Limits / EVCC_Status: the session (the transaction's start and end), the EV's power
  limits, minimum SoC, SoC and capacity (NotifyEVChargingNeeds, SoC meter values);
- INV_Status.PActual: battery power (positive = into the EV); the station integrates it into
  its per-direction energy registers (Energy.Active.Import/Export.Register, Wh);
- MTR_Power / MTR_Grid: grid power, voltage and frequency at the point of connection;
- GW_Status: operating mode, the limit that binds, PTarget; GW_Event: the controller's events
  (trips, islanding, backup, grid support) that the station reports to the platform.

and sends, E2E-protected like every EMS sender (energy/plan_frames.Encoder):

- EMS_ModeRequest: the platform's setpoint or Idle, with a short ValidFor so that a station
  that stops leaves the firmware on its local behaviour within seconds;
- EMS_PowerLimit: the platform's charge and discharge limits (the firmware enforces them as
  LimitingFactor External, grid-connected only);
- EMS_FreqServiceHdr/Point: a LocalFrequency frequency-watt curve, executed in the firmware's
  fast path (controller/grid_support/freq_service.py).

A frame that fails its length or E2E CRC is counted in `rx_refused` and ignored, never fatal.
"""

import collections

from energy import plan_frames

MODES = {"idle": 0, "charge": 1, "v2h": 2, "v2g": 3}
FS_CUSTOM = 5  # EMS_FreqServiceHdr.Kind Custom
FS_MAX_POINTS = 8
TX_NAMES = ("EMS_ModeRequest", "EMS_PowerLimit", "EMS_FreqServiceHdr", "EMS_FreqServicePoint")
RX_NAMES = ("EVCC_Limits", "EVCC_Status", "INV_Status", "MTR_Power", "MTR_Grid", "GW_Status", "GW_Event")
BACKUP_MODE = 4  # GW_Status.OperatingMode Backup


class SiteBus:
    """Site state from received frames, and the station's commands as frames.

    `on_frame(can_id, data, now_s)` takes one received frame; the command methods return a list
    of (can_id, 8 bytes) to send. Energy registers integrate PActual with the trapezoid rule
    between INV_Status frames (a gap longer than MAX_GAP_S is not integrated: the station does
    not invent energy for a silent inverter)."""

    MAX_GAP_S = 2.0

    def __init__(self, import_wh=0.0, export_wh=0.0):
        from controller.bus import e2e
        from hil.dbcdb import database

        self._crc = e2e.crc8_j1850
        db = database()
        self._rx = {}
        for name in RX_NAMES:
            m = db.get_message_by_name(name)
            did = m.dbc.attributes["E2EDataID"].value if "E2EDataID" in m.dbc.attributes else 0
            self._rx[m.frame_id] = (m, did)
        self.enc = plan_frames.Encoder(names=TX_NAMES)
        self.rx_refused = 0
        self.session = None  # None: no EVCC_Limits seen yet
        self.ev_max_charge_w = 0.0
        self.ev_max_discharge_w = 0.0
        self.ev_min_soc = None  # % or None (not announced)
        self.soc = None  # % or None
        self.capacity_kwh = None
        self.p_batt_w = 0.0  # INV_Status.PActual
        self.p_grid_w = None
        self.grid_v = None
        self.grid_hz = None
        self.gw_mode = None
        self.limiting_factor = None
        self.p_target_w = None
        self.import_wh = float(import_wh)
        self.export_wh = float(export_wh)
        self._p_last = None  # (t, p) of the last INV_Status
        self.events = collections.deque(maxlen=256)  # (now_s, described GW_Event dict)
        self.events_lost = 0
        self._event_seq = None
        self.fs_curve_id = 0

    # ------------------------------------------------------------------ in
    def on_frame(self, can_id, data, now_s):
        ent = self._rx.get(can_id)
        if ent is None:
            return
        m, did = ent
        data = bytes(data)
        try:
            if len(data) != m.length or (did and self._crc(did, data, 7) != data[7]):
                raise ValueError("length or CRC")
            v = m.decode(data, decode_choices=False)
        except Exception:  # cantools' DecodeError or the check above: counted, never fatal
            self.rx_refused += 1
            return
        name = m.name
        if name == "INV_Status":
            p = float(v["PActual"])
            if self._p_last is not None:
                t0, p0 = self._p_last
                dt = now_s - t0
                if 0 < dt <= self.MAX_GAP_S:
                    self._integrate(p0, p, dt)
            self._p_last = (now_s, p)
            self.p_batt_w = p
        elif name == "EVCC_Limits":
            self.session = bool(v["SessionActive"])
            self.ev_max_charge_w = float(v["MaxChargePower"])
            self.ev_max_discharge_w = float(v["MaxDischargePower"])
            self.ev_min_soc = float(v["MinSoc"]) if v["MinSocValid"] else None
        elif name == "EVCC_Status":
            self.soc = float(v["Soc"]) if v["SocValid"] else None
            if v["BatteryCapacity"] > 0:
                self.capacity_kwh = float(v["BatteryCapacity"])
        elif name == "MTR_Power":
            self.p_grid_w = float(v["ActivePower"])
        elif name == "MTR_Grid":
            self.grid_v = float(v["GridVoltage"])
            self.grid_hz = float(v["GridFrequency"])
        elif name == "GW_Status":
            self.gw_mode = int(v["OperatingMode"])
            self.limiting_factor = int(v["LimitingFactor"])
            self.p_target_w = float(v["PTarget"])
        elif name == "GW_Event":
            from controller.event_names import describe

            seq = int(v["EventSeq"])
            if self._event_seq is not None:
                self.events_lost += (seq - self._event_seq - 1) & 0xFF
            self._event_seq = seq
            d = describe(int(v["EventCode"]), int(v["EventDetail"]), int(v["EventValue"]))
            self.events.append((now_s, d))

    def _integrate(self, p0, p1, dt):
        """Trapezoid of one interval, split by direction where the power crosses zero."""
        if (p0 >= 0) == (p1 >= 0):
            e = (p0 + p1) * dt / 7200.0
            if p0 >= 0:
                self.import_wh += e
            else:
                self.export_wh -= e
            return
        tz = dt * abs(p0) / (abs(p0) + abs(p1))  # the zero crossing
        e0 = p0 * tz / 7200.0
        e1 = p1 * (dt - tz) / 7200.0
        if p0 > 0:
            self.import_wh += e0
            self.export_wh -= e1
        else:
            self.export_wh -= e0
            self.import_wh += e1

    @property
    def backup(self):
        return self.gw_mode == BACKUP_MODE

    # ------------------------------------------------------------------ out
    def mode_request(self, mode, setpoint_w, valid_s):
        """EMS_ModeRequest: mode in MODES, battery power setpoint (charge > 0, V2G < 0), valid_s
        1..65535 (the firmware's request holds that long after reception)."""
        sp = int(round(max(-32000.0, min(32000.0, setpoint_w))))
        return [self.enc.frame("EMS_ModeRequest", {"ModeReq": MODES[mode], "SetpointPower": sp,
                                                   "ValidFor": int(max(1, min(65535, valid_s)))})]

    def power_limit(self, max_charge_w, max_discharge_w, valid_s):
        """EMS_PowerLimit: the most the battery may charge and discharge (magnitudes, W), held
        by the firmware for valid_s; valid_s 0 cancels."""
        c = int(max(0.0, min(32000.0, max_charge_w)))
        d = int(max(0.0, min(32000.0, max_discharge_w)))
        return [self.enc.frame("EMS_PowerLimit", {"MaxChargePower": c, "MaxDischargePower": d,
                                                  "ValidFor": int(max(0, min(65535, valid_s)))})]

    def freq_service(self, points, baseline_w, valid_s, new_curve=False):
        """EMS_FreqServiceHdr (Kind Custom) and its points: battery power baseline_w plus the
        curve's power at the grid frequency (points: (Hz, W) with Hz increasing, 2..8).
        new_curve takes a new CurveId (a changed curve); a repetition keeps it."""
        if not 2 <= len(points) <= FS_MAX_POINTS:
            raise ValueError("a frequency-watt curve takes 2..%d points, not %d" % (FS_MAX_POINTS, len(points)))
        if new_curve:
            self.fs_curve_id = (self.fs_curve_id + 1) & 15
        cid = self.fs_curve_id
        out = [self.enc.frame("EMS_FreqServiceHdr", {
            "Kind": FS_CUSTOM, "CurveId": cid, "NumPoints": len(points),
            "BaselinePower": int(round(max(-32000.0, min(32000.0, baseline_w)))),
            "ValidFor": int(max(1, min(65535, valid_s)))})]
        for i, (hz, w) in enumerate(points):
            out.append(self.enc.frame("EMS_FreqServicePoint", {
                "CurveId": cid, "Index": i, "Frequency": float(hz),
                "DeltaPower": int(round(max(-32000.0, min(32000.0, w))))}))
        return out

    def freq_cancel(self):
        """EMS_FreqServiceHdr with NumPoints 0: the service ends at once."""
        return [self.enc.frame("EMS_FreqServiceHdr", {"Kind": 0, "CurveId": self.fs_curve_id, "NumPoints": 0,
                                                      "BaselinePower": 0, "ValidFor": 1})]
