"""EV simulator (EVCC) for ISO 15118-20 DC/DC_BPT and AC/AC_BPT sessions, CPython.

It speaks through an `exchange(ns, msg) -> (ns, msg)` callable, so the same session
runs in-process against controller.iso15118.secc.Secc (`inprocess_exchange`) or over
TCP with V2GTP framing (`TcpExchange`), with any codec that has encode(ns, obj) and
decode(ns, data): the EXI codec, or JsonCodec until that lands. Messages follow the
JSON form of ../shared/iso15118-20/vectors.jsonl (Josev's EVCC).
"""

import json
import socket

from controller.iso15118 import v2gtp
from controller.iso15118.secc import rat, val
from controller.iso15118.v2gtp import NS_AC, NS_COMMON, NS_DC, NS_SAP


class JsonCodec:
    """Stand-in codec: JSON text of the same dicts the EXI codec takes."""

    def encode(self, ns, obj):
        return json.dumps(obj).encode()

    def decode(self, ns, data):
        return json.loads(bytes(data).decode())


class SessionFailed(Exception):
    pass


class TcpExchange:
    """exchange() over a TCP socket with V2GTP framing."""

    def __init__(self, host, port, codec, timeout=5.0):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.codec = codec
        self.parser = v2gtp.Parser()
        self.pending = []

    def __call__(self, ns, msg):
        self.sock.sendall(v2gtp.frame(v2gtp.TYPE_OF_NS[ns], self.codec.encode(ns, msg)))
        while not self.pending:
            data = self.sock.recv(4096)
            if not data:
                raise SessionFailed("connection closed by SECC")
            self.pending.extend(self.parser.feed(data))
            if self.parser.closed:
                raise SessionFailed("bad V2GTP from SECC: %s" % self.parser.error)
        ptype, payload = self.pending.pop(0)
        rns = v2gtp.NS_OF_TYPE[ptype]
        return rns, self.codec.decode(rns, payload)

    def close(self):
        self.sock.close()


def inprocess_exchange(secc, clock_us=None, step_us=100000):
    """exchange() calling secc.handle directly; time advances step_us per message."""
    t = [0]

    def ex(ns, msg):
        now = clock_us() if clock_us else t[0]
        t[0] += step_us
        r = secc.handle(ns, msg, now)
        if r is None:
            raise SessionFailed("SECC closed without a response")
        return r

    secc.connection_made(0)
    return ex


