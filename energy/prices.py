"""Day-ahead spot prices: one bidding zone's price per market time unit (MTU), in UTC.

Reads the project's CSV (`time_utc,price_area,price_eur_mwh`, energy/data/prices/SOURCES.md)
and Energi Data Service JSON (`{"records": [...]}` of the Elspotprices dataset, hourly, fields
HourUTC/PriceArea/SpotPriceEUR, or the DayAheadPrices dataset, 15 min since delivery day
2025-10-01, fields TimeUTC/PriceArea/DayAheadPriceEUR). Elspotprices' fields are from its metadata
(api.energidataservice.dk/meta/dataset/Elspotprices); DayAheadPrices' as several independent
public clients of the API read them (its metadata page was not in the material at hand).

A PriceSeries is validated on load: every interval is 15 or 60 minutes, starts on its own
boundary, and follows the previous one without a gap, duplicate or reversal. The resolution may
change inside a series (the Nordic day-ahead market moved from 60 to 15 min MTU on
2025-09-30T22:00Z), so an interval's length is the distance to the next start.
"""

import calendar
import csv
import json
import math
import os
import re
import time

# Known bidding zones. Data, not code: another zone is one more entry (its prices come in the
# same formats; its tariffs are a tariff file, docs/tariffs.md).
AREAS = ("DK1", "DK2")
MTU_S = (900, 3600)  # the market time units the day-ahead market has used

CSV_HEADER = ("time_utc", "price_area", "price_eur_mwh")
# EDS datasets: (time field, price field) per dataset, the area field is PriceArea in both
EDS_FIELDS = {"Elspotprices": ("HourUTC", "SpotPriceEUR"),
              "DayAheadPrices": ("TimeUTC", "DayAheadPriceEUR")}

_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?(?:\.0+)?(Z|\+00:00)?$")


class PriceError(ValueError):
    """Bad price data or request; str() is "where: problem" (where = file:line or file: key)."""

    def __init__(self, where, problem):
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


def parse_utc(text):
    """ISO 8601 UTC time ("2025-10-01T00:15:00Z", "...T00:15Z" or without the Z, as EDS JSON
    writes it) -> epoch seconds. ValueError with the reason if it is not one."""
    m = _ISO.match(text.strip())
    if not m:
        raise ValueError(f"not an ISO 8601 UTC time: {text!r}")
    y, mo, d, h, mi = (int(m.group(i)) for i in range(1, 6))
    s = int(m.group(6) or 0)
    if not (1 <= mo <= 12 and 1 <= d <= calendar.monthrange(y, mo)[1] and h < 24 and mi < 60 and s < 60):
        raise ValueError(f"not a valid date/time: {text!r}")
    return calendar.timegm((y, mo, d, h, mi, s))


def format_utc(t_s):
    """Epoch seconds -> "YYYY-MM-DDTHH:MM:SSZ"."""
    y, mo, d, h, mi, s = time.gmtime(t_s)[:6]
    return f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}Z"


class PriceSeries:
    """Prices of one area: times_s[i] is the start (UTC epoch s) of interval i, eur_mwh[i] its
    price. Interval i lasts times_s[i+1] - times_s[i]; the last one as long as the one before."""

    __slots__ = ("area", "times_s", "eur_mwh", "source")

    def __init__(self, area, times_s, eur_mwh, source=""):
        self.area = area
        self.times_s = times_s
        self.eur_mwh = eur_mwh
        self.source = source

    def __len__(self):
        return len(self.times_s)

    def interval_s(self, i):
        """Length of interval i in seconds."""
        t = self.times_s
        if i + 1 < len(t):
            return t[i + 1] - t[i]
        if len(t) > 1:
            return t[i] - t[i - 1]
        return 3600 if t[i] % 3600 == 0 else 900  # a lone interval: the MTU its start allows

    @property
    def start_s(self):
        return self.times_s[0]

    @property
    def end_s(self):
        """End of the last interval (UTC epoch s)."""
        return self.times_s[-1] + self.interval_s(len(self.times_s) - 1)


def _check_area(where, area):
    if area not in AREAS:
        raise PriceError(where, f"unknown price area {area!r} (known: {', '.join(AREAS)})")


