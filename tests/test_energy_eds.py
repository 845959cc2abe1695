"""The Energi Data Service client against written responses (tests/data/eds/README.md): the
request it builds, the join of the hourly and 15-min datasets, and every failure as an EdsError."""

import json
import pathlib
import socket
import urllib.error
import urllib.parse

import pytest

from energy import eds, prices
from energy.eds import EdsError

DATA = pathlib.Path(__file__).resolve().parent / "data" / "eds"
FILES = {"Elspotprices": DATA / "elspotprices-dk1-2025-09-30.json",
         "DayAheadPrices": DATA / "dayaheadprices-dk1-2025-10-01.json"}
UTC = prices.parse_utc


class Recorder:
    """An opener answering each dataset from its file, filtered to the requested local range
    as the API does, and remembering the URLs and timeouts it was called with."""

    def __init__(self, override=None):
        self.calls = []
        self.override = override or {}

    def __call__(self, url, timeout):
        self.calls.append((url, timeout))
        u = urllib.parse.urlparse(url)
        dataset = u.path.rsplit("/", 1)[1]
        if dataset in self.override:
            r = self.override[dataset]
            if isinstance(r, BaseException):
                raise r
            return r
        q = dict(urllib.parse.parse_qsl(u.query))
        doc = json.loads(FILES[dataset].read_text())
        key = "HourDK" if dataset == "Elspotprices" else "TimeDK"
        doc["records"] = [r for r in doc["records"] if q["start"] <= r[key][:16] < q["end"]]
        return json.dumps(doc).encode()


def test_request_url_has_the_documented_parameters():
    url = eds.request_url("DayAheadPrices", "DK2", UTC("2025-10-01T22:00:00Z"), UTC("2025-10-02T22:00:00Z"))
    u = urllib.parse.urlparse(url)
    assert f"{u.scheme}://{u.netloc}{u.path}" == "https://api.energidataservice.dk/dataset/DayAheadPrices"
    q = dict(urllib.parse.parse_qsl(u.query))
    # start/end are Danish local time: midnight CEST is 22:00Z
    assert q == {"start": "2025-10-02T00:00", "end": "2025-10-03T00:00", "filter": '{"PriceArea":["DK2"]}',
                 "sort": "TimeUTC asc", "limit": "0"}


def test_a_range_across_the_switch_joins_both_datasets():
    rec = Recorder()
    s = eds.fetch("DK1", "2025-09-30T12:00:00Z", "2025-10-01T00:00:00Z", opener=rec, timeout=5)
    assert [c[0].split("?")[0].rsplit("/", 1)[1] for c in rec.calls] == ["Elspotprices", "DayAheadPrices"]
    assert all(c[1] == 5 for c in rec.calls)
    assert s.start_s == UTC("2025-09-30T12:00:00Z") and s.end_s == UTC("2025-10-01T00:00:00Z")
    assert len(s) == 10 + 8  # 10 hours, then 8 quarter-hours
    # the same values as the shipped file, and the same per-slot prices
    ref = prices.load("energy/data/prices/dk1-2025.csv")
    assert prices.slots(s, 900) == prices.slots(ref, 900, s.start_s, s.end_s)


def test_a_range_before_the_switch_asks_only_elspotprices():
    rec = Recorder()
    s = eds.fetch("DK1", "2025-09-30T00:00:00Z", "2025-09-30T06:00:00Z", opener=rec)
    assert len(rec.calls) == 1 and "Elspotprices" in rec.calls[0][0] and len(s) == 6


@pytest.mark.parametrize("case, err, match", [
    ("http_503", urllib.error.HTTPError("u", 503, "Service Unavailable", {}, None), "HTTP 503"),
    ("unreachable", urllib.error.URLError("Name or service not known"), "cannot reach"),
    ("timeout", socket.timeout("timed out"), "no answer within 5 s"),
    ("malformed_json", b'{"records": [', "malformed JSON"),
    ("no_records", b'{"total": 0}', "no 'records'"),
    ("null_price", json.dumps({"records": [{"TimeUTC": "2025-10-01T10:00:00", "PriceArea": "DK1",
                                            "DayAheadPriceEUR": None}]}).encode(), "no price"),
])
def test_failures_are_eds_errors(case, err, match):
    rec = Recorder({"DayAheadPrices": err})
    with pytest.raises(EdsError, match=match):
        eds.fetch("DK1", "2025-10-01T10:00:00Z", "2025-10-01T11:00:00Z", opener=rec, timeout=5)


def test_an_incomplete_answer_is_an_error_not_a_short_series():
    # the recorded day ends at 2025-10-01T22:00Z: the next day is "not yet published"
    with pytest.raises(EdsError, match="not yet published"):
        eds.fetch("DK1", "2025-10-01T20:00:00Z", "2025-10-02T02:00:00Z", opener=Recorder())


def test_bad_requests_are_price_errors():
    with pytest.raises(prices.PriceError, match="unknown price area"):
        eds.fetch("NO2", "2025-10-01", "2025-10-02", opener=Recorder())
    with pytest.raises(prices.PriceError, match="after start"):
        eds.fetch("DK1", "2025-10-02", "2025-10-01", opener=Recorder())
    with pytest.raises(prices.PriceError, match="quarter-hour"):
        eds.fetch("DK1", "2025-10-01T00:05:00Z", "2025-10-02", opener=Recorder())


def test_the_written_responses_load_as_price_files():
    # prices.load reads the same JSON shape from a file
    s = prices.load(str(FILES["DayAheadPrices"]))
    assert (s.area, len(s), s.interval_s(0)) == ("DK1", 96, 900)
