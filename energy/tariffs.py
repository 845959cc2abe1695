"""All-in household electricity prices from the day-ahead spot price: the tariff model.

A tariff is data (energy/data/tariffs/<name>.json, format in docs/tariffs.md) with every
figure cited beside it. For a Danish household (a "C customer" on the 0.4 kV grid):

    import = (spot + grid + transmission + system + tax) · (1 + VAT)      DKK/kWh
    export = min(spot − feed-in fees, import)                              DKK/kWh

- spot: EUR/MWh · eur_to_local / 1000 (the DKK is pegged to the EUR in ERM II);
- grid: the grid company's time-of-use tariff, in the shape of Energi Data Service's
  DatahubPricelist dataset: records valid [ValidFrom, ValidTo) in LOCAL time, Price1..Price24
  the DKK/kWh of local hours 00-01 .. 23-24 (summer/winter are separate records, as there);
- transmission, system: Energinet's consumption tariffs; tax: elafgift, per validity period;
- VAT on all of it; a private household's surplus sale carries none;
- export is capped at the import price: with a strongly negative spot price, VAT on the
  negative spot would otherwise make selling earn more than buying costs, and the planner's
  interface requires export <= import in every slot.

Local time follows the EU summer-time rule (Directive 2000/84/EC: from 01:00 UTC on the last
Sunday of March to 01:00 UTC on the last Sunday of October) on a fixed standard offset, so the
result does not depend on the system's tz database.
"""

import bisect
import calendar
import json
import math
import os
import time

from .prices import format_utc

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "tariffs")
COMPONENTS = ("spot", "grid", "transmission", "system", "tax", "vat")


class TariffError(ValueError):
    """Bad tariff file or a time it does not cover; str() is "where: problem"."""

    def __init__(self, where, problem):
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


# --- local time without a tz database -------------------------------------------------------

def _last_sunday_0100_utc(year, month):
    last = calendar.monthrange(year, month)[1]
    wd = calendar.weekday(year, month, last)  # Monday = 0 .. Sunday = 6
    day = last - (wd + 1) % 7
    return calendar.timegm((year, month, day, 1, 0, 0))


def eu_summer_time(t_s):
    """True if UTC instant t_s lies in EU summer time (Directive 2000/84/EC, art. 1-2)."""
    year = time.gmtime(t_s).tm_year
    return _last_sunday_0100_utc(year, 3) <= t_s < _last_sunday_0100_utc(year, 10)


def utc_offset_s(t_s, std_offset_h=1, dst="EU"):
    """Offset of local time from UTC at t_s: the standard offset plus one hour in EU summer time."""
    return int(std_offset_h * 3600) + (3600 if dst == "EU" and eu_summer_time(t_s) else 0)


def local_fields(t_s, std_offset_h=1, dst="EU"):
    """(year, month, day, hour) of local time at UTC instant t_s."""
    tm = time.gmtime(t_s + utc_offset_s(t_s, std_offset_h, dst))
    return tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour


# --- the tariff file --------------------------------------------------------------------------

def _num(where, v, lo=None, hi=None):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise TariffError(where, f"must be a number, found {v!r}")
    if lo is not None and v < lo or hi is not None and v > hi:
        raise TariffError(where, f"{v} outside [{lo}, {hi}]")
    return float(v)


def _local_date(where, v):
    """"YYYY-MM-DD" or "YYYY-MM-DDTHH:MM:SS" (local wall time) -> a naive epoch (local seconds)."""
    if not isinstance(v, str):
        raise TariffError(where, f"must be a local date string, found {v!r}")
    s = v.strip()
    try:
        if len(s) == 10:
            y, m, d = (int(x) for x in s.split("-"))
            hh = mm = ss = 0
        else:
            date, clock = s.replace(" ", "T").split("T")
            y, m, d = (int(x) for x in date.split("-"))
            parts = [int(x) for x in clock.split(":")]
            hh, mm, ss = (parts + [0, 0])[:3]
        if not (1 <= m <= 12 and 1 <= d <= calendar.monthrange(y, m)[1] and hh < 24 and mm < 60 and ss < 60):
            raise ValueError
    except ValueError:
        raise TariffError(where, f"not a date (YYYY-MM-DD[THH:MM:SS]): {v!r}") from None
    if mm or ss:
        # prices are looked up per hour (Tariff._hour), so a period must start on a whole hour
        raise TariffError(where, f"{v!r} is not on a whole local hour")
    return calendar.timegm((y, m, d, hh, mm, ss))


