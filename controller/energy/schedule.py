"""The energy manager's operating plan: consecutive slots of a mode and a power, taken
whole from the bus and followed by elapsed time.

The plan arrives as EMS_PlanHdr (plan id, slot count, slot length, how long slot 0 has
already run, a backup reserve) and one EMS_PlanSlot per slot (plan id, index, mode,
setpoint), in any order, within SET_TIMEOUT_US of the set's first frame
(dbc/gateway.dbc, docs/plan-execution.md). Schedule.on_header()/on_slot() assemble the
set in a second buffer; only a complete, consistent set replaces the plan in force, at
once and whole (the buffers swap), so a slot of a half-received plan is never followed.

Slot timing: the plan's clock starts at the header's reception, Slot0ElapsedS seconds
into slot 0; slot k is in force from k * SlotSeconds to (k + 1) * SlotSeconds on that
clock, the plan ends when its last slot does. The clock is controller.timing.Elapsed:
right over any duration (a 48-slot plan of an hour each runs two days, far beyond the
9 minutes a raw ticks_us difference spans). Times: `now` in ticks_us (controller/clock.py).

Small ints and buffers made at construction only: nothing is allocated per update().
"""

from controller.clock import ticks_diff
from controller.timing import Elapsed

MAX_SLOTS = 48
SET_TIMEOUT_US = 1000000  # a set goes out back to back (49 frames, ~6 ms at 500 kbit/s): 1 s is plenty

# Why a set was refused (refused_by[reason]; PlanEnded's EventValue with detail END_REFUSED)
R_OK = 0
R_INCOMPLETE = 1  # the set's time ran out, or a frame of another set came, before every frame of it had
R_INDEX = 2  # a slot's Index at or beyond the header's NumSlots
R_DUPLICATE = 3  # a slot's Index, or the header, twice in one set
R_ELAPSED = 4  # Slot0ElapsedS not below SlotSeconds (slot 0 would be over already)
R_SLOT_LENGTH = 5  # SlotSeconds 0 (outside the DBC range, only from a caller that skips it)
N_REASONS = 6

# How a plan ended (EventDetail of PlanEnded)
END_EXPIRED = 1  # its last slot elapsed
END_CANCELLED = 2  # a header with NumSlots 0
END_REFUSED = 3  # not an end: a new set was refused, the plan in force (if any) stays


