"""The household's electricity use: an average Danish house, with an optional heat pump.

`load_kw(start_s, slot_s, n, ...)` gives the home's consumption (kW, mean over each slot) for n
slots from the UTC epoch second start_s; `expected_load_kw` the same without the noise (the
forecast a planner can know). Both put the same energy into a slot wherever a window starts.

Figures and sources (docs/energy.md, "Site defaults"):
- 4 000 kWh/year for a house: Gram-Hanssen (2005) via Elsparefonden/Dansk Energi gives
  530 kWh + 12 kWh/m² + 690 kWh/person, i.e. 4 280 kWh for 140 m² and 3 persons; houses use
  about twice what flats use (seacourse.dk, "Average household energy consumption").
- heat pump: ~5 000 kWh/year for an air-to-water pump in a 130 m² house (handyhand.dk reports
  5 746 kWh air-to-water, 5 246 kWh ground source), spread by heating degree days (base 17 °C)
  of a Danish-like year (monthly means ~1 °C in January to ~17 °C in July: project assumption
  shaped after DMI normals) plus 15 % hot water all year.
- the daily shape (Danish local time): PROJECT ASSUMPTION shaped after the familiar Danish
  residential profile: a low night base (fridge, standby), a morning peak 06-08 on weekdays
  (08-11 at weekends), a quiet day while the house is empty, the evening peak 17-20 (cooking,
  lighting: the reason Danish grid companies' peak tariff runs 17-21), and ~8 % more use
  at weekends; winter uses ~25 % more than summer (lighting).
- noise: each slot is the expected value times a mean-one factor (AR(1) in log, 0.35 standard
  deviation, slot-to-slot correlation 0.7), seeded per local day so any window repeats.
"""

import datetime
import math
import random

from energy.tariffs import utc_offset_s  # Danish local time by the EU summer-time rule

# kW relative to the day's mean, per local hour 0..23 (each list averages 1.0)
_WEEKDAY = [0.55, 0.48, 0.45, 0.45, 0.47, 0.62, 1.10, 1.35, 0.95, 0.70, 0.65, 0.68,
            0.72, 0.68, 0.70, 0.85, 1.20, 1.95, 2.10, 1.85, 1.50, 1.30, 1.05, 0.75]
_WEEKEND = [0.60, 0.50, 0.46, 0.45, 0.45, 0.50, 0.62, 0.85, 1.15, 1.30, 1.30, 1.20,
            1.15, 1.05, 0.98, 1.00, 1.20, 1.80, 1.95, 1.75, 1.45, 1.25, 1.05, 0.80]
_WEEKEND_FACTOR = 1.08
_WEEKDAY_FACTOR = (7 - 2 * _WEEKEND_FACTOR) / 5  # the week averages 1.0
_SEASON_AMPLITUDE = 0.125  # winter peak 1.125, summer 0.875 of the mean: ~25 % more in winter
_HP_DHW_SHARE = 0.15  # share of the heat pump's energy for hot water, flat over the year
_HP_BASE_C = 17.0
_NOISE_SD = 0.35
_NOISE_RHO = 0.7


def _norm(profile):
    m = sum(profile) / len(profile)
    return [v / m for v in profile]


_WEEKDAY = _norm(_WEEKDAY)
_WEEKEND = _norm(_WEEKEND)


def outdoor_temperature_c(doy):
    """Daily mean outdoor temperature (°C) on day-of-year doy (1..366), a smooth Danish-like year."""
    return 9.0 - 8.0 * math.cos(2 * math.pi * (doy - 15) / 365.25)


def _hdd(doy):
    return max(0.0, _HP_BASE_C - outdoor_temperature_c(doy))


_HDD_YEAR = sum(_hdd(d) for d in range(1, 366)) + 0.25 * _hdd(366)


_UTC = datetime.timezone.utc


def _local(t):
    """Danish local wall-clock fields of UTC instant t (a datetime whose fields are local)."""
    return datetime.datetime.fromtimestamp(t + utc_offset_s(int(t)), _UTC)


def _day_factor(dt):
    doy = dt.timetuple().tm_yday
    season = 1.0 + _SEASON_AMPLITUDE * math.cos(2 * math.pi * (doy - 15) / 365.25)
    weekend = dt.weekday() >= 5
    return season * (_WEEKEND_FACTOR if weekend else _WEEKDAY_FACTOR), (_WEEKEND if weekend else _WEEKDAY)


def expected_load_kw(start_s, slot_s, n, annual_kwh=4000.0, heat_pump=False, heat_pump_kwh=5000.0):
    """The expected home load (kW) of n slots of slot_s seconds from start_s: the shape without
    noise. Over a year the household part sums to annual_kwh, the heat pump to heat_pump_kwh."""
    mean_kw = annual_kwh / 8766.0
    out = []
    for i in range(n):
        mid = start_s + i * slot_s + slot_s / 2
        dt = _local(mid)
        f, prof = _day_factor(dt)
        h = dt.hour + dt.minute / 60.0
        # linear between hour centres, so a 15-min slot sees a smooth curve, not hourly steps
        x = h - 0.5
        i0 = math.floor(x)
        w = x - i0
        shape = prof[i0 % 24] * (1 - w) + prof[(i0 + 1) % 24] * w
        kw = mean_kw * f * shape
        if heat_pump:
            doy = dt.timetuple().tm_yday
            space = (1 - _HP_DHW_SHARE) * heat_pump_kwh * _hdd(doy) / _HDD_YEAR / 24.0
            dhw = _HP_DHW_SHARE * heat_pump_kwh / 8766.0
            # a little more at night and in the morning, when it is colder
            kw += space * (1.0 + 0.15 * math.cos(2 * math.pi * (h - 5.0) / 24.0)) + dhw
        out.append(kw)
    return out


def _noise(start_s, slot_s, n, seed):
    """Mean-one multiplicative factors, AR(1) in log, restarted per local day with a seed made of
    (seed, local date), so a slot gets the same factor whatever window it is generated in."""
    out = []
    slots_per_day = max(1, round(86400 / slot_s))
    sd = _NOISE_SD
    inn = sd * math.sqrt(1 - _NOISE_RHO ** 2)
    cache = {}
    for i in range(n):
        t = start_s + i * slot_s
        dt = _local(t)
        key = dt.date()
        seq = cache.get(key)
        if seq is None:
            lm = datetime.datetime(dt.year, dt.month, dt.day, tzinfo=_UTC).timestamp()
            day0 = lm - utc_offset_s(int(lm) - 3600)  # local midnight; DST changes at 02:00/03:00
            rng = random.Random(seed * 1_000_003 + dt.toordinal())
            m = slots_per_day + 8  # DST days are 23/25 h long
            x = rng.gauss(0.0, sd)
            seq = []
            for _ in range(m):
                seq.append(math.exp(x - sd * sd / 2))
                x = _NOISE_RHO * x + rng.gauss(0.0, inn)
            seq = (day0, seq)
            cache = {key: seq}
        day0, vals = seq
        k = int((t - day0) // slot_s)
        out.append(vals[min(max(k, 0), len(vals) - 1)])
    return out


def load_kw(start_s, slot_s, n, annual_kwh=4000.0, heat_pump=False, seed=0, heat_pump_kwh=5000.0):
    """The home load (kW, mean over each slot) of n slots from start_s: expected_load_kw times a
    seeded mean-one noise. The household part sums to ~annual_kwh over a year."""
    base = expected_load_kw(start_s, slot_s, n, annual_kwh, heat_pump, heat_pump_kwh)
    if seed is None:
        return base
    return [b * f for b, f in zip(base, _noise(start_s, slot_s, n, seed))]
