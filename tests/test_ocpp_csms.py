"""The HIL's OCPP 2.1 CSMS (ocpp_link/csms.py): a station written here with `websockets` and
the `ocpp` library's v2.1 ChargePoint boots, sends, and answers pushed CALLs; bad frames,
unknown actions and wrong credentials get refused without silence or a crash; script
files are checked at load and run against a station."""

import asyncio
import base64
import contextlib
import importlib.resources
import json
import os
import pathlib
import signal
import subprocess
import sys

import pytest
from ocpp.exceptions import OCPPError
from ocpp.messages import Call, validate_payload
from ocpp.routing import on
from ocpp.v21 import ChargePoint, call, call_result
from ocpp.v21.enums import Action
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake, InvalidStatus

from ocpp_link import csms as csms_mod
from ocpp_link.csms import Csms
from tools import cli

ROOT = pathlib.Path(__file__).resolve().parent.parent
SUB = ["ocpp2.1"]


def run(coro, limit_s=30):
    """asyncio.run with an upper bound, so a bug fails the test instead of hanging it."""
    return asyncio.run(asyncio.wait_for(coro, limit_s))


def _profile(op_mode="CentralSetpoint", setpoint=-5000.0, tx="tx-42", curve=None, pid=101):
    period = {"startPeriod": 0, "operationMode": op_mode}
    if setpoint is not None:
        period["setpoint"] = setpoint
    if curve is not None:
        period["v2xFreqWattCurve"] = curve
    return {"evseId": 1, "chargingProfile": {
        "id": pid, "stackLevel": 1, "chargingProfilePurpose": "TxProfile", "chargingProfileKind": "Relative",
        "transactionId": tx,
        "chargingSchedule": [{"id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": [period]}]}}


class Station(ChargePoint):
    """A minimal station: accepts profiles, refuses LocalFrequency without a curve (as the
    gateway does, reasonCode NoFreqWattCurve), answers GetCompositeSchedule, fails Reset."""

    def __init__(self, *a, **kw):
        ChargePoint.__init__(self, *a, **kw)
        self.profiles = []

    @on(Action.set_charging_profile)
    def on_scp(self, evse_id, charging_profile, **kw):
        self.profiles.append(charging_profile)
        period = charging_profile["charging_schedule"][0]["charging_schedule_period"][0]
        if period.get("operation_mode") == "LocalFrequency" and not period.get("v2x_freq_watt_curve"):
            return call_result.SetChargingProfile(status="Rejected", status_info={"reason_code": "NoFreqWattCurve"})
        return call_result.SetChargingProfile(status="Accepted")

    @on(Action.get_composite_schedule)
    def on_gcs(self, evse_id, duration, **kw):
        return call_result.GetCompositeSchedule(status="Rejected")

    @on(Action.reset)
    def on_reset(self, **kw):
        raise RuntimeError("no reset in this test station")


@contextlib.asynccontextmanager
async def station(server, sid="CS1", cls=Station, **kw):
    async with connect(server.url + "/" + sid, subprotocols=SUB, **kw) as ws:
        cp = cls(sid, ws)
        task = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


@contextlib.asynccontextmanager
async def running(**kw):
    kw.setdefault("log", [].append)
    server = Csms(**kw)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def _boot():
    return call.BootNotification(charging_station={"model": "V2X-GW", "vendor_name": "Test"}, reason="PowerUp")


def _tx_started(tx="tx-42", seq=0):
    return call.TransactionEvent(
        event_type="Started", timestamp="2025-01-01T12:00:00Z", trigger_reason="CablePluggedIn", seq_no=seq,
        transaction_info={"transaction_id": tx, "charging_state": "EVConnected"},
        meter_value=[{"timestamp": "2025-01-01T12:00:00Z",
                      "sampled_value": [{"value": 3680.0, "measurand": "Power.Active.Import"},
                                        {"value": 12.5}]}])


async def _raw_exchange(ws, frame):
    await ws.send(frame)
    return json.loads(await ws.recv())


# -- a station's session --

