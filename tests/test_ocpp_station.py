"""The charging station (ocpp_link/station.py) against the small CSMS on the `ocpp` library,
on a scripted site bus: offline without loss (every TransactionEvent arrives, in order, with
its original seqNo and offline set, also across a station power cut), the commands a profile
puts on the bus, bad input from the platform, and the station's options.

The site here is frames written by the test (a bus stub), so that a platform outage of a
few seconds costs seconds; tests/test_ocpp_hil.py runs the same station against the real
controller and the simulated site."""

import asyncio
import collections
import time

import can
import pytest

from controller.bus import e2e
from hil.dbcdb import database
from ocpp_link.station import FLOOD_BURST, FLOOD_RATE

DB = database()


def _frame(name, **values):
    m = DB.get_message_by_name(name)
    full = {s.name: 0 for s in m.signals}
    full.update(values)
    data = bytearray(m.encode(full, scaling=True, strict=True))
    did = m.dbc.attributes["E2EDataID"].value if "E2EDataID" in m.dbc.attributes else 0
    if did:
        data[7] = e2e.crc8_j1850(did, data, 7)
    return can.Message(arbitration_id=m.frame_id, data=bytes(data), is_extended_id=False)


class SiteStub:
    """A python-can bus stand-in: the EV and inverter frames the test sets, and every frame the
    station sends, decoded by cantools."""

    def __init__(self):
        self.session = 1
        self.p_w = 0
        self.soc = 60.0
        self.inbox = collections.deque()
        self.sent = []

    def tick(self):
        self.inbox.append(_frame("EVCC_Limits", MaxChargePower=11000, MaxDischargePower=11000, MinSoc=20,
                                 SessionActive=self.session, MinSocValid=1))
        self.inbox.append(_frame("EVCC_Status", Soc=self.soc, SocValid=1, BatteryCapacity=60.0, BatteryVoltage=400))
        self.inbox.append(_frame("INV_Status", PActual=self.p_w))

    def recv(self, timeout=0):
        return self.inbox.popleft() if self.inbox else None

    def send(self, msg):
        m = DB.get_message_by_frame_id(msg.arbitration_id)
        self.sent.append((time.monotonic(), m.name, m.decode(bytes(msg.data), decode_choices=False)))

    def last(self, name):
        for _, n, v in reversed(self.sent):
            if n == name:
                return v
        return None


def make_station(tmp_path, url, bus, **kw):
    from ocpp_link.station import Station

    sets = {"SampledDataCtrlr.TxUpdatedInterval": "1", "OCPPCommCtrlr.RetryBackOffWaitMinimum": "1",
            "OCPPCommCtrlr.RetryBackOffRandomRange": "0", "OCPPCommCtrlr.RetryBackOffRepeatTimes": "0",
            "OCPPCommCtrlr.MessageTimeout[Default]": "5"}
    sets.update(kw.pop("sets", {}))
    return Station("gw1", url, bus, str(tmp_path / "station"), 11000.0, 11000.0, quiet=True, fsync=False,
                   dm_overrides=sets, **kw)


async def _feed(site, stop, period_s=0.1):
    while not stop.is_set():
        site.tick()
        await asyncio.sleep(period_s)


class Running:
    """A platform (the small CSMS) and a station on a SiteStub, both running: `async with
    Running(tmp_path) as r:` gives r.csms, r.site, r.station; leaving stops them in order."""

    def __init__(self, tmp_path, **station_kw):
        self.tmp_path = tmp_path
        self.kw = station_kw

    async def __aenter__(self):
        from ocpp_link.csms import Csms

        self.csms = Csms(port=0, quiet=True, log=lambda *a: None)
        await self.csms.start()
        self.site = SiteStub()
        self.stop = asyncio.Event()
        self.feeder = asyncio.ensure_future(_feed(self.site, self.stop))
        self.station = make_station(self.tmp_path, self.csms.url, self.site, **self.kw)
        self.run = asyncio.ensure_future(self.station.run(self.stop))
        return self

    async def started_tx(self):
        """The transaction id of the TransactionEvent Started the platform received."""
        rec = await self.csms.wait_for(lambda r: r["action"] == "TransactionEvent"
                                       and r["payload"]["eventType"] == "Started", 20)
        return rec["payload"]["transactionInfo"]["transactionId"]

    async def __aexit__(self, *exc):
        self.stop.set()
        await self.run
        self.feeder.cancel()
        await self.csms.stop()


