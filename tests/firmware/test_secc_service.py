"""The polled SECC service (controller/iso15118/service.py) over real loopback sockets, in
one thread: SDP over UDP, sessions over TCP, one EV at a time, lost connections and
timeouts, and errors that must not leave poll(). Runs under CPython (pytest) and under
MicroPython's unix port (mp_run.py): the non-blocking socket and select.poll path of the
product on both. Time is a simulated clock passed to poll(); the sockets are real."""
import socket
import sys

from controller.iso15118 import sdp, v2gtp
from controller.iso15118.secc import BasicEvse, Secc, rat
from controller.iso15118.service import SeccService, TAKEOVER_US
from controller.iso15118.v2gtp import NS_COMMON, NS_DC, NS_SAP
from test_secc import JsonCodec  # the JSON stand-in codec of the SECC tests

LOOPBACK = b"\x00" * 15 + b"\x01"
SID = "0123456789ABCDEF"


class Clock:
    def __init__(self):
        self.t = 1000

    def __call__(self):
        return self.t


_next_port = [0]


def _ports():
    """Distinct TCP and SDP ports per service (other tests may hold 15118)."""
    try:
        from os import urandom

        b = urandom(2)
        base = 50000 + ((b[0] << 8 | b[1]) % 6000) * 2
    except ImportError:
        base = 50000
    _next_port[0] += 2
    return base + _next_port[0], base + _next_port[0] + 1


def _service(evse=None, **cfg):
    evse = evse or BasicEvse()
    c = {"energy": "DC", "new_session_id": lambda: SID}
    c.update(cfg)
    clock = Clock()
    lines = []
    tcp, udp = _ports()
    svc = SeccService(Secc(evse, c), JsonCodec(), "lo", log=lines.append, ticks_us=clock, addr16=LOOPBACK,
                      tcp_port=tcp, sdp_port=udp)
    svc.open()
    return svc, evse, clock, lines


def _addr(port, kind=socket.SOCK_STREAM):
    return socket.getaddrinfo("::1", port, socket.AF_INET6, kind)[0][-1]


def _polls(svc, clock, n=3, step_us=1000):
    for _ in range(n):
        clock.t += step_us
        svc.poll(clock.t)


class Ev:
    """A blocking-connect, non-blocking-read EV over TCP; its requests are answered by
    polling the service in the same thread."""

    def __init__(self, svc):
        self.s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        self.s.connect(_addr(svc.tcp_port))
        self.s.setblocking(False)
        self.p = v2gtp.Parser()
        self.codec = JsonCodec()

    def _read(self):
        try:
            return self.s.recv(4096)
        except OSError:
            return None

    def ask(self, svc, clock, ns, name, body, step_us=1000):
        if name != "supportedAppProtocolReq":
            body["Header"] = {"SessionID": SID if name != "SessionSetupReq" else "0000000000000000",
                              "TimeStamp": 1795691000}
        self.s.send(v2gtp.frame(v2gtp.TYPE_OF_NS[ns], self.codec.encode(ns, {name: body})))
        for _ in range(500):
            clock.t += step_us
            svc.poll(clock.t)
            data = self._read()
            if data == b"":
                return None  # the SECC closed the connection
            if data:
                msgs = self.p.feed(data)
                if msgs:
                    ptype, payload = msgs[0]
                    return self.codec.decode(v2gtp.NS_OF_TYPE[ptype], payload)[name[:-3] + "Res"]
        raise AssertionError("no answer to " + name)

    def closed_by_secc(self, svc, clock):
        for _ in range(200):
            clock.t += 1000
            svc.poll(clock.t)
            if self._read() == b"":
                return True
        return False

    def close(self):
        self.s.close()


def _setup(ev, svc, clock):
    r = ev.ask(svc, clock, NS_SAP, "supportedAppProtocolReq", {"AppProtocol": [
        {"ProtocolNamespace": NS_DC, "VersionNumberMajor": 1, "VersionNumberMinor": 0, "SchemaID": 1, "Priority": 1}]})
    assert r["ResponseCode"] == "OK_SuccessfulNegotiation"
    assert ev.ask(svc, clock, NS_COMMON, "SessionSetupReq", {"EVCCID": "WMIV1234567890ABCDEX"})["ResponseCode"] == \
        "OK_NewSessionEstablished"
    ev.ask(svc, clock, NS_COMMON, "AuthorizationSetupReq", {})
    ev.ask(svc, clock, NS_COMMON, "AuthorizationReq", {"SelectedAuthorizationService": "EIM",
                                                      "EIM_AReqAuthorizationMode": {}})
    ev.ask(svc, clock, NS_COMMON, "ServiceDiscoveryReq", {})
    ev.ask(svc, clock, NS_COMMON, "ServiceDetailReq", {"ServiceID": 6})
    ev.ask(svc, clock, NS_COMMON, "ServiceSelectionReq",
           {"SelectedEnergyTransferService": {"ServiceID": 6, "ParameterSetID": 2}})


