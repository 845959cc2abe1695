"""The metering's export and the settlement agree on one format: interval records as the
firmware stores them (start, length, flags, deltas in REGISTERS order) -> `v2xgw diag
intervals` CSV writer -> `v2xgw energy settle`, whose bill is worked out again here from
the shipped prices and the tariff, interval by interval."""

import json
import subprocess
import sys

from energy import prices, tariffs
from tools import meter_export

PRICES = "energy/data/prices/dk1-2025.csv"
T0 = 1735689600 + 17 * 3600  # 2025-01-01T17:00:00Z: the evening peak tariff is in the span


def _records():
    recs = []
    for k in range(12):  # three hours of quarter-hours, varied flows; one flagged partial
        imp, exp = 500 + 97 * k, (k % 3) * 211
        recs.append((T0 + 900 * k, 900, 2 if k == 4 else 0, (imp, exp, 300 * (k % 2), 150 * (k % 4), 40 * k, exp, 0)))
    return recs


def test_exported_intervals_settle_to_the_tariff_bill(tmp_path):
    out = tmp_path / "intervals.csv"
    with out.open("w") as f:
        assert meter_export.write_csv(_records(), f) == 12
    js = tmp_path / "bill.json"
    r = subprocess.run([sys.executable, "-m", "tools.cli", "energy", "settle", "--intervals", str(out), "--prices",
                        PRICES, "--area", "DK1", "--json", str(js)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    bill = json.loads(js.read_text())
    series = prices.load(PRICES, "DK1")
    tariff = tariffs.load_tariff(tariffs.default_tariff("DK1"))
    cost = earn = 0.0
    for start, _len, _flags, d in _records():
        i = series.times_s.index(start - start % 3600)  # the hourly price that covers the quarter
        spot = series.eur_mwh[i]
        cost += d[0] / 1000.0 * tariff.import_dkk_per_kwh(start, spot)
        earn += d[1] / 1000.0 * tariff.export_dkk_per_kwh(start, spot)
    assert bill["intervals"] == 12 and bill["flagged_intervals"] == 1 and bill["missing_intervals"] == 0
    assert abs(bill["kwh"]["grid_import_wh"] - sum(x[3][0] for x in _records()) / 1000.0) < 1e-9
    assert abs(bill["import_cost_dkk"] - cost) < 1e-6 and abs(bill["export_earnings_dkk"] - earn) < 1e-6
    assert abs(bill["net_dkk"] - (cost - earn)) < 1e-6 and cost > 0 and earn > 0