def _tx_events(csms):
    return [r["payload"] for r in csms.received if r["action"] == "TransactionEvent"]


def test_offline_without_loss_and_across_a_station_power_cut(tmp_path):
    from ocpp_link.csms import Csms

    async def main():
        csms = Csms(port=0, quiet=True, log=lambda *a: None)
        await csms.start()
        port = csms.port
        site = SiteStub()
        stop = asyncio.Event()
        feeder = asyncio.ensure_future(_feed(site, stop))
        st = make_station(tmp_path, csms.url, site)
        run = asyncio.ensure_future(st.run(stop))
        await csms.wait_for(lambda r: r["action"] == "TransactionEvent" and r["payload"]["eventType"] == "Started", 20)
        await asyncio.sleep(2.5)
        # the platform goes away for a while during the transaction
        await csms.stop()
        seen_online = len(_tx_events(csms))
        await asyncio.sleep(3.0)
        site.p_w = -4000  # the EV discharges meanwhile: an event while offline
        await asyncio.sleep(2.0)
        queued_before_cut = len(st.queue)
        # ... and the station loses power too: no goodbye, the object is simply dropped
        stop.set()
        run.cancel()
        try:
            await run
        except (asyncio.CancelledError, Exception):
            pass
        st.queue.close()  # the process is gone: the OS drops its file lock, nothing more is written
        st2_stop = asyncio.Event()
        st2 = make_station(tmp_path, "ws://127.0.0.1:%d" % port, site)
        assert len(st2.queue) >= queued_before_cut  # what was queued survived the cut
        feeder2 = asyncio.ensure_future(_feed(site, st2_stop))
        run2 = asyncio.ensure_future(st2.run(st2_stop))
        await asyncio.sleep(2.0)
        # the platform comes back on the same address
        csms2 = Csms(port=port, quiet=True, log=lambda *a: None)
        await csms2.start()
        await csms2.wait_for(lambda r: r["action"] == "TransactionEvent" and r["payload"]["triggerReason"] == "TxResumed", 30)
        await asyncio.sleep(2.5)
        site.session = 0  # the EV leaves
        await csms2.wait_for(lambda r: r["action"] == "TransactionEvent" and r["payload"]["eventType"] == "Ended", 20)
        await asyncio.sleep(1.0)
        st2_stop.set()
        await run2
        feeder.cancel()
        feeder2.cancel()
        await csms2.stop()
        return csms, csms2, seen_online, st2

    csms, csms2, seen_online, st2 = asyncio.run(main())
    first, second = _tx_events(csms), _tx_events(csms2)
    events = first + second
    seqs = [e["seqNo"] for e in events]
    # every event of the transaction arrived, in order, none missing: at least once, so a
    # message the cut caught between the answer and the ack may come twice (same seqNo)
    dedup = []
    for e in events:
        if not dedup or e["seqNo"] != dedup[-1]["seqNo"]:
            dedup.append(e)
    assert [e["seqNo"] for e in dedup] == list(range(len(dedup))), seqs
    assert len({e["transactionInfo"]["transactionId"] for e in events}) == 1
    assert dedup[0]["eventType"] == "Started" and dedup[-1]["eventType"] == "Ended"
    # those raised while the platform was away came later, flagged offline, with their
    # original timestamps (before the platform was back)
    # raised while the platform (and then the station) was away: the first of what arrives
    # after the outage, all flagged, the resumption among them; then live events again
    n_off = next(i for i, e in enumerate(second) if not e.get("offline"))
    offline = second[:n_off]
    assert len(offline) >= 5
    assert not any(e.get("offline") for e in second[n_off:])
    assert [e["triggerReason"] for e in offline].count("TxResumed") == 1
    assert any(e["triggerReason"] == "ChargingStateChanged" for e in offline)
    assert any(e["triggerReason"] == "MeterValuePeriodic" for e in offline)
    # the periodic samples carry the measurands, the export register growing while the EV
    # discharged (4 kW here), and never going back
    exports = [sv["value"] for e in dedup for m in e.get("meterValue", []) for sv in m["sampledValue"]
               if sv["measurand"] == "Energy.Active.Export.Register"]
    assert len(exports) >= 5 and exports == sorted(exports) and exports[-1] > 2.0
    assert {"Power.Active.Export", "SoC"} <= {sv["measurand"] for e in offline for m in e.get("meterValue", [])
                                               for sv in m["sampledValue"]}
    assert len(st2.queue) == 0
    assert st2.counters["delivered"] >= len(offline)