def test_boot_heartbeat_transaction_recorded_in_order_and_answered():
    lines = []

    async def go():
        async with running(heartbeat_s=17, log=lines.append) as server:
            async with station(server) as cs:
                boot = await cs.call(_boot())
                hb = await cs.call(call.Heartbeat())
                await cs.call(call.StatusNotification(timestamp="2025-01-01T12:00:00Z", connector_status="Occupied",
                                                      evse_id=1, connector_id=1))
                te = await cs.call(_tx_started())
                assert "CS1" in server.connected
                return server, boot, hb, te

    server, boot, hb, te = run(go())
    assert boot.status == "Accepted" and boot.interval == 17 and boot.current_time.endswith("Z")
    assert hb.current_time.endswith("Z")
    assert te.id_token_info is None  # no idToken in the event, nothing to authorize
    assert [r["action"] for r in server.received] == ["BootNotification", "Heartbeat", "StatusNotification",
                                                      "TransactionEvent"]
    assert all(r["station"] == "CS1" and r["unique_id"] for r in server.received)
    tx = server.received[3]["payload"]  # as received: camelCase
    assert tx["transactionInfo"]["transactionId"] == "tx-42"
    assert tx["meterValue"][0]["sampledValue"][0]["measurand"] == "Power.Active.Import"
    assert server.transactions == {"CS1": "tx-42"}
    assert server.counters["CS1"]["calls"] == 4 and server.counters["CS1"]["call_errors_sent"] == 0
    line = next(x for x in lines if "-> TransactionEvent" in x)
    assert "Started seqNo=0 trigger=CablePluggedIn tx=tx-42" in line
    assert "Power.Active.Import=3680" in line and "Energy.Active.Import.Register=12.5" in line
    assert "CS1" not in server.connected  # gone after the station closed


def test_wait_for_finds_past_and_future_records_and_times_out():
    async def go():
        async with running() as server:
            async with station(server) as cs:
                await cs.call(_boot())
                past = await server.wait_for(lambda r: r["action"] == "BootNotification", 1)
                waiting = asyncio.create_task(server.wait_for(lambda r: r["action"] == "Heartbeat", 10))
                await asyncio.sleep(0)
                assert not waiting.done()
                await cs.call(call.Heartbeat())
                future = await waiting
                with pytest.raises(asyncio.TimeoutError):
                    await server.wait_for(lambda r: r["action"] == "MeterValues", 0.05)
                assert await server.wait_connected("CS1", 1) is server.connected["CS1"]
                with pytest.raises(asyncio.TimeoutError):
                    await server.wait_connected("CS9", 0.05)
                return past, future

    past, future = run(go())
    assert past["action"] == "BootNotification" and future["action"] == "Heartbeat"


def test_tx_event_with_id_token_and_authorize_are_accepted_and_data_transfer_unknown_vendor():
    async def go():
        async with running() as server:
            async with station(server) as cs:
                ev = _tx_started()
                ev.id_token = {"id_token": "04A2B3", "type": "ISO14443"}
                te = await cs.call(ev)
                auth = await cs.call(call.Authorize(id_token={"id_token": "04A2B3", "type": "ISO14443"}))
                dt = await cs.call(call.DataTransfer(vendor_id="com.example"))
                needs = await cs.call(call.NotifyEVChargingNeeds(
                    evse_id=1, charging_needs={"requested_energy_transfer": "AC_BPT"}))
                return te, auth, dt, needs

    te, auth, dt, needs = run(go())
    assert te.id_token_info["status"] == "Accepted"
    assert auth.id_token_info["status"] == "Accepted"
    assert dt.status == "UnknownVendorId"
    assert needs.status == "Accepted"


# -- pushed CALLs --

def test_pushed_set_charging_profile_reaches_the_station_and_its_answer_returns():
    async def go():
        async with running() as server:
            async with station(server) as cs:
                await server.wait_connected("CS1", 5)
                ok = await server.call("CS1", "SetChargingProfile", _profile())
                refused = await server.call("CS1", "SetChargingProfile", _profile("LocalFrequency", None, pid=102))
                failed = await server.call("CS1", "Reset", {"type": "Immediate"})
                return server, cs, ok, refused, failed

    server, cs, ok, refused, failed = run(go())
    assert ok == ("result", {"status": "Accepted"})
    assert refused[0] == "result" and refused[1]["status"] == "Rejected"
    assert refused[1]["statusInfo"]["reasonCode"] == "NoFreqWattCurve"
    assert failed[0] == "error" and failed[1] == "InternalError"
    period = cs.profiles[0]["charging_schedule"][0]["charging_schedule_period"][0]
    assert cs.profiles[0]["transaction_id"] == "tx-42"
    assert period["operation_mode"] == "CentralSetpoint" and period["setpoint"] == -5000.0
    assert [s["answer"][0] for s in server.sent] == ["result", "result", "error"]
    c = server.counters["CS1"]
    assert c["calls_sent"] == 3 and c["call_errors_received"] == 1


