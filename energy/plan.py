"""The least-cost charge/discharge plan of one EV at one home (../shared/energy/README.md).

validate(obj) checks a plan input against every rule of the spec and returns it normalised
(floats, lists); a broken input raises PlanInputError naming the key, e.g.
``ev.departures[1].slot: ...`` or ``home_load_kw[7]: ...``. solve(problem) returns the exact
optimum of the spec's problem, found as a mixed-integer linear programme with HiGHS
(highspy), or raises PlanInputError when no plan meets the hard limits (min_soc, grid limits).
The formulation, the two-stage shortfall and the measured solve times: docs/planner.md.

Conventions (the spec's): p_kw > 0 charges the EV, p_kw < 0 discharges it, both on the AC side;
E is the battery-side energy, soc = E / capacity_kwh, soc[t] at the start of slot t.
"""

import datetime
import math
import os
import sys
import threading
import time

import highspy
import numpy as np

TOP_KEYS = ("slot_minutes", "start_utc", "import_price_dkk_per_kwh", "export_price_dkk_per_kwh", "home_load_kw",
            "ev", "reserve_soc", "wear_cost_dkk_per_kwh", "grid_import_limit_kw", "grid_export_limit_kw",
            "allow_export")
EV_KEYS = ("capacity_kwh", "soc", "max_charge_kw", "max_discharge_kw", "charge_efficiency", "discharge_efficiency",
           "min_soc", "plugged", "drive_kwh", "departures")
DEPARTURE_KEYS = ("slot", "min_soc")
# the per-slot arrays, in the order their lengths are compared (the first one sets N)
SLOT_ARRAYS = ("import_price_dkk_per_kwh", "export_price_dkk_per_kwh", "home_load_kw", "ev.plugged", "ev.drive_kwh")

SIMULTANEOUS_KW = 1e-6  # charge and discharge both above this in one slot: the LP burnt energy, solve the MILP
SHORTFALL_KWH = 1e-6  # missing energy reported from this size up
SNAP_KW = 1e-7  # solver noise (its feasibility tolerance) around 0 and the power limits
# decimals of the output: fine enough that a checker recomputing energies from p_kw alone
# finds every limit met to ~1e-8 kWh over a long horizon; cost to 1e-6 DKK
ROUND_KW = 9
ROUND_SOC = 9
ROUND_KWH = 9


class PlanTimeout(RuntimeError):
    """solve()'s time_limit_s ran out before HiGHS had any plan."""


class PlanInputError(ValueError):
    """A plan input the planner refuses; str() is ``"key: problem"``, key a path such as
    ``ev.departures[1].slot`` or ``home_load_kw[7]``."""

    def __init__(self, key, problem):
        super().__init__("%s: %s" % (key, problem))
        self.key = key
        self.problem = problem


# ---------------------------------------------------------------- validation
def _number(v, key, lo=None, hi=None, lo_open=False):
    # bool is an int in Python and NaN/inf pass comparisons oddly: both refused explicitly
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise PlanInputError(key, "must be a number, not %s" % _kind(v))
    v = float(v)
    if not math.isfinite(v):
        raise PlanInputError(key, "must be a finite number, not %r" % v)
    if lo is not None and (v <= lo if lo_open else v < lo):
        raise PlanInputError(key, "must be %s %g, not %g" % (">" if lo_open else ">=", lo, v))
    if hi is not None and v > hi:
        raise PlanInputError(key, "must be <= %g, not %g" % (hi, v))
    return v