def _periods(name, key, items, fields):
    """Validate a list of {ValidFrom, ValidTo, <fields>} records: sorted, non-overlapping."""
    if not isinstance(items, list) or not items:
        raise TariffError(f"{name}: {key}", "must be a non-empty list of records")
    out = []
    for i, rec in enumerate(items):
        w = f"{name}: {key}[{i}]"
        if not isinstance(rec, dict):
            raise TariffError(w, "must be an object")
        for k in ("ValidFrom", "ValidTo"):
            if k not in rec:
                raise TariffError(f"{w}.{k}", "missing")
        a = _local_date(f"{w}.ValidFrom", rec["ValidFrom"])
        b = _local_date(f"{w}.ValidTo", rec["ValidTo"])
        if b <= a:
            raise TariffError(f"{w}.ValidTo", f"{rec['ValidTo']} is not after ValidFrom {rec['ValidFrom']}")
        vals = fields(w, rec)
        out.append((a, b, vals))
    out.sort(key=lambda r: r[0])
    for (a0, b0, _), (a1, _b1, _v) in zip(out, out[1:]):
        if a1 < b0:
            raise TariffError(f"{name}: {key}", "records overlap (two in force at the same time)")
    return out


def _grid_fields(w, rec):
    prices = []
    for h in range(1, 25):
        k = f"Price{h}"
        if k not in rec:
            raise TariffError(f"{w}.{k}", "missing (DatahubPricelist records carry Price1..Price24)")
        prices.append(_num(f"{w}.{k}", rec[k], -10.0, 100.0))
    _cited(w, rec)
    return tuple(prices)


def _cited(w, rec):
    if not isinstance(rec.get("source"), str) or not rec["source"].strip():
        raise TariffError(f"{w}.source", "every figure needs its source (a URL/title and date, or 'assumption: ...')")


def _national_fields(w, rec):
    out = tuple(_num(f"{w}.{k}", rec.get(k, "missing"), -10.0, 100.0)
                for k in ("transmission_dkk_per_kwh", "system_dkk_per_kwh", "tax_dkk_per_kwh"))
    _cited(w, rec)
    return out


def _feed_in_fields(w, rec):
    parts = rec.get("parts_dkk_per_kwh")
    if not isinstance(parts, dict) or not parts:
        raise TariffError(f"{w}.parts_dkk_per_kwh", "must be an object of named fees (DKK/kWh)")
    total = sum(_num(f"{w}.parts_dkk_per_kwh.{k}", v, 0.0, 100.0) for k, v in parts.items())
    _cited(w, rec)
    return total


KNOWN_KEYS = {"name", "title", "area", "default_for_area", "country", "currency", "grid_company",
              "customer", "customers", "customers_source", "eur_to_local", "eur_to_local_source",
              "std_offset_h", "dst", "vat", "vat_source", "grid", "national", "feed_in", "notes"}


def _customers(name, doc):
    """The grid company's number of customers (metering points), or None when the file gives none.

    It weighs the company when a simulated home's grid company is drawn among its area's tariffs,
    so it must be a positive whole number and, like every figure, carry its source."""
    if "customers" not in doc:
        if "customers_source" in doc:
            raise TariffError(f"{name}: customers", "missing (customers_source is given without the figure)")
        return None
    v = doc["customers"]
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise TariffError(f"{name}: customers", f"must be a positive whole number of customers, found {v!r}")
    src = doc.get("customers_source")
    if not isinstance(src, str) or not src.strip():
        raise TariffError(f"{name}: customers_source", "the customers figure needs its source (a URL/title and date)")
    return v


