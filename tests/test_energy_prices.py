"""Day-ahead price series: the shipped files load, per-slot prices follow the time-weighted
definition, and every kind of bad price file is refused with its file and line named."""

import json
import math
import pathlib

import pytest

from energy import prices
from energy.prices import PriceError

DATA = pathlib.Path(__file__).resolve().parent.parent / "energy" / "data" / "prices"
H = "time_utc,price_area,price_eur_mwh\n"


def _csv(tmp_path, body, name="p.csv"):
    p = tmp_path / name
    p.write_text(H + body)
    return str(p)


def _rows(area, start, n, step_min, first=10.0):
    t0 = prices.parse_utc(start)
    return "".join(f"{prices.format_utc(t0 + i * step_min * 60)},{area},{first + i}\n" for i in range(n))


def test_shipped_files_load_with_their_documented_shape():
    s24 = prices.load(str(DATA / "dk1-2024.csv"))
    assert (s24.area, len(s24)) == ("DK1", 8784)
    assert s24.end_s - s24.start_s == 366 * 86400
    s25 = prices.load(str(DATA / "dk2-2025.csv"), area="DK2")
    assert len(s25) == 15390  # 6550 hours + 8840 quarter-hours (SOURCES.md)
    switch = prices.parse_utc("2025-09-30T22:00:00Z")
    i = s25.times_s.index(switch)
    assert s25.interval_s(i - 1) == 3600 and s25.interval_s(i) == 900
    assert s25.interval_s(len(s25) - 1) == 900
    assert s25.end_s == prices.parse_utc("2026-01-01T00:00:00Z")


def test_hourly_slots_of_mixed_2025_equal_the_derived_hourly_file():
    # the shipped *-2025-hourly.csv averages each hour's four quarters (rounded to 4 decimals)
    mixed = prices.load(str(DATA / "dk1-2025.csv"))
    hourly = prices.load(str(DATA / "dk1-2025-hourly.csv"))
    got = prices.slots(mixed, 3600)
    assert len(got) == len(hourly) == 8760
    assert max(abs(a - b) for a, b in zip(got, hourly.eur_mwh)) < 6e-5


def test_quarter_slots_repeat_the_hourly_price_and_hourly_slots_average_quarters(tmp_path):
    hourly = prices.load(_csv(tmp_path, _rows("DK1", "2024-03-01T00:00:00Z", 3, 60)))
    q = prices.slots(hourly, 900)
    assert q == [10.0] * 4 + [11.0] * 4 + [12.0] * 4
    quarters = prices.load(_csv(tmp_path, _rows("DK1", "2025-10-01T00:00:00Z", 8, 15), "q.csv"))
    h = prices.slots(quarters, 3600)
    assert h == [sum(quarters.eur_mwh[:4]) / 4, sum(quarters.eur_mwh[4:]) / 4]


def test_a_slot_straddling_the_resolution_change_is_time_weighted(tmp_path):
    body = "2025-09-30T21:00:00Z,DK1,100\n" + _rows("DK1", "2025-09-30T22:00:00Z", 4, 15, first=20.0)
    s = prices.load(_csv(tmp_path, body))
    # one 30-min slot over the last half of the hourly price, one over two quarters, ...
    got = prices.slots(s, 1800, start_s=prices.parse_utc("2025-09-30T21:30:00Z"),
                       end_s=prices.parse_utc("2025-09-30T22:30:00Z"))
    assert got == [100.0, (20.0 + 21.0) / 2]
    # a 2-hour slot: half the hourly price's weight, a quarter each for... all four quarters
    two_h = prices.slots(s, 7200)
    assert two_h == [pytest.approx((100.0 * 3600 + (20 + 21 + 22 + 23) * 900) / 7200)]


def test_slots_outside_the_series_or_not_whole_are_refused(tmp_path):
    s = prices.load(_csv(tmp_path, _rows("DK1", "2024-03-01T00:00:00Z", 3, 60)))
    with pytest.raises(PriceError, match="cover"):
        prices.slots(s, 900, start_s=s.start_s - 900)
    with pytest.raises(PriceError, match="cover"):
        prices.slots(s, 900, end_s=s.end_s + 900)
    with pytest.raises(PriceError, match="whole number"):
        prices.slots(s, 900, end_s=s.start_s + 1000)
    with pytest.raises(PriceError, match="positive"):
        prices.slots(s, 0)


