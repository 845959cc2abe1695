"""The year simulation: one home and its EV replayed over a price period, once per strategy.

Every strategy meets the same actual world (prices, the household's noisy load, the trips) at
15-min slots (hourly prices cover their four quarters). A strategy decides the EV's AC power
per slot; `_execute` turns that into actual flows within the limits and accounts the cost with
the planner's formula (../shared/energy/README.md): Δt·(import price·import − export
price·export) + wear·Δt·discharge/η_d.

Strategies (docs/energy.md):
- dumb: charge at full power from arrival until the departure SoC; never discharge.
- smart_charge, v2h, v2x: the planner (energy.plan.solve) re-run every day when the day-ahead
  prices are published (13:00 Danish time) over the prices known then (to the end of the next
  local day) and EXTEND_DAYS more on a spot forecast (`forecast_prices`), with the load forecast
  (the household's expected shape, no noise) and the planned trips; re-run when the SoC departs
  from the plan by more than REPLAN_SOC; energy left at the horizon's end is worth
  `terminal_value`.
  smart_charge may not discharge; v2h may not export; v2x may do both.
- perfect_foresight: the same problem over the whole period with the actual load: a lower bound
  of every strategy that meets the same constraints over the same data.

All strategies must end the period with at least World.end_soc (the lower of the initial and
the departure SoC) when the EV is home, so none earns by emptying the battery at the end.
"""

import datetime
import math
import time

from energy import ev_use, household

SLOT_S = 900
STRATEGIES = ("dumb", "smart_charge", "v2h", "v2x", "perfect_foresight")
PLANNED = {"smart_charge": dict(discharge=False, export=False),
           "v2h": dict(discharge=True, export=False),
           "v2x": dict(discharge=True, export=True),
           "perfect_foresight": dict(discharge=True, export=True)}
REPLAN_SOC = 0.01  # re-plan when the SoC is this far (fraction of capacity) from the plan's
PUBLISH_LOCAL_H = 13  # day-ahead results for the next day, ~12:45-13:00 Danish time (Nord Pool)
TOL_KWH = 1e-3  # rounding tolerance of the SoC checks (kWh)
TV_DAYS = 28  # the terminal value looks at this many days of past import prices
TV_QUANTILE = 0.15  # ... and takes this quantile (the cheap hours the EV would charge in)
FOLLOW_LOAD = True  # V2H slots follow the actual load (see _execute)
DEPARTURE_MARGIN = 0.015  # planners aim this much (SoC fraction) above each target: > REPLAN_SOC
EXTEND_DAYS = 1  # plans look this many days past the published prices, on a spot forecast:
FC_DAYS = 14  # the mean daily profile of the last FC_DAYS days of published spot prices