def test_profiles_become_bus_commands_and_lapse_when_cleared(tmp_path):
    async def main():
        async with Running(tmp_path) as r:
            return await steps(r.csms, r.site, await r.started_tx())

    async def steps(csms, site, tx):
        out = {}

        def prof(pid, level, period, purpose="TxProfile", evse=1):
            p = {"id": pid, "stackLevel": level, "chargingProfilePurpose": purpose,
                 "chargingProfileKind": "Relative" if purpose != "ChargingStationMaxProfile" else "Absolute",
                 "chargingSchedule": [{"id": pid, "chargingRateUnit": "W",
                                       "chargingSchedulePeriod": [dict(period, startPeriod=0)]}]}
            if purpose == "TxProfile":
                p["transactionId"] = tx
            if purpose == "ChargingStationMaxProfile":
                p["chargingSchedule"][0]["startSchedule"] = "2020-01-01T00:00:00Z"
            return {"evseId": evse, "chargingProfile": p}

        out["max"] = await csms.call("gw1", "SetChargingProfile",
                                     prof(9, 0, {"limit": 7000.0, "dischargeLimit": -6000.0},
                                          purpose="ChargingStationMaxProfile", evse=0))
        out["sp"] = await csms.call("gw1", "SetChargingProfile",
                                    prof(1, 1, {"operationMode": "CentralSetpoint", "setpoint": -9000.0}))
        await asyncio.sleep(1.5)
        out["mode_sp"] = site.last("EMS_ModeRequest")
        out["lim_sp"] = site.last("EMS_PowerLimit")
        out["lf"] = await csms.call("gw1", "SetChargingProfile", prof(2, 2, {
            "operationMode": "LocalFrequency", "v2xBaseline": -1000.0,
            "v2xFreqWattCurve": [{"frequency": 49.8, "power": -4000.0}, {"frequency": 50.2, "power": 4000.0}]}))
        await asyncio.sleep(1.5)
        out["fs_hdr"] = site.last("EMS_FreqServiceHdr")
        out["clear"] = await csms.call("gw1", "ClearChargingProfile", {"chargingProfileId": 2})
        await asyncio.sleep(1.5)
        out["fs_after"] = site.last("EMS_FreqServiceHdr")
        out["cleared_all"] = await csms.call("gw1", "ClearChargingProfile", {})
        n = len(site.sent)
        await asyncio.sleep(1.5)
        out["after_clear"] = [name for _, name, _ in site.sent[n:]]
        return out

    out = asyncio.run(main())
    assert out["max"][1]["status"] == "Accepted"
    assert out["sp"][1]["status"] == "Accepted"
    # the setpoint inside the station-wide max profile's discharge limit, and the limit sent too
    assert out["mode_sp"]["ModeReq"] == 3 and out["mode_sp"]["SetpointPower"] == -6000
    assert 1 <= out["mode_sp"]["ValidFor"] <= 3
    assert out["lim_sp"]["MaxChargePower"] == 7000 and out["lim_sp"]["MaxDischargePower"] == 6000
    assert out["lf"][1]["status"] == "Accepted"
    assert out["fs_hdr"]["Kind"] == 5 and out["fs_hdr"]["NumPoints"] == 2
    assert out["fs_hdr"]["BaselinePower"] == -1000
    assert out["fs_after"]["NumPoints"] == 0  # the curve ended with its profile
    # nothing in force: no requests at all, the firmware's local behaviour takes over when the last lapses
    assert "EMS_ModeRequest" not in out["after_clear"]
    assert "EMS_FreqServiceHdr" not in out["after_clear"]