@pytest.mark.parametrize("case, body, match, line", [
    ("malformed_header", None, "header", 1),
    ("bad_timestamp", "2024-13-01T00:00:00Z,DK1,1\n", "bad timestamp", 2),
    ("non_numeric_price", "2024-03-01T00:00:00Z,DK1,abc\n", "not a number", 2),
    ("nan_price", "2024-03-01T00:00:00Z,DK1,nan\n", "not a finite", 2),
    ("duplicate_interval", "2024-03-01T00:00:00Z,DK1,1\n2024-03-01T00:00:00Z,DK1,2\n", "duplicate", 3),
    ("out_of_order", "2024-03-01T01:00:00Z,DK1,1\n2024-03-01T00:00:00Z,DK1,2\n", "out of order", 3),
    ("gap_hourly", "2024-03-01T00:00:00Z,DK1,1\n2024-03-01T02:00:00Z,DK1,2\n", "gap: 1 interval", 3),
    ("gap_quarter", _rows("DK1", "2025-10-01T00:00:00Z", 2, 15) + "2025-10-01T01:00:00Z,DK1,5\n"
     "2025-10-01T01:15:00Z,DK1,5\n", "gap", 4),
    ("three_quarters_missing", _rows("DK1", "2025-10-01T00:00:00Z", 4, 15) + "2025-10-01T01:45:00Z,DK1,5\n"
     "2025-10-01T02:00:00Z,DK1,5\n", "gap", 6),
    ("hour_hole_between_quarters", "2025-10-01T00:45:00Z,DK1,1\n2025-10-01T01:00:00Z,DK1,1\n"
     "2025-10-01T02:00:00Z,DK1,1\n2025-10-01T02:15:00Z,DK1,1\n", "3 quarter-hours missing", 4),
    ("interval_10_min", "2024-03-01T00:00:00Z,DK1,1\n2024-03-01T00:10:00Z,DK1,2\n", "10 min is neither", 3),
    ("interval_30_min", "2024-03-01T00:00:00Z,DK1,1\n2024-03-01T00:30:00Z,DK1,2\n2024-03-01T01:00:00Z,DK1,2\n",
     "30 min is neither", 3),
    ("off_quarter_start", "2024-03-01T00:05:00Z,DK1,1\n", "quarter-hour boundary", 2),
    ("hourly_not_on_hour", "2024-03-01T00:15:00Z,DK1,1\n2024-03-01T01:15:00Z,DK1,2\n", "hour boundary", 2),
    ("wrong_field_count", "2024-03-01T00:00:00Z,DK1\n", "3 fields", 2),
    ("unknown_area_in_file", "2024-03-01T00:00:00Z,SE3,1\n", "unknown price area", 2),
])
def test_bad_csv_is_refused_naming_file_and_line(tmp_path, case, body, match, line):
    if body is None:
        p = tmp_path / "p.csv"
        p.write_text("time,area,price\n2024-03-01T00:00:00Z,DK1,1\n")
        path = str(p)
    else:
        path = _csv(tmp_path, body)
    with pytest.raises(PriceError, match=match) as e:
        prices.load(path)
    assert e.value.where == f"p.csv:{line}", case


def test_empty_file_and_header_only_are_refused(tmp_path):
    p = tmp_path / "e.csv"
    p.write_text("")
    with pytest.raises(PriceError, match="empty file"):
        prices.load(str(p))
    with pytest.raises(PriceError, match="empty file"):
        prices.load(_csv(tmp_path, ""))


def test_a_file_of_two_areas_needs_the_area(tmp_path):
    body = _rows("DK1", "2024-03-01T00:00:00Z", 2, 60) + _rows("DK2", "2024-03-01T00:00:00Z", 2, 60, first=50.0)
    path = _csv(tmp_path, body)
    with pytest.raises(PriceError, match="give the area"):
        prices.load(path)
    assert prices.load(path, area="DK2").eur_mwh == [50.0, 51.0]
    with pytest.raises(PriceError, match="unknown price area 'DK3'"):
        prices.load(path, area="DK3")
    one = _csv(tmp_path, _rows("DK1", "2024-03-01T00:00:00Z", 2, 60), "one.csv")
    with pytest.raises(PriceError, match="no rows for area DK2"):
        prices.load(one, area="DK2")