def test_pushed_call_refused_before_sending_when_invalid_unknown_or_not_connected():
    async def go():
        async with running() as server:
            async with station(server) as cs:
                await server.wait_connected("CS1", 5)
                bad = _profile()
                del bad["chargingProfile"]["stackLevel"]
                with pytest.raises(OCPPError):
                    await server.call("CS1", "SetChargingProfile", bad)
                with pytest.raises(ValueError):
                    await server.call("CS1", "MakeCoffee", {})
                with pytest.raises(LookupError):
                    await server.call("CS7", "Reset", {"type": "Immediate"})
                # the connection still works after the refusals
                ok = await server.call("CS1", "SetChargingProfile", _profile())
                return server, cs, ok

    server, cs, ok = run(go())
    assert ok[0] == "result" and len(cs.profiles) == 1
    assert server.counters["CS1"]["calls_sent"] == 1


def test_pushed_call_times_out_and_a_late_answer_is_dropped_and_counted():
    async def go():
        async with running() as server:
            async with connect(server.url + "/CS1", subprotocols=SUB) as ws:
                await server.wait_connected("CS1", 5)
                pending = asyncio.create_task(server.call("CS1", "Reset", {"type": "Immediate"}, timeout_s=0.2))
                frame = json.loads(await ws.recv())
                with pytest.raises(asyncio.TimeoutError):
                    await pending
                await ws.send(json.dumps([3, frame[1], {"status": "Accepted"}]))
                # a fresh CALL: the late answer must not be taken for its answer
                nxt = asyncio.create_task(server.call("CS1", "Reset", {"type": "OnIdle"}))
                frame2 = json.loads(await ws.recv())
                await ws.send(json.dumps([3, frame2[1], {"status": "Scheduled"}]))
                return server, frame, await nxt

    server, frame, answer = run(go())
    assert frame[:3] == [2, frame[1], "Reset"]
    assert answer == ("result", {"status": "Scheduled"})
    assert server.counters["CS1"]["unexpected_answers"] == 1


def test_schema_invalid_call_result_from_station_is_reported_as_error():
    async def go():
        async with running() as server:
            async with connect(server.url + "/CS1", subprotocols=SUB) as ws:
                await server.wait_connected("CS1", 5)
                pending = asyncio.create_task(server.call("CS1", "Reset", {"type": "Immediate"}))
                frame = json.loads(await ws.recv())
                await ws.send(json.dumps([3, frame[1], {"status": "Maybe"}]))
                return server, await pending

    server, answer = run(go())
    assert answer[0] == "error" and "fails the schema" in answer[2]
    assert server.counters["CS1"]["invalid_results"] == 1


def test_disconnect_during_a_pushed_call_ends_it():
    async def go():
        async with running() as server:
            async with connect(server.url + "/CS1", subprotocols=SUB) as ws:
                await server.wait_connected("CS1", 5)
                pending = asyncio.create_task(server.call("CS1", "Reset", {"type": "Immediate"}))
                await ws.recv()
            with pytest.raises(ConnectionError):
                await pending

    run(go())


def test_records_are_capped_at_the_limit_oldest_dropped():
    async def go():
        async with running(record_limit=5) as server:
            async with station(server) as cs:
                for _ in range(20):
                    await cs.call(call.Heartbeat())
                await cs.call(_boot())
                return server

    server = run(go())
    assert 5 <= len(server.received) <= 5 + 5 // 10 + 1
    assert server.records_dropped == 21 - len(server.received)
    assert server.received[-1]["action"] == "BootNotification"
    assert server.counters["CS1"]["calls"] == 21


# -- refusals: unknown actions, schema violations, malformed frames --