def _kind(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def _object(v, key, keys):
    if not isinstance(v, dict):
        raise PlanInputError(key or "(top level)", "must be an object, not %s" % _kind(v))
    prefix = key + "." if key else ""
    for k in v:
        if k not in keys:
            raise PlanInputError(prefix + str(k), "unknown key (allowed: %s)" % ", ".join(keys))
    for k in keys:
        if k not in v:
            raise PlanInputError(prefix + k, "missing")
    return prefix


def _array(v, key):
    if not isinstance(v, list):
        raise PlanInputError(key, "must be a list (one value per slot), not %s" % _kind(v))
    if not v:
        raise PlanInputError(key, "must hold at least one slot")
    return v


def validate(obj):
    """Check a plan input (the parsed JSON) against every rule of the spec and return a
    normalised copy: the same keys, numbers as float, per-slot arrays as lists of float/bool.
    Idempotent. Raises PlanInputError(key, problem) on the first problem found.

    Beyond the spec's text: every key is required (the spec names no defaults); a departure's
    slot is an integer in 0..N (N: the end of the horizon); slot_minutes divides a day;
    start_utc is an ISO 8601 date and time (no offset: UTC); the start SoC must be at
    least min_soc; a slot whose home load the grid limits cannot carry whatever the EV does
    (unplugged, or beyond its power) is refused here, naming the slot."""
    _object(obj, "", TOP_KEYS)
    ev = obj["ev"]
    _object(ev, "ev", EV_KEYS)
    out = {}
    sm = _number(obj["slot_minutes"], "slot_minutes", lo=0, lo_open=True, hi=1440)
    per_day = 1440.0 / sm
    if abs(per_day - round(per_day)) > 1e-9:
        raise PlanInputError("slot_minutes", "must divide a day (1440 minutes) into whole slots, not %g" % sm)
    out["slot_minutes"] = sm
    out["start_utc"] = _utc(obj["start_utc"])

    arrays = {}
    for name in SLOT_ARRAYS:
        src = ev[name[3:]] if name.startswith("ev.") else obj[name]
        arrays[name] = _array(src, name)
    n = len(arrays[SLOT_ARRAYS[0]])
    for name in SLOT_ARRAYS[1:]:
        if len(arrays[name]) != n:
            raise PlanInputError(name, "has %d slots, %s has %d: all per-slot arrays must have the same length"
                                 % (len(arrays[name]), SLOT_ARRAYS[0], n))
    imp = [_number(x, "import_price_dkk_per_kwh[%d]" % t) for t, x in enumerate(arrays[SLOT_ARRAYS[0]])]
    exp = [_number(x, "export_price_dkk_per_kwh[%d]" % t) for t, x in enumerate(arrays[SLOT_ARRAYS[1]])]
    for t in range(n):
        if exp[t] > imp[t]:
            raise PlanInputError("export_price_dkk_per_kwh[%d]" % t,
                                 "%g is above the import price %g of the slot (the spec requires export <= import)"
                                 % (exp[t], imp[t]))
    load = [_number(x, "home_load_kw[%d]" % t) for t, x in enumerate(arrays["home_load_kw"])]
    plugged = []
    for t, x in enumerate(arrays["ev.plugged"]):
        if not isinstance(x, bool):
            raise PlanInputError("ev.plugged[%d]" % t, "must be true or false, not %s" % _kind(x))
        plugged.append(x)
    drive = [_number(x, "ev.drive_kwh[%d]" % t, lo=0) for t, x in enumerate(arrays["ev.drive_kwh"])]
    out["import_price_dkk_per_kwh"] = imp
    out["export_price_dkk_per_kwh"] = exp
    out["home_load_kw"] = load

    e = {}
    e["capacity_kwh"] = _number(ev["capacity_kwh"], "ev.capacity_kwh", lo=0, lo_open=True)
    e["soc"] = _number(ev["soc"], "ev.soc", lo=0, hi=1)
    e["max_charge_kw"] = _number(ev["max_charge_kw"], "ev.max_charge_kw", lo=0)
    e["max_discharge_kw"] = _number(ev["max_discharge_kw"], "ev.max_discharge_kw", lo=0)
    e["charge_efficiency"] = _number(ev["charge_efficiency"], "ev.charge_efficiency", lo=0, lo_open=True, hi=1)
    e["discharge_efficiency"] = _number(ev["discharge_efficiency"], "ev.discharge_efficiency", lo=0, lo_open=True,
                                        hi=1)
    e["min_soc"] = _number(ev["min_soc"], "ev.min_soc", lo=0, hi=1)
    if e["soc"] < e["min_soc"]:
        raise PlanInputError("ev.soc", "%g is below ev.min_soc %g: the plan could not start within the EV's limit"
                             % (e["soc"], e["min_soc"]))
    e["plugged"] = plugged
    e["drive_kwh"] = drive
    deps = ev["departures"]
    if not isinstance(deps, list):
        raise PlanInputError("ev.departures", "must be a list, not %s" % _kind(deps))
    e["departures"] = []
    for k, d in enumerate(deps):
        key = "ev.departures[%d]" % k
        _object(d, key, DEPARTURE_KEYS)
        s = d["slot"]
        if isinstance(s, bool) or not isinstance(s, int):
            if isinstance(s, float) and s.is_integer():
                s = int(s)
            else:
                raise PlanInputError(key + ".slot", "must be an integer slot index, not %s" % (
                    repr(s) if isinstance(s, (int, float)) and not isinstance(s, bool) else _kind(s)))
        if not 0 <= s <= n:
            raise PlanInputError(key + ".slot", "%d is outside the horizon 0..%d (slot %d: its end)" % (s, n, n))
        e["departures"].append({"slot": s, "min_soc": _number(d["min_soc"], key + ".min_soc", lo=0, hi=1)})
    out["ev"] = e
    out["reserve_soc"] = _number(obj["reserve_soc"], "reserve_soc", lo=0, hi=1)
    out["wear_cost_dkk_per_kwh"] = _number(obj["wear_cost_dkk_per_kwh"], "wear_cost_dkk_per_kwh", lo=0)
    out["grid_import_limit_kw"] = _number(obj["grid_import_limit_kw"], "grid_import_limit_kw", lo=0)
    out["grid_export_limit_kw"] = _number(obj["grid_export_limit_kw"], "grid_export_limit_kw", lo=0)
    if not isinstance(obj["allow_export"], bool):
        raise PlanInputError("allow_export", "must be true or false, not %s" % _kind(obj["allow_export"]))
    out["allow_export"] = obj["allow_export"]

    # a slot whose load no EV power can bring within the grid limits: refused by name here
    # (the solver would only say "infeasible"); limits that bind over time are diagnosed by solve()
    imp_lim = out["grid_import_limit_kw"]
    exp_lim = out["grid_export_limit_kw"] if out["allow_export"] else 0.0
    for t in range(n):
        dmax = e["max_discharge_kw"] if plugged[t] else 0.0
        cmax = e["max_charge_kw"] if plugged[t] else 0.0
        ev_part = " and the EV is not plugged in"
        if load[t] - dmax > imp_lim + 1e-9:
            raise PlanInputError("home_load_kw[%d]" % t, "%g kW exceeds grid_import_limit_kw %g%s" % (
                load[t], imp_lim, " plus the EV's %g kW discharge" % dmax if plugged[t] else ev_part))
        if -load[t] - cmax > exp_lim + 1e-9:
            raise PlanInputError("home_load_kw[%d]" % t, "%g kW (a surplus) exceeds what the grid may take (%g kW%s)%s"
                                 % (load[t], exp_lim, "" if out["allow_export"] else ", allow_export is false",
                                    " plus the EV's %g kW charge" % cmax if plugged[t] else ev_part))
    return out


def _utc(v):
    if not isinstance(v, str):
        raise PlanInputError("start_utc", "must be an ISO 8601 time string, not %s" % _kind(v))
    try:
        datetime.datetime.fromisoformat(v)
    except ValueError:
        raise PlanInputError("start_utc", "%r is not an ISO 8601 date and time" % v) from None
    # any offset names one instant (Z, +00:00 or another); no offset is read as UTC. The
    # planner does not use the time: slots are counted from it.
    return v


# ---------------------------------------------------------------- the model
class _Model:
    """The spec's problem as one sparse LP/MILP (rows in CSR), columns:

    c[t], d[t]  charge / discharge AC power (kW), 0 where unplugged;
    i[t], x[t]  grid import / export (kW), <= the limits (export 0 unless allowed);
    E[0..N]     battery energy (kWh), E[0] fixed, min_soc*cap <= E <= cap;
    s[r]        reserve shortfall of reserve row r (kWh), u[k] departure k's shortfall (kWh),
                fixed at 0 until a shortfall is allowed;
    y[t]        with binaries=True, where a slot can do both: 1 it may charge, 0 it may discharge.
    """

    def __init__(self, p, terminal_value, binaries=False):
        ev = p["ev"]
        n = len(p["home_load_kw"])
        self.n = n
        dt = p["slot_minutes"] / 60.0
        cap = ev["capacity_kwh"]
        eta_c, eta_d = ev["charge_efficiency"], ev["discharge_efficiency"]
        plugged = np.array(ev["plugged"], dtype=bool)
        load = np.array(p["home_load_kw"], dtype=float)
        drive = np.array(ev["drive_kwh"], dtype=float)
        pi = np.array(p["import_price_dkk_per_kwh"], dtype=float)
        pe = np.array(p["export_price_dkk_per_kwh"], dtype=float)
        cmax = np.where(plugged, ev["max_charge_kw"], 0.0)
        dmax = np.where(plugged, ev["max_discharge_kw"], 0.0)
        imp_lim = p["grid_import_limit_kw"]
        exp_lim = p["grid_export_limit_kw"] if p["allow_export"] else 0.0
        e0 = ev["soc"] * cap
        e_min = ev["min_soc"] * cap
        r_kwh = p["reserve_soc"] * cap
        res_t = np.flatnonzero(plugged) if r_kwh > e_min else np.zeros(0, dtype=int)
        deps = ev["departures"]
        nr, k = len(res_t), len(deps)
        inf = math.inf

        C, D, I, X, E = 0, n, 2 * n, 3 * n, 4 * n
        S = 5 * n + 1
        U = S + nr
        Y = U + k
        both = np.flatnonzero((cmax > 0) & (dmax > 0)) if binaries else np.zeros(0, dtype=int)
        nb = len(both)
        ncol = Y + nb
        self.C, self.D, self.E, self.S, self.U, self.slack_end = C, D, E, S, U, U + k
        self.binary_cols = (Y + np.arange(nb)).astype(np.int32)
        lo = np.zeros(ncol)
        hi = np.zeros(ncol)
        hi[C:C + n] = cmax
        hi[D:D + n] = dmax
        hi[I:I + n] = imp_lim
        hi[X:X + n] = exp_lim
        lo[E] = hi[E] = e0
        lo[E + 1:E + n + 1] = e_min
        hi[E + 1:E + n + 1] = cap
        hi[S:Y] = 0.0  # shortfall slacks: opened only when the targets cannot all be met
        hi[Y:] = 1.0
        cost = np.zeros(ncol)
        cost[I:I + n] = dt * pi
        cost[X:X + n] = -dt * pe
        cost[D:D + n] = dt * p["wear_cost_dkk_per_kwh"] / eta_d
        cost[E + n] = -terminal_value

        t = np.arange(n)
        blocks = []  # (row lower, row upper, column index matrix, value matrix): one row per matrix row
        # E[t+1] - E[t] - eta_c dt c[t] + dt/eta_d d[t] = -drive[t]
        blocks.append((-drive, -drive, np.stack([E + t + 1, E + t, C + t, D + t], 1),
                       np.tile([1.0, -1.0, -eta_c * dt, dt / eta_d], (n, 1))))
        # i[t] - x[t] - c[t] + d[t] = load[t]: import and export need no binary. A slot with
        # both > 0 moves no more energy than one with both lowered by the smaller and costs
        # (import price - export price) >= 0 more per kW (the spec's export <= import), and
        # lowering both keeps them within their limits, so an optimum never needs both.
        blocks.append((load, load, np.stack([I + t, X + t, C + t, D + t], 1),
                       np.tile([1.0, -1.0, -1.0, 1.0], (n, 1))))
        # E[t] + s[r] >= reserve where plugged; E[slot] + u[k] >= departure target
        blocks.append((np.full(nr, r_kwh), np.full(nr, inf), np.stack([E + res_t, S + np.arange(nr)], 1),
                       np.ones((nr, 2))))
        dep_slot = np.array([d["slot"] for d in deps], dtype=int)
        dep_kwh = np.array([d["min_soc"] * cap for d in deps], dtype=float)
        blocks.append((dep_kwh, np.full(k, inf), np.stack([E + dep_slot, U + np.arange(k)], 1).reshape(k, 2),
                       np.ones((k, 2))))
        # c[t] <= cmax y[t], d[t] <= dmax (1 - y[t]): charge XOR discharge. Charging and
        # discharging at once would burn (1/eta_d - eta_c) kWh per kWh moved: worth it to the
        # optimiser when energy has negative value (negative prices, a full battery). Only in
        # the MILP: the LP comes first and is exact when it does not do both (_Solver.run).
        yb = Y + np.arange(nb)
        blocks.append((np.full(nb, -inf), np.zeros(nb), np.stack([C + both, yb], 1),
                       np.stack([np.ones(nb), -cmax[both]], 1)))
        blocks.append((np.full(nb, -inf), dmax[both], np.stack([D + both, yb], 1),
                       np.stack([np.ones(nb), dmax[both]], 1)))
        row_lo = np.concatenate([b[0] for b in blocks])
        row_hi = np.concatenate([b[1] for b in blocks])
        widths = np.concatenate([np.full(len(b[0]), b[2].shape[1] if len(b[0]) else 0, dtype=np.int32)
                                 for b in blocks])
        index = np.concatenate([b[2].reshape(-1) for b in blocks]).astype(np.int32)
        value = np.concatenate([b[3].reshape(-1) for b in blocks]).astype(float)
        start = np.zeros(len(row_lo) + 1, dtype=np.int32)
        np.cumsum(widths, out=start[1:])
        self.ncol, self.nrow = ncol, len(row_lo)
        self.lo, self.hi, self.cost = lo, hi, cost
        self.row_lo, self.row_hi = row_lo, row_hi
        self.start, self.index, self.value = start, index, value
        self.n_slack = nr + k
        self.res_t, self.dep_slot = res_t, dep_slot

    def load_into(self, h):
        integrality = np.zeros(self.ncol, dtype=np.int32)
        integrality[self.binary_cols] = 1
        h.clearModel()
        # format 2: rowwise; sense 1: minimise
        h.passModel(self.ncol, self.nrow, len(self.value), 2, 1, 0.0, self.cost, self.lo, self.hi,
                    self.row_lo, self.row_hi, self.start[:-1].copy(), self.index, self.value, integrality)


# ---------------------------------------------------------------- HiGHS
_local = threading.local()


def _highs():
    """A HiGHS instance per thread, made once (its options set once; clearModel() between plans)."""
    h = getattr(_local, "h", None)
    if h is None:
        # the first Highs() of a process prints a banner on C-level stdout: keep it off our
        # output (`--json -` writes the plan there)
        try:
            sys.stdout.flush()
        except (OSError, ValueError, AttributeError):  # closed or replaced: nothing buffered to order
            pass
        try:
            saved = os.dup(1)
        except OSError:  # no fd 1: nothing to protect
            saved = None
        if saved is None:
            h = highspy.Highs()
        else:
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, 1)
                h = highspy.Highs()
            finally:
                os.dup2(saved, 1)
                os.close(saved)
                os.close(devnull)
        for k, v in _OPTIONS.items():
            h.setOptionValue(k, v)
        _local.h = h
        _local.status = highspy.HighsModelStatus
    return h