def _validate(rows, where_of):
    """rows: [(t_s, price, ...)] in file order; where_of(i) names row i. Raises on the first
    duplicate, reversal, misalignment or MTU that is neither 15 nor 60 min, then on the
    first gap (which needs both neighbours to tell from a change of resolution)."""
    n = len(rows)
    steps = [rows[i + 1][0] - rows[i][0] for i in range(n - 1)]
    for i in range(n):
        t = rows[i][0]
        if i:
            d = steps[i - 1]
            if d == 0:
                raise PriceError(where_of(i), f"duplicate interval {format_utc(t)}")
            if d < 0:
                raise PriceError(where_of(i), f"out of order: {format_utc(t)} after {format_utc(rows[i - 1][0])}")
            if d % MTU_S[0]:
                raise PriceError(where_of(i), f"interval of {d / 60:g} min is neither 15 nor 60 min")
        if t % MTU_S[0]:
            raise PriceError(where_of(i), f"{format_utc(t)} is not on a quarter-hour boundary")
    for i, d in enumerate(steps):
        if d == 900:
            continue
        w = where_of(i + 1)
        prev_q = i > 0 and steps[i - 1] == 900
        next_q = i < n - 2 and steps[i + 1] == 900
        if d == 3600:
            # an hour between quarter-hours on both sides, or one that starts off the hour next
            # to quarter-hours, is three missing quarters, not an hourly MTU
            if (prev_q and next_q) or (rows[i][0] % 3600 and (prev_q or next_q)):
                raise PriceError(w, f"gap: 3 quarter-hours missing after {format_utc(rows[i][0])}")
            if rows[i][0] % 3600:
                raise PriceError(where_of(i), f"hourly interval {format_utc(rows[i][0])} not on an hour boundary")
            continue
        if d % 3600 and not (prev_q or next_q):
            raise PriceError(w, f"interval of {d / 60:g} min is neither 15 nor 60 min")
        unit = 900 if (prev_q or next_q or d % 3600) else 3600
        raise PriceError(w, f"gap: {d // unit - 1} interval(s) missing after {format_utc(rows[i][0])}")


def _price(where, text):
    try:
        v = float(text)
    except (TypeError, ValueError):
        raise PriceError(where, f"price {text!r} is not a number") from None
    if not math.isfinite(v):
        raise PriceError(where, f"price {text!r} is not a finite number")
    return v


def _select_area(where, by_area, area):
    if area is not None:
        _check_area(where, area)
        if area not in by_area:
            raise PriceError(where, f"no rows for area {area} (file has {', '.join(sorted(by_area)) or 'none'})")
        return area
    if len(by_area) > 1:
        raise PriceError(where, f"file holds areas {', '.join(sorted(by_area))}: give the area")
    return next(iter(by_area))


def _load_csv(path, text, area):
    name = os.path.basename(path)
    reader = csv.reader(text.splitlines())
    try:
        header = next(reader)
    except StopIteration:
        raise PriceError(name, "empty file") from None
    if tuple(h.strip() for h in header) != CSV_HEADER:
        raise PriceError(f"{name}:1", f"header must be {','.join(CSV_HEADER)}, found {','.join(header)}")
    by_area = {}
    for lineno, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        where = f"{name}:{lineno}"
        if len(row) != 3:
            raise PriceError(where, f"expected 3 fields, found {len(row)}")
        try:
            t = parse_utc(row[0])
        except ValueError as e:
            raise PriceError(where, f"bad timestamp: {e}") from None
        a = row[1].strip()
        _check_area(where, a)
        by_area.setdefault(a, []).append((t, _price(where, row[2]), lineno))
    if not by_area:
        raise PriceError(name, "empty file (a header and no prices)")
    a = _select_area(name, by_area, area)
    rows = by_area[a]
    _validate(rows, lambda i: f"{name}:{rows[i][2]}")
    return PriceSeries(a, [r[0] for r in rows], [r[1] for r in rows], source=path)