def test_unknown_actions_get_a_call_error_not_silence_and_are_recorded():
    async def go():
        async with running() as server:
            async with connect(server.url + "/CS1", subprotocols=SUB) as ws:
                unknown = await _raw_exchange(ws, '[2,"u1","MakeCoffee",{}]')
                assert len(server.received) == 1  # recorded by the time the answer is out
                no_handler = await _raw_exchange(ws, '[2,"u2","GetTariffs",{}]')
                assert len(server.received) == 2
                return server, unknown, no_handler

    server, unknown, no_handler = run(go())
    assert unknown[:3] == [4, "u1", "NotSupported"]
    assert no_handler[:3] == [4, "u2", "NotImplemented"]  # a known OCPP 2.1 action without a handler here
    assert [(r["action"], r["unique_id"]) for r in server.received] == [("MakeCoffee", "u1"), ("GetTariffs", "u2")]
    assert server.counters["CS1"]["call_errors_sent"] == 2


@pytest.mark.parametrize("payload,codes", [
    ({"chargingStation": {"model": "m", "vendorName": "v"}}, ("ProtocolError", "OccurrenceConstraintViolation")),
    ({"chargingStation": {"model": "m", "vendorName": "v"}, "reason": "PowerUp", "extra": 1}, ("FormatViolation",)),
    ({"chargingStation": {"model": 5, "vendorName": "v"}, "reason": "PowerUp"}, ("TypeConstraintViolation",)),
    ({"chargingStation": {"model": "m", "vendorName": "v"}, "reason": "Sneezed"}, ("FormatViolation",
                                                                                    "PropertyConstraintViolation")),
])
def test_schema_invalid_call_gets_a_call_error_and_is_counted(payload, codes):
    async def go():
        async with running() as server:
            async with connect(server.url + "/CS1", subprotocols=SUB) as ws:
                err = await _raw_exchange(ws, json.dumps([2, "b1", "BootNotification", payload]))
                ok = await _raw_exchange(ws, '[2,"h1","Heartbeat",{}]')
                return server, err, ok

    server, err, ok = run(go())
    assert err[:2] == [4, "b1"] and err[2] in codes
    assert ok[:2] == [3, "h1"]
    c = server.counters["CS1"]
    assert c["schema_errors"] == 1 and c["call_errors_sent"] == 1 and c["calls"] == 2
    assert server.received[0]["payload"] == payload  # recorded as received, before the refusal


def test_malformed_frames_are_counted_and_the_server_carries_on():
    async def go():
        async with running() as server:
            async with connect(server.url + "/CS1", subprotocols=SUB) as ws:
                await ws.send("this is not JSON")
                await ws.send(b"\x00\x01binary")
                await ws.send('{"not": "an array"}')
                type7 = await _raw_exchange(ws, '[7,"m1",{}]')
                short_call = await _raw_exchange(ws, '[2,"m2","Heartbeat"]')
                await ws.send('[3,"m3"]')  # a broken answer: never answered
                ok = await _raw_exchange(ws, '[2,"h1","Heartbeat",{}]')
            async with station(server, "CS2") as cs:  # and a new station still gets served
                boot = await cs.call(_boot())
            return server, type7, short_call, ok, boot

    server, type7, short_call, ok, boot = run(go())
    assert type7[:3] == [4, "m1", "MessageTypeNotSupported"]
    assert short_call[:3] == [4, "m2", "RpcFrameworkError"]
    assert ok[:2] == [3, "h1"] and "currentTime" in ok[2]
    assert boot.status == "Accepted"
    c = server.counters["CS1"]
    assert c["malformed"] == 6 and c["calls"] == 1
    assert [r["action"] for r in server.received] == ["Heartbeat", "BootNotification"]