# Chosen deliberately (docs/planner.md): one thread (a 2-core shared machine; the models are
# small, thread start-up costs more than it saves), no log, a MIP gap that leaves ~1e-6 of the
# cost, presolve on (it removes the fixed columns and the empty slack columns).
_OPTIONS = {"output_flag": False, "threads": 1, "presolve": "on", "mip_rel_gap": 1e-6, "mip_abs_gap": 1e-7,
            "random_seed": 0}


class _Solver:
    """Solves one plan input through its stages, switching to the MILP only where needed;
    the current stage (shortfall allowed or not, its bound, its objective) is state, so that
    a switch to the MILP reloads the model and carries on where the LP stood."""

    def __init__(self, p, tv, time_limit_s, t_end):
        self.p, self.tv = p, tv
        self.h = _highs()
        self.t_end = t_end
        self.h.setOptionValue("time_limit", math.inf)
        self.m = _Model(p, tv)
        self.integer = False
        self.optimal = True
        self.solves = 0
        self.slack_ub = None  # upper bounds of the shortfall slacks (None: all 0, targets hard)
        self.bound = None  # total shortfall <= bound (stage 2)
        self.stage1 = False  # objective: total shortfall (stage 1), else cost
        self._load()

    def _load(self):
        self.m.load_into(self.h)
        if self.slack_ub is not None:
            self.set_slack_ub(self.slack_ub)
        if self.stage1:
            self.set_objective(stage1=True)
        if self.bound is not None:
            self.set_bound(self.bound)

    def set_slack_ub(self, ub):
        """Upper bounds of the shortfall slacks (reserve rows, then departures); None: 0."""
        m = self.m
        self.slack_ub = ub
        idx = np.arange(m.S, m.slack_end, dtype=np.int32)
        self.h.changeColsBounds(len(idx), idx, np.zeros(len(idx)), np.zeros(len(idx)) if ub is None else ub)

    def set_objective(self, stage1):
        m = self.m
        self.stage1 = stage1
        cost = m.cost
        if stage1:
            cost = np.zeros(m.ncol)
            cost[m.S:m.slack_end] = 1.0
        self.h.changeColsCost(m.ncol, np.arange(m.ncol, dtype=np.int32), cost)

    def set_bound(self, bound):
        """Total shortfall <= bound (one extra row, replaced when set again; None: no row)."""
        m, h = self.m, self.h
        if h.getNumRow() > m.nrow:
            h.deleteRows(1, np.array([m.nrow], dtype=np.int32))
        self.bound = bound
        if bound is not None:
            idx = np.arange(m.S, m.slack_end, dtype=np.int32)
            h.addRow(-math.inf, bound, len(idx), idx, np.ones(len(idx)))

    def run(self, exclusive=True):
        """Solve the current stage. exclusive: the result must charge or discharge, not both,
        in each slot: the LP first, and only if its optimum does both in some slot, the MILP
        (an LP optimum that is feasible for the MILP is the MILP's optimum, since the LP is a
        relaxation). Returns the column values, or None when infeasible."""
        status = _local.status
        h = self.h
        while True:
            m = self.m
            if self.t_end != math.inf:
                left = self.t_end - time.perf_counter()
                if left <= 0:
                    raise PlanTimeout("planner: time limit reached before a plan was found")
                h.setOptionValue("time_limit", left)
            h.run()
            self.solves += 1
            st = h.getModelStatus()
            if st in (status.kInfeasible, status.kUnboundedOrInfeasible):
                return None
            sol = np.asarray(h.getSolution().col_value)
            if st != status.kOptimal:
                # a MILP's incumbent is a plan (one direction per slot); an LP cut short is not
                if (st == status.kTimeLimit and self.integer and len(sol) == h.getNumCol()
                        and h.getInfo().primal_solution_status == 2):
                    self.optimal = False
                    return sol
                if st == status.kTimeLimit:
                    raise PlanTimeout("planner: time limit reached before a plan was found")
                raise RuntimeError("planner: HiGHS ended with %s" % h.modelStatusToString(st))
            if not exclusive:
                return sol
            c, d = sol[m.C:m.C + m.n], sol[m.D:m.D + m.n]
            if self.integer or not np.any(np.minimum(c, d) > SIMULTANEOUS_KW):
                return sol
            # binaries in every slot at once: adding them lazily, only where the relaxation
            # did both, was slower (measured: each round's MILP has a weaker relaxation and
            # the simultaneous slots move, 2-11 rounds; docs/planner.md)
            self.integer = True
            self.m = _Model(self.p, self.tv, binaries=True)
            self._load()

    def with_shortfall(self, least):
        """Stage 2 with each target's least shortfall known (least_shortfalls()): the least
        cost with every shortfall held at its least (plus a hair, of the order of the solver's
        tolerance). Holding each is the same as holding their sum: no plan misses a target
        by less than the fullest battery does, so a plan at the least sum is at the least of
        each."""
        self.set_slack_ub(np.where(least > 1e-9, least + 1e-9 * (1.0 + least), 0.0))
        return self.run()

    def lexicographic(self):
        """The targets cannot all be met and the least shortfall is not known in closed form:
        stage 1 minimises the total missing kWh (an LP), stage 2 the cost with the shortfall
        held at that minimum. Returns None when even stage 1 is infeasible."""
        self.set_slack_ub(np.full(self.m.n_slack, math.inf))
        sol = None
        for attempt in range(3):
            self.set_bound(None)
            self.set_objective(stage1=True)
            # stage 1 needs only the least shortfall, not a plan: the LP's optimum is the
            # MILP's too unless energy must be burnt to stay feasible (a surplus nobody takes
            # on a full battery); then stage 2 below is infeasible and stage 1 runs again as
            # the MILP (self.integer is set by then)
            sol = self.run(exclusive=False)
            if sol is None:
                return None
            best = float(np.sum(sol[self.m.S:self.m.slack_end]))
            self.set_objective(stage1=False)
            self.set_bound(best + (1e-7 + 1e-8 * best if attempt == 0 else 1e-5 + 1e-6 * best))
            sol2 = self.run()
            if sol2 is not None:
                return sol2
        self.optimal = False  # numerically stuck: the least shortfall, its cost not minimised
        return sol


