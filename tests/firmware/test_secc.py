"""The ISO 15118-20 SECC state machine with a JSON stand-in codec: DC_BPT and AC_BPT
happy paths (Scheduled and Dynamic), sequence errors, unknown sessions, timeouts,
bad input over the V2GTP connection glue."""
import json

from controller.iso15118 import v2gtp
from controller.iso15118.secc import (BasicEvse, Connection, Secc, rat, val, S_END, S_LOOP,
                                      SEQUENCE_TIMEOUT_US)
from controller.iso15118.v2gtp import NS_AC, NS_COMMON, NS_DC, NS_SAP

SID = "0123456789ABCDEF"


class JsonCodec:
    def encode(self, ns, obj):
        return json.dumps(obj).encode()

    def decode(self, ns, data):
        return json.loads(bytes(data).decode())


def _new(energy="DC", **kw):
    ev = BasicEvse()
    cfg = {"energy": energy, "new_session_id": lambda: SID}
    cfg.update(kw)
    return ev, Secc(ev, cfg)


def _h(sid=SID):
    return {"SessionID": sid, "TimeStamp": 1795691000}


def _req(secc, ns, name, body, now=0, sid=SID):
    if name not in ("supportedAppProtocolReq",):
        body["Header"] = _h(sid if name != "SessionSetupReq" else "0000000000000000")
    r = secc.handle(ns, {name: body}, now)
    assert r is not None, name
    rns, res = r
    assert rns == ns
    return res[name[:-3] + "Res"]


def _setup(secc, energy="DC", service=6, pset=1):
    ns = NS_DC if energy == "DC" else NS_AC
    r = _req(secc, NS_SAP, "supportedAppProtocolReq", {"AppProtocol": [
        {"ProtocolNamespace": "urn:iso:std:iso:15118:-20:AC" if energy == "DC" else NS_DC,
         "VersionNumberMajor": 1, "VersionNumberMinor": 0, "SchemaID": 2, "Priority": 1},
        {"ProtocolNamespace": ns, "VersionNumberMajor": 1, "VersionNumberMinor": 0, "SchemaID": 1, "Priority": 2}]})
    assert r == {"ResponseCode": "OK_SuccessfulNegotiation", "SchemaID": 1}
    r = _req(secc, NS_COMMON, "SessionSetupReq", {"EVCCID": "WMIV1234567890ABCDEX"})
    assert r["ResponseCode"] == "OK_NewSessionEstablished" and r["Header"]["SessionID"] == SID
    assert _req(secc, NS_COMMON, "AuthorizationSetupReq", {})["AuthorizationServices"] == ["EIM"]
    r = _req(secc, NS_COMMON, "AuthorizationReq", {"SelectedAuthorizationService": "EIM", "EIM_AReqAuthorizationMode": {}})
    assert r["EVSEProcessing"] == "Finished" and r["ResponseCode"] == "OK"
    r = _req(secc, NS_COMMON, "ServiceDiscoveryReq", {})
    assert service in [s["ServiceID"] for s in r["EnergyTransferServiceList"]["Service"]]
    r = _req(secc, NS_COMMON, "ServiceDetailReq", {"ServiceID": service})
    assert r["ServiceID"] == service and len(r["ServiceParameterList"]["ParameterSet"]) == 3
    r = _req(secc, NS_COMMON, "ServiceSelectionReq",
             {"SelectedEnergyTransferService": {"ServiceID": service, "ParameterSetID": pset}})
    assert r["ResponseCode"] == "OK"


