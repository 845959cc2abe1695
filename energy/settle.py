"""Metering settlement: what a site's 15-minute interval records cost at a tariff.

Interval CSV (exported by the firmware's metering; fixed format):
    interval_start_utc,grid_import_wh,grid_export_wh,ev_charged_wh,ev_discharged_wh,v2h_wh,v2g_wh,backup_wh,flags
`interval_start_utc` an ISO UTC time ending in Z on a quarter-hour boundary, strictly increasing
(a missing interval is allowed and counted: the meter may have been off); the registers are
non-negative integer Wh over the interval; `flags` a non-negative integer bitmask whose meaning
the metering documents; any non-zero value marks the interval as estimated/partial and is counted.

Each interval settles at its own quarter-hour: import_wh/1000 · import price, export_wh/1000 ·
export price, the prices being energy/tariffs.py's all-in DKK/kWh over the day-ahead price of
that quarter-hour (an hourly price covers its four quarters). Months are Danish local months
(the billing calendar).
"""

import csv
import os

from . import prices as _prices
from . import tariffs as _tariffs

HEADER = ("interval_start_utc", "grid_import_wh", "grid_export_wh", "ev_charged_wh", "ev_discharged_wh",
          "v2h_wh", "v2g_wh", "backup_wh", "flags")
REGISTERS = HEADER[1:-1]
INTERVAL_S = 900


class SettleError(ValueError):
    """Bad interval file or records prices do not cover; str() is "where: problem"."""

    def __init__(self, where, problem):
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


def _int(where, text, key):
    s = text.strip()
    if not s.isdigit():  # digits only: no sign, no decimals, not empty
        raise SettleError(where, f"{key} must be a non-negative integer, found {text!r}")
    return int(s)


def read_intervals(path):
    """The interval CSV -> [{"t_s", "line", <registers>, "flags"}], validated (SettleError
    names file:line and the column)."""
    name = os.path.basename(path)
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise SettleError(name, f"cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise SettleError(name, "not a UTF-8 text file") from None
    except csv.Error as e:
        raise SettleError(name, f"malformed CSV: {e}") from None
    if not rows:
        raise SettleError(name, "empty file")
    if tuple(h.strip() for h in rows[0]) != HEADER:
        raise SettleError(f"{name}:1", f"header must be {','.join(HEADER)}")
    out = []
    prev = None
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        where = f"{name}:{lineno}"
        if len(row) != len(HEADER):
            raise SettleError(where, f"expected {len(HEADER)} fields, found {len(row)}")
        ts = row[0].strip()
        if not ts.endswith("Z"):
            raise SettleError(where, f"interval_start_utc {ts!r} must be UTC, ending in Z")
        try:
            t = _prices.parse_utc(ts)
        except ValueError as e:
            raise SettleError(where, f"interval_start_utc: {e}") from None
        if t % INTERVAL_S:
            raise SettleError(where, f"interval_start_utc {ts} is not on a quarter-hour boundary")
        if prev is not None and t == prev:
            raise SettleError(where, f"duplicate interval {ts}")
        if prev is not None and t < prev:
            raise SettleError(where, f"out of order: {ts} after {_prices.format_utc(prev)}")
        rec = {"t_s": t, "line": lineno}
        for key, text in zip(HEADER[1:], row[1:]):
            rec[key] = _int(where, text, key)
        out.append(rec)
        prev = t
    if not out:
        raise SettleError(name, "no interval records")
    return out


def _month_key(t_s, tariff):
    y, m, _d, _h = _tariffs.local_fields(t_s, tariff.std_offset_h, tariff.dst)
    return f"{y:04d}-{m:02d}"


def settle(records, prices, tariff, source="intervals"):
    """Settle interval records at `tariff` over the day-ahead `prices` (a PriceSeries).

    Returns {"intervals", "flagged_intervals", "missing_intervals", "first_utc", "end_utc",
    "kwh": {register: kWh}, "import_cost_dkk", "export_earnings_dkk", "net_dkk",
    "months": [{"month", "intervals", "flagged", "import_kwh", "export_kwh", "import_cost_dkk",
    "export_earnings_dkk", "net_dkk"}]}. net = import cost − export earnings.
    SettleError names the record's line if the prices do not cover it.
    """
    if not records:
        raise SettleError(source, "no interval records")
    first, last = records[0]["t_s"], records[-1]["t_s"]
    for r in (records[0], records[-1]):
        if r["t_s"] < prices.start_s or r["t_s"] + INTERVAL_S > prices.end_s:
            raise SettleError(f"{source}:{r.get('line', '?')}",
                              f"interval {_prices.format_utc(r['t_s'])} not covered by the prices "
                              f"({_prices.format_utc(prices.start_s)} .. {_prices.format_utc(prices.end_s)})")
    spot = _prices.slots(prices, INTERVAL_S, first, last + INTERVAL_S)
    kwh = {k: 0.0 for k in REGISTERS}
    months = {}
    imp_cost = exp_earn = 0.0
    flagged = 0
    for r in records:
        t = r["t_s"]
        p = spot[(t - first) // INTERVAL_S]
        try:
            ip = tariff.import_dkk_per_kwh(t, p)
            ep = tariff.export_dkk_per_kwh(t, p)
        except _tariffs.TariffError as e:
            raise SettleError(f"{source}:{r.get('line', '?')}", str(e)) from None
        ik, ek = r["grid_import_wh"] / 1000.0, r["grid_export_wh"] / 1000.0
        for k in REGISTERS:
            kwh[k] += r[k] / 1000.0
        ic, ee = ik * ip, ek * ep
        imp_cost += ic
        exp_earn += ee
        f = 1 if r["flags"] else 0
        flagged += f
        m = months.setdefault(_month_key(t, tariff), [0, 0, 0.0, 0.0, 0.0, 0.0])
        m[0] += 1
        m[1] += f
        m[2] += ik
        m[3] += ek
        m[4] += ic
        m[5] += ee
    month_rows = [{"month": k, "intervals": v[0], "flagged": v[1], "import_kwh": v[2], "export_kwh": v[3],
                   "import_cost_dkk": v[4], "export_earnings_dkk": v[5], "net_dkk": v[4] - v[5]}
                  for k, v in sorted(months.items())]
    return {"tariff": tariff.name, "area": prices.area, "intervals": len(records), "flagged_intervals": flagged,
            "missing_intervals": (last - first) // INTERVAL_S + 1 - len(records),
            "first_utc": _prices.format_utc(first), "end_utc": _prices.format_utc(last + INTERVAL_S),
            "kwh": kwh, "import_cost_dkk": imp_cost, "export_earnings_dkk": exp_earn,
            "net_dkk": imp_cost - exp_earn, "months": month_rows}