def max_energy(p):
    """The most energy the battery can hold at the start of each slot, 0..N (kWh), or None
    when some slot forces charging (a home surplus above what the grid may take), where
    the greedy below is no upper bound of every plan.

    Charging at full power (within the import limit) whenever plugged, never discharging but
    what the import limit forces, stopping at the capacity: E_max[t+1] depends only on
    E_max[t], monotonically, so by induction no plan holds more at any t; and since each
    shortfall falls as E rises, this trajectory's shortfall is the least total shortfall
    (stage 1 in closed form). It is itself a plan (one direction per slot, within every
    limit) whenever it stays at or above min_soc."""
    ev = p["ev"]
    dt = p["slot_minutes"] / 60.0
    cap = ev["capacity_kwh"]
    eta_c, eta_d = ev["charge_efficiency"], ev["discharge_efficiency"]
    imp_lim = p["grid_import_limit_kw"]
    exp_lim = p["grid_export_limit_kw"] if p["allow_export"] else 0.0
    e = [ev["soc"] * cap]
    for t, load in enumerate(p["home_load_kw"]):
        if -load > exp_lim:
            return None
        x = e[-1] - ev["drive_kwh"][t]
        if ev["plugged"][t]:
            if load > imp_lim:
                x -= (load - imp_lim) / eta_d * dt
            else:
                x = min(cap, x + eta_c * min(ev["max_charge_kw"], imp_lim - load) * dt)
        e.append(x)
    return e