def test_send_is_recorded_unanswered_and_callresulterror_counted():
    # OCPP 2.1 Part 4 adds SEND (6, never answered) and CALLRESULTERROR (5)
    stream = {"id": 1, "pending": 0, "basetime": "2025-01-01T12:00:00Z",
              "data": [{"t": 0.5, "v": "3680"}]}

    async def go():
        async with running() as server:
            async with connect(server.url + "/CS1", subprotocols=SUB) as ws:
                await ws.send(json.dumps([6, "s1", "NotifyPeriodicEventStream", stream]))
                await ws.send('[5,"r1","InternalError","could not use your answer",{}]')
                nxt = await _raw_exchange(ws, '[2,"h1","Heartbeat",{}]')  # the first frame back
                return server, nxt

    server, nxt = run(go())
    assert nxt[:2] == [3, "h1"]
    assert [(r["action"], r["unique_id"]) for r in server.received] == [("NotifyPeriodicEventStream", "s1"),
                                                                         ("Heartbeat", "h1")]
    assert server.received[0]["payload"] == stream
    c = server.counters["CS1"]
    assert c["sends"] == 1 and c["result_errors_received"] == 1 and c["malformed"] == 0
    assert c["call_errors_sent"] == 0


def test_a_second_connection_of_a_station_replaces_the_first():
    async def go():
        async with running() as server:
            async with connect(server.url + "/CS1", subprotocols=SUB) as old:
                first = await server.wait_connected("CS1", 5)
                async with station(server, "CS1") as cs:
                    await cs.call(call.Heartbeat())
                    await old.wait_closed()
                    return server, first, server.connected["CS1"], old.close_code

    server, first, second, code = run(go())
    assert first is not second and code == 1000
    assert server.counters["CS1"]["connections"] == 2


# -- security profile 1: HTTP Basic auth --

def _auth(user, pw):
    return {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (user, pw)).encode()).decode()}


def test_basic_auth_wrong_or_missing_credentials_refused_with_401():
    async def go():
        statuses = []
        async with running(basic_auth={"CS1": "s3cret-passw0rd", "CS2": "other"}) as server:
            for sid, headers in (("CS1", _auth("CS1", "wrong")), ("CS1", None), ("CS1", _auth("CS2", "other")),
                                 ("CS3", _auth("CS3", "s3cret-passw0rd"))):
                with pytest.raises(InvalidStatus) as e:
                    async with connect(server.url + "/" + sid, subprotocols=SUB, additional_headers=headers):
                        pass
                statuses.append(e.value.response.status_code)
            async with station(server, "CS1", additional_headers=_auth("CS1", "s3cret-passw0rd")) as cs:
                boot = await cs.call(_boot())
            return server, statuses, boot

    server, statuses, boot = run(go())
    assert statuses == [401, 401, 401, 401]
    assert boot.status == "Accepted"
    assert server.handshakes_refused == 4 and [r["action"] for r in server.received] == ["BootNotification"]


def test_no_station_id_or_no_ocpp21_subprotocol_refused_at_the_handshake():
    async def go():
        async with running() as server:
            with pytest.raises(InvalidStatus) as no_id:
                async with connect(server.url + "/", subprotocols=SUB):
                    pass
            with pytest.raises(InvalidStatus) as v16:
                async with connect(server.url + "/CS1", subprotocols=["ocpp1.6"]):
                    pass
            return no_id.value.response.status_code, v16.value.response.status_code, server

    no_id, v16, server = run(go())
    assert no_id == 404 and v16 == 400 and not server.received


def test_security_profile_3_requires_a_client_certificate(tmp_path):
    import ssl

    from tools import csms_cli, pki

    p = pki.make_test_pki(str(tmp_path), curve="secp256r1")
    server_ctx = csms_cli._ssl_context(p["secc_chain"], p["secc_key"], p["oem_root_cert"])

    def client_ctx(with_cert):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False  # the test PKI's server certificate names an EVSE, not 127.0.0.1
        ctx.load_verify_locations(p["v2g_root_cert"])
        if with_cert:
            ctx.load_cert_chain(p["ev_chain"], p["ev_key"])
        return ctx

    async def go():
        async with running(ssl_context=server_ctx) as server:
            assert server.url.startswith("wss://")
            async with station(server, "CS1", ssl=client_ctx(True)) as cs:
                boot = await cs.call(_boot())
            # TLS 1.3: the client learns of the refusal after its side of the handshake, when
            # the HTTP upgrade answer does not come
            with pytest.raises((ssl.SSLError, OSError, InvalidHandshake)):
                async with connect(server.url + "/CS2", subprotocols=SUB, ssl=client_ctx(False)) as ws:
                    await ws.recv()
            return boot, server

    boot, server = run(go())
    assert boot.status == "Accepted" and [r["station"] for r in server.received] == ["CS1"]


