"""Metering settlement: totals reconcile with the formula worked by hand on a small case, local
months, flagged and missing intervals, and every malformed interval file refused by line."""

import json

import pytest

from energy import prices, settle, tariffs
from energy.settle import SettleError
from tools.cli import main

HEADER = ",".join(settle.HEADER) + "\n"
UTC = prices.parse_utc

# a tariff with round figures so the expected bill is worked out below from the formula
GRID = [0.10] * 6 + [0.20] * 11 + [0.60] * 4 + [0.20] * 3  # low 00-06, high 06-17, peak 17-21, high 21-24
TARIFF = {
    "name": "test-flat", "area": "DK1", "eur_to_local": 7.5, "vat": 0.25, "std_offset_h": 1, "dst": "EU",
    "grid": [dict(ValidFrom="2025-01-01", ValidTo="2025-04-01", source="test",
                  **{f"Price{h + 1}": GRID[h] for h in range(24)})],
    "national": [dict(ValidFrom="2025-01-01", ValidTo="2025-04-01", transmission_dkk_per_kwh=0.05,
                      system_dkk_per_kwh=0.04, tax_dkk_per_kwh=0.70, source="test")],
    "feed_in": [dict(ValidFrom="2025-01-01", ValidTo="2025-04-01", parts_dkk_per_kwh={"all": 0.01},
                     source="test")],
}


@pytest.fixture
def setup(tmp_path):
    tp = tmp_path / "t.json"
    tp.write_text(json.dumps(TARIFF))
    pp = tmp_path / "p.csv"
    # hourly prices 2025-01-31 15:00Z .. 2025-02-01 01:00Z
    t0 = UTC("2025-01-31T15:00:00Z")
    pp.write_text("time_utc,price_area,price_eur_mwh\n" + "".join(
        f"{prices.format_utc(t0 + 3600 * i)},DK1,{100.0 + 10 * i}\n" for i in range(10)))
    return str(tp), str(pp), tmp_path


def _intervals(tmp_path, lines, name="iv.csv"):
    p = tmp_path / name
    p.write_text(HEADER + "".join(l + "\n" for l in lines))
    return str(p)


def test_totals_reconcile_with_the_formula_by_hand(setup):
    tp, pp, tmp = setup
    path = _intervals(tmp, [
        "2025-01-31T16:00:00Z,1000,0,800,0,0,0,0,0",     # 17:00 CET, peak; spot 110
        "2025-01-31T16:15:00Z,250,0,0,0,0,0,0,1",       # flagged
        "2025-01-31T18:45:00Z,0,2000,0,2400,300,2000,0,0",  # 19:45 CET peak; spot 130; export
        "2025-01-31T23:00:00Z,500,0,0,0,0,0,0,4",       # 00:00 CET on 1 February: low; spot 180
    ])
    rep = settle.settle(settle.read_intervals(path), prices.load(pp), tariffs.load_tariff(tp))

    def imp(spot, grid):
        return (spot * 7.5 / 1000 + grid + 0.05 + 0.04 + 0.70) * 1.25

    def exp(spot):
        return spot * 7.5 / 1000 - 0.01

    jan_cost = 1.0 * imp(110, 0.60) + 0.25 * imp(110, 0.60)
    feb_cost = 0.5 * imp(180, 0.10)
    earn = 2.0 * exp(130)
    assert rep["import_cost_dkk"] == pytest.approx(jan_cost + feb_cost)
    assert rep["export_earnings_dkk"] == pytest.approx(earn)
    assert rep["net_dkk"] == pytest.approx(jan_cost + feb_cost - earn)
    assert rep["kwh"] == pytest.approx({"grid_import_wh": 1.75, "grid_export_wh": 2.0, "ev_charged_wh": 0.8,
                                        "ev_discharged_wh": 2.4, "v2h_wh": 0.3, "v2g_wh": 2.0, "backup_wh": 0.0})
    assert (rep["intervals"], rep["flagged_intervals"]) == (4, 2)
    assert rep["missing_intervals"] == (UTC("2025-01-31T23:00:00Z") - UTC("2025-01-31T16:00:00Z")) // 900 + 1 - 4
    jan, feb = rep["months"]
    assert (jan["month"], feb["month"]) == ("2025-01", "2025-02")
    assert jan["import_cost_dkk"] == pytest.approx(jan_cost) and feb["import_cost_dkk"] == pytest.approx(feb_cost)
    assert (jan["intervals"], jan["flagged"], feb["intervals"], feb["flagged"]) == (3, 1, 1, 1)
    assert sum(m["net_dkk"] for m in rep["months"]) == pytest.approx(rep["net_dkk"])