def _dc_bpt_to_loop(secc, dynamic=False, channel="Charge"):
    _setup(secc, "DC", 6, 2 if dynamic else 1)
    r = _req(secc, NS_DC, "DC_ChargeParameterDiscoveryReq", {"BPT_DC_CPDReqEnergyTransferMode": {
        "EVMaximumChargeCurrent": rat(300), "EVMaximumChargePower": rat(300000), "EVMaximumDischargeCurrent": rat(11),
        "EVMaximumDischargePower": rat(11000), "EVMaximumVoltage": rat(1000), "EVMinimumChargeCurrent": rat(10),
        "EVMinimumChargePower": rat(100), "EVMinimumDischargeCurrent": rat(0), "EVMinimumDischargePower": rat(1000),
        "EVMinimumVoltage": rat(10)}})
    m = r["BPT_DC_CPDResEnergyTransferMode"]
    assert val(m["EVSEMaximumDischargePower"]) == 11000 and val(m["EVSEMaximumChargeCurrent"]) == 32
    if dynamic:
        se = {"Dynamic_SEReqControlMode": {"DepartureTime": 7200, "EVTargetEnergyRequest": rat(20000),
                                           "EVMaximumEnergyRequest": rat(40000), "EVMinimumEnergyRequest": rat(-10000)}}
    else:
        se = {"Scheduled_SEReqControlMode": {"DepartureTime": 7200, "EVTargetEnergyRequest": rat(10000),
                                             "EVMaximumEnergyRequest": rat(20000), "EVMinimumEnergyRequest": rat(0.05)}}
    se["MaximumSupportingPoints"] = 1024
    r = _req(secc, NS_COMMON, "ScheduleExchangeReq", se)
    if dynamic:
        assert "Dynamic_SEResControlMode" in r
    else:
        tup = r["Scheduled_SEResControlMode"]["ScheduleTuple"][0]
        assert tup["ScheduleTupleID"] == 1 and "DischargingSchedule" in tup
    assert _req(secc, NS_DC, "DC_CableCheckReq", {})["EVSEProcessing"] == "Finished"
    r = _req(secc, NS_DC, "DC_PreChargeReq", {"EVProcessing": "Ongoing", "EVPresentVoltage": rat(380),
                                               "EVTargetVoltage": rat(400)})
    assert val(r["EVSEPresentVoltage"]) == 400
    pd = {"EVProcessing": "Finished", "ChargeProgress": "Start", "BPT_ChannelSelection": channel}
    if not dynamic:
        pd["EVPowerProfile"] = {"TimeAnchor": 0, "Scheduled_EVPPTControlMode": {"SelectedScheduleTupleID": 1},
                                "EVPowerProfileEntries": {"EVPowerProfileEntry": [{"Duration": 3600, "Power": rat(10000)}]}}
    assert _req(secc, NS_COMMON, "PowerDeliveryReq", pd)["ResponseCode"] == "OK"
    assert secc.st["state"] == S_LOOP


def test_dc_bpt_scheduled_charge_and_discharge():
    for ch, sign in (("Charge", 1), ("Discharge", -1)):
        ev, secc = _new()
        _dc_bpt_to_loop(secc, False, ch)
        assert ev.channel == ch
        for soc in (20, 30):
            r = _req(secc, NS_DC, "DC_ChargeLoopReq", {
                "BPT_Scheduled_DC_CLReqControlMode": {"EVTargetCurrent": rat(sign * 20), "EVTargetVoltage": rat(400)},
                "DisplayParameters": {"ChargingComplete": False, "PresentSOC": soc},
                "EVPresentVoltage": rat(400), "MeterInfoRequested": False})
            assert r["ResponseCode"] == "OK"
            assert val(r["EVSEPresentCurrent"]) == sign * 20
            assert "BPT_Scheduled_DC_CLResControlMode" in r and r["EVSECurrentLimitAchieved"] is False
        assert ev.ev_tgt["soc"] == 30
        # beyond the EVSE's 32 A: clipped and flagged
        r = _req(secc, NS_DC, "DC_ChargeLoopReq", {
            "BPT_Scheduled_DC_CLReqControlMode": {"EVTargetCurrent": rat(sign * 50), "EVTargetVoltage": rat(400)},
            "EVPresentVoltage": rat(400), "MeterInfoRequested": False})
        assert val(r["EVSEPresentCurrent"]) == sign * 32 and r["EVSECurrentLimitAchieved"] is True
        assert _req(secc, NS_COMMON, "PowerDeliveryReq", {"EVProcessing": "Finished", "ChargeProgress": "Stop"})["ResponseCode"] == "OK"
        assert ev.channel is None and ev.current == 0
        assert _req(secc, NS_DC, "DC_WeldingDetectionReq", {"EVProcessing": "Finished"})["ResponseCode"] == "OK"
        assert _req(secc, NS_COMMON, "SessionStopReq", {"ChargingSession": "Terminate"})["ResponseCode"] == "OK"
        assert secc.closing and secc.st["state"] == S_END and ev.lost == []
        secc.connection_lost(0)
        assert ev.lost == []


