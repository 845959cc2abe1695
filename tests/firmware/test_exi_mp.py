"""EXI codec under MicroPython (and CPython): a handful of EXIficient vectors.

The vectors are copied from tests/data/iso15118-20-vectors.jsonl (itself a copy of
../shared/iso15118-20/vectors.jsonl) so that this module runs on a board too.
Run: micropython tests/firmware/mp_run.py test_exi_mp
"""
import binascii
import json

from controller.iso15118 import exi

VECTORS = (
    # vector 0: supportedAppProtocolReq
    '{"exi": "8000f3ab9371d34b9b79d39ba321d34b9b79d189a98989c1d1699181d20a18010000040040", "json": {"supportedAppProtocolReq": {"AppProtocol": [{"Priority": 1, "ProtocolNamespace": "urn:iso:std:iso:15118:-20:AC", "SchemaID": 1, "VersionNumberMajor": 1, "VersionNumberMinor": 0}]}}, "msg": "supportedAppProtocolReq", "ns": "urn:iso:15118:2:2010:AppProtocol"}',
    # vector 1: supportedAppProtocolRes
    '{"exi": "80400040", "json": {"supportedAppProtocolRes": {"ResponseCode": "OK_SuccessfulNegotiation", "SchemaID": 1}}, "msg": "supportedAppProtocolRes", "ns": "urn:iso:15118:2:2010:AppProtocol"}',
    # vector 2: SessionSetupReq
    '{"exi": "808c0400000000000000000dfa4a0d80620b2ba6a4ab1899199a1a9b1b9c1c9820a121a222ac00", "json": {"SessionSetupReq": {"EVCCID": "WMIV1234567890ABCDEX", "Header": {"SessionID": "0000000000000000", "TimeStamp": 1795691103}}}, "msg": "SessionSetupReq", "ns": "urn:iso:std:iso:15118:-20:CommonMessages"}',
    # vector 3: SessionSetupRes
    '{"exi": "80900458427063c9c5255b0dfa4a0d806204031552cc4c8cd14c4c8ccd00", "json": {"SessionSetupRes": {"EVSEID": "UK123E1234", "Header": {"SessionID": "B084E0C7938A4AB6", "TimeStamp": 1795691103}, "ResponseCode": "OK_NewSessionEstablished"}}, "msg": "SessionSetupRes", "ns": "urn:iso:std:iso:15118:-20:CommonMessages"}',
    # vector 96: ScheduleExchangeReq
    '{"exi": "806c041b27219ffbe4417a0bd868c818e032e063235303988468901021e9ae02020465b64040811972100000a74807f1bd7a0803005455552064eae4dc74d2e6de74e6e8c874d2e6de74626a626270745a646074a0e4d2c6ca82d8cedee4d2e8d0da74625aa0deeecae400103f8419882087fd742800", "json": {"ScheduleExchangeReq": {"Header": {"SessionID": "364E433FF7C882F4", "TimeStamp": 106839606077}, "MaximumSupportingPoints": 2509, "Scheduled_SEReqControlMode": {"DepartureTime": 2317, "EVEnergyOffer": {"EVAbsolutePriceSchedule": {"Currency": "EUR", "EVPriceRuleStacks": {"EVPriceRuleStack": [{"Duration": 1, "EVPriceRule": [{"EnergyFee": {"Exponent": -1, "Value": 6275}, "PowerRangeStart": {"Exponent": 2, "Value": -12032}}]}]}, "PriceAlgorithm": "urn:iso:std:iso:15118:-20:PriceAlgorithm:1-Power", "TimeAnchor": 6}, "EVPowerSchedule": {"EVPowerScheduleEntries": {"EVPowerScheduleEntry": [{"Duration": 9255, "Power": {"Exponent": -1, "Value": -15678}}]}, "TimeAnchor": 0}}, "EVMaximumEnergyRequest": {"Exponent": 1, "Value": -27799}, "EVMinimumEnergyRequest": {"Exponent": 1, "Value": -4248}, "EVTargetEnergyRequest": {"Exponent": 1, "Value": 27636}}}}, "msg": "ScheduleExchangeReq", "ns": "urn:iso:std:iso:15118:-20:CommonMessages"}',
    # vector 82: DC_ChargeLoopReq
    '{"exi": "80340456fa012189e85d42894a4a0d806201b98402002400c0280e020c050106050083109041805820019010003c0800c20304005601020c02c1000c808001e020c07808311300", "json": {"DC_ChargeLoopReq": {"BPT_Dynamic_DC_CLReqControlMode": {"DepartureTime": 7200, "EVMaximumChargeCurrent": {"Exponent": 0, "Value": 30}, "EVMaximumChargePower": {"Exponent": 3, "Value": 11}, "EVMaximumDischargeCurrent": {"Exponent": 0, "Value": 30}, "EVMaximumDischargePower": {"Exponent": 3, "Value": 11}, "EVMaximumEnergyRequest": {"Exponent": 3, "Value": 40}, "EVMaximumV2XEnergyRequest": {"Exponent": 3, "Value": 30}, "EVMaximumVoltage": {"Exponent": 0, "Value": 450}, "EVMinimumChargePower": {"Exponent": 0, "Value": 100}, "EVMinimumDischargePower": {"Exponent": 0, "Value": 100}, "EVMinimumEnergyRequest": {"Exponent": 3, "Value": -10}, "EVMinimumV2XEnergyRequest": {"Exponent": 3, "Value": -20}, "EVMinimumVoltage": {"Exponent": 0, "Value": 300}, "EVTargetEnergyRequest": {"Exponent": 3, "Value": 20}}, "DisplayParameters": {"ChargingComplete": false, "PresentSOC": 55}, "EVPresentVoltage": {"Exponent": 0, "Value": 400}, "Header": {"SessionID": "ADF4024313D0BA85", "TimeStamp": 1795691028}, "MeterInfoRequested": false}}, "msg": "DC_ChargeLoopReq", "ns": "urn:iso:std:iso:15118:-20:DC"}',
    # vector 63: DC_ChargeLoopReq
    '{"exi": "80340456fa012189e85d42894a4a0d8062005184020c0502c8101404080a10", "json": {"DC_ChargeLoopReq": {"BPT_Scheduled_DC_CLReqControlMode": {"EVTargetCurrent": {"Exponent": 1, "Value": 20}, "EVTargetVoltage": {"Exponent": 1, "Value": 20}}, "DisplayParameters": {"ChargingComplete": false, "PresentSOC": 10}, "EVPresentVoltage": {"Exponent": 3, "Value": 20}, "Header": {"SessionID": "ADF4024313D0BA85", "TimeStamp": 1795691028}, "MeterInfoRequested": false}}, "msg": "DC_ChargeLoopReq", "ns": "urn:iso:std:iso:15118:-20:DC"}',
    # vector 64: DC_ChargeLoopRes
    '{"exi": "80380456fa012189e85d42894a4a0d80620064000082000040002040074038040032008006401001e80602003a01c04003201000c804000500", "json": {"DC_ChargeLoopRes": {"BPT_Scheduled_DC_CLResControlMode": {"EVSEMaximumChargeCurrent": {"Exponent": 0, "Value": 100}, "EVSEMaximumChargePower": {"Exponent": 0, "Value": 1000}, "EVSEMaximumDischargeCurrent": {"Exponent": 0, "Value": 100}, "EVSEMaximumDischargePower": {"Exponent": 0, "Value": 1000}, "EVSEMaximumVoltage": {"Exponent": 0, "Value": 500}, "EVSEMinimumChargePower": {"Exponent": 0, "Value": 100}, "EVSEMinimumDischargePower": {"Exponent": 0, "Value": 100}, "EVSEMinimumVoltage": {"Exponent": 0, "Value": 10}}, "EVSECurrentLimitAchieved": false, "EVSEPowerLimitAchieved": false, "EVSEPresentCurrent": {"Exponent": 0, "Value": 1}, "EVSEPresentVoltage": {"Exponent": 0, "Value": 1}, "EVSEVoltageLimitAchieved": false, "Header": {"SessionID": "ADF4024313D0BA85", "TimeStamp": 1795691028}, "ResponseCode": "OK"}}, "msg": "DC_ChargeLoopRes", "ns": "urn:iso:std:iso:15118:-20:DC"}',
    # vector 20: AC_ChargeLoopReq
    '{"exi": "80080458427063c9c5255b0e1a4a0d8062005184064830c8012c", "json": {"AC_ChargeLoopReq": {"BPT_Scheduled_AC_CLReqControlMode": {"EVPresentActivePower": {"Exponent": 3, "Value": 200}}, "DisplayParameters": {"ChargingComplete": false, "PresentSOC": 10}, "Header": {"SessionID": "B084E0C7938A4AB6", "TimeStamp": 1795691105}, "MeterInfoRequested": false}}, "msg": "AC_ChargeLoopReq", "ns": "urn:iso:std:iso:15118:-20:AC"}',
    # vector 11: ServiceDetailRes
    '{"exi": "80780458427063c9c5255b0e0a4a0d80620001400202d0dbdb9b9958dd1bdc9804014455653454e6f6d696e616c566f6c7461676564801802541c9a58da5b99d80000d436f6e74726f6c4d6f6465600804d35bd89a5b1a5d1e539959591cd35bd9195802200402d0dbdb9b9958dd1bdc9804014455653454e6f6d696e616c566f6c7461676564801802541c9a58da5b99d80000d436f6e74726f6c4d6f6465601004d35bd89a5b1a5d1e539959591cd35bd9195804200602d0dbdb9b9958dd1bdc9804014455653454e6f6d696e616c566f6c7461676564801802541c9a58da5b99d80000d436f6e74726f6c4d6f6465601004d35bd89a5b1a5d1e539959591cd35bd919580228", "json": {"ServiceDetailRes": {"Header": {"SessionID": "B084E0C7938A4AB6", "TimeStamp": 1795691104}, "ResponseCode": "OK", "ServiceID": 5, "ServiceParameterList": {"ParameterSet": [{"Parameter": [{"Name": "Connector", "intValue": 2}, {"Name": "EVSENominalVoltage", "intValue": 400}, {"Name": "Pricing", "intValue": 0}, {"Name": "ControlMode", "intValue": 1}, {"Name": "MobilityNeedsMode", "intValue": 1}], "ParameterSetID": 1}, {"Parameter": [{"Name": "Connector", "intValue": 2}, {"Name": "EVSENominalVoltage", "intValue": 400}, {"Name": "Pricing", "intValue": 0}, {"Name": "ControlMode", "intValue": 2}, {"Name": "MobilityNeedsMode", "intValue": 2}], "ParameterSetID": 2}, {"Parameter": [{"Name": "Connector", "intValue": 2}, {"Name": "EVSENominalVoltage", "intValue": 400}, {"Name": "Pricing", "intValue": 0}, {"Name": "ControlMode", "intValue": 2}, {"Name": "MobilityNeedsMode", "intValue": 1}], "ParameterSetID": 3}]}}}, "msg": "ServiceDetailRes", "ns": "urn:iso:std:iso:15118:-20:CommonMessages"}',
    # vector 5: AuthorizationSetupRes
    '{"exi": "800c0458427063c9c5255b0dfa4a0d8062000500", "json": {"AuthorizationSetupRes": {"AuthorizationServices": ["EIM"], "CertificateInstallationService": true, "EIM_ASResAuthorizationMode": {}, "Header": {"SessionID": "B084E0C7938A4AB6", "TimeStamp": 1795691103}, "ResponseCode": "OK"}}, "msg": "AuthorizationSetupRes", "ns": "urn:iso:std:iso:15118:-20:CommonMessages"}',
)


