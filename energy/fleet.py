"""A fleet of homes as one flexible resource: N different homes drawn from documented
distributions, each simulated with every strategy of energy/simulate.py, and per slot the
flexibility the fleet can deliver around its planned (v2x) operation.

Guarantees:
- home i of seed S is the same home whatever N, engine or worker runs it: its draws come from
  random.Random("fleet:S:i") (a string seed hashes the same in every process);
- per home, `run_home` returns its costs and its flexibility in whole watts per slot; the fleet
  sums are integer sums, so they do not depend on the order homes finish in, and a run with
  `--workers 1`, `--workers 2` or on Ray gives the same numbers;
- `flex_up` / `flex_down` of a home at slot t is the largest constant change of its EV power
  (less charging or more discharging / more charging or less discharging) over the hour
  [t, t+4 slots) that keeps every departure target and the backup reserve of the home's
  actual v2x run, given that the EV recovers a deficit afterwards as fast as its charger and
  the main fuse allow (`flexibility`, docs/fleet.md); 0 where the EV is not plugged in for the
  whole hour.

The distributions (DISTRIBUTIONS, docs/fleet.md "The homes") name their sources; where a
figure is a project assumption, they say so.
"""

import math
import random

import numpy as np

from energy import simulate

FLEX_SLOTS = 4  # an hour of 15-minute slots: the sustain time the flexibility must hold
BISECT_STEPS = 40  # the energy-limited power found to ~max_kw / 2**40: far below a watt

# Each entry: what it is, how it is drawn, where the figures come from (docs/fleet.md).
DISTRIBUTIONS = {
    "household.annual_kwh": "lognormal, median 4 000 kWh, sigma 0.35, clipped to [1 500, 9 000]: the "
                            "default house (Gram-Hanssen 2005 via Elsparefonden: 4 280 kWh for 140 m2 "
                            "and 3 persons) with the spread of household sizes (PROJECT ASSUMPTION)",
    "household.heat_pump": "30 % of homes (PROJECT ASSUMPTION: no sourced share of Danish houses with "
                           "a heat pump was at hand)",
    "household.heat_pump_kwh": "uniform 3 500-6 500 kWh/year around handyhand.dk's 5 246-5 746 kWh for "
                               "ground-source and air-to-water pumps (energy/household.py)",
    "ev.capacity_kwh": "usable battery of common Danish BEVs (PROJECT ASSUMPTION on the model mix): "
                       "58 kWh (VW ID.3 Pro) 20 %, 64.7 kWh (BMW iX1) 15 %, 77 kWh (VW ID.4, Skoda "
                       "Enyaq 85) 40 %, 94 kWh (Polestar 4 long range, the pilot's car) 25 %",
    "ev.charge_efficiency": "uniform 0.88-0.94 AC to battery (PROJECT ASSUMPTION: on-board chargers at "
                            "11 kW are ~90-94 % efficient, less at part load)",
    "ev.discharge_efficiency": "uniform 0.88-0.94 battery to AC (as charge_efficiency)",
    "use.commute": "75 % of cars commute on weekdays (PROJECT ASSUMPTION), round trip lognormal with "
                   "median 35 km and sigma 0.6, clipped to [4, 200] km, mean ~42 km against the 44 km "
                   "average Danish commute (Dansk Industri 2021 after Danmarks Statistik); leaving "
                   "06:30-08:45 (15-min steps), away 8.5-9.5 h",
    "use.saturday_trip": "60 % of cars, 40-250 km (uniform), 10:00-18:00 (PROJECT ASSUMPTION; the "
                         "national travel survey TU: 40.1 km per person and day on average, DTU)",
    "use.plug_in": "70 % plug in when they come home, 30 % only at 20:00-21:00 after the evening "
                   "(PROJECT ASSUMPTION: a plug-in habit that keeps cars off the 17-21 peak)",
    "use.departure_soc": "0.6 (20 %), 0.7 (30 %), 0.8 (40 %), 0.9 (10 %) (PROJECT ASSUMPTION)",
    "reserve_soc": "0.2 (30 %), 0.3 (50 %), 0.4 (20 %): the backup reserve the household keeps "
                   "(PROJECT ASSUMPTION around the site default 0.3)",
    "tariff": "the price area's grid-company tariffs (energy/data/tariffs), weighted by each "
              "company's customers where the tariff file gives them, else equally",
}


class FleetError(ValueError):
    """A fleet that cannot be drawn or run: str() names the option or file."""


def _choice(rng, pairs):
    x = rng.random()
    acc = 0.0
    for v, p in pairs:
        acc += p
        if x < acc:
            return v
    return pairs[-1][0]