def test_bad_input_from_the_platform_is_answered_counted_and_survived(tmp_path):

    async def main():
        async with Running(tmp_path) as r:
            out = await steps(r.csms, r.site)
        return out, r.station

    async def steps(csms, site):
        await csms.wait_connected("gw1", 20)
        await csms.wait_for(lambda r: r["action"] == "StatusNotification", 20)
        link = csms.connected["gw1"]
        out = {}
        # not OCPP-J at all, and a CALL that fails the schema (sent raw, past the CSMS's own checks)
        await link._connection.send("this is not json")
        await link._connection.send('[2,"x1","SetChargingProfile",{"evseId":"one"}]')
        await link._connection.send('[2,"x2","Reset",{"type":"Immediate"}]')
        await link._connection.send('[2,"x3","NoSuchAction",{}]')
        await asyncio.sleep(0.5)
        # a flood: many calls at once; some answered with a CallError, none crash the station
        res = await asyncio.gather(*[csms.call("gw1", "GetVariables", {"getVariableData": [
            {"component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxUpdatedInterval"}}]}, timeout_s=20)
            for _ in range(80)], return_exceptions=True)
        out["flood"] = res
        await asyncio.sleep(FLOOD_BURST / FLOOD_RATE + 0.5)  # the bucket fills again
        out["unknown_profile"] = await csms.call("gw1", "ClearChargingProfile", {"chargingProfileId": 4242})
        out["get_var"] = await csms.call("gw1", "GetVariables", {"getVariableData": [
            {"component": {"name": "V2XChargingCtrlr", "evse": {"id": 1}}, "variable": {"name": "SupportedOperationModes"}},
            {"component": {"name": "NoSuchCtrlr"}, "variable": {"name": "X"}}]})
        out["der"] = await csms.call("gw1", "SetDERControl", {"isDefault": False, "controlId": "c1",
                                                               "controlType": "VoltVar", "curve": {
                                                                   "priority": 1, "yUnit": "PctMaxVar",
                                                                   "curveData": [{"x": 0.9, "y": 40}, {"x": 1.1, "y": -40}]}})
        out["der_ok"] = await csms.call("gw1", "SetDERControl", {"isDefault": False, "controlId": "c2",
                                                                  "controlType": "LimitMaxDischarge",
                                                                  "limitMaxDischarge": {"priority": 1,
                                                                                        "pctMaxDischargePower": 50}})
        await asyncio.sleep(1.5)
        out["lim"] = site.last("EMS_PowerLimit")
        return out

    out, st = asyncio.run(main())
    c = st.counters
    assert c["malformed_frames"] == 1
    assert c["calls_not_served"] == 2  # Reset (NotImplemented) and NoSuchAction (NotSupported)
    assert c["call_errors_sent"] >= 3
    assert c["calls_refused_flood"] >= 1
    kinds = collections.Counter(r[0] if isinstance(r, tuple) else type(r).__name__ for r in out["flood"])
    assert kinds["result"] >= 40 and kinds["error"] >= 1
    assert out["unknown_profile"][1]["status"] == "Unknown"
    gv = out["get_var"][1]["getVariableResult"]
    assert gv[0]["attributeStatus"] == "Accepted" and "CentralSetpoint" in gv[0]["attributeValue"]
    assert gv[1]["attributeStatus"] == "UnknownComponent"
    assert out["der"][1]["status"] == "NotSupported"
    assert out["der_ok"][1]["status"] == "Accepted"
    assert out["lim"]["MaxDischargePower"] == 5500  # 50 % of 11 kW
    assert st.cp is None  # stopped cleanly