class Schedule:
    """An operating plan and its assembly.

    Guarantees:
    - a plan is in force only after a complete, consistent set: one header and each of
      its NumSlots indices exactly once, any order, one PlanId, within SET_TIMEOUT_US of
      the set's first frame, Slot0ElapsedS < SlotSeconds; it replaces the plan in force
      whole; a refused set counts once in `refused` and refused_by[reason] and changes
      nothing of the plan in force;
    - a header with NumSlots 0 ends the plan in force at once (and drops a pending set);
    - update(now) gives the slot in force by elapsed time (`index`, `mode`, `setpoint_w`,
      -1 / None / 0 without one) and returns END_EXPIRED once, at the update where the last
      slot has elapsed; `ended` holds the last end reason (0 while a plan is in force or
      none came yet);
    - `reserve_pct`: the plan's backup reserve while it is in force, else 0.
    """

    __slots__ = ("in_force", "plan_id", "n", "slot_s", "offset_s", "reserve_pct", "modes", "setpoints",
                 "index", "mode", "setpoint_w", "ended", "accepted", "cancels", "refused", "refused_by",
                 "last_reason", "_clock",
                 # the set being assembled
                 "_pending", "_p_hdr", "_p_id", "_p_n", "_p_slot_s", "_p_off", "_p_res", "_p_t0", "_p_thdr",
                 "_p_count", "_p_have", "_p_modes", "_p_sp")

    def __init__(self):
        self.in_force = False
        self.plan_id = None
        self.n = 0
        self.slot_s = 0
        self.offset_s = 0
        self.reserve_pct = 0
        self.modes = bytearray(MAX_SLOTS)
        self.setpoints = [0] * MAX_SLOTS
        self.index = -1
        self.mode = None
        self.setpoint_w = 0
        self.ended = 0
        self.accepted = 0
        self.cancels = 0
        self.refused = 0
        self.refused_by = [0] * N_REASONS
        self.last_reason = R_OK
        self._clock = Elapsed()
        self._pending = False
        self._p_hdr = False
        self._p_id = 0
        self._p_n = 0
        self._p_slot_s = 0
        self._p_off = 0
        self._p_res = 0
        self._p_t0 = 0
        self._p_thdr = 0
        self._p_count = 0
        self._p_have = bytearray(MAX_SLOTS)
        self._p_modes = bytearray(MAX_SLOTS)
        self._p_sp = [0] * MAX_SLOTS

    # ------------------------------------------------------------ assembly
    def _refuse(self, reason):
        self._pending = False
        self.refused += 1
        self.refused_by[reason] += 1
        self.last_reason = reason
        return reason

    def _start(self, plan_id, now):
        self._pending = True
        self._p_hdr = False
        self._p_id = plan_id
        self._p_t0 = now
        self._p_count = 0
        have = self._p_have
        for i in range(MAX_SLOTS):
            have[i] = 0

    def _join(self, plan_id, now):
        """The set this frame belongs to: the pending one, or a new one (the pending set
        refused as incomplete when this frame cannot be part of it). Returns R_OK or
        R_INCOMPLETE (that refusal)."""
        r = R_OK
        if self._pending and (plan_id != self._p_id or ticks_diff(now, self._p_t0) > SET_TIMEOUT_US):
            r = self._refuse(R_INCOMPLETE)
        if not self._pending:
            self._start(plan_id, now)
        return r

    def on_header(self, plan_id, num_slots, slot_s, slot0_elapsed_s, reserve_pct, now):
        """EMS_PlanHdr's signals. Returns R_OK or the reason the set was refused."""
        if num_slots == 0:
            r = self._refuse(R_INCOMPLETE) if self._pending else R_OK
            self.cancels += 1
            if self.in_force:
                self._end(END_CANCELLED)
            return r
        r = R_OK
        if self._pending and self._p_hdr:
            r = self._refuse(R_INCOMPLETE)  # a second header: the last set never completed
        r = self._join(plan_id, now) or r
        if slot_s < 1:
            return self._refuse(R_SLOT_LENGTH)
        if slot0_elapsed_s >= slot_s:
            return self._refuse(R_ELAPSED)
        self._p_hdr = True
        self._p_n = num_slots
        self._p_slot_s = slot_s
        self._p_off = slot0_elapsed_s
        self._p_res = reserve_pct
        self._p_thdr = now
        have = self._p_have
        for i in range(num_slots, MAX_SLOTS):
            if have[i]:
                return self._refuse(R_INDEX)  # a slot that came first lies beyond this header's count
        if self._p_count == num_slots:
            return self._take(now) or r
        return r

    def on_slot(self, plan_id, index, mode, setpoint_w, now):
        """EMS_PlanSlot's signals. Returns R_OK or the reason the set was refused."""
        r = self._join(plan_id, now)
        if index >= MAX_SLOTS or (self._p_hdr and index >= self._p_n):
            return self._refuse(R_INDEX)
        if self._p_have[index]:
            return self._refuse(R_DUPLICATE)
        self._p_have[index] = 1
        self._p_count += 1
        self._p_modes[index] = mode
        self._p_sp[index] = setpoint_w
        if self._p_hdr and self._p_count == self._p_n:
            return self._take(now) or r
        return r

    def check(self, now):
        """Every period: a pending set whose time ran out is refused (R_INCOMPLETE, once);
        returns R_OK or that reason."""
        if self._pending and ticks_diff(now, self._p_t0) > SET_TIMEOUT_US:
            return self._refuse(R_INCOMPLETE)
        return R_OK

    def _take(self, now):
        """The complete set replaces the plan in force: swap the buffers, start its clock."""
        self._pending = False
        self.modes, self._p_modes = self._p_modes, self.modes
        self.setpoints, self._p_sp = self._p_sp, self.setpoints
        self.plan_id = self._p_id
        self.n = self._p_n
        self.slot_s = self._p_slot_s
        self.offset_s = self._p_off
        self.reserve_pct = self._p_res
        c = self._clock
        c.restart(self._p_thdr)  # the plan's clock runs from the header's reception
        c.update(now)
        self.in_force = True
        self.ended = 0
        self.index = -1
        self.accepted += 1
        self.last_reason = R_OK
        self._slot()
        return R_OK

    # ------------------------------------------------------------ following
    def _end(self, why):
        self.in_force = False
        self.ended = why
        self.index = -1
        self.mode = None
        self.setpoint_w = 0
        self.reserve_pct = 0

    def _slot(self):
        """The slot in force from the clock; False when the last one has elapsed."""
        k = (self._clock.s + self.offset_s) // self.slot_s
        if k >= self.n:
            return False
        if k != self.index:
            self.index = k
            self.mode = self.modes[k]
            self.setpoint_w = self.setpoints[k]
        return True

    def update(self, now):
        """Every period: the slot in force; END_EXPIRED once when the plan has run out, else 0."""
        if not self.in_force:
            return 0
        self._clock.update(now)
        if self._slot():
            return 0
        self._end(END_EXPIRED)
        return END_EXPIRED

    def remaining_s(self):
        """Whole seconds until the plan in force ends (0 without one)."""
        if not self.in_force:
            return 0
        r = self.n * self.slot_s - self.offset_s - self._clock.s
        return r if r > 0 else 0
