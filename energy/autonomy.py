"""Backup autonomy: how long the EV's battery carries the home in an outage.

From state of charge `soc` down to `floor_soc` the battery gives (soc − floor)·capacity kWh
(battery side). Each slot of Δt hours the home draws load_kw (AC) through the inverter:

    battery energy of slot t = load_kw[t]·Δt / discharge_efficiency + standby_kw·Δt

(the inverter's own standby draw is taken from the DC side whatever the load). The home is
carried until the sum reaches the available energy; the last slot counts in proportion. A
load profile shorter than the autonomy is repeated (it stands for a typical day or week).

The household load comes from the caller: an explicit per-slot list (e.g. a measured profile),
or energy.household.expected_load_kw, the shared average-Danish-household model (imported on
use, so this module works without it; docs/autonomy.md).
"""

import csv
import os

from . import prices as _prices

DEFAULT_DISCHARGE_EFFICIENCY = 0.92
DEFAULT_STANDBY_W = 30.0
MAX_DAYS = 120  # the default profile is generated this far; a longer autonomy is reported as ">"


class AutonomyError(ValueError):
    """Bad autonomy input; str() is "where: problem"."""

    def __init__(self, where, problem):
        super().__init__(f"{where}: {problem}")
        self.where = where


def _check(where, v, lo, hi, lo_open=False):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
        raise AutonomyError(where, f"must be a number, found {v!r}")
    if v < lo or v > hi or (lo_open and v == lo):
        raise AutonomyError(where, f"{v} outside {'(' if lo_open else '['}{lo}, {hi}]")
    return float(v)


