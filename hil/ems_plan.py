"""The simulated energy manager's operating plans (scenario event `plan`, docs/scenarios.md).

A plan event goes on the bus as one EMS_PlanHdr and one EMS_PlanSlot per slot, back to
back, at the event's time (dbc/gateway.dbc; the firmware side is controller/energy/).
Each plan takes the next PlanId (mod 16); an event without slots is a cancel (NumSlots 0).
Slots listed in the event's `corrupt_slots` go out as frames the controller must refuse
(hil/nodes.py's corruption: a broken CRC or length, or a value beyond its DBC range), so
the set arrives incomplete. A set falls on the same `can_silence` / `can_corrupt` of the
ems node as every EMS frame; it is not repeated (an energy manager sends a plan on a
change), so a plan lost to a silence stays lost.

From a plan event on, the energy manager sends no EMS_ModeRequest (the plan replaces its
live requests; the controller's last request runs out after its validity), until a
later `mode` event.
"""

from energy.plan_frames import header_values, slot_values  # the live energy manager's signal builder

_INF = float("inf")


class PlanSender:
    __slots__ = ("hdr", "slot", "ev", "next_us", "plan_id", "active", "sets_sent")

    def __init__(self, tx_hdr, tx_slot):
        self.hdr = tx_hdr
        self.slot = tx_slot
        self.ev = None
        self.next_us = _INF
        self.plan_id = 0
        self.active = False  # the plan replaces the live mode requests
        self.sets_sent = 0

    def event(self, ev, now_us):
        """A scenario plan event: sent at the next transmit()."""
        self.ev = ev
        self.next_us = now_us
        self.active = True
        if ev["slots"]:
            self.plan_id = (self.plan_id + 1) & 15  # a new plan takes a new id

    def send(self, nodes, now_us):
        """The set of the last event, through nodes._send (E2E, alive counter, faults)."""
        self.next_us = _INF
        if now_us < nodes.silent_until["ems"]:
            return
        ev = self.ev
        corrupt = now_us < nodes.corrupt_until["ems"]
        slots = ev["slots"]
        v = header_values(self.hdr.sig, self.plan_id, len(slots), ev.get("slot_s", 900),
                          ev.get("slot0_elapsed_s", 0), ev.get("reserve_pct", 0))
        nodes._send(self.hdr, v, now_us, corrupt)
        bad = ev.get("corrupt_slots", ())
        v = self.slot.sig
        for i, s in enumerate(slots):
            slot_values(v, self.plan_id, i, s["mode"], int(round(s["kw"] * 1000.0)))
            nodes._send(self.slot, v, now_us, corrupt or i in bad)
        self.sets_sent += 1