class World:
    """The actual data of a simulation period: n slots of SLOT_S seconds from start_s.

    import_dkk/export_dkk: all-in prices per slot; load_kw: actual home load; forecast_kw: the
    planners' load forecast; plugged/drive_kwh/departures: the EV's use; site: the site dict;
    tariff: the energy.tariffs.Tariff the prices came from."""

    def __init__(self, start_s, n, spot_eur_mwh, import_dkk, export_dkk, site, tariff):
        self.start_s = start_s
        self.n = n
        self.slot_s = SLOT_S
        self.dt_h = SLOT_S / 3600.0
        self.spot = spot_eur_mwh
        self.import_dkk = import_dkk
        self.export_dkk = export_dkk
        self.site = site
        self.tariff = tariff  # for the planners' price forecast past the published prices
        hh = site["household"]
        self.forecast_kw = household.expected_load_kw(start_s, SLOT_S, n, hh["annual_kwh"], hh["heat_pump"],
                                                      hh["heat_pump_kwh"])
        if hh["seed"] is None:
            self.load_kw = list(self.forecast_kw)
        else:
            self.load_kw = household.load_kw(start_s, SLOT_S, n, hh["annual_kwh"], hh["heat_pump"], hh["seed"],
                                             hh["heat_pump_kwh"])
        self.plugged, self.drive_kwh, self.departures = ev_use.schedule(start_s, SLOT_S, n, site["use"])
        self.dep_soc = {s: soc for s, soc in self.departures}
        ev = site["ev"]
        self.end_soc = min(ev["initial_soc"], site["use"]["departure_soc"])
        self._local_days()

    def _local_days(self):
        """Slot indices of each local midnight and each publication time in the period."""
        d = ev_use.local_datetime(self.start_s).date()
        mids, pubs = [], []
        end = self.start_s + self.n * SLOT_S
        while True:
            m = ev_use.utc_of_local(d, 0)
            if m >= end + 86400:
                break
            mids.append((m - self.start_s) // SLOT_S)
            pubs.append((ev_use.utc_of_local(d, 60 * PUBLISH_LOCAL_H) - self.start_s) // SLOT_S)
            d += datetime.timedelta(days=1)
        self.midnights = mids  # mids[k]: start of local day k (may be < 0 for the first)
        self.publications = pubs  # pubs[k]: 13:00 of local day k

    def known_until(self, t):
        """End slot (exclusive) of the prices known at slot t: the end of the next local day after
        13:00, else the end of today (capped at the period's end)."""
        for k in range(len(self.midnights) - 1):
            if self.midnights[k] <= t < self.midnights[k + 1]:
                end = self.midnights[k + 2] if t >= self.publications[k] and k + 2 < len(self.midnights) \
                    else self.midnights[k + 1]
                return min(end, self.n)
        return self.n


def build_world(series, site, tariff, start_s=None, end_s=None):
    """A World over [start_s, end_s) (default: the price series' span) at 15-min slots."""
    from energy import prices, tariffs
    t0 = series.start_s if start_s is None else start_s
    t1 = series.end_s if end_s is None else end_s
    spot = prices.slots(series, SLOT_S, t0, t1)
    imp, exp = tariffs.price_arrays(tariff, t0, SLOT_S, spot)
    return World(t0, len(spot), spot, imp, exp, site, tariff)


class Run:
    """What one strategy did, slot by slot (lists of n), and its plans' times."""

    def __init__(self, n):
        self.p_kw = [0.0] * n  # executed AC power (+ charge, − discharge)
        self.charge_kw = [0.0] * n
        self.discharge_kw = [0.0] * n
        self.soc = [0.0] * (n + 1)  # at each slot's start, and the period's end
        self.import_kw = [0.0] * n
        self.export_kw = [0.0] * n
        self.cost_dkk = [0.0] * n
        self.plan_ms = []
        self.replans = 0
        self.departure_misses = 0
        self.reserve_violation_slots = 0
        self.run_s = 0.0


def _execute(w, r, t, e_kwh, p_plan, export_plan_kw, may_export, import_plan_kw=0.0):
    """Apply a planned power to slot t of the actual world; return the battery energy after it.

    A charge is cut to the import limit, the battery's room and the charger; a discharge to the
    charger, the energy above max(min_soc, reserve) and, as the firmware's V2H mode does, to the
    actual home load plus the planned export (never any export when not may_export)."""
    site = w.site
    ev = site["ev"]
    cap = ev["capacity_kwh"]
    dt = w.dt_h
    load = w.load_kw[t]
    c = d = 0.0
    if not w.plugged[t]:
        e_after = e_kwh - w.drive_kwh[t]
    else:
        if p_plan > 0:
            c = min(p_plan, ev["max_charge_kw"], max(0.0, site["grid_import_limit_kw"] - load),
                    max(0.0, (cap - e_kwh) / (ev["charge_efficiency"] * dt)))
        elif p_plan < 0:
            floor = max(ev["min_soc"], site["reserve_soc"]) * cap
            avail = max(0.0, (e_kwh - floor) * ev["discharge_efficiency"] / dt)
            follow = load + (min(export_plan_kw, site["grid_export_limit_kw"]) if may_export else 0.0)
            # a slot the plan meant to carry the whole home load follows the actual load, as the
            # firmware's V2H mode does; the drift re-plans, the departure margin absorbs it
            want = follow if FOLLOW_LOAD and import_plan_kw <= 1e-6 else -p_plan
            d = max(0.0, min(want, ev["max_discharge_kw"], avail, follow))
        e_after = e_kwh + (ev["charge_efficiency"] * c - d / ev["discharge_efficiency"]) * dt
    g = load + c - d
    imp = g if g > 0 else 0.0
    exp = -g if g < 0 else 0.0
    r.charge_kw[t] = c
    r.discharge_kw[t] = d
    r.p_kw[t] = c - d
    r.import_kw[t] = imp
    r.export_kw[t] = exp
    r.cost_dkk[t] = dt * (w.import_dkk[t] * imp - w.export_dkk[t] * exp) \
        + site["wear_cost_dkk_per_kwh"] * dt * d / ev["discharge_efficiency"]
    return e_after


def _check_slot(w, r, t, e_kwh, e_after):
    """Count a departure below its target and a plugged slot that starts below the reserve
    (the latter only where the slot neither ends at the reserve nor charges at the most it
    could: an EV that arrives below the reserve and charges flat out is recovering, not
    violating)."""
    cap = w.site["ev"]["capacity_kwh"]
    target = w.dep_soc.get(t)
    if target is not None and e_kwh < target * cap - TOL_KWH:
        r.departure_misses += 1
    reserve = w.site["reserve_soc"] * cap
    if w.plugged[t] and e_kwh < reserve - TOL_KWH and e_after < reserve - TOL_KWH:
        ev = w.site["ev"]
        most = min(ev["max_charge_kw"], max(0.0, w.site["grid_import_limit_kw"] - w.load_kw[t]))
        if r.charge_kw[t] < most - 1e-6:
            r.reserve_violation_slots += 1


def run_dumb(w):
    """Charge at full power whenever plugged and below the departure SoC; never discharge."""
    r = Run(w.n)
    ev = w.site["ev"]
    cap = ev["capacity_kwh"]
    target = w.site["use"]["departure_soc"] * cap
    e = ev["initial_soc"] * cap
    for t in range(w.n):
        r.soc[t] = e / cap
        need = max(0.0, target - e) / (ev["charge_efficiency"] * w.dt_h)
        e = _execute(w, r, t, e, min(need, ev["max_charge_kw"]), 0.0, False)
        _check_slot(w, r, t, r.soc[t] * cap, e)
    r.soc[w.n] = e / cap
    return r


def _problem(w, t0, t1, e_kwh, kind, loads, end_target, prices=None):
    """The planner's input (../shared/energy/README.md) for slots [t0, t1) from energy e_kwh;
    prices: (import, export) lists for the slots, default the world's actual ones."""
    site = w.site
    imp, exp = prices if prices is not None else (w.import_dkk[t0:t1], w.export_dkk[t0:t1])
    ev = site["ev"]
    opts = PLANNED[kind]
    # a real planner keeps a margin over the targets for what its forecast misses (the drift
    # below REPLAN_SOC); perfect foresight needs none
    m = 0.0 if kind == "perfect_foresight" else DEPARTURE_MARGIN
    deps = [{"slot": s - t0, "min_soc": min(1.0, soc + m)} for s, soc in w.departures if t0 < s <= t1]
    if end_target is not None and t1 == w.n and w.plugged[w.n - 1]:
        # the period's end as a departure at slot N (the spec allows 0..N)
        deps.append({"slot": t1 - t0, "min_soc": min(1.0, end_target + m)})
    return {
        "slot_minutes": SLOT_S // 60,
        "start_utc": _iso(w.start_s + t0 * SLOT_S),
        "import_price_dkk_per_kwh": imp,
        "export_price_dkk_per_kwh": exp,
        "home_load_kw": loads[t0:t1],
        "ev": {
            "capacity_kwh": ev["capacity_kwh"],
            "soc": min(1.0, max(0.0, e_kwh / ev["capacity_kwh"])),
            "max_charge_kw": ev["max_charge_kw"],
            "max_discharge_kw": ev["max_discharge_kw"] if opts["discharge"] else 0.0,
            "charge_efficiency": ev["charge_efficiency"],
            "discharge_efficiency": ev["discharge_efficiency"],
            "min_soc": ev["min_soc"],
            "plugged": w.plugged[t0:t1],
            "drive_kwh": w.drive_kwh[t0:t1],
            "departures": deps,
        },
        "reserve_soc": site["reserve_soc"],
        "wear_cost_dkk_per_kwh": site["wear_cost_dkk_per_kwh"],
        "grid_import_limit_kw": site["grid_import_limit_kw"],
        "grid_export_limit_kw": site["grid_export_limit_kw"],
        "allow_export": opts["export"],
    }


def _iso(t_s):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_s))