def _vectors():
    return [json.loads(s) for s in VECTORS]


def test_encode_matches_exificient():
    for v in _vectors():
        got = binascii.hexlify(exi.encode(v["ns"], v["json"])).decode()
        assert got == v["exi"], v["msg"]


def test_decode_matches_exificient():
    for v in _vectors():
        assert exi.decode(v["ns"], binascii.unhexlify(v["exi"])) == v["json"], v["msg"]


def test_decode_memoryview_and_bytearray():
    v = _vectors()[2]
    data = binascii.unhexlify(v["exi"])
    assert exi.decode(v["ns"], bytearray(data)) == v["json"]
    assert exi.decode(v["ns"], memoryview(data)) == v["json"]


def test_roundtrip_changed_values():
    v = _vectors()[2]
    obj = v["json"]
    obj["SessionSetupReq"]["EVCCID"] = "EV-\u00e9\u20ac-42"
    obj["SessionSetupReq"]["Header"]["TimeStamp"] = (1 << 64) - 1
    data = exi.encode(v["ns"], obj)
    assert exi.decode(v["ns"], data) == obj


def test_malformed_input_raises_exi_error():
    v = _vectors()[2]
    data = binascii.unhexlify(v["exi"])
    bad = [b"", b"\x00", b"\x80", data[:5], data[:-3], b"\x80" + b"\xff" * 40, b"\x80\x80" * 30]
    for b in bad:
        try:
            exi.decode(v["ns"], b)
        except exi.ExiError:
            pass
        else:
            assert False, "no error for %r" % (b,)


def test_encode_rejects_bad_message():
    try:
        exi.encode("urn:iso:std:iso:15118:-20:DC", {"DC_ChargeLoopReq": {}})
    except exi.ExiError as e:
        assert "missing" in str(e)
    else:
        assert False