class Evcc:
    """One EV. energy "DC" or "AC"; bpt; control "Scheduled" or "Dynamic"; channel
    "Charge" or "Discharge"; loops: charge-loop iterations before stopping."""

    def __init__(self, energy="DC", bpt=True, control="Scheduled", channel="Charge", loops=5,
                 evcc_id="WMIV1234567890ABCDEX", soc=50, min_soc=20):
        self.energy = energy
        self.ns = NS_DC if energy == "DC" else NS_AC
        self.bpt = bpt
        self.control = control
        self.channel = channel
        self.loops = loops
        self.evcc_id = evcc_id
        self.soc = soc
        self.min_soc = min_soc  # None: the EV does not announce a minimum
        self.sid = "0000000000000000"
        self.ts = 1795691000
        self.log = []  # (request name, response dict)
        self.loop_results = []

    def _hdr(self):
        self.ts += 1
        return {"SessionID": self.sid, "TimeStamp": self.ts}

    def _req(self, exchange, ns, name, body, ok=("OK",)):
        if name != "supportedAppProtocolReq":
            body["Header"] = self._hdr()
        rns, res = exchange(ns, {name: body})
        rname = name[:-3] + "Res"
        if rname not in res:
            raise SessionFailed("expected %s, got %s" % (rname, list(res)))
        r = res[rname]
        self.log.append((name, r))
        if ok is not None and r.get("ResponseCode") not in ok:
            raise SessionFailed("%s: %s" % (rname, r.get("ResponseCode")))
        return r

    def run(self, exchange, stop="Terminate"):
        """Drive a whole session; returns the list of (request, response) pairs."""
        ns = self.ns
        r = self._req(exchange, NS_SAP, "supportedAppProtocolReq", {"AppProtocol": [
            {"ProtocolNamespace": ns, "VersionNumberMajor": 1, "VersionNumberMinor": 0, "SchemaID": 1,
             "Priority": 1}]}, ok=("OK_SuccessfulNegotiation", "OK_SuccessfulNegotiationWithMinorDeviation"))
        r = self._req(exchange, NS_COMMON, "SessionSetupReq", {"EVCCID": self.evcc_id},
                      ok=("OK_NewSessionEstablished", "OK_OldSessionJoined"))
        self.sid = r["Header"]["SessionID"]
        self._req(exchange, NS_COMMON, "AuthorizationSetupReq", {})
        for _ in range(20):
            r = self._req(exchange, NS_COMMON, "AuthorizationReq",
                          {"SelectedAuthorizationService": "EIM", "EIM_AReqAuthorizationMode": {}})
            if r["EVSEProcessing"] == "Finished":
                break
        r = self._req(exchange, NS_COMMON, "ServiceDiscoveryReq", {})
        offered = [s["ServiceID"] for s in r["EnergyTransferServiceList"]["Service"]]
        want = {("DC", True): 6, ("DC", False): 2, ("AC", True): 5, ("AC", False): 1}[(self.energy, self.bpt)]
        if want not in offered:
            raise SessionFailed("service %d not offered: %s" % (want, offered))
        r = self._req(exchange, NS_COMMON, "ServiceDetailReq", {"ServiceID": want})
        cm = 1 if self.control == "Scheduled" else 2
        psid = None
        for ps in r["ServiceParameterList"]["ParameterSet"]:
            params = dict((p["Name"], p.get("intValue")) for p in ps["Parameter"])
            if params.get("ControlMode") == cm:
                psid = ps["ParameterSetID"]
                break
        self._req(exchange, NS_COMMON, "ServiceSelectionReq",
                  {"SelectedEnergyTransferService": {"ServiceID": want, "ParameterSetID": psid}})
        self._cpd(exchange)
        self._schedule(exchange)
        if self.energy == "DC":
            for _ in range(20):
                r = self._req(exchange, NS_DC, "DC_CableCheckReq", {})
                if r["EVSEProcessing"] == "Finished":
                    break
            for proc in ("Ongoing", "Finished"):
                self._req(exchange, NS_DC, "DC_PreChargeReq", {
                    "EVProcessing": proc, "EVPresentVoltage": rat(380), "EVTargetVoltage": rat(400)})
        self._power_delivery(exchange, "Start")
        for i in range(self.loops):
            self._loop(exchange, i == self.loops - 1)
        self._req(exchange, NS_COMMON, "PowerDeliveryReq", {"EVProcessing": "Finished", "ChargeProgress": "Stop"})
        if self.energy == "DC":
            for proc in ("Ongoing", "Finished"):
                self._req(exchange, NS_DC, "DC_WeldingDetectionReq", {"EVProcessing": proc})
        self._req(exchange, NS_COMMON, "SessionStopReq", {"ChargingSession": stop})
        return self.log

    def _cpd(self, exchange):
        if self.energy == "DC":
            m = {"EVMaximumChargePower": rat(50000), "EVMinimumChargePower": rat(100),
                 "EVMaximumChargeCurrent": rat(125), "EVMinimumChargeCurrent": rat(0),
                 "EVMaximumVoltage": rat(450), "EVMinimumVoltage": rat(300)}
            if self.bpt:
                m.update({"EVMaximumDischargePower": rat(11000), "EVMinimumDischargePower": rat(100),
                          "EVMaximumDischargeCurrent": rat(30), "EVMinimumDischargeCurrent": rat(0)})
            key = ("BPT_" if self.bpt else "") + "DC_CPDReqEnergyTransferMode"
            self._req(exchange, NS_DC, "DC_ChargeParameterDiscoveryReq", {key: m})
        else:
            m = {"EVMaximumChargePower": rat(11000), "EVMinimumChargePower": rat(100)}
            if self.bpt:
                m.update({"EVMaximumDischargePower": rat(11000), "EVMinimumDischargePower": rat(100)})
            key = ("BPT_" if self.bpt else "") + "AC_CPDReqEnergyTransferMode"
            self._req(exchange, NS_AC, "AC_ChargeParameterDiscoveryReq", {key: m})

    def _schedule(self, exchange):
        if self.control == "Scheduled":
            mode = {"Scheduled_SEReqControlMode": {
                "DepartureTime": 7200, "EVTargetEnergyRequest": rat(10000),
                "EVMaximumEnergyRequest": rat(20000), "EVMinimumEnergyRequest": rat(-5000)}}
        else:
            mode = {"Dynamic_SEReqControlMode": {
                "DepartureTime": 7200, "EVTargetEnergyRequest": rat(20000), "EVMaximumEnergyRequest": rat(40000),
                "EVMinimumEnergyRequest": rat(-10000)}}
            if self.bpt:
                mode["Dynamic_SEReqControlMode"].update({"EVMaximumV2XEnergyRequest": rat(30000),
                                                        "EVMinimumV2XEnergyRequest": rat(-20000)})
        body = {"MaximumSupportingPoints": 1024}
        body.update(mode)
        for _ in range(20):
            r = self._req(exchange, NS_COMMON, "ScheduleExchangeReq", dict(body))
            if r["EVSEProcessing"] == "Finished":
                break
        self.schedule = r

    def _power_delivery(self, exchange, progress):
        body = {"EVProcessing": "Finished", "ChargeProgress": progress}
        if self.bpt:
            body["BPT_ChannelSelection"] = self.channel
        sign = 1 if self.channel == "Charge" else -1
        entry = {"Duration": 3600, "Power": rat(sign * 10000)}
        if self.control == "Scheduled":
            body["EVPowerProfile"] = {"TimeAnchor": 0, "Scheduled_EVPPTControlMode": {"SelectedScheduleTupleID": 1},
                                      "EVPowerProfileEntries": {"EVPowerProfileEntry": [entry]}}
        else:
            body["EVPowerProfile"] = {"TimeAnchor": 0, "Dynamic_EVPPTControlMode": {},
                                      "EVPowerProfileEntries": {"EVPowerProfileEntry": [entry]}}
        self._req(exchange, NS_COMMON, "PowerDeliveryReq", body)

    def _loop(self, exchange, last):
        self.soc = max(0, min(100, self.soc + (5 if self.channel == "Charge" else -5)))
        disp = {"PresentSOC": self.soc, "ChargingComplete": bool(last)}
        if self.min_soc is not None:
            disp["MinimumSOC"] = self.min_soc
        sign = 1 if self.channel == "Charge" else -1
        if self.energy == "DC":
            if self.control == "Scheduled":
                m = {"EVTargetCurrent": rat(sign * 20), "EVTargetVoltage": rat(400)}
                key = ("BPT_" if self.bpt else "") + "Scheduled_DC_CLReqControlMode"
            else:
                m = {"DepartureTime": 7200, "EVTargetEnergyRequest": rat(20000), "EVMaximumEnergyRequest": rat(40000),
                     "EVMinimumEnergyRequest": rat(-10000), "EVMaximumChargePower": rat(11000),
                     "EVMinimumChargePower": rat(100), "EVMaximumChargeCurrent": rat(30),
                     "EVMaximumVoltage": rat(450), "EVMinimumVoltage": rat(300)}
                if self.bpt:
                    m.update({"EVMaximumDischargePower": rat(11000), "EVMinimumDischargePower": rat(100),
                              "EVMaximumDischargeCurrent": rat(30)})
                key = ("BPT_" if self.bpt else "") + "Dynamic_DC_CLReqControlMode"
            r = self._req(exchange, NS_DC, "DC_ChargeLoopReq", {
                key: m, "DisplayParameters": disp, "EVPresentVoltage": rat(400), "MeterInfoRequested": False})
            self.loop_results.append({"current": val(r["EVSEPresentCurrent"]),
                                      "voltage": val(r["EVSEPresentVoltage"])})
        else:
            if self.control == "Scheduled":
                m = {"EVPresentActivePower": rat(sign * 7000)}
            else:
                m = {"DepartureTime": 7200, "EVTargetEnergyRequest": rat(20000), "EVMaximumEnergyRequest": rat(40000),
                     "EVMinimumEnergyRequest": rat(-10000), "EVMaximumChargePower": rat(11000),
                     "EVMinimumChargePower": rat(100), "EVPresentActivePower": rat(sign * 7000),
                     "EVPresentReactivePower": rat(0)}
                if self.bpt:
                    m.update({"EVMaximumDischargePower": rat(11000), "EVMinimumDischargePower": rat(100)})
            ctl = self.control
            key = ("BPT_" if self.bpt else "") + ctl + "_AC_CLReqControlMode"
            r = self._req(exchange, NS_AC, "AC_ChargeLoopReq", {
                key: m, "DisplayParameters": disp, "MeterInfoRequested": False})
            mode = r[("BPT_" if self.bpt else "") + ctl + "_AC_CLResControlMode"]
            self.loop_results.append({"power": val(mode["EVSEPresentActivePower"]),
                                      "target_power": val(mode["EVSETargetActivePower"])})


def main(argv=None):
    """python -m hil.evcc HOST PORT [DC|AC] [Scheduled|Dynamic] [Charge|Discharge]: one
    session over TCP (no TLS) with the JSON codec, or the EXI codec when importable."""
    import sys

    a = list(sys.argv[1:] if argv is None else argv)
    host, port = a[0], int(a[1])
    energy = a[2] if len(a) > 2 else "DC"
    control = a[3] if len(a) > 3 else "Scheduled"
    channel = a[4] if len(a) > 4 else "Charge"
    try:
        from controller.iso15118 import exi as codec
    except ImportError:
        codec = JsonCodec()
    ex = TcpExchange(host, port, codec)
    try:
        log = Evcc(energy, True, control, channel).run(ex)
    finally:
        ex.close()
    for name, res in log:
        print(name, res.get("ResponseCode"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