def least_shortfalls(p, m, emax):
    """What the trajectory emax misses of each target, in the order of the model's slack
    columns: the reserve rows (m.res_t), then the departures (kWh, >= 0)."""
    ev = p["ev"]
    cap = ev["capacity_kwh"]
    e = np.asarray(emax)
    res = p["reserve_soc"] * cap - e[m.res_t]
    dep = np.array([d["min_soc"] * cap for d in ev["departures"]]) - e[m.dep_slot] if len(m.dep_slot) else np.zeros(0)
    return np.maximum(np.concatenate([res, dep]), 0.0)


def solve(problem, *, terminal_value_dkk_per_kwh=0.0, time_limit_s=None):
    """The least-cost plan of `problem` (a plan input, validated here), exactly as the spec
    defines it. Returns a dict with the spec's output keys:

    - ``cost_dkk``: the spec's cost of exactly the returned powers (recomputed from them);
    - ``slots``: ``[{"p_kw", "soc"}]``, soc at the start of each slot (recomputed from p_kw);
    - ``shortfall``: ``[{"slot", "kind": "reserve"|"departure", "kwh"}]``, every reserve slot
      and departure the plan misses by more than 1e-6 kWh; the plan first minimises the total
      missing kWh, then the cost at that minimum;
    - ``solve_ms``: wall time of this call;

    and, for Python callers, ``p_kw`` (list), ``soc`` (N+1 values, soc[N] at the end),
    ``soc_end``, ``energy_kwh`` (N+1, battery side), ``grid_kw`` (import > 0), ``terminal_value_dkk``
    (terminal value x E_N, not in cost_dkk), ``milp`` (whether binaries were needed), ``solves``,
    ``optimal`` (False only when time_limit_s cut a MILP short: the best plan found).

    terminal_value_dkk_per_kwh (not in the JSON spec, >= 0) credits each kWh left in the
    battery at the end (objective - value * E_N), for rolling horizons; cost_dkk excludes it.
    Raises PlanInputError for inputs that break a rule or whose hard limits (min_soc with the
    driving, grid limits) no plan can meet, naming the place; PlanTimeout when time_limit_s
    runs out before any plan is found."""
    t0 = time.perf_counter()
    p = validate(problem)
    # >= 0: energy can always stay in the battery for free, so none is worth less than
    # nothing (a negative value would also make the LP burn energy and force the MILP)
    tv = _number(terminal_value_dkk_per_kwh, "terminal_value_dkk_per_kwh", lo=0)
    if time_limit_s is not None:
        _number(time_limit_s, "time_limit_s", lo=0, lo_open=True)
    t_end = t0 + (time_limit_s if time_limit_s is not None else math.inf)
    sv = _Solver(p, tv, time_limit_s, t_end)
    emax = max_energy(p)
    e_min = p["ev"]["min_soc"] * p["ev"]["capacity_kwh"]
    if emax is not None and min(emax[1:]) < e_min - 1e-9:
        sol = None  # even the fullest battery breaks min_soc somewhere: no plan
    elif emax is not None:
        least = least_shortfalls(p, sv.m, emax)
        sol = sv.with_shortfall(least) if np.any(least > 1e-9) else sv.run()
        if sol is None and sv.m.n_slack:  # numerics only (the greedy plan is feasible)
            sol = sv.lexicographic()
    else:
        sol = sv.run()
        if sol is None and sv.m.n_slack:
            sol = sv.lexicographic()
    if sol is None:
        _diagnose(p, tv)
    m = sv.m
    out = _result(p, m, sol, tv)
    out["milp"] = sv.integer
    out["solves"] = sv.solves
    out["optimal"] = sv.optimal
    out["solve_ms"] = round((time.perf_counter() - t0) * 1000.0, 3)
    return out