def _cpd(ev, svc, clock):
    return ev.ask(svc, clock, NS_DC, "DC_ChargeParameterDiscoveryReq", {"BPT_DC_CPDReqEnergyTransferMode": {
        "EVMaximumChargeCurrent": rat(30), "EVMaximumChargePower": rat(11000), "EVMaximumDischargeCurrent": rat(30),
        "EVMaximumDischargePower": rat(11000), "EVMaximumVoltage": rat(500), "EVMinimumChargeCurrent": rat(0),
        "EVMinimumChargePower": rat(0), "EVMinimumDischargeCurrent": rat(0), "EVMinimumDischargePower": rat(0),
        "EVMinimumVoltage": rat(200)}})


def _to_loop(ev, svc, clock, channel="Discharge"):
    _setup(ev, svc, clock)
    _cpd(ev, svc, clock)
    ev.ask(svc, clock, NS_COMMON, "ScheduleExchangeReq", {"MaximumSupportingPoints": 1024, "Dynamic_SEReqControlMode": {
        "DepartureTime": 7200, "EVTargetEnergyRequest": rat(20000), "EVMaximumEnergyRequest": rat(40000),
        "EVMinimumEnergyRequest": rat(-10000)}})
    ev.ask(svc, clock, NS_DC, "DC_CableCheckReq", {})
    ev.ask(svc, clock, NS_DC, "DC_PreChargeReq", {"EVProcessing": "Ongoing", "EVPresentVoltage": rat(390),
                                                  "EVTargetVoltage": rat(400)})
    r = ev.ask(svc, clock, NS_COMMON, "PowerDeliveryReq", {"EVProcessing": "Finished", "ChargeProgress": "Start",
                                                           "BPT_ChannelSelection": channel})
    assert r["ResponseCode"] == "OK"


def _loop(ev, svc, clock, soc=60):
    return ev.ask(svc, clock, NS_DC, "DC_ChargeLoopReq", {"BPT_Dynamic_DC_CLReqControlMode": {
        "EVMaximumChargeCurrent": rat(30), "EVMaximumChargePower": rat(11000), "EVMaximumDischargeCurrent": rat(30),
        "EVMaximumDischargePower": rat(11000), "EVMaximumVoltage": rat(500), "EVMinimumChargePower": rat(0),
        "EVMinimumDischargePower": rat(0), "EVMinimumVoltage": rat(200), "EVTargetEnergyRequest": rat(20000),
        "EVMaximumEnergyRequest": rat(40000), "EVMinimumEnergyRequest": rat(-10000)},
        "DisplayParameters": {"PresentSOC": soc, "MinimumSOC": 20, "ChargingComplete": False},
        "EVPresentVoltage": rat(400), "MeterInfoRequested": False})


def test_sdp_answers_with_the_listener_address_and_port():
    svc, _, clock, lines = _service()
    u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        u.sendto(sdp.request(), _addr(svc.sdp_port, socket.SOCK_DGRAM))
        u.setblocking(False)
        got = None
        for _ in range(100):
            _polls(svc, clock, 1)
            try:
                got = u.recv(64)
                break
            except OSError:
                pass
        r = sdp.parse_response(got)
        assert r["addr"] == LOOPBACK and r["port"] == svc.tcp_port and r["security"] == sdp.SEC_NO_TLS
        assert "SECC on [::1]:%d" % svc.tcp_port in lines[0]
    finally:
        u.close()
        svc.close()


def test_a_whole_session_and_a_second_ev_refused_meanwhile():
    svc, evse, clock, lines = _service()
    ev = Ev(svc)
    try:
        _to_loop(ev, svc, clock, "Discharge")
        other = Ev(svc)  # a second EV while the first is served: accepted and closed at once
        assert other.closed_by_secc(svc, clock)
        other.close()
        assert svc.counters["refused"] == 1
        for soc in (60, 59, 58):
            r = _loop(ev, svc, clock, soc)
            assert r["ResponseCode"] == "OK"
        assert evse.ev_tgt["soc"] == 58 and evse.channel == "Discharge"
        assert ev.ask(svc, clock, NS_COMMON, "PowerDeliveryReq", {"EVProcessing": "Finished",
                                                                  "ChargeProgress": "Stop"})["ResponseCode"] == "OK"
        ev.ask(svc, clock, NS_DC, "DC_WeldingDetectionReq", {"EVProcessing": "Finished"})
        r = ev.ask(svc, clock, NS_COMMON, "SessionStopReq", {"ChargingSession": "Terminate"})
        assert r["ResponseCode"] == "OK"
        assert ev.closed_by_secc(svc, clock)
        assert svc.sess is None and evse.lost == []
        last = svc.last
        assert last["end"] == "SessionStop" and last["messages"] == 18 and last["channels"] == ["Discharge"]
        assert last["control"] == "Dynamic" and svc.answers == 18
        assert [x for x in lines if x.startswith("session ended")]
    finally:
        ev.close()
        svc.close()


