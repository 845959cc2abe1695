"""The gateway follows the energy manager's plan (controller/energy/schedule.py).

Made by the gateway at the first plan frame (EMS_PlanHdr or EMS_PlanSlot) since boot,
so that a site that never receives a plan keeps its configured `mode` and carries
none of this in RAM. From then on, every control period, the mode and power in force
are, in this order of precedence (docs/plan-execution.md):
1. a live EMS_ModeRequest in force (controller/control/operating_mode.py);
2. the plan's slot in force: its mode and setpoint; for V2H the setpoint's magnitude
   caps the discharge into the home (0: no cap);
3. the fallback (configuration `plan.fallback`), when the plan has ended, was cancelled,
   or none was ever taken: "v2h" (default) V2H self-consumption while the SoC is above
   the reserve, else idle; "idle"; "mode" the configured `mode`.
The backup reserve in force is max(backup.reserve_soc_pct, the plan's ReserveSoc) while
a plan is in force; the limit arbitration (controller/control/limits.py) keeps every
discharge above it while grid-connected, whatever the mode's source.

Events (GW_Event): PlanAccepted (detail: plan id, value: slots) when a set is taken;
PlanEnded (detail schedule.END_*: expired, cancelled; refused with the reason as value,
at most one per second, the plan in force staying). A refused set also counts as a
refused frame (GW_Status.RxRefused, FrameRefused with reason range), like a refused
frequency-response curve.
"""

from controller import events
from controller.energy import schedule
from controller.timing import Elapsed

FALLBACKS = ("v2h", "idle", "mode")
FB_V2H, FB_IDLE, FB_MODE = 0, 1, 2


class PlanFollower:
    __slots__ = ("gw", "sched", "fallback", "base_reserve", "reserve_pct", "_refused_seen", "_refused_since",
                 "_accepted_reported", "_hdr_id", "_slot_id")

    def __init__(self, gw):
        self.gw = gw
        self.sched = schedule.Schedule()
        self.fallback = FALLBACKS.index(gw.cfg["plan"]["fallback"])
        self.base_reserve = gw.cfg["backup"]["reserve_soc_pct"]
        self.reserve_pct = self.base_reserve
        self._refused_seen = 0
        self._refused_since = Elapsed()
        self._accepted_reported = 0
        self._hdr_id = gw.plan_hdr.msg.frame_id
        self._slot_id = gw.plan_slot.msg.frame_id

    # ------------------------------------------------------------ frames
    def on_frame(self, now):
        """The plan frame just accepted (its input's `new` flag tells which)."""
        gw = self.gw
        if gw.plan_hdr.new:
            gw.plan_hdr.new = False
            self.on_header(now)
        if gw.plan_slot.new:
            gw.plan_slot.new = False
            self.on_slot(now)

    def on_header(self, now):
        v = self.gw.plan_hdr.values
        s = self.sched
        was = s.in_force
        r = s.on_header(v["PlanId"], v["NumSlots"], v["SlotSeconds"], v["Slot0ElapsedS"], v["ReserveSoc"], now)
        self._after(r, self._hdr_id, now)
        if was and s.ended == schedule.END_CANCELLED and v["NumSlots"] == 0:
            self.gw._event(events.PLAN_ENDED, schedule.END_CANCELLED, s.plan_id)

    def on_slot(self, now):
        v = self.gw.plan_slot.values
        r = self.sched.on_slot(v["PlanId"], v["Index"], v["Mode"], v["SetpointPower"], now)
        self._after(r, self._slot_id, now)

    def _after(self, r, frame_id, now):
        s = self.sched
        if r:
            # an inconsistent set is refused whole: counted like any refused frame, the plan in force stays
            self.gw.refuse(events.R_RANGE, frame_id)
        if s.accepted != self._accepted_reported:
            self._accepted_reported = s.accepted
            self.gw._event(events.PLAN_ACCEPTED, s.plan_id, s.n)

    # ------------------------------------------------------------ every period
    def tick(self, now):
        """The plan's slot in force (or the fallback) into the operating mode, unless a
        live request is in force; the reserve in force; the plan's events."""
        gw = self.gw
        s = self.sched
        if s.check(now):
            gw.refuse(events.R_RANGE, self._hdr_id)
        if s.update(now):
            gw._event(events.PLAN_ENDED, schedule.END_EXPIRED, s.plan_id)
        self._report_refused(now)
        r = s.reserve_pct if s.reserve_pct > self.base_reserve else self.base_reserve
        if r != self.reserve_pct:
            self.reserve_pct = r
            gw.reserve_pct = r
            gw.gs.reserve_soc_pct = r  # the frequency service keeps the same reserve
            gw.arbiter.hold_reserve(gw._soc_pct, r)  # the fallback below sees the new reserve now
        op = gw.op
        if op.requested:
            return
        if s.in_force:
            sp = s.setpoint_w
            self._set(op, s.mode, sp, -sp if sp < 0 else sp)
        elif self.fallback == FB_V2H:
            self._set(op, events.IDLE if gw.arbiter.reserve_hold else events.V2H, 0, 0)
        elif self.fallback == FB_IDLE:
            self._set(op, events.IDLE, 0, 0)
        else:
            self._set(op, op.local_mode, op.local_setpoint_w, 0)

    @staticmethod
    def _set(op, mode, setpoint_w, cap_w):
        if mode != op.mode:
            op.v2h_ac = 0  # V2H starts afresh from zero
            op.mode = mode
        op.setpoint_w = setpoint_w
        op.v2h_cap_w = cap_w

    def _report_refused(self, now):
        """PlanEnded(refused) for sets refused since the last one, at most one a second
        (a sick energy manager must not flood the bus)."""
        s = self.sched
        e = self._refused_since
        e.update(now)
        if s.refused != self._refused_seen and (self._refused_seen == 0 or e.reached(1, 0)):
            self._refused_seen = s.refused
            e.restart(now)
            self.gw._event(events.PLAN_ENDED, schedule.END_REFUSED, s.last_reason)