def _prefix(p, k):
    """The plan input cut to its first k slots (departures after slot k dropped)."""
    q = dict(p)
    for key in ("import_price_dkk_per_kwh", "export_price_dkk_per_kwh", "home_load_kw"):
        q[key] = p[key][:k]
    ev = dict(p["ev"])
    ev["plugged"], ev["drive_kwh"] = ev["plugged"][:k], ev["drive_kwh"][:k]
    ev["departures"] = [d for d in ev["departures"] if d["slot"] <= k]
    q["ev"] = ev
    return q


def _feasible(q):
    """Whether some plan meets the hard limits of q (targets may be missed), exactly (the
    MILP where the LP burns energy)."""
    sv = _Solver(q, 0.0, None, math.inf)
    sv.set_slack_ub(np.full(sv.m.n_slack, math.inf))
    return sv.run() is not None


def _diagnose(p, tv):
    """No plan meets the hard limits: raise PlanInputError naming the first slot by which
    none can. The horizon's prefixes are feasible up to some length k and infeasible from
    k + 1 on (a longer prefix only adds limits), so a bisection finds the slot j = k whose
    addition breaks them; only a trip, a load above the import limit (forced discharge) or
    a surplus beyond the export limit (forced charge) in slot j can do that."""
    n = len(p["home_load_kw"])
    lo, hi = 0, n  # the prefix of length lo is feasible, of length hi is not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _feasible(_prefix(p, mid)):
            lo = mid
        else:
            hi = mid
    j = hi - 1
    ev = p["ev"]
    load = p["home_load_kw"][j]
    imp_lim = p["grid_import_limit_kw"]
    exp_lim = p["grid_export_limit_kw"] if p["allow_export"] else 0.0
    emax = max_energy(_prefix(p, hi))
    short = ""
    if emax is not None and emax[-1] < ev["min_soc"] * ev["capacity_kwh"]:
        short = " by %.4g kWh" % (ev["min_soc"] * ev["capacity_kwh"] - emax[-1])
    if ev["drive_kwh"][j] > 0:
        raise PlanInputError("ev.drive_kwh[%d]" % j, "the driving takes the EV below ev.min_soc%s at the end of "
                             "slot %d, however much it charges before (power, grid limit and time allow no more)"
                             % (short, j))
    if load > imp_lim:
        raise PlanInputError("home_load_kw[%d]" % j, "above grid_import_limit_kw %g: the EV must carry the rest "
                             "and falls below ev.min_soc%s at the end of slot %d" % (imp_lim, short, j))
    if -load > exp_lim:
        raise PlanInputError("home_load_kw[%d]" % j, "a surplus of %g kW above what the grid may take (%g kW%s): "
                             "the EV must store it and is full by the end of slot %d"
                             % (-load, exp_lim, "" if p["allow_export"] else ", allow_export is false", j))
    raise PlanInputError("home_load_kw[%d]" % j, "no plan meets the hard limits (min_soc, capacity, grid limits) "
                         "by the end of slot %d" % j)