def test_dc_bpt_dynamic_reports_ev_limits():
    ev, secc = _new()
    _dc_bpt_to_loop(secc, True, "Discharge")
    r = _req(secc, NS_DC, "DC_ChargeLoopReq", {"BPT_Dynamic_DC_CLReqControlMode": {
        "EVMaximumChargeCurrent": rat(30), "EVMaximumChargePower": rat(11000), "EVMaximumDischargeCurrent": rat(30),
        "EVMaximumDischargePower": rat(6000), "EVMaximumEnergyRequest": rat(40000), "EVMaximumVoltage": rat(450),
        "EVMinimumChargePower": rat(100), "EVMinimumDischargePower": rat(100), "EVMinimumEnergyRequest": rat(-10000),
        "EVMinimumVoltage": rat(300), "EVTargetEnergyRequest": rat(20000)},
        "EVPresentVoltage": rat(400), "MeterInfoRequested": False})
    assert ev.ev_lim["max_discharge_power"] == 6000 and ev.ev_lim["target_energy_request"] == 20000
    assert val(r["EVSEPresentCurrent"]) == -15  # 6 kW granted at 400 V
    m = r["BPT_Dynamic_DC_CLResControlMode"]
    assert set(("EVSEMaximumDischargePower", "EVSEMinimumVoltage", "EVSEMaximumChargeCurrent")) <= set(m)


def test_ac_bpt_dynamic_discharge():
    ev, secc = _new("AC")
    _setup(secc, "AC", 5, 2)
    r = _req(secc, NS_AC, "AC_ChargeParameterDiscoveryReq", {"BPT_AC_CPDReqEnergyTransferMode": {
        "EVMaximumChargePower": rat(11000), "EVMaximumDischargePower": rat(7000),
        "EVMinimumChargePower": rat(100), "EVMinimumDischargePower": rat(100)}})
    assert "EVSENominalFrequency" in r["BPT_AC_CPDResEnergyTransferMode"]
    _req(secc, NS_COMMON, "ScheduleExchangeReq", {"MaximumSupportingPoints": 1024, "Dynamic_SEReqControlMode": {
        "DepartureTime": 7200, "EVTargetEnergyRequest": rat(1), "EVMaximumEnergyRequest": rat(2),
        "EVMinimumEnergyRequest": rat(0)}})
    _req(secc, NS_COMMON, "PowerDeliveryReq", {"EVProcessing": "Finished", "ChargeProgress": "Start",
                                               "BPT_ChannelSelection": "Discharge"})
    r = _req(secc, NS_AC, "AC_ChargeLoopReq", {"BPT_Dynamic_AC_CLReqControlMode": {
        "EVMaximumChargePower": rat(11000), "EVMinimumChargePower": rat(100), "EVPresentActivePower": rat(0),
        "EVPresentReactivePower": rat(0), "EVMaximumDischargePower": rat(7000), "EVMinimumDischargePower": rat(100),
        "EVTargetEnergyRequest": rat(1), "EVMaximumEnergyRequest": rat(2), "EVMinimumEnergyRequest": rat(0)},
        "MeterInfoRequested": False})
    assert val(r["BPT_Dynamic_AC_CLResControlMode"]["EVSETargetActivePower"]) == -7000
    _req(secc, NS_COMMON, "PowerDeliveryReq", {"EVProcessing": "Finished", "ChargeProgress": "Stop"})
    # AC has no welding detection: SessionStop next; DC messages are a sequence error
    assert _req(secc, NS_COMMON, "SessionStopReq", {"ChargingSession": "Pause"})["ResponseCode"] == "OK"
    assert secc.paused_sid == SID and ev.lost == []


def test_pause_then_old_session_joined():
    ev, secc = _new("AC")
    secc.paused_sid = "AAAAAAAAAAAAAAAA"
    _req(secc, NS_SAP, "supportedAppProtocolReq", {"AppProtocol": [
        {"ProtocolNamespace": NS_AC, "VersionNumberMajor": 1, "VersionNumberMinor": 1, "SchemaID": 3, "Priority": 1}]})
    body = {"EVCCID": "X", "Header": _h("AAAAAAAAAAAAAAAA")}
    r = secc.handle(NS_COMMON, {"SessionSetupReq": body}, 0)[1]["SessionSetupRes"]
    assert r["ResponseCode"] == "OK_OldSessionJoined" and r["Header"]["SessionID"] == "AAAAAAAAAAAAAAAA"