def terminal_value(w, t):
    """DKK per kWh of battery energy left at a plan's horizon end, from what is known at slot t:
    the TV_QUANTILE of the last TV_DAYS days' import prices over the charge efficiency, the cost
    of putting that kWh back in the cheap hours (it would otherwise be charged then for the next
    departure). Zero for a plan that reaches the period's end (the end target holds instead)."""
    spd = 86400 // SLOT_S
    lo = max(0, t - TV_DAYS * spd)
    past = w.import_dkk[lo:t] if t - lo >= spd else w.import_dkk[t:t + spd]
    q = sorted(past)[int(TV_QUANTILE * (len(past) - 1))]
    return max(0.0, q / w.site["ev"]["charge_efficiency"])


def forecast_prices(w, t0, known, t1):
    """(import, export) DKK/kWh for slots [t0, t1): the actual prices up to `known` (published),
    after it the tariff applied to a forecast of the spot price, the mean daily profile of the
    last FC_DAYS published days, which is all a planner can know then. (Repeating only the last
    day did worse than no extension at all; the 14-day mean took the capture ratio from ~93 % to
    ~94-95 %, docs/energy.md.)"""
    imp, exp = w.import_dkk[t0:known], w.export_dkk[t0:known]
    if t1 <= known:
        return imp, exp
    from energy import tariffs
    spd = 86400 // SLOT_S
    k = min(FC_DAYS, known // spd)
    if k < 1:  # less than a day published (the period's first hours): its prices, earliest repeated
        last = [w.spot[max(0, known - spd + i)] for i in range(spd)]
    else:
        last = [sum(w.spot[known - j * spd + i] for j in range(1, k + 1)) / k for i in range(spd)]
    spot_fc = [last[(i % len(last))] for i in range(t1 - known)]
    fi, fe = tariffs.price_arrays(w.tariff, w.start_s + known * SLOT_S, SLOT_S, spot_fc)
    return imp + fi, exp + fe


def run_planned(w, kind, solve, progress=None):
    """Replay a planned strategy: plans at each publication (13:00 local) over the known prices,
    and again when the SoC drifts from the plan; every slot executed against the actual world."""
    r = Run(w.n)
    ev = w.site["ev"]
    cap = ev["capacity_kwh"]
    e = ev["initial_soc"] * cap
    pubs = set(w.publications)
    plan = None
    p0 = p1 = 0
    may_export = PLANNED[kind]["export"]
    spd = 86400 // SLOT_S
    for t in range(w.n):
        r.soc[t] = e / cap
        stale = plan is None or t >= p1 or t in pubs
        if not stale and abs(plan["slots"][t - p0]["soc"] * cap - e) > REPLAN_SOC * cap:
            stale = True
            r.replans += 1
        if stale:
            p0, known = t, w.known_until(t)
            p1 = min(w.n, known + EXTEND_DAYS * spd)
            tv = terminal_value(w, t) if p1 < w.n else 0.0
            pb = _problem(w, p0, p1, e, kind, w.forecast_kw, w.end_soc, forecast_prices(w, p0, known, p1))
            plan = solve(pb, terminal_value_dkk_per_kwh=tv)
            r.plan_ms.append(plan["solve_ms"])
            if progress:
                progress(kind, t / w.n)
        s = plan["slots"][t - p0]
        p = s["p_kw"]
        g_plan = w.forecast_kw[t] + p
        e = _execute(w, r, t, e, p, max(0.0, -g_plan), may_export, max(0.0, g_plan))
        _check_slot(w, r, t, r.soc[t] * cap, e)
    r.soc[w.n] = e / cap
    return r


def run_foresight(w, solve):
    """The plan over the whole period with the actual load (every price, load and trip known),
    executed like the others. Its cost is a lower bound of any strategy that meets the same
    constraints over the same data."""
    r = Run(w.n)
    ev = w.site["ev"]
    cap = ev["capacity_kwh"]
    e = ev["initial_soc"] * cap
    pb = _problem(w, 0, w.n, e, "perfect_foresight", w.load_kw, w.end_soc)
    plan = solve(pb, terminal_value_dkk_per_kwh=0.0)
    r.plan_ms.append(plan["solve_ms"])
    r.planned_cost_dkk = plan["cost_dkk"]
    r.milp = plan.get("milp")
    for t in range(w.n):
        r.soc[t] = e / cap
        p = plan["slots"][t]["p_kw"]
        g_plan = w.load_kw[t] + p
        e = _execute(w, r, t, e, p, max(0.0, -g_plan), True, max(0.0, g_plan))
        _check_slot(w, r, t, r.soc[t] * cap, e)
    r.soc[w.n] = e / cap
    return r


def run_strategy(w, kind, solve=None, progress=None):
    """One strategy over the world -> Run (run_s set)."""
    if solve is None:
        from energy import plan as _plan
        solve = _plan.solve
    t = time.perf_counter()
    if kind == "dumb":
        r = run_dumb(w)
    elif kind == "perfect_foresight":
        r = run_foresight(w, solve)
    else:
        r = run_planned(w, kind, solve, progress)
    r.run_s = time.perf_counter() - t
    return r


def _pct(vals, q):
    if not vals:
        return 0.0
    s = sorted(vals)
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]