def test_lost_connection_mid_discharge_zeroes_the_current():
    svc, evse, clock, _ = _service()
    ev = Ev(svc)
    try:
        _to_loop(ev, svc, clock, "Discharge")
        _loop(ev, svc, clock)
        assert evse.channel == "Discharge"
        ev.close()  # the cable is pulled
        _polls(svc, clock, 5)
        assert svc.sess is None and evse.lost == ["connection_lost"]
        assert evse.current == 0 and evse.channel is None
        assert svc.last["end"] == "closed by the EV"
        # the slot is free: the next EV is served
        ev = Ev(svc)
        r = ev.ask(svc, clock, NS_SAP, "supportedAppProtocolReq", {"AppProtocol": [
            {"ProtocolNamespace": NS_DC, "VersionNumberMajor": 1, "VersionNumberMinor": 0, "SchemaID": 1,
             "Priority": 1}]})
        assert r["ResponseCode"] == "OK_SuccessfulNegotiation"
    finally:
        ev.close()
        svc.close()


def test_sequence_timeout_closes_the_session_and_loses_it():
    svc, evse, clock, _ = _service(sequence_timeout_us=2000000)
    ev = Ev(svc)
    try:
        _to_loop(ev, svc, clock, "Charge")
        _loop(ev, svc, clock)
        clock.t += 2000001  # the EV falls silent longer than the sequence timeout
        assert ev.closed_by_secc(svc, clock)
        assert evse.lost == ["sequence_timeout"] and evse.current == 0
        assert svc.last["end"] == "timeout" and svc.sess is None
    finally:
        ev.close()
        svc.close()


def test_a_silent_session_gives_way_to_a_new_connection():
    svc, evse, clock, lines = _service()
    first = Ev(svc)
    try:
        first.ask(svc, clock, NS_SAP, "supportedAppProtocolReq", {"AppProtocol": [
            {"ProtocolNamespace": NS_DC, "VersionNumberMajor": 1, "VersionNumberMinor": 0, "SchemaID": 1,
             "Priority": 1}]})
        clock.t += TAKEOVER_US + 1000  # the first connection says nothing for longer than takeover_us
        second = Ev(svc)
        r = second.ask(svc, clock, NS_SAP, "supportedAppProtocolReq", {"AppProtocol": [
            {"ProtocolNamespace": NS_DC, "VersionNumberMajor": 1, "VersionNumberMinor": 0, "SchemaID": 1,
             "Priority": 1}]})
        assert r["ResponseCode"] == "OK_SuccessfulNegotiation"
        assert svc.counters["taken_over"] == 1 and svc.counters["refused"] == 0
        assert evse.lost == ["connection_lost"] and first.closed_by_secc(svc, clock)
        second.close()
    finally:
        first.close()
        svc.close()


class _BrokenEvse(BasicEvse):
    def ev_limits(self, d):
        raise RuntimeError("a bug behind the EVSE")


def test_an_error_while_serving_never_leaves_poll():
    svc, evse, clock, lines = _service(_BrokenEvse())
    ev = Ev(svc)
    try:
        _setup(ev, svc, clock)
        assert _cpd(ev, svc, clock) is None  # the session is dropped: no answer, the connection closes
        assert svc.counters["errors"] == 1 and svc.sess is None
        assert evse.lost == ["connection_lost"]
        assert [x for x in lines if "a bug behind the EVSE" in x]
        _polls(svc, clock, 3)  # and the service goes on
    finally:
        ev.close()
        svc.close()


def test_bad_v2gtp_header_closes_without_an_answer():
    svc, evse, clock, _ = _service()
    ev = Ev(svc)
    try:
        ev.s.send(b"\x02\xfd\x80\x01\x00\x00\x00\x02{}")
        assert ev.closed_by_secc(svc, clock)
        assert svc.sess is None and evse.lost == ["connection_lost"]
    finally:
        ev.close()
        svc.close()


def test_tls_without_version_1_3_is_refused_never_downgraded():
    from controller.iso15118 import tls

    why = tls.tls13_missing()
    if sys.implementation.name == "micropython":
        # mbedTLS here offers TLS 1.2 only and its ssl module cannot pin a version
        assert why is not None and "TLS 1.3" in why
        try:
            tls.server_context("secc_chain.pem", "secc.key")
            raise AssertionError("a TLS context on a platform without TLS 1.3")
        except ValueError as e:
            assert "TLS 1.3" in str(e)
    else:
        assert why is None


def test_runtime_polls_services_and_caps_its_wait():
    from controller import config
    from controller.control.gateway import Gateway
    from controller.runtime import run
    from sitebus import Site

    class Probe:
        def __init__(self):
            self.polls = 0

        def poll(self, now):
            self.polls += 1
            return 0.5

    class WaitLog:
        def __init__(self, port):
            self.port = port
            self.waits = []

        def __getattr__(self, name):
            return getattr(self.port, name)

        def wait(self, ms):
            self.waits.append(ms)
            return self.port.wait(ms)

    class Clock2:
        def __init__(self):
            self.t = 0

        def ticks_us(self):
            self.t += 300
            return self.t

    site = Site()
    gw = Gateway(config.defaults(), site.gw_port)
    port = WaitLog(site.gw_port)
    probe = Probe()
    stats = run(gw, port, Clock2(), duration_us=100000, services=[probe])
    assert stats.ticks > 0 and probe.polls > stats.ticks
    assert port.waits and max(port.waits) <= 0.5
