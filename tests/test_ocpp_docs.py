"""docs/ocpp.md held against the code: one row per OCPP 2.1 action of the `ocpp` library, and
each row's status true of the station (a platform's message marked done or rejected has a
handler, one marked NotImplemented has none and gets that CALLERROR; a station's message
marked done is sent by the station's code, one marked not sent is not); the operation-mode
table true of the profile store."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "ocpp.md").read_text()


def _table(after):
    start = DOC.index(after)
    rows = []
    for line in DOC[start:].splitlines()[1:]:
        if line.startswith("| `"):
            rows.append([c.strip() for c in line.strip("|").split("|")])
        elif rows and not line.startswith("|"):
            break
    return rows


def _messages():
    return {re.sub(r"`", "", r[0]): (r[1], r[2]) for r in _table("| message | from | status | notes |")}


def _station_source():
    return "".join((ROOT / "ocpp_link" / f).read_text() for f in ("station.py", "station_cp.py"))


def test_every_action_has_one_row():
    from ocpp.v21.enums import Action

    rows = _table("| message | from | status | notes |")
    names = [re.sub(r"`", "", r[0]) for r in rows]
    assert len(names) == len(set(names))
    assert set(names) == {a.value for a in Action}
    assert names == sorted(names, key=str.lower) or names == sorted(names)


def test_platform_messages_are_served_as_documented():
    from ocpp_link.station_cp import StationCP

    served = set(StationCP(None, None, None).route_map)
    for action, (side, status) in _messages().items():
        if side != "CSMS":
            continue
        if status == "done" or status.startswith("rejected"):
            assert action in served, action
        else:
            assert status == "NotImplemented", (action, status)
            assert action not in served, action


def test_station_messages_are_sent_as_documented():
    src = _station_source()
    for action, (side, status) in _messages().items():
        if side != "station":
            continue
        sent = ('"%s"' % action) in src
        assert status in ("done", "not sent"), (action, status)
        assert sent == (status == "done"), action


def test_rejections_name_the_reason_the_code_gives():
    src = _station_source()
    for action, (side, status) in _messages().items():
        if status.startswith("rejected: "):
            reason = status.split(": ", 1)[1]
            assert '_status_info("%s")' % reason in src, (action, reason)


def test_operation_modes_table_matches_the_profile_store():
    from ocpp.v21.enums import OperationModeEnumType
    from ocpp_link import smart_charging

    rows = {re.sub(r"`", "", r[0]): r[1] for r in _table("| mode | status | what the firmware gets |")}
    assert set(rows) == {m.value for m in OperationModeEnumType}
    for mode, status in rows.items():
        if status.startswith("done"):
            assert mode in smart_charging.SUPPORTED_MODES, mode
        else:
            assert mode not in smart_charging.SUPPORTED_MODES, mode
            reason = status.split(": ", 1)[1].strip("`")
            store = smart_charging.ProfileStore(11000.0, 11000.0)
            prof = {"id": 1, "stack_level": 0, "charging_profile_purpose": "TxDefaultProfile",
                    "charging_profile_kind": "Absolute",
                    "charging_schedule": [{"id": 1, "start_schedule": "2025-01-01T00:00:00Z",
                                           "charging_rate_unit": "W", "charging_schedule_period": [
                                               {"start_period": 0, "operation_mode": mode, "setpoint": 0.0}]}]}
            assert store.set(1, prof, 1.74e9)[:2] == ("Rejected", reason), mode


@pytest.mark.parametrize("path", ["README.md", "docs/usage.md"])
def test_the_commands_are_documented(path):
    text = (ROOT / path).read_text()
    assert "v2xgw ocpp" in text and "docs/ocpp.md" in text