@pytest.mark.parametrize("kw, key", [
    ({"url": "http://x"}, "--csms"),
    ({"station_id": "a/b"}, "--id"),
    ({"security_profile": 2}, "wss"),
    ({"url": "wss://h:1", "security_profile": 2}, "--password"),
    ({"url": "wss://h:1", "security_profile": 3}, "--cert"),
])
def test_station_options_are_refused_by_name(tmp_path, kw, key):
    from ocpp_link.station import Station, StationError

    args = {"station_id": "gw1", "url": "ws://127.0.0.1:9"}
    args.update(kw)
    with pytest.raises(StationError) as e:
        Station(args.pop("station_id"), args.pop("url"), SiteStub(), str(tmp_path), 11000.0, 11000.0, quiet=True,
                fsync=False, **args)
    assert key in str(e.value)


def test_ocpp_command_exits_2_naming_the_option(tmp_path, capsys):
    from tools import cli

    assert cli.main(["ocpp", "--csms", "http://x", "--id", "gw1", "--data", str(tmp_path)]) == 2
    assert "--csms" in capsys.readouterr().err
    assert cli.main(["ocpp", "--csms", "ws://x:1", "--id", "gw1", "--data", str(tmp_path),
                     "--set", "SampledDataCtrlr.TxUpdatedInterval=-5"]) == 2
    assert "TxUpdatedInterval" in capsys.readouterr().err
    assert cli.main(["ocpp", "--csms", "ws://x:1", "--id", "gw1", "--data", str(tmp_path),
                     "--interface", "socketcan", "--channel", "vcan0"]) == 1
    assert "cannot open the bus" in capsys.readouterr().err


def test_device_model_reports_and_triggers_over_the_wire(tmp_path):

    async def main():
        async with Running(tmp_path) as r:
            await r.started_tx()
            return await steps(r.csms, r.station)

    async def steps(csms, st):
        out = {}
        out["base"] = await csms.call("gw1", "GetBaseReport", {"requestId": 7, "reportBase": "FullInventory"})
        out["reports"] = [await csms.wait_for(lambda r: r["action"] == "NotifyReport" and not r["payload"]["tbc"], 10)]
        out["summary"] = await csms.call("gw1", "GetBaseReport", {"requestId": 8, "reportBase": "SummaryInventory"})
        out["set"] = await csms.call("gw1", "SetVariables", {"setVariableData": [
            {"component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxUpdatedInterval"}, "attributeValue": "2"},
            {"component": {"name": "SmartChargingCtrlr"}, "variable": {"name": "RateUnit"}, "attributeValue": "W"}]})
        item = {"component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxUpdatedInterval"}}
        out["too_many"] = await csms.call("gw1", "GetVariables", {"getVariableData": [item] * 40})
        out["trigger"] = await csms.call("gw1", "TriggerMessage", {"requestedMessage": "MeterValues"})
        out["mv"] = await csms.wait_for(lambda r: r["action"] == "MeterValues", 10)
        out["needs"] = await csms.wait_for(lambda r: r["action"] == "NotifyEVChargingNeeds", 10)
        out["stop_tx"] = await csms.call("gw1", "RequestStopTransaction", {"transactionId": "x"})
        out["interval"] = st._tx_interval()
        out["all_reports"] = [r["payload"] for r in csms.received
                              if r["action"] == "NotifyReport" and r["payload"]["requestId"] == 7]
        return out

    out = asyncio.run(main())
    assert out["base"][1]["status"] == "Accepted"
    names = {(d["component"]["name"], d["variable"]["name"]) for p in out["all_reports"] for d in p["reportData"]}
    assert {("V2XChargingCtrlr", "SupportedOperationModes"), ("SampledDataCtrlr", "TxUpdatedInterval"),
            ("SmartChargingCtrlr", "RateUnit")} <= names
    assert [p["seqNo"] for p in out["all_reports"]] == list(range(len(out["all_reports"])))
    assert out["summary"][1]["status"] == "NotSupported"
    res = out["set"][1]["setVariableResult"]
    assert res[0]["attributeStatus"] == "Accepted"
    assert res[1]["attributeStatus"] == "Rejected" and res[1]["attributeStatusInfo"]["reasonCode"] == "ReadOnly"
    assert out["too_many"][0] == "error" and out["too_many"][1] == "OccurrenceConstraintViolation"
    assert out["trigger"][1]["status"] == "Accepted"
    mv = {sv["measurand"] for m in out["mv"]["payload"]["meterValue"] for sv in m["sampledValue"]}
    assert {"Energy.Active.Import.Register", "Energy.Active.Export.Register", "SoC"} <= mv
    v2x = out["needs"]["payload"]["chargingNeeds"]["v2xChargingParameters"]
    assert v2x["maxDischargePower"] == 11000 and v2x["evMinV2XEnergyRequest"] < 0  # 60 % SoC, 20 % minimum
    assert out["stop_tx"][1]["status"] == "Rejected"
    assert out["interval"] == 2.0  # the platform's new TxUpdatedInterval is the one in force