class Tariff:
    """One household tariff, validated on load. Prices are DKK/kWh (the file's currency)."""

    def __init__(self, doc, name):
        if not isinstance(doc, dict):
            raise TariffError(name, "must be a JSON object")
        unknown = sorted(set(doc) - KNOWN_KEYS)
        if unknown:
            raise TariffError(f"{name}: {unknown[0]}", "unknown key")
        for k in ("area", "eur_to_local", "vat", "grid", "national", "feed_in"):
            if k not in doc:
                raise TariffError(f"{name}: {k}", "missing")
        self.name = doc.get("name", name)
        self.area = doc["area"]
        if not isinstance(self.area, str):
            raise TariffError(f"{name}: area", "must be a string")
        self.eur_to_local = _num(f"{name}: eur_to_local", doc["eur_to_local"], 0.0001, 1e6)
        self.vat = _num(f"{name}: vat", doc["vat"], 0.0, 1.0)
        self.std_offset_h = _num(f"{name}: std_offset_h", doc.get("std_offset_h", 1), -12, 14)
        if self.std_offset_h != int(self.std_offset_h):  # the per-hour cache needs whole-hour local time
            raise TariffError(f"{name}: std_offset_h", "must be a whole number of hours")
        self.grid_company = doc.get("grid_company")
        self.customers = _customers(name, doc)
        self.dst = doc.get("dst", "EU")
        if self.dst not in ("EU", "none"):
            raise TariffError(f"{name}: dst", f"must be 'EU' or 'none', found {self.dst!r}")
        self.grid = _periods(name, "grid", doc["grid"], _grid_fields)
        self.national = _periods(name, "national", doc["national"], _national_fields)
        self.feed_in = _periods(name, "feed_in", doc["feed_in"], _feed_in_fields)
        self._starts = {k: [r[0] for r in getattr(self, k)] for k in ("grid", "national", "feed_in")}
        self._file = name
        self._hour_cache = {}

    def __repr__(self):
        return f"Tariff({self.name!r}, area={self.area})"

    def _find(self, key, local_s, when):
        recs = getattr(self, key)
        i = bisect.bisect_right(self._starts[key], local_s) - 1
        if i < 0 or local_s >= recs[i][1]:
            tm = time.gmtime(local_s)
            raise TariffError(f"{self._file}: {key}", f"no record in force at local time "
                                                      f"{tm.tm_year:04d}-{tm.tm_mon:02d}-{tm.tm_mday:02d} "
                                                      f"{tm.tm_hour:02d}:{tm.tm_min:02d} ({when})")
        return recs[i][2]

    def _hour(self, t_s):
        """(grid, transmission, system, tax, feed_in_fee) in force at UTC instant t_s; cached per
        UTC hour because every tariff period starts on a local whole hour."""
        key = t_s // 3600
        v = self._hour_cache.get(key)
        if v is None:
            local = key * 3600 + utc_offset_s(key * 3600, self.std_offset_h, self.dst)
            when = format_utc(key * 3600)
            hour = (local // 3600) % 24
            grid = self._find("grid", local, when)[hour]
            tr, sy, tax = self._find("national", local, when)
            fee = self._find("feed_in", local, when)
            v = (grid, tr, sy, tax, fee)
            self._hour_cache[key] = v
        return v

    def components(self, t_s, spot_eur_mwh):
        """The import price's parts at t_s (DKK/kWh): spot, grid, transmission, system, tax, vat."""
        grid, tr, sy, tax, _fee = self._hour(t_s)
        spot = spot_eur_mwh * self.eur_to_local / 1000.0
        net = spot + grid + tr + sy + tax
        return {"spot": spot, "grid": grid, "transmission": tr, "system": sy, "tax": tax,
                "vat": net * self.vat}

    def import_dkk_per_kwh(self, t_s, spot_eur_mwh):
        """All-in price of a kWh taken from the grid at t_s."""
        grid, tr, sy, tax, _fee = self._hour(t_s)
        return (spot_eur_mwh * self.eur_to_local / 1000.0 + grid + tr + sy + tax) * (1.0 + self.vat)

    def export_dkk_per_kwh(self, t_s, spot_eur_mwh):
        """What a kWh sent to the grid at t_s earns: spot minus feed-in fees, at most the import price."""
        fee = self._hour(t_s)[4]
        exp = spot_eur_mwh * self.eur_to_local / 1000.0 - fee
        return min(exp, self.import_dkk_per_kwh(t_s, spot_eur_mwh))


def price_arrays(tariff, start_s, slot_s, spot_eur_mwh):
    """All-in (import, export) DKK/kWh per slot; slot k starts at start_s + k·slot_s and its grid
    hour is the local hour of its start. export[k] <= import[k] for every k."""
    if slot_s <= 0:
        raise TariffError(f"{tariff._file}: slot_s", f"must be positive, found {slot_s}")
    rate = tariff.eur_to_local / 1000.0
    mult = 1.0 + tariff.vat
    hour = tariff._hour
    imp, exp = [], []
    for k, p in enumerate(spot_eur_mwh):
        grid, tr, sy, tax, fee = hour(start_s + k * slot_s)
        spot = p * rate
        i = (spot + grid + tr + sy + tax) * mult
        e = spot - fee
        imp.append(i)
        exp.append(e if e < i else i)
    return imp, exp


def tariff_path(name_or_path):
    """A tariff name (a file in energy/data/tariffs) or a path -> the file's path."""
    if os.sep in name_or_path or "/" in name_or_path or name_or_path.endswith(".json"):
        return name_or_path
    return os.path.join(DATA_DIR, name_or_path + ".json")


def available():
    """Names of the shipped tariffs."""
    return sorted(f[:-5] for f in os.listdir(DATA_DIR) if f.endswith(".json"))


def load_tariff(name_or_path):
    """Load and validate a tariff; TariffError names the file and the key."""
    path = tariff_path(name_or_path)
    name = os.path.basename(path)
    if not os.path.exists(path):
        if path.startswith(DATA_DIR):
            raise TariffError(name_or_path, f"no such tariff (shipped: {', '.join(available())})")
        raise TariffError(name, "no such file")
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except json.JSONDecodeError as e:
        raise TariffError(f"{name}:{e.lineno}", f"malformed JSON: {e.msg}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise TariffError(name, f"cannot read: {e}") from None
    return Tariff(doc, name)


def area_tariffs(area):
    """[(name, customers)] of the shipped tariffs of a price area, sorted by name; customers is the
    file's validated `customers` figure or None. A TariffError names a shipped file that does not load."""
    out = []
    for n in available():
        t = load_tariff(n)
        if t.area == area:
            out.append((n, t.customers))
    return out


def default_tariff(area):
    """The shipped tariff marked default_for_area for a price area (e.g. DK1 -> "dk1-n1")."""
    for n in available():
        try:
            with open(os.path.join(DATA_DIR, n + ".json"), encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("area") == area and doc.get("default_for_area"):
            return n
    raise TariffError(f"area {area}", f"no default tariff (shipped: {', '.join(available())})")
