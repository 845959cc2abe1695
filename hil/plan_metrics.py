"""Report metrics of operating plans and the backup reserve (docs/scenarios.md).

Read from the scenario itself, as the frequency-service metrics are: a plan event with
slots (and no `corrupt_slots`: that set is refused by design) is in force from its t_s
until its last slot ends (t_s + slots * slot_s - slot0_elapsed_s), or the next plan event
that the controller takes (a plan without corrupt slots, or a cancel), whichever is first.
Slot k of it runs from t_s + k * slot_s - slot0_elapsed_s (at the earliest t_s).

- plan_tracking_error_kw: the largest |truth.p_batt_w - the slot's power| (kW) over the
  idle, charge and v2g slots, grid-connected, from SETTLE_S after the slot's start
  (FIRST_SETTLE_S for a plan's first slot); the slot's power as the controller's mode
  takes it: charge max(kw, 0), v2g min(kw, 0), idle 0. V2H slots follow the home's load
  and are not counted. None without a plan. Where a limit binds (the reserve, the EV's
  limits) the error shows it: that is what the plan did not get.
- min_soc_grid_connected_pct: the lowest EV SoC (%) while grid-connected (utility
  breaker and site relay closed); None if never.
- reserve_violation_s: the time the EV discharged (truth.p_batt_w < -DISCHARGE_W) while
  grid-connected with its SoC more than RESERVE_TOL_PCT below the reserve in force:
  max(controller backup.reserve_soc_pct, the reserve_pct of the plan in force).
"""

SETTLE_S = 1.0  # the ramp (20 kW/s by default: 11 kW in 0.55 s) and the inverter's response
# a plan's first slot: also the 3 s receive timeout (EMS_ModeRequest RxTimeoutTime) of the live
# request the energy manager sent before it, which is in force until it runs out
FIRST_SETTLE_S = 4.0
RESERVE_TOL_PCT = 0.1  # the resolution of EVCC_Status.Soc: the controller sees the SoC in these steps
DISCHARGE_W = 10.0


def plan_spans(scenario):
    """(t_start, t_end, slot_s, t_slot0, slots, reserve_pct) of every plan in force, in time order."""
    evs = [e for e in scenario.get("events", ()) if e["kind"] == "plan" and not e.get("corrupt_slots")]
    spans = []
    for i, e in enumerate(evs):
        if not e["slots"]:
            continue
        t0 = e["t_s"] - e.get("slot0_elapsed_s", 0)
        end = t0 + len(e["slots"]) * e["slot_s"]
        if i + 1 < len(evs) and evs[i + 1]["t_s"] < end:
            end = evs[i + 1]["t_s"]
        spans.append((e["t_s"], end, e["slot_s"], t0, e["slots"], e.get("reserve_pct", 0)))
    return spans


class PlanMetrics:
    __slots__ = ("spans", "base_reserve", "_i", "_err", "_min_soc", "_viol_s")

    def __init__(self, scenario):
        self.spans = plan_spans(scenario)
        r = scenario.get("controller", {}).get("backup", {}).get("reserve_soc_pct")
        if r is None:
            from controller.config_schema import SCHEMA

            r = SCHEMA["backup"]["reserve_soc_pct"][1]
        self.base_reserve = float(r)
        self._i = 0
        self._err = None
        self._min_soc = None
        self._viol_s = 0.0

    def update(self, t, dt, tr):
        """The plant sample that ends the interval (t - dt, t]."""
        if not (tr.breaker_closed and tr.relay_closed):
            return
        soc = tr.soc * 100.0
        if self._min_soc is None or soc < self._min_soc:
            self._min_soc = soc
        span = None
        if self.spans:
            spans = self.spans
            i = self._i
            while i < len(spans) and spans[i][1] <= t - dt + 1e-9:
                i += 1
            self._i = i
            if i < len(spans) and spans[i][0] <= t - dt + 1e-9:
                span = spans[i]
        pb = tr.p_batt_w
        if pb < -DISCHARGE_W:
            reserve = self.base_reserve
            if span is not None and span[5] > reserve:
                reserve = span[5]
            if soc < reserve - RESERVE_TOL_PCT:
                self._viol_s += dt
        if span is None:
            return
        t_start, _, slot_s, t0, slots, _ = span
        k = int((t - t0) // slot_s)
        if k >= len(slots):
            return
        s = slots[k]
        mode = s["mode"]
        if mode == "v2h":
            return
        begin = t0 + k * slot_s
        settle = FIRST_SETTLE_S if begin <= t_start else SETTLE_S
        if t - dt < max(begin, t_start) + settle:
            return
        w = s["kw"] * 1000.0
        want = 0.0 if mode == "idle" else max(w, 0.0) if mode == "charge" else min(w, 0.0)
        e = abs(pb - want) / 1000.0
        if self._err is None or e > self._err:
            self._err = e

    def result(self):
        return {"plan_tracking_error_kw": self._err if self.spans else None,
                "min_soc_grid_connected_pct": self._min_soc,
                "reserve_violation_s": self._viol_s}