def test_a_dynamic_profile_due_for_an_update_is_pulled_and_applied(tmp_path):
    """PullDynamicScheduleUpdate (K, dynamic profiles): the answer's scheduleUpdate replaces the
    period's values and goes to the firmware at once."""
    from ocpp_link.station import PULL_RETRY_S

    site = SiteStub()
    st = make_station(tmp_path, "ws://127.0.0.1:9", site)
    calls = []

    class Link:
        async def call_raw(self, action, payload, timeout_s):
            if action != "PullDynamicScheduleUpdate":
                return {}
            calls.append((action, payload))
            return {"status": "Accepted", "scheduleUpdate": {"setpoint": -3000.0, "limit": 5000.0,
                                                             "dischargeLimit": -4000.0}}

    async def main():
        site.tick()
        st.step(1000.0)  # the transaction starts
        tx = st.tx["id"]
        prof = {"id": 5, "stack_level": 1, "charging_profile_purpose": "TxProfile",
                "charging_profile_kind": "Dynamic", "transaction_id": tx, "dyn_update_interval": 30,
                "charging_schedule": [{"id": 5, "charging_rate_unit": "W", "charging_schedule_period": [
                    {"start_period": 0, "operation_mode": "CentralSetpoint", "setpoint": -1000.0}]}]}
        assert st.profiles.set(1, prof, 1000.0, tx)[0] == "Accepted"
        st.cp, st.accepted = Link(), True
        st.step(1010.0)  # not due yet
        await asyncio.sleep(0)
        assert calls == []
        st.step(1031.0)  # the interval ran out
        await asyncio.sleep(0.05)
        st.step(1031.5)
        await asyncio.sleep(0.05)
        st.step(1031.0 + PULL_RETRY_S / 2)  # updated: not pulled again
        await asyncio.sleep(0.05)

    asyncio.run(main())
    assert calls == [("PullDynamicScheduleUpdate", {"chargingProfileId": 5})]
    mode = site.last("EMS_ModeRequest")
    assert mode["ModeReq"] == 3 and mode["SetpointPower"] == -3000
    assert site.last("EMS_PowerLimit")["MaxDischargePower"] == 4000


