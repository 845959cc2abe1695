"""How the EV is used: when it is away, how much energy each trip takes, and when it must be
ready to leave. Times are Danish local time (CET/CEST by the EU summer-time rule, energy.tariffs).

The default pattern (docs/energy.md, "Site defaults"):
- weekdays (Mon-Fri): away 07:30-16:30, 44 km round trip: the average Danish commute in 2019
  per Danmarks Statistik / Dansk Infrastruktur, as summarised by Dansk Industri ("Vi pendler
  længere og længere", 2021: 34.3 km in 2002, 44 km in 2019 per employed person and day);
- Saturdays: a longer trip, away 10:00-18:00, 150 km (PROJECT ASSUMPTION: family visit/leisure;
  the Danish national travel survey TU reports 40.1 km per person and day on average, DTU);
- Sundays at home;
- 0.18 kWh/km battery-side: a Polestar 4-class car at 90 km/h in good conditions takes
  18 kWh/100 km (evkx.net, WLTP 15.9-16.5 kWh/100 km);
- leave with at least 80 % (departure_soc).
A trip's energy is drawn evenly over the slots the car is away.
"""

import calendar
import datetime

from energy.tariffs import utc_offset_s  # Danish local time by the EU summer-time rule
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

DEFAULT_USE = {
    "trips": [
        {"days": ["monday", "tuesday", "wednesday", "thursday", "friday"],
         "depart": "07:30", "return": "16:30", "km": 44.0},
        {"days": ["saturday"], "depart": "10:00", "return": "18:00", "km": 150.0},
    ],
    "consumption_kwh_per_km": 0.18,
    "departure_soc": 0.80,
}


def local_datetime(t_s):
    """A datetime whose fields are the Danish local wall clock at UTC instant t_s."""
    return datetime.datetime.fromtimestamp(t_s + utc_offset_s(int(t_s)), datetime.timezone.utc)


def utc_of_local(day, minutes):
    """UTC epoch s of `minutes` after local midnight on date `day` (an hour that DST skips maps
    one hour on). The offset is read an hour before, as DST changes at 01:00 UTC, 02:00/03:00
    local, after which the local day's offset holds."""
    lt = calendar.timegm((day.year, day.month, day.day, 0, 0, 0)) + 60 * minutes
    return lt - utc_offset_s(lt - 3600)


def _minutes(hhmm):
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def check_use(use, where):
    """Validate an EV-use dict (the shape of DEFAULT_USE). Returns a list of (key, problem)."""
    errs = []
    for k in use:
        if k not in DEFAULT_USE:
            errs.append((f"{where}.{k}", "unknown key"))
    c = use.get("consumption_kwh_per_km")
    if not isinstance(c, (int, float)) or isinstance(c, bool) or not 0 < c <= 1:
        errs.append((f"{where}.consumption_kwh_per_km", "must be a number in (0, 1]"))
    s = use.get("departure_soc")
    if not isinstance(s, (int, float)) or isinstance(s, bool) or not 0 <= s <= 1:
        errs.append((f"{where}.departure_soc", "must be a number in [0, 1]"))
    trips = use.get("trips")
    if not isinstance(trips, list):
        return errs + [(f"{where}.trips", "must be a list")]
    for i, tr in enumerate(trips):
        w = f"{where}.trips[{i}]"
        if not isinstance(tr, dict):
            errs.append((w, "must be an object"))
            continue
        for k in tr:
            if k not in ("days", "depart", "return", "km"):
                errs.append((f"{w}.{k}", "unknown key"))
        days = tr.get("days")
        if not isinstance(days, list) or not days or any(d not in DAYS for d in days):
            errs.append((f"{w}.days", f"must be a non-empty list of {', '.join(DAYS)}"))
        mins = []
        for k in ("depart", "return"):
            v = tr.get(k)
            try:
                m = _minutes(v)
                if not (0 <= m < 24 * 60) or len(v) != 5:
                    raise ValueError
                mins.append(m)
            except (AttributeError, ValueError, TypeError):
                errs.append((f"{w}.{k}", "must be a local time HH:MM"))
        if len(mins) == 2 and mins[1] <= mins[0]:
            errs.append((f"{w}.return", "must be after depart on the same day"))
        km = tr.get("km")
        if not isinstance(km, (int, float)) or isinstance(km, bool) or not 0 <= km <= 1000:
            errs.append((f"{w}.km", "must be a number of km in [0, 1000]"))
    return errs


def schedule(start_s, slot_s, n, use=DEFAULT_USE):
    """The EV's use over n slots of slot_s seconds from the UTC epoch second start_s.

    Returns (plugged, drive_kwh, departures): plugged[t] False while away; drive_kwh[t] the
    battery energy slot t's driving takes; departures a list of (slot, min_soc) for each slot at
    which the car leaves home (plugged[slot-1] and not plugged[slot]). A trip's clock times are
    rounded to the slot grid (a 07:30 departure with 15-min slots leaves at the 07:30 slot)."""
    plugged = [True] * n
    drive = [0.0] * n
    kwh_km = use["consumption_kwh_per_km"]
    end_s = start_s + n * slot_s
    day = local_datetime(start_s).date() - datetime.timedelta(days=1)
    while True:
        if utc_of_local(day, 0) >= end_s:
            break
        wd = DAYS[day.weekday()]
        for tr in use["trips"]:
            if wd not in tr["days"]:
                continue
            t_dep = utc_of_local(day, _minutes(tr["depart"]))
            t_ret = utc_of_local(day, _minutes(tr["return"]))
            a = round((t_dep - start_s) / slot_s)
            b = round((t_ret - start_s) / slot_s)
            if b <= a:
                continue
            # a trip cut by the window's start or end still draws its own share per slot
            per = tr["km"] * kwh_km / (b - a)
            for t in range(max(a, 0), min(b, n)):
                plugged[t] = False
                drive[t] += per
        day += datetime.timedelta(days=1)
    deps = [(t, use["departure_soc"]) for t in range(1, n) if plugged[t - 1] and not plugged[t]]
    return plugged, drive, deps