def summary(w, r, kind):
    """The per-strategy figures of OUT.json."""
    dt = w.dt_h
    ev = w.site["ev"]
    cap = ev["capacity_kwh"]
    charged = sum(r.charge_kw) * dt
    discharged = sum(r.discharge_kw) * dt
    # battery-side throughput (charging in, V2X and driving out), over two capacities per cycle
    thru = charged * ev["charge_efficiency"] + discharged / ev["discharge_efficiency"] + sum(w.drive_kwh)
    out = {
        "cost_dkk": round(sum(r.cost_dkk), 2),
        "grid_import_kwh": round(sum(r.import_kw) * dt, 3),
        "grid_export_kwh": round(sum(r.export_kw) * dt, 3),
        "ev_charged_kwh": round(charged, 3),
        "ev_discharged_kwh": round(discharged, 3),
        "equivalent_full_cycles": round(thru / (2 * cap), 2),
        "departure_misses": r.departure_misses,
        "reserve_violation_slots": r.reserve_violation_slots,
        "soc_end": round(r.soc[w.n], 4),
        "plans": len(r.plan_ms),
        "replans_on_drift": r.replans,
        "run_s": round(r.run_s, 3),
    }
    if kind == "v2x" or (kind in PLANNED and kind != "perfect_foresight"):
        out["plan_ms_p50"] = round(_pct(r.plan_ms, 50), 2)
        out["plan_ms_p99"] = round(_pct(r.plan_ms, 99), 2)
    if kind == "perfect_foresight":
        out["plan_ms"] = round(r.plan_ms[0], 1)
        out["planned_cost_dkk"] = round(r.planned_cost_dkk, 2)
        out["milp"] = r.milp  # whether the year's plan needed binaries (an LP suffices without negative import prices)
    out["monthly_cost_dkk"] = monthly(w, r.cost_dkk)
    return out


