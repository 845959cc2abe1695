"""Energi Data Service (Energinet's open data API) as a price source.

Day-ahead prices live in two datasets: Elspotprices (hourly, discontinued after delivery
2025-09-30) and DayAheadPrices (15-minute market time unit, from delivery day 2025-10-01,
i.e. 2025-09-30T22:00Z); the datasets' metadata at api.energidataservice.dk/meta/dataset/<name>.
fetch() asks each dataset for its part of the range and joins them into one PriceSeries.

Request shape (EDS API guide, energidataservice.dk/guides/api-guides):
  https://api.energidataservice.dk/dataset/<Dataset>?start=..&end=..&filter={"PriceArea":["DK1"]}&sort=..&limit=0
start/end are Danish local time ("yyyy-MM-ddTHH:mm"), start included, end excluded;
limit=0 returns every record. The HTTP call is injectable (`opener`) so tests replay recorded
responses; every failure (HTTP status, network, timeout, malformed or incomplete answer)
becomes an EdsError, and no call waits longer than `timeout` seconds.
"""

import json
import time
import urllib.error
import urllib.parse
import urllib.request

from . import prices, tariffs

BASE_URL = "https://api.energidataservice.dk/dataset/"
# first delivery interval of the 15-minute day-ahead market (2025-10-01 00:00 CEST)
DAYAHEAD_FROM_S = 1759269600  # 2025-09-30T22:00:00Z
DATASETS = (("Elspotprices", "HourUTC"), ("DayAheadPrices", "TimeUTC"))
DEFAULT_TIMEOUT_S = 30.0


class EdsError(RuntimeError):
    """Energi Data Service did not answer usefully (network, HTTP status, malformed or
    incomplete data); the message names the dataset and what went wrong."""


def _local_param(t_s):
    """UTC epoch s -> the API's Danish local "yyyy-MM-ddTHH:mm"."""
    tm = time.gmtime(t_s + tariffs.utc_offset_s(t_s, 1, "EU"))
    return f"{tm.tm_year:04d}-{tm.tm_mon:02d}-{tm.tm_mday:02d}T{tm.tm_hour:02d}:{tm.tm_min:02d}"


def request_url(dataset, area, start_s, end_s):
    """The URL asking `dataset` for `area`'s prices in [start_s, end_s) (UTC epoch s)."""
    time_col = dict(DATASETS)[dataset]
    q = urllib.parse.urlencode({
        "start": _local_param(start_s),
        "end": _local_param(end_s),
        "filter": json.dumps({"PriceArea": [area]}, separators=(",", ":")),
        "sort": f"{time_col} asc",
        "limit": "0",
    })
    return f"{BASE_URL}{dataset}?{q}"


def urllib_opener(url, timeout):
    """The default opener: GET url, return the body (bytes); raises what urllib raises."""
    req = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "v2xgw-energy"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read()


def parts(start_s, end_s):
    """[(dataset, start_s, end_s)] covering [start_s, end_s): Elspotprices before the 15-min
    switch, DayAheadPrices from it."""
    out = []
    if start_s < DAYAHEAD_FROM_S:
        out.append(("Elspotprices", start_s, min(end_s, DAYAHEAD_FROM_S)))
    if end_s > DAYAHEAD_FROM_S:
        out.append(("DayAheadPrices", max(start_s, DAYAHEAD_FROM_S), end_s))
    return out


def _to_s(v, what):
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return int(v)
    if isinstance(v, str):
        s = v.strip()
        try:
            return prices.parse_utc(s + "T00:00:00Z" if len(s) == 10 else s)
        except ValueError as e:
            raise prices.PriceError(what, str(e)) from None
    raise prices.PriceError(what, f"must be a UTC time (ISO text or epoch seconds), found {v!r}")


def fetch(area, start, end, opener=None, timeout=DEFAULT_TIMEOUT_S):
    """`area`'s day-ahead prices over [start, end) (UTC: "YYYY-MM-DD", ISO time or epoch s) ->
    PriceSeries, joined across the two datasets. PriceError for a bad request (unknown area,
    empty range), EdsError when the service fails or its answer is malformed or incomplete."""
    if area not in prices.AREAS:
        raise prices.PriceError("area", f"unknown price area {area!r} (known: {', '.join(prices.AREAS)})")
    start_s, end_s = _to_s(start, "start"), _to_s(end, "end")
    if end_s <= start_s:
        raise prices.PriceError("end", "must be after start")
    if start_s % 900 or end_s % 900:
        raise prices.PriceError("start/end", "must be on quarter-hour boundaries")
    opener = opener or urllib_opener
    times, eur = [], []
    for dataset, a, b in parts(start_s, end_s):
        url = request_url(dataset, area, a, b)
        try:
            body = opener(url, timeout)
        except urllib.error.HTTPError as e:
            raise EdsError(f"{dataset}: HTTP {e.code} {e.reason} from {BASE_URL}{dataset}") from None
        except urllib.error.URLError as e:
            raise EdsError(f"{dataset}: cannot reach {BASE_URL}{dataset}: {e.reason}") from None
        except (TimeoutError, OSError) as e:
            raise EdsError(f"{dataset}: no answer within {timeout:g} s ({e.__class__.__name__}: {e})") from None
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise EdsError(f"{dataset}: malformed JSON in the response ({e})") from None
        if not isinstance(doc, dict) or "records" not in doc:
            raise EdsError(f"{dataset}: the response has no 'records'")
        try:
            s = prices.parse_eds_records(dataset, doc["records"], area)
        except prices.PriceError as e:
            raise EdsError(f"response {e}") from None
        if s.start_s != a or s.end_s != b:
            raise EdsError(f"{dataset}: the response covers {prices.format_utc(s.start_s)} .. "
                           f"{prices.format_utc(s.end_s)}, not the {prices.format_utc(a)} .. "
                           f"{prices.format_utc(b)} asked for (not yet published?)")
        times += s.times_s
        eur += s.eur_mwh
    return prices.PriceSeries(area, times, eur, source=f"Energi Data Service ({area})")