def parse_eds_records(name, records, area=None):
    """EDS `records` (Elspotprices or DayAheadPrices, ascending or descending as the API's
    sort) -> PriceSeries. Errors name the record index."""
    if not isinstance(records, list):
        raise PriceError(f"{name}: records", "must be a list")
    if not records:
        raise PriceError(f"{name}: records", "empty: no prices")
    by_area = {}
    for i, rec in enumerate(records):
        where = f"{name}: records[{i}]"
        if not isinstance(rec, dict):
            raise PriceError(where, "must be an object")
        for dataset, (tkey, pkey) in EDS_FIELDS.items():
            if tkey in rec:
                break
        else:
            raise PriceError(where, f"no time field ({' or '.join(k for k, _ in EDS_FIELDS.values())})")
        if pkey not in rec:
            raise PriceError(where, f"{dataset} record without {pkey}")
        if "PriceArea" not in rec:
            raise PriceError(where, "no PriceArea")
        if not isinstance(rec[tkey], str):
            raise PriceError(f"{where}.{tkey}", "must be a string")
        try:
            t = parse_utc(rec[tkey])
        except ValueError as e:
            raise PriceError(f"{where}.{tkey}", f"bad timestamp: {e}") from None
        p = rec[pkey]
        if p is None or isinstance(p, bool) or not isinstance(p, (int, float, str)):
            raise PriceError(f"{where}.{pkey}", f"no price ({p!r})")
        a = rec["PriceArea"]
        if a not in AREAS:  # EDS returns neighbouring zones too; ignore them unless asked for
            if area is not None and a == area:
                _check_area(where, a)
            continue
        by_area.setdefault(a, []).append((t, _price(f"{where}.{pkey}", p), i))
    if not by_area:
        raise PriceError(f"{name}: records", f"no records for a known area ({', '.join(AREAS)})")
    a = _select_area(name, by_area, area)
    rows = by_area[a]
    if len(rows) > 1 and rows[0][0] > rows[-1][0]:
        rows.reverse()  # the API sorts descending by default
    _validate(rows, lambda i: f"{name}: records[{rows[i][2]}]")
    return PriceSeries(a, [r[0] for r in rows], [r[1] for r in rows], source=name)


def load(path, area=None):
    """A price file (project CSV or EDS JSON, told apart by content) -> PriceSeries of `area`
    (required when the file holds several). PriceError names the file and line/record."""
    name = os.path.basename(path)
    try:
        with open(path, encoding="utf-8-sig") as f:
            text = f.read()
    except OSError as e:
        raise PriceError(name, f"cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise PriceError(name, "not a UTF-8 text file") from None
    if area is not None:
        _check_area(f"{name}: area", area)
    if not text.strip():
        raise PriceError(name, "empty file")
    if text.lstrip().startswith(("{", "[")):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise PriceError(f"{name}:{e.lineno}", f"malformed JSON: {e.msg}") from None
        if not isinstance(doc, dict) or "records" not in doc:
            raise PriceError(name, 'JSON must be an Energi Data Service response {"records": [...]}')
        return parse_eds_records(name, doc["records"], area)
    return _load_csv(path, text, area)


def write_csv(series, path):
    """Write a PriceSeries as the project CSV (time_utc,price_area,price_eur_mwh); prices in
    Python's shortest round-trip form, so load(write_csv(s)) gives s's values back exactly."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        f.write(",".join(CSV_HEADER) + "\n")
        for t, p in zip(series.times_s, series.eur_mwh):
            f.write(f"{format_utc(t)},{series.area},{p!r}\n")


def slots(series, slot_s=900, start_s=None, end_s=None):
    """EUR/MWh per slot of slot_s seconds over [start_s, end_s) (default: the whole series).
    Each slot's price is the time-weighted mean of the intervals it overlaps, so an hourly price
    covers its four quarter-hours and an hourly slot over 15-min prices is their mean.
    PriceError if the range is not covered or is not a whole number of slots."""
    where = f"{os.path.basename(series.source) or series.area}: slots"
    if slot_s <= 0 or int(slot_s) != slot_s:
        raise PriceError(where, f"slot length {slot_s!r} s must be a positive whole number")
    t0 = series.start_s if start_s is None else start_s
    t1 = series.end_s if end_s is None else end_s
    if t1 <= t0:
        raise PriceError(where, f"empty range {format_utc(t0)} .. {format_utc(t1)}")
    if (t1 - t0) % slot_s:
        raise PriceError(where, f"range {format_utc(t0)} .. {format_utc(t1)} is not a whole number of {slot_s} s slots")
    if t0 < series.start_s or t1 > series.end_s:
        raise PriceError(where, f"prices cover {format_utc(series.start_s)} .. {format_utc(series.end_s)}, "
                                f"not {format_utc(t0)} .. {format_utc(t1)}")
    times, prices = series.times_s, series.eur_mwh
    n = len(times)
    ends = times[1:] + [series.end_s]
    # first interval that ends after t0
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        if ends[mid] <= t0:
            lo = mid + 1
        else:
            hi = mid
    j = lo
    out = []
    s = t0
    while s < t1:
        e = s + slot_s
        if times[j] <= s and e <= ends[j]:  # the common case: the slot lies inside one interval
            out.append(prices[j])
        else:
            acc = 0.0
            k = j
            while k < n and times[k] < e:
                acc += prices[k] * (min(e, ends[k]) - max(s, times[k]))
                k += 1
            out.append(acc / slot_s)
        s = e
        while j < n - 1 and ends[j] <= s:
            j += 1
    return out
