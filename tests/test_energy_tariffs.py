"""The tariff model: Danish local time by the EU rule, the time-of-use periods, the all-in
formula, export <= import in every slot, the shipped tariffs covering the shipped prices, one
default per area among its grid companies and their customer counts, a known hour of each added
tariff against the hand computation, and bad tariff files refused naming the key."""

import calendar
import copy
import json

import pytest

from energy import prices, tariffs
from energy.tariffs import TariffError

UTC = prices.parse_utc


# --- EU summer time without a tz database ---------------------------------------------------

@pytest.mark.parametrize("year, start, end", [
    (2024, "2024-03-31T01:00:00Z", "2024-10-27T01:00:00Z"),
    (2025, "2025-03-30T01:00:00Z", "2025-10-26T01:00:00Z"),
    (2026, "2026-03-29T01:00:00Z", "2026-10-25T01:00:00Z"),
])
def test_summer_time_starts_and_ends_at_0100_utc_on_the_last_sundays(year, start, end):
    a, b = UTC(start), UTC(end)
    assert calendar.weekday(year, 3, int(start[8:10])) == 6 and calendar.weekday(year, 10, int(end[8:10])) == 6
    assert not tariffs.eu_summer_time(a - 1) and tariffs.eu_summer_time(a)
    assert tariffs.eu_summer_time(b - 1) and not tariffs.eu_summer_time(b)
    assert tariffs.local_fields(a - 3600) == (year, 3, int(start[8:10]), 1)  # 01:00 CET, then ...
    assert tariffs.local_fields(a) == (year, 3, int(start[8:10]), 3)         # ... 03:00 CEST


def test_the_rule_matches_the_tz_database_hour_by_hour_2020_to_2030():
    zoneinfo = pytest.importorskip("zoneinfo")
    try:
        cph = zoneinfo.ZoneInfo("Europe/Copenhagen")
    except zoneinfo.ZoneInfoNotFoundError:
        pytest.skip("no tz database here")
    import datetime as dt
    t0, t1 = UTC("2020-01-01T00:00:00Z"), UTC("2031-01-01T00:00:00Z")
    mismatches = [t for t in range(t0, t1, 3600)
                  if tariffs.utc_offset_s(t) != dt.datetime.fromtimestamp(t, cph).utcoffset().total_seconds()]
    assert mismatches == []


# --- periods and the formula ----------------------------------------------------------------

@pytest.fixture(scope="module")
def n1():
    return tariffs.load_tariff("dk1-n1")


@pytest.mark.parametrize("utc, grid", [
    ("2025-01-15T04:00:00Z", 0.1083),   # 05:00 CET, winter low load
    ("2025-01-15T05:00:00Z", 0.3250),   # 06:00 CET, winter high load
    ("2025-01-15T15:00:00Z", 0.3250),   # 16:00 CET
    ("2025-01-15T16:00:00Z", 0.9751),   # 17:00 CET, winter peak
    ("2025-01-15T19:00:00Z", 0.9751),   # 20:00 CET, last peak hour
    ("2025-01-15T20:00:00Z", 0.3250),   # 21:00 CET
    ("2025-07-01T15:00:00Z", 0.4225),   # 17:00 CEST, summer peak
    ("2025-07-01T14:00:00Z", 0.1625),   # 16:00 CEST, summer high
    ("2025-12-10T16:00:00Z", 0.7656),   # December 2025 prices
    ("2025-03-31T21:59:00Z", 0.3250),   # 23:59 CEST on 31 March: still winter prices
    ("2025-03-31T22:00:00Z", 0.1083),   # 00:00 CEST on 1 April: summer, low load
])
def test_grid_tariff_follows_local_hour_and_season(n1, utc, grid):
    assert n1.components(UTC(utc), 0.0)["grid"] == grid


def test_import_is_the_sum_of_its_parts_with_vat_and_export_is_spot_less_fees(n1):
    t = UTC("2025-01-15T16:30:00Z")
    spot = 123.4
    c = n1.components(t, spot)
    assert set(c) == set(tariffs.COMPONENTS)
    assert c["spot"] == pytest.approx(spot * 7.46038 / 1000)
    net = c["spot"] + c["grid"] + c["transmission"] + c["system"] + c["tax"]
    assert c["vat"] == pytest.approx(0.25 * net)
    assert n1.import_dkk_per_kwh(t, spot) == pytest.approx(net + c["vat"])
    fee = sum(json.load(open(tariffs.tariff_path("dk1-n1")))["feed_in"][2]["parts_dkk_per_kwh"].values())
    assert n1.export_dkk_per_kwh(t, spot) == pytest.approx(c["spot"] - fee)