@pytest.mark.parametrize("case, lines, line, match", [
    ("missing_z", ["2025-01-31T16:00:00,1,0,0,0,0,0,0,0"], 2, "ending in Z"),
    ("bad_timestamp", ["2025-01-32T16:00:00Z,1,0,0,0,0,0,0,0"], 2, "interval_start_utc"),
    ("unaligned", ["2025-01-31T16:05:00Z,1,0,0,0,0,0,0,0"], 2, "quarter-hour boundary"),
    ("duplicate", ["2025-01-31T16:00:00Z,1,0,0,0,0,0,0,0"] * 2, 3, "duplicate"),
    ("out_of_order", ["2025-01-31T16:15:00Z,1,0,0,0,0,0,0,0", "2025-01-31T16:00:00Z,1,0,0,0,0,0,0,0"], 3,
     "out of order"),
    ("negative_wh", ["2025-01-31T16:00:00Z,-1,0,0,0,0,0,0,0"], 2, "grid_import_wh must be a non-negative integer"),
    ("decimal_wh", ["2025-01-31T16:00:00Z,1,0.5,0,0,0,0,0,0"], 2, "grid_export_wh"),
    ("empty_flags", ["2025-01-31T16:00:00Z,1,0,0,0,0,0,0,"], 2, "flags"),
    ("field_count", ["2025-01-31T16:00:00Z,1,0,0,0,0,0,0"], 2, "expected 9 fields"),
])
def test_malformed_interval_file_is_refused_by_line(tmp_path, case, lines, line, match):
    with pytest.raises(SettleError, match=match) as e:
        settle.read_intervals(_intervals(tmp_path, lines))
    assert e.value.where == f"iv.csv:{line}", case


def test_bad_header_and_empty_files(tmp_path):
    p = tmp_path / "h.csv"
    p.write_text("interval_start,import\n")
    with pytest.raises(SettleError, match="header") as e:
        settle.read_intervals(str(p))
    assert e.value.where == "h.csv:1"
    p.write_text("")
    with pytest.raises(SettleError, match="empty"):
        settle.read_intervals(str(p))
    with pytest.raises(SettleError, match="no interval records"):
        settle.read_intervals(_intervals(tmp_path, []))


def test_prices_not_covering_an_interval_name_its_line(setup):
    tp, pp, tmp = setup
    path = _intervals(tmp, ["2025-01-31T16:00:00Z,1,0,0,0,0,0,0,0", "2025-02-01T01:00:00Z,1,0,0,0,0,0,0,0"])
    with pytest.raises(SettleError, match="not covered by the prices") as e:
        settle.settle(settle.read_intervals(path), prices.load(pp), tariffs.load_tariff(tp), source="iv.csv")
    assert e.value.where == "iv.csv:3"


def test_cli_prints_the_table_and_writes_json(setup, capsys):
    tp, pp, tmp = setup
    path = _intervals(tmp, ["2025-01-31T16:00:00Z,1000,0,0,0,0,0,0,0", "2025-01-31T16:15:00Z,0,500,0,0,0,0,0,2"])
    out = tmp / "rep.json"
    assert main(["energy", "settle", "--intervals", path, "--prices", pp, "--tariff", tp, "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2025-01" in text and "total" in text and "1 interval(s) flagged" in text
    rep = json.loads(out.read_text())
    assert rep["net_dkk"] == pytest.approx((110 * 7.5 / 1000 + 0.6 + 0.79) * 1.25 - 0.5 * (110 * 7.5 / 1000 - 0.01))


@pytest.mark.parametrize("case, lines, match", [
    ("unaligned", ["2025-01-31T16:07:00Z,1,0,0,0,0,0,0,0"], "iv.csv:2: interval_start_utc"),
    ("not_covered", ["2025-03-01T00:00:00Z,1,0,0,0,0,0,0,0"], "iv.csv:2: interval 2025-03-01"),
])
def test_cli_exits_2_with_one_line(setup, capsys, case, lines, match):
    tp, pp, tmp = setup
    path = _intervals(tmp, lines)
    assert main(["energy", "settle", "--intervals", path, "--prices", pp, "--tariff", tp]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and match in err, case