def monthly(w, per_slot):
    """Sum per UTC calendar month ("YYYY-MM")."""
    out = {}
    for t, v in enumerate(per_slot):
        key = time.strftime("%Y-%m", time.gmtime(w.start_s + t * SLOT_S))
        out[key] = out.get(key, 0.0) + v
    return {k: round(v, 2) for k, v in out.items()}


def capture_ratio(strats):
    """(dumb − v2x) / (dumb − perfect_foresight): the share of the reachable savings v2x takes."""
    d = strats["dumb"]["cost_dkk"]
    pf = strats["perfect_foresight"]["cost_dkk"]
    if d - pf <= 1e-9:
        return None
    return round((d - strats["v2x"]["cost_dkk"]) / (d - pf), 4)


def method():
    """The simulation's settings, for OUT.json."""
    return {"slot_minutes": SLOT_S // 60, "publish_local_hour": PUBLISH_LOCAL_H, "replan_soc": REPLAN_SOC,
            "terminal_value": "%g-quantile of the last %d days' import prices / charge_efficiency"
                              % (TV_QUANTILE, TV_DAYS),
            "extend_days_on_spot_forecast": EXTEND_DAYS, "spot_forecast": "mean daily profile of the last %d days" % FC_DAYS, "departure_margin_soc": DEPARTURE_MARGIN, "v2h_follows_actual_load": FOLLOW_LOAD,
            "load_forecast": "household expected shape (no noise)",
            "end_soc": "min(ev.initial_soc, use.departure_soc) at the period's end"}


def simulate(w, strategies=STRATEGIES, solve=None, progress=None):
    """All strategies over the world -> (OUT.json's "strategies" dict, {kind: Run})."""
    runs = {}
    res = {}
    for kind in strategies:
        runs[kind] = run_strategy(w, kind, solve, progress)
        res[kind] = summary(w, runs[kind], kind)
    return res, runs