def test_elafgift_drops_to_the_eu_minimum_in_2026(n1):
    assert n1.components(UTC("2025-06-01T12:00:00Z"), 50)["tax"] == 0.72
    assert n1.components(UTC("2026-06-01T12:00:00Z"), 50)["tax"] == 0.008
    radius = tariffs.load_tariff("dk2-radius")  # the one with a 2027 record
    assert radius.components(UTC("2027-02-01T12:00:00Z"), 50)["tax"] == 0.008


def test_price_arrays_equal_the_per_instant_methods_and_export_never_exceeds_import(n1):
    start = UTC("2025-03-29T20:00:00Z")  # across the spring DST change
    spot = [(-1) ** k * 50.0 * (k % 7) - 400.0 * (k % 11 == 0) for k in range(400)]
    imp, exp = tariffs.price_arrays(n1, start, 900, spot)
    for k, p in enumerate(spot):
        t = start + 900 * k
        assert imp[k] == pytest.approx(n1.import_dkk_per_kwh(t, p))
        assert exp[k] == pytest.approx(n1.export_dkk_per_kwh(t, p))
    assert all(e <= i for e, i in zip(exp, imp))
    # a deeply negative price is where VAT on the spot part would otherwise invert the pair
    t = UTC("2026-07-01T10:00:00Z")
    assert n1.export_dkk_per_kwh(t, -500.0) == n1.import_dkk_per_kwh(t, -500.0)


@pytest.mark.parametrize("area, fname", [("DK1", "dk1-2024.csv"), ("DK1", "dk1-2025.csv"),
                                         ("DK2", "dk2-2024.csv"), ("DK2", "dk2-2025.csv")])
def test_every_tariff_of_the_area_covers_every_shipped_price_interval(area, fname):
    # the fleet simulation may draw any tariff of the area, not only the default, for these years
    s = prices.load(f"energy/data/prices/{fname}")
    names = [n for n, _c in tariffs.area_tariffs(area)]
    assert tariffs.default_tariff(area) in names and len(names) >= 2
    for name in names:
        t = tariffs.load_tariff(name)
        assert t.area == area
        imp, exp = tariffs.price_arrays(t, s.start_s, 900, prices.slots(s, 900))
        assert len(imp) == (s.end_s - s.start_s) // 900
        assert min(imp) > 0 and all(e <= i for e, i in zip(exp, imp)), name


def test_default_tariff_per_area():
    assert tariffs.default_tariff("DK1") == "dk1-n1"
    assert tariffs.default_tariff("DK2") == "dk2-radius"
    with pytest.raises(TariffError, match="no default tariff"):
        tariffs.default_tariff("SE3")


# --- every shipped tariff, the areas' companies and their customers ---------------------------

def _shipped(name):
    with open(tariffs.tariff_path(name), encoding="utf-8") as f:
        return json.load(f)


@pytest.mark.parametrize("name", tariffs.available())
def test_every_shipped_tariff_loads_with_its_company_and_customers(name):
    t = tariffs.load_tariff(name)
    doc = _shipped(name)
    assert t.name == name == doc["name"] and name.startswith(t.area.lower() + "-")
    assert t.grid_company and isinstance(t.customers, int) and t.customers > 0
    assert doc["customers_source"].strip()
    # every record of every table cites its source
    assert all(r["source"].strip() for k in ("grid", "national", "feed_in") for r in doc[k])


def test_each_area_has_exactly_one_default_and_the_companies_weighed_by_customers():
    areas = {}
    for name in tariffs.available():
        doc = _shipped(name)
        areas.setdefault(doc["area"], []).append(name)
        assert isinstance(doc.get("default_for_area", False), bool)
    assert set(areas) == {"DK1", "DK2"}
    for area, names in areas.items():
        defaults = [n for n in names if _shipped(n).get("default_for_area")]
        assert defaults == [tariffs.default_tariff(area)], area
        assert len({_shipped(n)["grid_company"] for n in names}) == len(names) >= 2  # one file per company
    assert tariffs.area_tariffs("DK1") == [("dk1-konstant", 220000), ("dk1-n1", 800000)]
    assert tariffs.area_tariffs("DK2") == [("dk2-cerius", 400000), ("dk2-radius", 1000000)]
    assert tariffs.area_tariffs("SE3") == []