# -- scripts --

def _script(tmp_path, doc, name="s.json"):
    f = tmp_path / name
    f.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(f)


def _good_step(**over):
    step = {"after": "TransactionEvent:Started", "delay_s": 0, "action": "SetChargingProfile",
            "payload": _profile(tx="$transactionId")}
    step.update(over)
    return step


@pytest.mark.parametrize("doc,key", [
    ('{"steps": [', "not JSON"),
    ({"steps": [_good_step()], "extra": 1}, "extra: unknown key"),
    ({"steps": {}}, "steps: expected a list"),
    ({"steps": [_good_step(when=3)]}, "steps[0].when: unknown key"),
    ({"steps": [_good_step(), _good_step(action="MakeCoffee")]}, "steps[1].action:"),
    ({"steps": [_good_step(action="Heartbeat", payload={})]}, "steps[0].action:"),
    ({"steps": [_good_step(after="Coffee")]}, "steps[0].after:"),
    ({"steps": [_good_step(after="BootNotification:Started")]}, "steps[0].after:"),
    ({"steps": [_good_step(after="TransactionEvent:Begun")]}, "steps[0].after:"),
    ({"steps": [_good_step(delay_s=-1)]}, "steps[0].delay_s:"),
    ({"steps": [_good_step(delay_s="2")]}, "steps[0].delay_s:"),
    ({"steps": [_good_step(payload={"evseId": 1})]}, "steps[0].payload:"),
    ({"steps": [_good_step(payload=_profile(op_mode="Turbo"))]}, "steps[0].payload:"),
    ({"steps": [{"after": None, "delay_s": 0}]}, "steps[0].action: missing"),
])
def test_bad_script_file_exits_2_naming_the_key(tmp_path, capsys, doc, key):
    path = _script(tmp_path, doc)
    assert cli.main(["csms", "--listen", "127.0.0.1:0", "--script", path, "--duration", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: %s: " % path) and key in err and "\n" not in err


def test_schema_problem_names_the_path_inside_the_payload():
    bad = _profile(op_mode="Turbo")
    problem = csms_mod.schema_problem("SetChargingProfile", bad)
    assert problem.startswith("chargingProfile.chargingSchedule[0].chargingSchedulePeriod[0].operationMode:")
    assert csms_mod.schema_problem("SetChargingProfile", _profile()) is None


@pytest.mark.parametrize("argv", [
    ["--listen", "localhost"], ["--listen", "127.0.0.1:99999"], ["--listen", ":80"],
    ["--listen", "127.0.0.1:0", "--password", "CS1"], ["--listen", "127.0.0.1:0", "--heartbeat", "0"],
    ["--listen", "127.0.0.1:0", "--tls-cert", "x.pem"],
])
def test_bad_arguments_exit_2(capsys, argv):
    assert cli.main(["csms", *argv, "--duration", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_port_in_use_exits_1_with_one_line(capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert cli.main(["csms", "--listen", "127.0.0.1:%d" % port, "--duration", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot listen on 127.0.0.1:%d" % port) and err.count("\n") == 1


def test_shipped_example_script_validates_and_follows_the_brief():
    ref = importlib.resources.files("ocpp_link") / "scripts" / "central-setpoint.json"
    with importlib.resources.as_file(ref) as path:
        steps = csms_mod.load_script(path)
    assert [s["action"] for s in steps] == ["SetChargingProfile"] * 3 + ["GetCompositeSchedule"]
    assert steps[0]["after"] == ("TransactionEvent", "Started") and steps[0]["delay_s"] == 2
    periods = [s["payload"]["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0] for s in steps[:3]]
    assert periods[0]["operationMode"] == "CentralSetpoint" and periods[0]["setpoint"] == -5000
    assert periods[1]["operationMode"] == "Idle" and steps[1]["delay_s"] == 20
    assert periods[2]["operationMode"] == "LocalFrequency" and "v2xFreqWattCurve" not in periods[2]
    for s in steps:  # valid with the placeholder replaced too, as sent
        run(validate_payload(Call("1", s["action"], csms_mod.substitute(s["payload"], "tx-42")), "2.1"))


def test_script_runs_against_a_station_with_the_transaction_id_quietly():
    steps = csms_mod.check_script({"steps": [
        _good_step(),
        {"after": None, "delay_s": 0.01, "action": "SetChargingProfile",
         "payload": _profile("LocalFrequency", None, tx="$transactionId", pid=102)},
        {"after": "Heartbeat", "action": "GetCompositeSchedule", "payload": {"evseId": 1, "duration": 60}},
    ]})

    lines = []

    async def go():
        async with running(quiet=True, log=lines.append) as server:
            async with station(server) as cs:
                await server.wait_connected("CS1", 5)
                script = asyncio.create_task(csms_mod.run_script(server, "CS1", steps))
                await cs.call(_boot())
                await cs.call(_tx_started("tx-77"))
                while len(cs.profiles) < 2:
                    await asyncio.sleep(0.01)
                assert not script.done()  # the last step waits for a Heartbeat after the second step
                await cs.call(call.Heartbeat())
                return cs, await script

    cs, answers = run(go())
    assert [p["transaction_id"] for p in cs.profiles] == ["tx-77", "tx-77"]
    assert answers[0] == ("result", {"status": "Accepted"})
    assert answers[1][1]["statusInfo"]["reasonCode"] == "NoFreqWattCurve"
    assert answers[2] == ("result", {"status": "Rejected"})
    # quiet: no line per received message, but the pushed CALLs and their answers
    assert not any("-> BootNotification" in x or "-> TransactionEvent" in x for x in lines)
    assert sum("-> SetChargingProfile result" in x for x in lines) == 2


def test_script_stops_when_transaction_id_is_needed_but_none_started():
    steps = csms_mod.check_script({"steps": [_good_step(after=None)]})
    lines = []

    async def go():
        async with running(log=lines.append) as server:
            async with station(server) as cs:
                await server.wait_connected("CS1", 5)
                return cs, await csms_mod.run_script(server, "CS1", steps)

    cs, answers = run(go())
    assert answers == [] and not cs.profiles
    assert any("no transaction started yet" in x for x in lines)


def test_cli_pushes_the_script_prints_and_logs_json(tmp_path):
    script = _script(tmp_path, {"steps": [_good_step()]})
    log = tmp_path / "log.jsonl"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "tools.cli", "csms", "--listen", "127.0.0.1:0", "--script", script,
                             "--log-json", str(log), "--heartbeat", "30", "--duration", "60"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("csms: listening on ws://127.0.0.1:"), first
        url = first.split()[3].rsplit("/", 1)[0]

        async def go():
            class Url:
                pass

            target = Url()
            target.url = url
            async with station(target) as cs:
                boot = await cs.call(_boot())
                await cs.call(_tx_started("tx-9"))
                while not cs.profiles:
                    await asyncio.sleep(0.02)
                return boot, cs

        boot, cs = run(go())
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert boot.interval == 30 and cs.profiles[0]["transaction_id"] == "tx-9"
    assert "CS1 -> TransactionEvent Started" in out
    assert 'CS1 -> SetChargingProfile result {"status":"Accepted"}' in out
    records = [json.loads(x) for x in log.read_text().splitlines()]
    assert [r["action"] for r in records] == ["BootNotification", "TransactionEvent", "SetChargingProfile"]
    assert records[2]["answer"] == ["result", {"status": "Accepted"}]
    assert records[2]["payload"]["chargingProfile"]["transactionId"] == "tx-9"


def test_summary_lines_never_fail_on_any_payload():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                               lambda inner: st.lists(inner, max_size=3)
                               | st.dictionaries(st.sampled_from(["transactionInfo", "meterValue", "sampledValue",
                                                                  "chargingProfile", "chargingSchedule", "eventData",
                                                                  "chargingSchedulePeriod", "value", "actualValue",
                                                                  "eventType", "controlType", "x"]),
                                                 inner, max_size=4), max_leaves=12)
    actions = st.sampled_from(list(csms_mod.HANDLED) + ["SetChargingProfile", "Other"])

    @settings(max_examples=300, deadline=None)
    @given(actions, json_values)
    def check(action, payload):
        line = csms_mod.summarize(action, payload)
        assert isinstance(line, str) and "\n" not in line

    check()
