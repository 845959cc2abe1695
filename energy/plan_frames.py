"""A plan as the gateway's operating-plan frames: EMS_PlanHdr + EMS_PlanSlot (dbc/gateway.dbc,
docs/plan-execution.md).

slot_command(p_kw, home_kw, allow_export, eff) maps one planned AC power (the planner's
convention, ../shared/energy/README.md: + charges the EV) to a slot's Mode and SetpointPower.
SetpointPower is battery-side power (docs/plan-execution.md), so the AC power goes through
the inverter's efficiency as the controller converts it (controller/control/limits.py
ac_to_batt: p * eff charging, p / eff discharging; eff the gateway's `inverter.efficiency`):
- |p| below IDLE_KW: idle (SetpointPower 0);
- p > 0: charge at p;
- p < 0 and the discharge no more than the expected home load (plus EXPORT_MIN_KW), or export
  not allowed: V2H, whose setpoint caps the discharge into the home. A discharge that covers
  the whole expected load is sent uncapped (0: "as much as the home takes"), so the EV follows
  the home's actual load as energy/simulate.py executes such a slot and the firmware's V2H
  does; one that covers part of it keeps its magnitude as the cap (the plan imports the rest);
- p < 0 beyond the home load with export allowed: V2G at p (the home's load comes out of it,
  the rest is exported, as the plan has it).
Every setpoint is clamped to the DBC's +/-32 000 W, so no plan can ask for an unbounded power.

header_values()/slot_values() fill the signal dicts (shared with the HIL's simulated energy
manager, hil/ems_plan.py); Encoder turns them into 8-byte frames with cantools (strict DBC
ranges: a value beyond one raises, nothing is sent) and seals them with the E2E alive counter
and CRC-8 SAE J1850 of dbc/README.md (controller/bus/e2e.py's CRC, the gateway's own).
"""

import pathlib

MODES = ("idle", "charge", "v2h", "v2g")  # coded as EMS_ModeRequest.ModeReq
IDLE_KW = 0.0005  # below 1 W after rounding: nothing to command
EXPORT_MIN_KW = 0.01  # a planned export below 10 W is V2H following the home (the plan's rounding)
INVERTER_EFFICIENCY = 0.97  # the gateway's inverter.efficiency default (docs/configuration.md)
MAX_W = 32000  # SetpointPower's DBC range
MAX_SLOTS = 48  # EMS_PlanHdr.NumSlots
SLOT_S_RANGE = (10, 3600)  # EMS_PlanHdr.SlotSeconds
HDR, SLOT = "EMS_PlanHdr", "EMS_PlanSlot"
DBC = pathlib.Path(__file__).resolve().parent.parent / "dbc" / "gateway.dbc"


def _w(kw):
    w = int(round(kw * 1000.0))
    return MAX_W if w > MAX_W else -MAX_W if w < -MAX_W else w


def slot_command(p_kw, home_kw, allow_export, eff=INVERTER_EFFICIENCY):
    """(mode name, SetpointPower W, battery side) of a slot planned at p_kw (AC) with home_kw
    expected home load (AC), through an inverter of efficiency eff."""
    if -IDLE_KW < p_kw < IDLE_KW:
        return "idle", 0
    if p_kw > 0:
        return "charge", _w(p_kw * eff)
    d = -p_kw
    home = home_kw if home_kw > 0 else 0.0
    if allow_export and d > home + EXPORT_MIN_KW:
        return "v2g", _w(p_kw / eff)
    if d >= home - IDLE_KW:
        return "v2h", 0  # the whole home: follow its actual load
    return "v2h", _w(p_kw / eff)


def header_values(v, plan_id, num_slots, slot_s, slot0_elapsed_s, reserve_pct):
    """Fill EMS_PlanHdr's signals into dict v (AliveCounter and Crc are the encoder's)."""
    v["PlanId"] = plan_id & 15
    v["NumSlots"] = num_slots
    v["SlotSeconds"] = slot_s
    v["Slot0ElapsedS"] = slot0_elapsed_s
    v["ReserveSoc"] = reserve_pct
    return v


def slot_values(v, plan_id, index, mode, setpoint_w):
    """Fill EMS_PlanSlot's signals into dict v; mode a name of MODES."""
    v["PlanId"] = plan_id & 15
    v["Index"] = index
    v["Mode"] = MODES.index(mode)
    v["SetpointPower"] = setpoint_w
    return v


class Encoder:
    """EMS_PlanHdr/EMS_PlanSlot frames (or the gateway.dbc messages `names`) with E2E protection.

    Guarantees: every frame is 8 bytes, its signals inside the DBC's ranges (cantools strict
    encoding raises ValueError otherwise), the alive counter of each message +1 (mod 16) per
    frame it makes, byte 7 the CRC over the E2EDataID and bytes 0..6."""

    def __init__(self, dbc_path=DBC, names=None):
        import cantools

        from controller.bus import e2e

        self._crc = e2e.crc8_j1850
        db = cantools.database.load_file(str(dbc_path))
        self.msgs = {}
        names = (HDR, SLOT) if names is None else names  # other EMS_* messages for other senders (ocpp_link)
        for name in names:
            m = db.get_message_by_name(name)
            self.msgs[name] = (m, m.dbc.attributes["E2EDataID"].value)
        self.counter = dict.fromkeys(names, 0)

    def frame(self, name, values):
        """(frame id, 8 bytes) of message `name` with `values` (AliveCounter and Crc set here)."""
        m, did = self.msgs[name]
        values["AliveCounter"] = self.counter[name]
        values["Crc"] = 0
        data = bytearray(m.encode(values, scaling=True, strict=True))
        data[7] = self._crc(did, data, 7)
        self.counter[name] = (self.counter[name] + 1) & 15
        return m.frame_id, bytes(data)

    def plan(self, plan_id, slots, slot_s, slot0_elapsed_s, reserve_pct):
        """The frames of one set: the header, then one slot frame per (mode, setpoint_w) of
        `slots` (at most MAX_SLOTS; none: a cancel). ValueError for anything outside the DBC."""
        if len(slots) > MAX_SLOTS:
            raise ValueError("a plan holds at most %d slots, not %d" % (MAX_SLOTS, len(slots)))
        # built whole before any frame counts, so a bad slot leaves the counters untouched
        vals = [(HDR, header_values({}, plan_id, len(slots), slot_s, slot0_elapsed_s, reserve_pct))]
        vals += [(SLOT, slot_values({}, plan_id, i, mode, w)) for i, (mode, w) in enumerate(slots)]
        from cantools.database.errors import EncodeError

        for name, v in vals:
            try:
                self.msgs[name][0].encode(dict(v, AliveCounter=0, Crc=0), scaling=True, strict=True)
            except EncodeError as e:
                raise ValueError(str(e)) from None
        return [self.frame(name, v) for name, v in vals]