def test_sequence_error_ends_session_and_zeroes_current():
    ev, secc = _new()
    _dc_bpt_to_loop(secc)
    ev.current = 20
    r = _req(secc, NS_DC, "DC_CableCheckReq", {})
    assert r["ResponseCode"] == "FAILED_SequenceError" and r["EVSEProcessing"] == "Finished"
    assert secc.closing and ev.current == 0 and ev.lost == ["FAILED_SequenceError"]
    assert secc.counters["sequence_error"] == 1
    assert secc.handle(NS_COMMON, {"SessionStopReq": {"ChargingSession": "Terminate", "Header": _h()}}, 0) is None


def test_sequence_errors_before_setup():
    ev, secc = _new()
    r = _req(secc, NS_COMMON, "SessionSetupReq", {"EVCCID": "X"})
    assert r["ResponseCode"] == "FAILED_SequenceError" and "EVSEID" in r
    ev, secc = _new()
    _setup(secc)
    r = _req(secc, NS_DC, "DC_ChargeLoopReq", {"EVPresentVoltage": rat(1), "MeterInfoRequested": False})
    assert r["ResponseCode"] == "FAILED_SequenceError"
    assert set(("EVSEPresentCurrent", "EVSEPresentVoltage", "EVSEPowerLimitAchieved")) <= set(r)
    ev, secc = _new("AC")  # DC message in an AC session
    _setup(secc, "AC", 5)
    r = _req(secc, NS_DC, "DC_ChargeParameterDiscoveryReq", {})
    assert r["ResponseCode"] == "FAILED_SequenceError"


def test_unknown_session_id():
    ev, secc = _new()
    _setup(secc)
    r = _req(secc, NS_DC, "DC_ChargeParameterDiscoveryReq", {}, sid="FFFFFFFFFFFFFFFF")
    assert r["ResponseCode"] == "FAILED_UnknownSession" and secc.closing
    assert secc.counters["unknown_session"] == 1 and ev.lost


def test_no_common_protocol():
    ev, secc = _new("DC")
    r = _req(secc, NS_SAP, "supportedAppProtocolReq", {"AppProtocol": [
        {"ProtocolNamespace": "urn:iso:15118:2:2013:MsgDef", "VersionNumberMajor": 2, "VersionNumberMinor": 0,
         "SchemaID": 1, "Priority": 1}]})
    assert r == {"ResponseCode": "Failed_NoNegotiation"} and secc.closing


def test_wrong_service_and_parameter_set():
    ev, secc = _new()
    _req(secc, NS_SAP, "supportedAppProtocolReq", {"AppProtocol": [
        {"ProtocolNamespace": NS_DC, "VersionNumberMajor": 1, "VersionNumberMinor": 0, "SchemaID": 1, "Priority": 1}]})
    for n, b in (("SessionSetupReq", {"EVCCID": "X"}), ("AuthorizationSetupReq", {}),
                 ("AuthorizationReq", {"SelectedAuthorizationService": "EIM"}), ("ServiceDiscoveryReq", {})):
        _req(secc, NS_COMMON, n, b)
    r = _req(secc, NS_COMMON, "ServiceSelectionReq", {"SelectedEnergyTransferService": {"ServiceID": 6, "ParameterSetID": 9}})
    assert r["ResponseCode"] == "FAILED_ServiceSelectionInvalid"


def test_authorization_pending_then_ok_and_cable_check_ongoing():
    ev, secc = _new()
    ev.auth_state = "pending"
    _req(secc, NS_SAP, "supportedAppProtocolReq", {"AppProtocol": [
        {"ProtocolNamespace": NS_DC, "VersionNumberMajor": 1, "VersionNumberMinor": 0, "SchemaID": 1, "Priority": 1}]})
    _req(secc, NS_COMMON, "SessionSetupReq", {"EVCCID": "X"})
    _req(secc, NS_COMMON, "AuthorizationSetupReq", {})
    a = {"SelectedAuthorizationService": "EIM"}
    assert _req(secc, NS_COMMON, "AuthorizationReq", dict(a))["EVSEProcessing"] == "Ongoing"
    ev.auth_state = "ok"
    assert _req(secc, NS_COMMON, "AuthorizationReq", dict(a))["EVSEProcessing"] == "Finished"