def test_missing_file_is_a_price_error(tmp_path):
    with pytest.raises(PriceError, match="cannot read"):
        prices.load(str(tmp_path / "nope.csv"))


def _eds(tmp_path, records, name="eds.json"):
    p = tmp_path / name
    p.write_text(json.dumps({"total": len(records), "records": records}))
    return str(p)


def test_eds_elspotprices_and_dayaheadprices_json(tmp_path):
    # the API's default order is descending; neighbouring zones come along and are ignored
    recs = [{"HourUTC": f"2024-03-01T0{h}:00:00", "HourDK": "x", "PriceArea": a, "SpotPriceDKK": 1.0,
             "SpotPriceEUR": 10.0 * h + (a == "DK2")} for h in (2, 1, 0) for a in ("DK1", "DK2", "SE3")]
    s = prices.load(_eds(tmp_path, recs), area="DK1")
    assert s.eur_mwh == [0.0, 10.0, 20.0] and s.start_s == prices.parse_utc("2024-03-01T00:00:00Z")
    dap = [{"TimeUTC": f"2025-10-01T00:{m:02d}:00", "TimeDK": "x", "PriceArea": "DK2",
            "DayAheadPriceEUR": float(m), "DayAheadPriceDKK": 0.0} for m in (0, 15, 30, 45)]
    s2 = prices.load(_eds(tmp_path, dap, "d.json"))
    assert (s2.area, s2.eur_mwh, s2.interval_s(3)) == ("DK2", [0.0, 15.0, 30.0, 45.0], 900)


@pytest.mark.parametrize("case, recs, match, where", [
    ("null_price", [{"HourUTC": "2024-03-01T00:00:00", "PriceArea": "DK1", "SpotPriceEUR": None}],
     "no price", "eds.json: records[0].SpotPriceEUR"),
    ("no_time_field", [{"Hour": "2024-03-01T00:00:00", "PriceArea": "DK1", "SpotPriceEUR": 1}],
     "no time field", "eds.json: records[0]"),
    ("bad_time", [{"TimeUTC": "yesterday", "PriceArea": "DK1", "DayAheadPriceEUR": 1}],
     "bad timestamp", "eds.json: records[0].TimeUTC"),
    ("duplicate", [{"TimeUTC": "2025-10-01T00:00:00", "PriceArea": "DK1", "DayAheadPriceEUR": 1}] * 2,
     "duplicate", "eds.json: records[1]"),
    ("empty", [], "empty", "eds.json: records"),
])
def test_bad_eds_json_is_refused_naming_the_record(tmp_path, case, recs, match, where):
    with pytest.raises(PriceError, match=match) as e:
        prices.load(_eds(tmp_path, recs))
    assert e.value.where == where, case