# The all-in price of a known hour of each added tariff, by hand from the figures in its records:
# (spot EUR/MWh x 7.46038 / 1000 + grid + transmission + system + elafgift) x 1.25, DKK/kWh.
SPOT_DKK = 7.46038 / 1000
NAT_2025 = 0.074 + 0.051 + 0.72    # Energinet 2024 values carried into 2025 (UNVERIFIED), elafgift 72.0 øre
NAT_2026 = 0.043 + 0.072 + 0.008   # elpris.dk national charges 2026, elafgift 0.8 øre


@pytest.mark.parametrize("name, utc, spot, grid, national", [
    # Konstant 151-NT01T summer 2025 peak: 17:00 CEST
    ("dk1-konstant", "2025-07-01T15:00:00Z", 100.0, 0.2518, NAT_2025),
    # Konstant winter 2026 (from 2026-01-01) peak: 17:00 CET
    ("dk1-konstant", "2026-01-15T16:00:00Z", 50.0, 0.5449, NAT_2026),
    # Konstant C_FBTNTR_B summer 2026 high load: 21:00 CEST is high again
    ("dk1-konstant", "2026-07-01T19:00:00Z", 0.0, 0.0908, NAT_2026),
    # Cerius winter 2025/26 low load: 05:00 CET
    ("dk2-cerius", "2025-11-04T04:00:00Z", 80.0, 0.1065, NAT_2025),
    # Cerius summer 2026 high load: 21:00 CEST
    ("dk2-cerius", "2026-07-01T19:00:00Z", 0.0, 0.1730, NAT_2026),
    # Cerius winter 2026/27 peak: 18:00 CET
    ("dk2-cerius", "2027-02-01T17:00:00Z", -20.0, 1.0380, 0.043 + 0.072 + 0.008),
])
def test_a_known_hour_of_each_added_tariff_equals_the_hand_computation(name, utc, spot, grid, national):
    t = tariffs.load_tariff(name)
    assert t.components(UTC(utc), spot)["grid"] == grid
    assert t.import_dkk_per_kwh(UTC(utc), spot) == pytest.approx((spot * SPOT_DKK + grid + national) * 1.25)
    # feed-in: grid company 0 (UNVERIFIED), Energinet 0.0046, supplier 0.02
    assert t.export_dkk_per_kwh(UTC(utc), spot) == pytest.approx(spot * SPOT_DKK - 0.0246)


def test_a_time_outside_the_tariff_is_an_error_naming_the_table(n1):
    with pytest.raises(TariffError, match="no record in force at local time 2023-12-31 23:00") as e:
        n1.import_dkk_per_kwh(UTC("2023-12-31T22:00:00Z"), 10)
    assert e.value.where == "dk1-n1.json: grid"


def test_price_arrays_year_benchmark(benchmark, n1):
    # a year of 15-min slots; timing in the benchmark table, not asserted
    spot = [50.0] * 35040
    imp, _exp = benchmark(tariffs.price_arrays, n1, UTC("2025-01-01T00:00:00Z"), 900, spot)
    assert len(imp) == 35040


# --- bad tariff files -----------------------------------------------------------------------

def _doc():
    with open(tariffs.tariff_path("dk2-radius"), encoding="utf-8") as f:
        return json.load(f)


def _write(tmp_path, doc):
    p = tmp_path / "t.json"
    p.write_text(json.dumps(doc))
    return str(p)


def _mut(fn):
    d = _doc()
    fn(d)
    return d