def run_down(capacity_kwh, soc, floor_soc, load_kw, slot_s, discharge_efficiency=DEFAULT_DISCHARGE_EFFICIENCY,
             standby_w=DEFAULT_STANDBY_W, repeat=True):
    """Hours the battery carries `load_kw` (kW per slot of slot_s seconds) from soc to floor_soc.

    Returns {"hours", "complete" (False if the profile ended first and repeat is off),
    "battery_kwh" (energy taken from the battery), "home_kwh" (AC energy delivered),
    "available_kwh"}."""
    cap = _check("capacity_kwh", capacity_kwh, 0.0, 1e4, lo_open=True)
    s = _check("soc", soc, 0.0, 1.0)
    f = _check("floor_soc", floor_soc, 0.0, 1.0)
    eff = _check("discharge_efficiency", discharge_efficiency, 0.0, 1.0, lo_open=True)
    sb = _check("inverter_standby_w", standby_w, 0.0, 1e5) / 1000.0
    if not load_kw:
        raise AutonomyError("load", "empty load profile")
    for i, v in enumerate(load_kw):
        _check(f"load[{i}]", v, 0.0, 1e4)
    if f >= s:
        return {"hours": 0.0, "complete": True, "battery_kwh": 0.0, "home_kwh": 0.0,
                "available_kwh": max(0.0, (s - f) * cap)}
    avail = (s - f) * cap
    dt = slot_s / 3600.0
    if sum(load_kw) == 0 and sb == 0:
        return {"hours": float("inf"), "complete": False, "battery_kwh": 0.0, "home_kwh": 0.0, "available_kwh": avail}
    used = home = hours = 0.0
    n = len(load_kw)
    i = 0
    limit = max(n, int(MAX_DAYS * 86400 // slot_s)) if repeat else n
    while i < limit:
        kw = load_kw[i % n]
        need = (kw / eff + sb) * dt
        if used + need >= avail:
            frac = (avail - used) / need if need > 0 else 0.0
            return {"hours": hours + frac * dt, "complete": True, "battery_kwh": avail,
                    "home_kwh": home + frac * kw * dt, "available_kwh": avail}
        used += need
        home += kw * dt
        hours += dt
        i += 1
    return {"hours": hours, "complete": False, "battery_kwh": used, "home_kwh": home, "available_kwh": avail}


def household_profile(start_s, days, annual_kwh=4000.0, heat_pump=False, slot_s=3600):
    """The shared household model's expected load (no noise) for `days` from start_s:
    energy.household.expected_load_kw (owned by the simulation; imported here on use)."""
    from . import household  # noqa: PLC0415 - optional dependency, see the module docstring

    return household.expected_load_kw(start_s, slot_s, int(days * 86400 // slot_s), annual_kwh=annual_kwh,
                                      heat_pump=heat_pump)


def read_load_profile(path):
    """A load CSV (header `time_utc,load_kw`, equal steps of 15 or 60 min) -> (start_s, slot_s, [kW])."""
    name = os.path.basename(path)
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise AutonomyError(name, f"cannot read: {e.strerror or e}") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise AutonomyError(name, f"not a CSV text file: {e}") from None
    if not rows:
        raise AutonomyError(name, "empty file")
    if [h.strip() for h in rows[0]] != ["time_utc", "load_kw"]:
        raise AutonomyError(f"{name}:1", "header must be time_utc,load_kw")
    times, kw = [], []
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        w = f"{name}:{lineno}"
        if len(row) != 2:
            raise AutonomyError(w, f"expected 2 fields, found {len(row)}")
        try:
            t = _prices.parse_utc(row[0])
        except ValueError as e:
            raise AutonomyError(w, f"bad time_utc: {e}") from None
        try:
            v = float(row[1])
        except ValueError:
            raise AutonomyError(w, f"load_kw {row[1]!r} is not a number") from None
        if not (v >= 0 and v < 1e4):
            raise AutonomyError(w, f"load_kw {row[1]} must be a finite number >= 0")
        if times:
            step = t - times[-1]
            if step not in (900, 3600) or (len(times) > 1 and step != times[1] - times[0]):
                raise AutonomyError(w, f"steps must be equal, 15 or 60 min (found {step // 60} min)")
        times.append(t)
        kw.append(v)
    if not kw:
        raise AutonomyError(name, "no load rows")
    slot_s = times[1] - times[0] if len(times) > 1 else 3600
    return times[0], slot_s, kw


def autonomy(capacity_kwh, soc, floor_soc=0.10, load_kw=None, slot_s=3600,
             discharge_efficiency=DEFAULT_DISCHARGE_EFFICIENCY, standby_w=DEFAULT_STANDBY_W,
             target_days=3.0):
    """The report: run-down to the floor plus what "several days" takes.

    {"hours", "days", "complete", "battery_kwh", "home_kwh", "mean_load_kw",
     "mean_load_kw" (over the carried hours), "days_per_10_kwh" (days one 10 kWh of battery
     carries the home, at this profile),
     "soc_for_target_days" (start SoC that lasts target_days down to the floor; > 1 if the
     battery cannot), "target_days", ...inputs}."""
    r = run_down(capacity_kwh, soc, floor_soc, load_kw, slot_s, discharge_efficiency, standby_w)
    dt = slot_s / 3600.0
    n_target = int(round(target_days * 86400 / slot_s))
    need = sum(((load_kw[i % len(load_kw)] / discharge_efficiency) + standby_w / 1000.0) * dt
               for i in range(n_target))
    # mean over the hours the battery carried the home (the profile's mean if it carried none)
    mean_load = r["home_kwh"] / r["hours"] if r["hours"] > 0 else sum(load_kw) / len(load_kw)
    days = r["hours"] / 24.0
    return {
        "capacity_kwh": capacity_kwh, "soc": soc, "floor_soc": floor_soc,
        "discharge_efficiency": discharge_efficiency, "inverter_standby_w": standby_w,
        "hours": r["hours"], "days": days, "complete": r["complete"],
        "battery_kwh": r["battery_kwh"], "home_kwh": r["home_kwh"], "mean_load_kw": mean_load,
        "days_per_10_kwh": (days * 10.0 / r["battery_kwh"]) if r["battery_kwh"] > 0 else None,
        "target_days": target_days, "battery_kwh_for_target": need,
        "soc_for_target_days": floor_soc + need / capacity_kwh,
    }