def test_malformed_json_names_the_line(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{"records": [\n{"HourUTC": }\n]}')
    with pytest.raises(PriceError, match="malformed JSON") as e:
        prices.load(str(p))
    assert e.value.where == "bad.json:2"


def test_parse_utc_accepts_the_eds_and_project_forms_only():
    assert prices.parse_utc("2025-10-01T00:15:00Z") == prices.parse_utc("2025-10-01T00:15") == 1759277700
    for bad in ("2025-02-29T00:00:00Z", "2025-10-01", "2025-10-01T24:00:00Z", "2025-10-01T00:00:00+02:00"):
        with pytest.raises(ValueError):
            prices.parse_utc(bad)
    assert math.isclose(prices.parse_utc(prices.format_utc(1759277700)), 1759277700)


# --- `v2xgw energy prices` ------------------------------------------------------------------

def test_cli_summary_and_per_slot_csv(tmp_path, capsys):
    from tools.cli import main

    path = _csv(tmp_path, _rows("DK1", "2025-01-15T15:00:00Z", 3, 60))
    out = tmp_path / "slots.csv"
    assert main(["energy", "prices", "--prices", path, "--csv", str(out)]) == 0
    text = capsys.readouterr().out
    assert "tariff dk1-n1" in text and "3 intervals, 12 slots of 15 min" in text and "resolution 60 min" in text
    rows = out.read_text().splitlines()
    assert len(rows) == 13 and rows[0].startswith("slot_start_utc,spot_eur_mwh")
    # 16:00Z is 17:00 CET, the first winter peak hour: the grid column shows N1's peak price
    assert rows[5].split(",")[0] == "2025-01-15T16:00:00Z" and float(rows[5].split(",")[3]) == 0.9751


def test_cli_tariff_option_takes_every_shipped_name(tmp_path, capsys):
    from tools.cli import main

    path = _csv(tmp_path, _rows("DK1", "2025-01-15T15:00:00Z", 3, 60))
    out = tmp_path / "slots.csv"
    assert main(["energy", "prices", "--prices", path, "--tariff", "dk1-konstant", "--csv", str(out)]) == 0
    assert "tariff dk1-konstant" in capsys.readouterr().out
    # 17:00 CET is Konstant's winter peak hour (151-NT01T from 2025-10-01, stand-in for January 2025)
    row = out.read_text().splitlines()[5].split(",")
    assert row[0] == "2025-01-15T16:00:00Z" and float(row[3]) == 0.5811


@pytest.mark.parametrize("case, argv_extra, match", [
    ("bad_file", ["--prices", "{bad}"], "bad timestamp"),
    ("unknown_tariff", ["--tariff", "dk7-none"], "no such tariff"),
    ("range_outside", ["--from", "2024-01-01"], "prices cover"),
    ("bad_date", ["--to", "2025-02-30"], "--to"),
])
def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys, case, argv_extra, match):
    from tools.cli import main

    good = _csv(tmp_path, _rows("DK1", "2025-01-15T15:00:00Z", 3, 60))
    bad = _csv(tmp_path, "2025-01-15T1:00:00Z,DK1,1\n", "bad.csv")
    argv = ["energy", "prices", "--prices", good] + [bad if a == "{bad}" else a for a in argv_extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and match in err, case


def test_write_csv_round_trips_exactly(tmp_path):
    s = prices.load(str(DATA / "dk2-2025.csv"))
    out = tmp_path / "copy.csv"
    prices.write_csv(s, str(out))
    back = prices.load(str(out))
    assert (back.area, back.times_s, back.eur_mwh) == (s.area, s.times_s, s.eur_mwh)


def test_cli_eds_fetch_and_save(tmp_path, capsys, monkeypatch):
    from energy import eds
    from test_energy_eds import Recorder
    from tools.cli import main

    monkeypatch.setattr(eds, "urllib_opener", Recorder())
    out = tmp_path / "fetched.csv"
    assert main(["energy", "prices", "--eds", "--area", "DK1", "--from", "2025-09-30T20:00:00Z",
                 "--to", "2025-10-01T02:00:00Z", "--save", str(out)]) == 0
    assert "60 min to 2025-09-30T22:00:00Z, then 15 min" in capsys.readouterr().out
    saved = prices.load(str(out))
    ref = prices.load(str(DATA / "dk1-2025.csv"))
    assert prices.slots(saved, 900) == prices.slots(ref, 900, saved.start_s, saved.end_s)


def test_cli_eds_failure_exits_1_and_missing_range_exits_2(capsys, monkeypatch):
    from energy import eds
    from test_energy_eds import Recorder
    from tools.cli import main

    monkeypatch.setattr(eds, "urllib_opener", Recorder({"DayAheadPrices": TimeoutError("timed out")}))
    assert main(["energy", "prices", "--eds", "--area", "DK1", "--from", "2025-10-01", "--to", "2025-10-02"]) == 1
    assert "no answer within 30 s" in capsys.readouterr().err
    assert main(["energy", "prices", "--eds", "--area", "DK1", "--from", "2025-10-01"]) == 2
    assert "--to: needed with --eds" in capsys.readouterr().err