@pytest.mark.parametrize("profile", [1, 2, 3])
def test_security_profiles_connect_with_their_credentials_and_not_without(tmp_path, profile):
    """Profile 1: Basic auth over ws; 2: Basic auth over TLS, the platform checked against the CA;
    3: TLS with the station's client certificate (the project's test PKI, tools/pki.py)."""
    from ocpp_link.csms import Csms
    from tools import csms_cli, pki

    p = pki.make_test_pki(str(tmp_path / "pki"), curve="secp256r1")
    password = "a-password-of-16+"
    server_kw = {}
    if profile in (1, 2):
        server_kw["basic_auth"] = {"gw1": password}
    if profile >= 2:
        server_kw["ssl_context"] = csms_cli._ssl_context(p["secc_chain"], p["secc_key"],
                                                         p["oem_root_cert"] if profile == 3 else None)

    def station_kw(right):
        kw = {"security_profile": profile}
        if profile in (1, 2):
            kw["password"] = password if right else "not-the-password-x"
        if profile >= 2:
            kw.update(ca_file=p["v2g_root_cert"], server_hostname="secc.v2x.test")
        if profile == 3:
            kw.update(cert_file=p["ev_chain"] if right else p["secc_chain"], key_file=p["ev_key"] if right else p["secc_key"])
        return kw

    async def main():
        csms = Csms(port=0, quiet=True, log=lambda *a: None, **server_kw)
        await csms.start()
        out = {}
        for right in (False, True):
            site = SiteStub()
            stop = asyncio.Event()
            st = make_station(tmp_path / str(right), csms.url, site, **station_kw(right))
            feeder = asyncio.ensure_future(_feed(site, stop))
            run = asyncio.ensure_future(st.run(stop))
            try:
                await csms.wait_connected("gw1", 6)
                await csms.wait_for(lambda r: r["action"] == "BootNotification", 6)
                out[right] = True
            except asyncio.TimeoutError:
                out[right] = False
            out[(right, "failures")] = st.counters["connection_failures"]
            stop.set()
            await run
            feeder.cancel()
        await csms.stop()
        return out

    out = asyncio.run(main())
    assert out[True] is True
    assert out[False] is False and out[(False, "failures")] >= 1


def test_a_platform_that_stalls_is_left_and_nothing_queued_is_lost(tmp_path):
    """A platform that takes the connection but never answers (stalls): after MessageTimeout the
    station drops the connection and tries again; the transaction's events stay queued."""
    from websockets.asyncio.server import serve

    frames = []

    async def silent(ws):
        async for msg in ws:
            frames.append(msg)

    async def main():
        async with serve(silent, "127.0.0.1", 0, subprotocols=["ocpp2.1"]) as server:
            port = server.sockets[0].getsockname()[1]
            site = SiteStub()
            stop = asyncio.Event()
            feeder = asyncio.ensure_future(_feed(site, stop))
            st = make_station(tmp_path, "ws://127.0.0.1:%d" % port, site,
                              sets={"OCPPCommCtrlr.MessageTimeout[Default]": "1"})
            run = asyncio.ensure_future(st.run(stop))
            await asyncio.sleep(5.0)
            stop.set()
            await run
            feeder.cancel()
            return st

    st = asyncio.run(main())
    assert st.counters["calls_timed_out"] >= 2  # a BootNotification per connection, unanswered
    assert st.counters["connection_failures"] >= 2
    assert sum('"BootNotification"' in f for f in frames) >= 2
    assert len(st.queue) >= 2  # the transaction's Started and more, still there for a platform that answers
    assert st.queue.head()[2]["eventType"] == "Started"


def test_a_cut_between_the_append_and_the_saved_counter_repeats_no_seqno(tmp_path):
    """Power lost after a TransactionEvent was queued but before the station's state (with the
    seqNo counter) was saved: the restarted station takes the next seqNo from the queue."""
    site = SiteStub()
    st = make_station(tmp_path, "ws://127.0.0.1:9", site)
    site.tick()
    st.step(1000.0)  # Started, seqNo 0, state saved
    saved = st.queue.get_state("station")
    st.site.p_batt_w = -3000.0
    st.step(1001.0)  # ChargingStateChanged, seqNo 1 ...
    st.queue.put_state("station", saved)  # ... but the state on disk is the one before it
    st.queue.close()
    st2 = make_station(tmp_path, "ws://127.0.0.1:9", site)
    site.tick()
    st2.step(1002.0)  # TxResumed
    seqs = [p["seqNo"] for _, a, p in st2.queue.pending() if a == "TransactionEvent"]
    assert seqs == list(range(len(seqs))) and len(seqs) >= 3