def _result(p, m, sol, tv):
    """The plan from the solver's powers, rounded, with soc, cost and shortfall recomputed from
    the rounded powers by the spec's formulas (so the output is self-consistent whatever the
    solver's tolerances)."""
    ev = p["ev"]
    n = m.n
    dt = p["slot_minutes"] / 60.0
    cap = ev["capacity_kwh"]
    eta_c, eta_d = ev["charge_efficiency"], ev["discharge_efficiency"]
    raw = sol[m.C:m.C + n] - sol[m.D:m.D + n]
    # a power within the solver's tolerance of 0 or of a power limit is that value
    cmax, dmax = m.hi[m.C:m.C + n], m.hi[m.D:m.D + n]
    raw = np.where(np.abs(raw) < SNAP_KW, 0.0, raw)
    raw = np.where(np.abs(raw - cmax) < SNAP_KW, cmax, raw)
    raw = np.where(np.abs(raw + dmax) < SNAP_KW, -dmax, raw)
    pk = [round(float(v), ROUND_KW) + 0.0 for v in raw]
    e = [ev["soc"] * cap]
    cost = 0.0
    grid = []
    wear = p["wear_cost_dkk_per_kwh"]
    for t in range(n):
        c, d = max(pk[t], 0.0), max(-pk[t], 0.0)
        e.append(e[-1] + (eta_c * c - d / eta_d) * dt - ev["drive_kwh"][t])
        g = p["home_load_kw"][t] + pk[t]
        grid.append(g)
        cost += dt * (p["import_price_dkk_per_kwh"][t] * max(g, 0.0) - p["export_price_dkk_per_kwh"][t] * max(-g, 0.0))
        cost += wear * dt * d / eta_d
    soc = [round(x / cap, ROUND_SOC) + 0.0 for x in e]
    short = []
    r_kwh = p["reserve_soc"] * cap
    for t in range(n):
        if ev["plugged"][t] and r_kwh - e[t] > SHORTFALL_KWH:
            short.append({"slot": t, "kind": "reserve", "kwh": round(r_kwh - e[t], ROUND_KWH)})
    for dep in ev["departures"]:
        miss = dep["min_soc"] * cap - e[dep["slot"]]
        if miss > SHORTFALL_KWH:
            short.append({"slot": dep["slot"], "kind": "departure", "kwh": round(miss, ROUND_KWH)})
    short.sort(key=lambda s: (s["slot"], s["kind"] != "reserve"))
    return {"cost_dkk": round(cost, 6), "slots": [{"p_kw": pk[t], "soc": soc[t]} for t in range(n)],
            "shortfall": short, "p_kw": pk, "soc": soc, "soc_end": soc[-1], "energy_kwh": e,
            "grid_kw": grid, "terminal_value_dkk": tv * e[-1]}