@pytest.mark.parametrize("case, doc, where, match", [
    ("unknown_key", _mut(lambda d: d.update(vatt=0.25)), "t.json: vatt", "unknown key"),
    ("missing_vat", _mut(lambda d: d.pop("vat")), "t.json: vat", "missing"),
    ("vat_not_number", _mut(lambda d: d.update(vat="25%")), "t.json: vat", "must be a number"),
    ("vat_out_of_range", _mut(lambda d: d.update(vat=25)), "t.json: vat", "outside"),
    ("missing_price", _mut(lambda d: d["grid"][3].pop("Price7")), "t.json: grid[3].Price7", "missing"),
    ("price_not_number", _mut(lambda d: d["grid"][0].update(Price18=None)), "t.json: grid[0].Price18",
     "must be a number"),
    ("no_source", _mut(lambda d: d["grid"][1].pop("source")), "t.json: grid[1].source", "source"),
    ("bad_date", _mut(lambda d: d["national"][0].update(ValidFrom="1/1/2024")), "t.json: national[0].ValidFrom",
     "not a date"),
    ("not_whole_hour", _mut(lambda d: d["grid"][0].update(ValidTo="2024-04-01T00:30:00")),
     "t.json: grid[0].ValidTo", "whole local hour"),
    ("to_before_from", _mut(lambda d: d["national"][0].update(ValidTo="2023-01-01")),
     "t.json: national[0].ValidTo", "not after"),
    ("overlap", _mut(lambda d: d["grid"][1].update(ValidFrom="2024-03-01")), "t.json: grid", "overlap"),
    ("missing_tax", _mut(lambda d: d["national"][1].pop("tax_dkk_per_kwh")),
     "t.json: national[1].tax_dkk_per_kwh", "must be a number"),
    ("feed_in_parts", _mut(lambda d: d["feed_in"][0].update(parts_dkk_per_kwh=0.1)),
     "t.json: feed_in[0].parts_dkk_per_kwh", "object"),
    ("bad_dst", _mut(lambda d: d.update(dst="US")), "t.json: dst", "EU"),
    ("empty_grid", _mut(lambda d: d.update(grid=[])), "t.json: grid", "non-empty"),
    ("customers_text", _mut(lambda d: d.update(customers="1 million")), "t.json: customers", "positive whole"),
    ("customers_zero", _mut(lambda d: d.update(customers=0)), "t.json: customers", "positive whole"),
    ("customers_negative", _mut(lambda d: d.update(customers=-5)), "t.json: customers", "positive whole"),
    ("customers_fraction", _mut(lambda d: d.update(customers=1.5e6)), "t.json: customers", "positive whole"),
    ("customers_bool", _mut(lambda d: d.update(customers=True)), "t.json: customers", "positive whole"),
    ("customers_no_source", _mut(lambda d: d.pop("customers_source")), "t.json: customers_source", "source"),
    ("customers_blank_source", _mut(lambda d: d.update(customers_source=" ")), "t.json: customers_source",
     "source"),
    ("source_without_customers", _mut(lambda d: d.pop("customers")), "t.json: customers", "missing"),
])
def test_bad_tariff_file_is_refused_naming_the_key(tmp_path, case, doc, where, match):
    with pytest.raises(TariffError, match=match) as e:
        tariffs.load_tariff(_write(tmp_path, doc))
    assert e.value.where == where, case


def test_malformed_json_unknown_name_and_missing_file(tmp_path):
    p = tmp_path / "m.json"
    p.write_text('{\n"area": "DK1",\n}')
    with pytest.raises(TariffError, match="malformed JSON") as e:
        tariffs.load_tariff(str(p))
    assert e.value.where == "m.json:3"
    with pytest.raises(TariffError, match="no such tariff .*dk1-n1"):
        tariffs.load_tariff("dk9-nowhere")
    with pytest.raises(TariffError, match="no such file"):
        tariffs.load_tariff(str(tmp_path / "gone.json"))


def test_a_tariff_for_another_country_is_just_data(tmp_path):
    # e.g. a Finnish-style flat tariff: UTC+2 with EU summer time, 25.5 % VAT, one grid price
    d = _doc()
    flat = {f"Price{h}": 0.05 for h in range(1, 25)}
    d.update(name="fi-flat", area="FI", std_offset_h=2, vat=0.255, default_for_area=False,
             grid=[dict(ValidFrom="2025-01-01", ValidTo="2026-01-01", source="test data", **flat)],
             national=[dict(ValidFrom="2025-01-01", ValidTo="2026-01-01", transmission_dkk_per_kwh=0.0,
                            system_dkk_per_kwh=0.0, tax_dkk_per_kwh=0.02, source="test data")],
             feed_in=[dict(ValidFrom="2025-01-01", ValidTo="2026-01-01", parts_dkk_per_kwh={"x": 0.0},
                           source="test data")])
    t = tariffs.load_tariff(_write(tmp_path, d))
    assert t.customers == 1000000  # inherited from the Radius file the example starts from
    # 2024-12-31T22:00Z is 00:00 local (UTC+2): covered; one hour earlier is not
    assert t.import_dkk_per_kwh(UTC("2024-12-31T22:00:00Z"), 0.0) == pytest.approx(0.07 * 1.255)
    with pytest.raises(TariffError):
        t.import_dkk_per_kwh(UTC("2024-12-31T21:00:00Z"), 0.0)
    copy.deepcopy(t.grid)  # records are plain data


def test_customers_is_optional():
    d = _doc()
    d.pop("customers")
    d.pop("customers_source")
    assert tariffs.Tariff(d, "t.json").customers is None