def _hhmm(minutes):
    return "%02d:%02d" % (minutes // 60, minutes % 60)


def draw_home(seed, i, area_tariffs):
    """Home i of fleet seed `seed`: a complete site dict (energy/site.py) plus "id".
    area_tariffs: [(name, weight)] of the price area, in a fixed order."""
    from energy import site as site_mod

    rng = random.Random("fleet:%d:%d" % (seed, i))
    s = site_mod.default_site()
    hh = s["household"]
    hh["annual_kwh"] = round(min(9000.0, max(1500.0, 4000.0 * math.exp(rng.gauss(0.0, 0.35)))), 1)
    hh["heat_pump"] = rng.random() < 0.30
    hh["heat_pump_kwh"] = round(rng.uniform(3500.0, 6500.0), 1)
    hh["seed"] = rng.randrange(1 << 30)
    ev = s["ev"]
    ev["capacity_kwh"] = _choice(rng, ((58.0, 0.20), (64.7, 0.15), (77.0, 0.40), (94.0, 0.25)))
    ev["charge_efficiency"] = round(rng.uniform(0.88, 0.94), 3)
    ev["discharge_efficiency"] = round(rng.uniform(0.88, 0.94), 3)
    trips = []
    commute = rng.random() < 0.75
    km = round(min(200.0, max(4.0, 35.0 * math.exp(rng.gauss(0.0, 0.6)))), 1)
    dep = 390 + 15 * rng.randrange(10)  # 06:30 .. 08:45
    ret = dep + 15 * rng.randrange(34, 39)  # 8.5 .. 9.5 h later
    if commute:
        trips.append({"days": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                      "depart": _hhmm(dep), "return": _hhmm(ret), "km": km})
    if rng.random() < 0.60:
        trips.append({"days": ["saturday"], "depart": "10:00", "return": "18:00",
                      "km": round(rng.uniform(40.0, 250.0), 1)})
    late = rng.random() < 0.30
    plug_at = 20 * 60 + 60 * rng.randrange(2)  # 20:00 or 21:00
    if late:
        # the car stands at home unplugged from its return until plug_at: a trip of 0 km
        for tr in list(trips):
            r = int(tr["return"][:2]) * 60 + int(tr["return"][3:])
            if r < plug_at:
                trips.append({"days": list(tr["days"]), "depart": tr["return"], "return": _hhmm(plug_at), "km": 0.0})
    s["use"]["trips"] = trips
    s["use"]["departure_soc"] = _choice(rng, ((0.6, 0.2), (0.7, 0.3), (0.8, 0.4), (0.9, 0.1)))
    s["reserve_soc"] = _choice(rng, ((0.2, 0.3), (0.3, 0.5), (0.4, 0.2)))
    ev["initial_soc"] = s["use"]["departure_soc"]
    s["tariff"] = _choice(rng, _normalised(area_tariffs))
    site_mod.check(s, "home %d" % i)
    s["id"] = i
    s["habits"] = {"commute": commute, "late_plug_in": late}
    return s


def _normalised(pairs):
    tot = float(sum(w for _, w in pairs))
    return [(n, w / tot) for n, w in pairs]


def area_tariffs(area):
    """[(name, weight)] of the shipped tariffs of a price area, by name; weight = the grid
    company's customers where the file gives them, else 1. FleetError when the area has none."""
    from energy import tariffs

    out = [(name, float(customers or 1)) for name, customers in tariffs.area_tariffs(area)]
    if not out:
        known = sorted({tariffs.load_tariff(n).area for n in tariffs.available()})
        raise FleetError("--area: no tariff for area %r (areas with tariffs: %s)" % (area, ", ".join(known)))
    return out


# ------------------------------------------------------------------ flexibility
def flexibility(w, r):
    """(up_w, down_w): int64 arrays of n, the home's flexibility in watts for an hour from each
    slot, around the executed run r of world w (module docstring, docs/fleet.md)."""
    site = w.site
    ev = site["ev"]
    n = w.n
    dt = w.dt_h
    cap = ev["capacity_kwh"]
    eta_c, eta_d = ev["charge_efficiency"], ev["discharge_efficiency"]
    plugged = np.array(w.plugged, dtype=bool)
    load = np.array(w.load_kw)
    c = np.array(r.charge_kw)
    d = np.array(r.discharge_kw)
    e = np.array(r.soc) * cap  # n + 1, at each slot's start
    floor = max(ev["min_soc"], site["reserve_soc"]) * cap
    cmax = np.minimum(ev["max_charge_kw"], np.maximum(0.0, site["grid_import_limit_kw"] - load))

    # B[k]: the largest deficit the start of slot k allows (reserve when plugged, target at a
    # departure); a baseline already below a bound allows none
    inf = float("inf")
    B = np.full(n + 1, inf)
    B[:n][plugged] = np.maximum(0.0, e[:n][plugged] - floor)
    for s, soc in w.departures:
        B[s] = min(B[s], max(0.0, e[s] - soc * cap))
    if w.plugged[n - 1]:
        B[n] = min(max(0.0, e[n] - floor), max(0.0, e[n] - w.end_soc * cap))
    # h[k]: the energy slot k can add over the baseline (stop discharging, charge flat out)
    h = np.where(plugged, d * dt / eta_d + np.maximum(0.0, cmax - c) * eta_c * dt, 0.0)
    # G[k]: the largest deficit at the start of slot k that all later bounds allow when the EV
    # recovers as fast as it can from k on (G[k] = min(B[k], G[k+1] + h[k]))
    G = np.empty(n + 1)
    G[n] = B[n]
    Bl, hl = B.tolist(), h.tolist()
    g = Bl[n]
    out = [0.0] * (n + 1)
    out[n] = g
    for k in range(n - 1, -1, -1):
        g = min(Bl[k], g + hl[k])
        out[k] = g
    G[:] = out

    m = n - FLEX_SLOTS + 1  # hours that fit in the period start at slots 0 .. m-1
    if m <= 0:
        return np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    L = FLEX_SLOTS
    win = np.ones(m, dtype=bool)
    for j in range(L):
        win &= plugged[j:j + m]
    p = c - d

    # up: u kW less charging / more discharging in each slot of the hour
    u_pow = np.full(m, inf)
    for j in range(L):
        pj, lj = p[j:j + m], load[j:j + m]
        u_pow = np.minimum(u_pow, np.minimum(pj + ev["max_discharge_kw"], lj + pj + site["grid_export_limit_kw"]))
    u_pow = np.where(win, np.maximum(0.0, u_pow), 0.0)
    bounds = [B[j:j + m] for j in range(1, L)] + [G[L:L + m]]
    # the hour first takes charging away (eta_c per kWh), then discharges (1/eta_d per kWh)
    up = _bisect(u_pow, _cumulative_within([c[j:j + m] for j in range(L)], eta_c * dt, dt / eta_d, bounds))

    # down: u kW more charging / less discharging, within the fuse and a full battery
    v_pow = np.full(m, inf)
    for j in range(L):
        v_pow = np.minimum(v_pow, cmax[j:j + m] - p[j:j + m])
    v_pow = np.where(win, np.maximum(0.0, v_pow), 0.0)
    rooms = [cap - e[j:j + m] for j in range(1, L + 1)]
    # the hour first stops discharging (1/eta_d per kWh), then charges (eta_c per kWh)
    down = _bisect(v_pow, _cumulative_within([d[j:j + m] for j in range(L)], dt / eta_d, eta_c * dt, rooms))
    up_w = np.zeros(n, dtype=np.int64)
    down_w = np.zeros(n, dtype=np.int64)
    up_w[:m] = np.floor(up * 1000.0).astype(np.int64)
    down_w[:m] = np.floor(down * 1000.0).astype(np.int64)
    return up_w, down_w


def _cumulative_within(first, k_first, k_then, bounds):
    """ok(u) for a change of u kW in each slot of the hour: slot j's energy effect is
    k_first per kW up to first[j] (the baseline's power in the direction the change takes away
    first) and k_then per kW beyond it; true where the running sum stays within bounds[j]
    after every slot j."""
    def ok(u):
        acc = np.zeros_like(u)
        good = np.ones(u.shape, dtype=bool)
        for x, b in zip(first, bounds):
            acc = acc + k_first * np.minimum(u, x) + k_then * np.maximum(0.0, u - x)
            good &= acc <= b + 1e-9
        return good
    return ok


def _bisect(hi, ok):
    """The largest u in [0, hi] (elementwise, to hi / 2**BISECT_STEPS) with ok(u), for ok
    monotone and true at 0."""
    good = ok(hi)
    lo = np.where(good, hi, 0.0)
    top = hi.copy()
    for _ in range(BISECT_STEPS):
        mid = (lo + top) / 2.0
        g = ok(mid) | good
        lo = np.where(g, mid, lo)
        top = np.where(g, top, mid)
    return lo


# ------------------------------------------------------------------ one home
def run_home(item):
    """One home's task (picklable in and out): item = {"seed", "id", "area_tariffs", "start_s",
    "spot", "strategies"}. Returns {"per_home": {...}, "flex_up_w", "flex_down_w",
    "baseline_w", "plugged"} (lists of n ints)."""
    from energy import tariffs

    s = draw_home(item["seed"], item["id"], item["area_tariffs"])
    site = {k: v for k, v in s.items() if k not in ("id", "habits")}
    tariff = tariffs.load_tariff(site["tariff"])
    spot = item["spot"]
    imp, exp = tariffs.price_arrays(tariff, item["start_s"], simulate.SLOT_S, spot)
    w = simulate.World(item["start_s"], len(spot), spot, imp, exp, site, tariff)
    res, runs = simulate.simulate(w, strategies=item["strategies"])
    base = runs["v2x"]
    up, down = flexibility(w, base)
    ev = site["ev"]
    home = {"id": s["id"], "tariff": site["tariff"], "annual_kwh": site["household"]["annual_kwh"],
            "heat_pump": site["household"]["heat_pump"], "ev_kwh": ev["capacity_kwh"],
            "departure_soc": site["use"]["departure_soc"], "reserve_soc": site["reserve_soc"],
            "commute": s["habits"]["commute"], "late_plug_in": s["habits"]["late_plug_in"],
            "cost_dkk": {k: v["cost_dkk"] for k, v in res.items()},
            "departure_misses": {k: v["departure_misses"] for k, v in res.items()},
            "reserve_violation_slots": {k: v["reserve_violation_slots"] for k, v in res.items()},
            "flex_up_kw_mean": round(float(up.mean()) / 1000.0, 3),
            "flex_down_kw_mean": round(float(down.mean()) / 1000.0, 3)}
    return {"per_home": home, "flex_up_w": up.tolist(), "flex_down_w": down.tolist(),
            "baseline_w": [int(round(x * 1000.0)) for x in base.p_kw],
            "plugged": [1 if x else 0 for x in w.plugged]}


def run_batch(item):
    """Homes item["ids"] (a task): their rows and the sums of their per-slot series (ints, so
    a batch's sum is exact and batches add up the same in any order)."""
    n = len(item["spot"])
    agg = Aggregate(n)
    rows = []
    for i in item["ids"]:
        res = run_home(dict(item, id=i))
        rows.append(res["per_home"])
        agg.add(res)
    return {"per_home": rows, "homes": agg.homes, "flex_up_w": agg.up_w.tolist(), "flex_down_w": agg.down_w.tolist(),
            "baseline_w": agg.baseline_w.tolist(), "plugged": agg.plugged.tolist()}


# ------------------------------------------------------------------ the fleet
class Aggregate:
    """The fleet's per-slot sums (int64 watts and counts): all a run keeps besides the small
    per-home rows, however many homes."""

    __slots__ = ("n", "up_w", "down_w", "baseline_w", "plugged", "homes")

    def __init__(self, n):
        self.n = n
        self.up_w = np.zeros(n, dtype=np.int64)
        self.down_w = np.zeros(n, dtype=np.int64)
        self.baseline_w = np.zeros(n, dtype=np.int64)
        self.plugged = np.zeros(n, dtype=np.int64)
        self.homes = 0

    def add(self, res):
        self.up_w += np.asarray(res["flex_up_w"], dtype=np.int64)
        self.down_w += np.asarray(res["flex_down_w"], dtype=np.int64)
        self.baseline_w += np.asarray(res["baseline_w"], dtype=np.int64)
        self.plugged += np.asarray(res["plugged"], dtype=np.int64)
        self.homes += res.get("homes", 1)


# FCR-D (Nordic synchronous area, DK2): hourly products bought by Energinet in D-1/D-2
# auctions; the minimum bid and the bid resolution are 0.1 MW for FCR-N/FCR-D in DK2
# (Energinet, "Ancillary services to be delivered in Denmark – Tender conditions",
# docs/fleet.md). A bid for an hour must be deliverable through the whole hour.
MIN_BID_MW = 0.1
BID_STEP_MW = 0.1


def bids(flex_w, slots_per_hour):
    """Hourly bid capacity (MW) from the per-slot flexibility in W: the flexibility from each
    hour's first slot (sustained through the hour by construction), rounded down to BID_STEP_MW,
    0 below MIN_BID_MW. A trailing part-hour gets no bid."""
    k = len(flex_w) // slots_per_hour
    out = []
    for hr in range(k):
        mw = int(flex_w[hr * slots_per_hour]) / 1e6
        steps = int(mw / BID_STEP_MW + 1e-9)
        b = round(steps * BID_STEP_MW, 1)
        out.append(b if b >= MIN_BID_MW - 1e-9 else 0.0)
    return out


def hour_of_day_table(values, start_s, slot_s_per_value):
    """{local hour: (mean, min, max)} of hourly values starting at start_s (UTC)."""
    from energy import ev_use

    by = {}
    for i, v in enumerate(values):
        hr = ev_use.local_datetime(start_s + i * slot_s_per_value).hour
        by.setdefault(hr, []).append(v)
    return {hr: (sum(vs) / len(vs), min(vs), max(vs)) for hr, vs in sorted(by.items())}