def test_cable_check_fault_fails():
    ev, secc = _new()
    ev.isolation_state = "pending"
    _setup(secc)
    _req(secc, NS_DC, "DC_ChargeParameterDiscoveryReq", {"BPT_DC_CPDReqEnergyTransferMode": {"EVMaximumChargePower": rat(1)}})
    _req(secc, NS_COMMON, "ScheduleExchangeReq", {"MaximumSupportingPoints": 1, "Scheduled_SEReqControlMode": {}})
    assert _req(secc, NS_DC, "DC_CableCheckReq", {})["EVSEProcessing"] == "Ongoing"
    ev.isolation_state = "fault"
    r = _req(secc, NS_DC, "DC_CableCheckReq", {})
    assert r["ResponseCode"] == "FAILED" and secc.closing


def test_sequence_timeout_loses_session():
    ev, secc = _new()
    _dc_bpt_to_loop(secc)
    ev.current = 25
    t = 0  # the last response went out at now=0
    assert not secc.poll(t + SEQUENCE_TIMEOUT_US - 10)
    assert secc.poll(t + SEQUENCE_TIMEOUT_US + 1)
    assert ev.current == 0 and ev.lost == ["sequence_timeout"] and secc.counters["timeout"] == 1


def test_setup_timeout_and_tick_wrap():
    ev, secc = _new()
    start = (1 << 30) - 5000000  # ticks wrap during the wait
    secc.connection_made(start)
    assert not secc.poll((start + 19000000) & ((1 << 30) - 1))
    assert secc.poll((start + 21000000) & ((1 << 30) - 1))
    assert ev.lost == ["setup_timeout"]


def test_connection_lost_mid_charge_zeroes_current():
    ev, secc = _new()
    _dc_bpt_to_loop(secc)
    ev.current = 30
    secc.connection_lost(0)
    assert ev.current == 0 and ev.channel is None and ev.lost == ["connection_lost"]


def test_unknown_or_garbage_messages_close():
    for msg in ({"CertificateInstallationReq": {}}, {}, None, [], {"SessionSetupReq": 5},
                {"SessionSetupReq": {"Header": 7}}, {"a": 1, "b": 2}):
        ev, secc = _new()
        _req(secc, NS_SAP, "supportedAppProtocolReq", {"AppProtocol": [
            {"ProtocolNamespace": NS_DC, "VersionNumberMajor": 1, "VersionNumberMinor": 0, "SchemaID": 1, "Priority": 1}]})
        r = secc.handle(NS_COMMON, msg, 0)
        assert secc.closing, msg
        if r is not None:
            assert r[1]["SessionSetupRes"]["ResponseCode"].startswith("FAILED")


def test_connection_glue_frames_and_closes():
    ev, secc = _new()
    conn = Connection(secc, JsonCodec())
    conn.connection_made(0)
    c = JsonCodec()
    sap = {"supportedAppProtocolReq": {"AppProtocol": [
        {"ProtocolNamespace": NS_DC, "VersionNumberMajor": 1, "VersionNumberMinor": 0, "SchemaID": 1, "Priority": 1}]}}
    setup = {"SessionSetupReq": {"EVCCID": "X", "Header": _h("0000000000000000")}}
    stream = v2gtp.frame(v2gtp.SAP, c.encode(NS_SAP, sap)) + v2gtp.frame(v2gtp.COMMON, c.encode(NS_COMMON, setup))
    out = conn.data_received(stream[:5], 0) + conn.data_received(stream[5:], 0)
    p = v2gtp.Parser()
    msgs = p.feed(out)
    assert [m[0] for m in msgs] == [v2gtp.SAP, v2gtp.COMMON]
    assert c.decode(NS_COMMON, msgs[1][1])["SessionSetupRes"]["ResponseCode"] == "OK_NewSessionEstablished"
    assert not conn.closing
    assert conn.data_received(b"\x02\xfd\x80\x02\x00\x00\x00\x00", 0) == b""
    assert conn.closing and ev.lost == ["connection_lost"]


def test_connection_undecodable_payload_closes():
    ev, secc = _new()
    conn = Connection(secc, JsonCodec())
    conn.connection_made(0)
    assert conn.data_received(v2gtp.frame(v2gtp.SAP, b"\xff\x00garbage"), 0) == b""
    assert conn.closing and conn.decode_errors == 1 and ev.lost


def test_rational_numbers():
    for x in (0, 1, -1, 32767, 40000, -163, 0.5, 11000, 300000):
        r = rat(x)
        assert -32768 <= r["Value"] <= 32767 and -128 <= r["Exponent"] <= 127
        assert abs(val(r) - x) <= abs(x) * 0.001
