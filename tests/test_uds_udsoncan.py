"""Interoperability of controller.diag.uds with udsoncan, the tester side used by `v2xgw diag`.

Two levels, no transport yet (ISO-TP over the virtual bus comes with controller/diag/isotp.py):
- message level: requests built by udsoncan's services (make_request), our responses
  parsed by udsoncan.Response.from_payload and the services' interpret_response;
- client level: a real udsoncan.Client over udsoncan's QueueConnection, with the
  server answering from a thread on the real clock: session handling, SecurityAccess
  through the client's key function, 0x78 responsePending handled by the client, and
  the full programming sequence, and (with controller.update.slots' Updater and a signed
  image from tools/image.py) a real image flashed, a tampered one refused.
"""

import queue
import threading
import time

import pytest
import udsoncan
from udsoncan import DataFormatIdentifier, MemoryLocation, Response, services
from udsoncan.client import Client
from udsoncan.common.DidCodec import AsciiCodec
from udsoncan.connections import QueueConnection
from udsoncan.exceptions import NegativeResponseException
from udsoncan.ResponseCode import ResponseCode

from controller import config
from controller.diag import dtc
from controller.diag import uds
from controller.clock import RealClock, ticks_add
from controller.diag.dtc import DtcMemory

SECRET = bytes(range(32))
READY = uds.SECURITY_DELAY_US
SA = services.SecurityAccess

DIDS = {
    0xF18C: AsciiCodec(16),
    0xF195: AsciiCodec(16),
    0xF197: AsciiCodec(16),
    0xD000: "B",
    0xD001: "B",
    0xD002: ">Biii",
    0xD003: ">H",
    0xD004: ">H",
    0xD005: ">H",
    0xD006: ">i",
    0xD100: ">H",
    0xD101: ">H",
    0xD10B: ">i",
    dtc.SNAPSHOT_DID: ">" + dtc.SNAPSHOT_FMT,
}


def key_algo(level, seed, params):
    """udsoncan's security_algo signature; params is the per-device secret."""
    return uds.security_key(params, seed, level)


class Update:
    def __init__(self, capacity=64 * 1024, finish_us=0):
        self.capacity = capacity
        self.finish_us = finish_us
        self.image = None
        self.clock = None

    def begin(self, size):
        self.image = bytearray(size)

    def write(self, offset, data):
        self.image[offset:offset + len(data)] = data

    def finish(self):
        if not self.finish_us:
            return True
        start = []

        def step(now):
            if not start:
                start.append(now)
            return True if now - start[0] >= self.finish_us else uds.PENDING

        return step


class SelfTest:
    def start(self, option):
        return b"\x00"

    def results(self, option):
        return b"\x00\x2a"


def _server(now=0, **kw):
    mem = DtcMemory()
    mem.new_operation_cycle()
    mem.record(dtc.TRIP_UNDERVOLTAGE, (180.5, 50.01, 72.0, 2500, -4100), now)
    mem.record(dtc.COMM_EV, None, now)
    mem.passed(dtc.COMM_EV)
    live = {"grid_state": lambda: 2, "operating_mode": lambda: 4, "active_limits": lambda: (3, -7400, 11000, -2000),
            "soc": lambda: 55.5, "grid_voltage": lambda: 0.0, "grid_frequency": lambda: None,
            "grid_power": lambda: 0}
    d = dict(now=now, live=live, config=uds.ConfigAccess(config.defaults()), dtcs=mem, update=Update(),
             routines={uds.RID_SELF_TEST: SelfTest(), uds.RID_ERASE_MEMORY: SelfTest()}, reset=lambda kind: None)
    d.update(kw)
    return uds.UdsServer({"serial": "GW-1", "sw_version": "0.1.0", "system_name": "v2x-gateway"}, SECRET, **d)


def _ask(srv, req, now=READY):
    """Send a udsoncan Request, parse the answer with udsoncan.Response."""
    payload = srv.handle(req.get_payload(), now)
    assert payload is not None
    rsp = Response.from_payload(payload)
    assert rsp.valid, rsp.invalid_reason
    return rsp


def _unlock(srv, level, now=READY):
    seed_rsp = _ask(srv, SA.make_request(level, SA.Mode.RequestSeed), now)
    assert seed_rsp.positive
    seed = SA.interpret_response(seed_rsp, SA.Mode.RequestSeed).service_data.seed
    key = key_algo(level, seed, SECRET)
    rsp = _ask(srv, SA.make_request(level, SA.Mode.SendKey, data=key), now)
    assert rsp.positive
    assert SA.interpret_response(rsp, SA.Mode.SendKey).service_data.security_level_echo == level + 1


# ---------------------------------------------------------------- message level
def test_session_control_timing_parsed_by_udsoncan():
    srv = _server()
    rsp = _ask(srv, services.DiagnosticSessionControl.make_request(3))
    data = services.DiagnosticSessionControl.interpret_response(rsp).service_data
    assert data.session_echo == 3
    assert data.p2_server_max == pytest.approx(0.050)
    assert data.p2_star_server_max == pytest.approx(5.0)


def test_negative_responses_parsed_by_udsoncan():
    srv = _server()
    rsp = _ask(srv, services.RequestDownload.make_request(MemoryLocation(0, 16, 32, 32)))
    assert not rsp.positive and rsp.code == ResponseCode.ServiceNotSupportedInActiveSession
    rsp = _ask(srv, services.ReadDataByIdentifier.make_request([0x1234], {0x1234: "B"}))
    assert rsp.code == ResponseCode.RequestOutOfRange
    srv.handle(b"\x10\x03", READY)
    rsp = _ask(srv, SA.make_request(2, SA.Mode.SendKey, data=bytes(8)))
    assert rsp.code == ResponseCode.RequestSequenceError


def test_security_access_with_key_function():
    srv = _server()
    _ask(srv, services.DiagnosticSessionControl.make_request(3))
    rsp = _ask(srv, SA.make_request(1, SA.Mode.RequestSeed))
    seed = SA.interpret_response(rsp, SA.Mode.RequestSeed).service_data.seed
    assert len(seed) == uds.SEED_LEN and seed != bytes(8)
    bad = _ask(srv, SA.make_request(1, SA.Mode.SendKey, data=key_algo(3, seed, SECRET)))
    assert bad.code == ResponseCode.InvalidKey
    _unlock(srv, 1)
    rsp = _ask(srv, SA.make_request(1, SA.Mode.RequestSeed))
    assert SA.interpret_response(rsp, SA.Mode.RequestSeed).service_data.seed == bytes(8)


def test_security_delay_codes():
    srv = _server()
    srv.handle(b"\x10\x03", 0)
    rsp = _ask(srv, SA.make_request(1, SA.Mode.RequestSeed), now=0)
    assert rsp.code == ResponseCode.RequiredTimeDelayNotExpired
    codes = []
    for _ in range(3):
        _ask(srv, SA.make_request(1, SA.Mode.RequestSeed))
        codes.append(_ask(srv, SA.make_request(1, SA.Mode.SendKey, data=bytes(8))).code)
    assert codes == [ResponseCode.InvalidKey, ResponseCode.InvalidKey, ResponseCode.ExceedNumberOfAttempts]


def test_read_data_by_identifier_multi_did():
    srv = _server()
    didlist = [0xF18C, 0xF195, 0xF197, 0xD000, 0xD001, 0xD002, 0xD003, 0xD004, 0xD005, 0xD006, 0xD100, 0xD101]
    rsp = _ask(srv, services.ReadDataByIdentifier.make_request(didlist, DIDS))
    v = services.ReadDataByIdentifier.interpret_response(rsp, didlist, DIDS, tolerate_zero_padding=False)
    v = v.service_data.values
    assert v[0xF18C].rstrip() == "GW-1"
    assert v[0xF195].rstrip() == "0.1.0"
    assert v[0xF197].rstrip() == "v2x-gateway"
    assert v[0xD000] == (2,) and v[0xD001] == (4,)
    assert v[0xD002] == (3, -7400, 11000, -2000)
    assert v[0xD003] == (555,) and v[0xD004] == (0,) and v[0xD005] == (0xFFFF,) and v[0xD006] == (0,)
    assert v[0xD100] == (350,) and v[0xD101] == (0xFFFF,)


def test_write_data_by_identifier():
    srv = _server()
    req = services.WriteDataByIdentifier.make_request(0xD100, 250, DIDS)
    assert _ask(srv, req).code == ResponseCode.RequestOutOfRange  # default session
    srv.handle(b"\x10\x03", READY)
    assert _ask(srv, req).code == ResponseCode.SecurityAccessDenied
    _unlock(srv, 1)
    rsp = _ask(srv, req)
    assert services.WriteDataByIdentifier.interpret_response(rsp).service_data.did_echo == 0xD100
    assert srv.config.cfg["site"]["main_fuse_a"] == 25.0
    bad = services.WriteDataByIdentifier.make_request(0xD100, 5000, DIDS)  # 500 A > 400 A
    assert _ask(srv, bad).code == ResponseCode.RequestOutOfRange
    rsp = _ask(srv, services.WriteDataByIdentifier.make_request(0xD10B, -3500, DIDS))
    assert rsp.positive and srv.config.cfg["mode"]["setpoint_kw"] == -3.5


def test_read_dtc_information_parsed_by_udsoncan():
    srv = _server()
    RDI = services.ReadDTCInformation
    rsp = _ask(srv, RDI.make_request(RDI.Subfunction.reportNumberOfDTCByStatusMask, status_mask=0xFF))
    d = RDI.interpret_response(rsp, RDI.Subfunction.reportNumberOfDTCByStatusMask).service_data
    assert d.dtc_count == 2 and d.dtc_format == udsoncan.Dtc.Format.ISO15031_6
    assert d.status_availability.get_byte_as_int() == dtc.AVAILABILITY_MASK

    rsp = _ask(srv, RDI.make_request(RDI.Subfunction.reportDTCByStatusMask, status_mask=0x08))
    d = RDI.interpret_response(rsp, RDI.Subfunction.reportDTCByStatusMask).service_data
    got = {x.id: x.status for x in d.dtcs}
    assert set(got) == {dtc.TRIP_UNDERVOLTAGE, dtc.COMM_EV}
    st = got[dtc.TRIP_UNDERVOLTAGE]
    assert st.test_failed and st.confirmed and st.pending and st.test_failed_since_last_clear
    assert not got[dtc.COMM_EV].test_failed and got[dtc.COMM_EV].confirmed

    rsp = _ask(srv, RDI.make_request(RDI.Subfunction.reportSupportedDTCs))
    d = RDI.interpret_response(rsp, RDI.Subfunction.reportSupportedDTCs).service_data
    assert sorted(x.id for x in d.dtcs) == list(dtc.SUPPORTED)

    rsp = _ask(srv, RDI.make_request(RDI.Subfunction.reportDTCSnapshotRecordByDTCNumber,
                                     dtc=dtc.TRIP_UNDERVOLTAGE, snapshot_record_number=0xFF))
    d = RDI.interpret_response(rsp, RDI.Subfunction.reportDTCSnapshotRecordByDTCNumber, dtc_snapshot_did_size=2,
                               didconfig=DIDS).service_data
    (one,) = d.dtcs
    assert one.id == dtc.TRIP_UNDERVOLTAGE and len(one.snapshots) == 1
    snap = one.snapshots[0]
    assert snap.record_number == 1 and snap.did == dtc.SNAPSHOT_DID
    assert dtc.decode_snapshot(snap.raw_data) == (1, 0, 180.5, 50.01, 72.0, 2500.0, -4100.0)
    assert snap.data == (1, 0, 1805, 5001, 144, 250, -410)

    rsp = _ask(srv, services.ClearDiagnosticInformation.make_request(0xFFFFFF))
    assert rsp.positive and srv.dtcs.entries == []


def test_routine_control_parsed_by_udsoncan():
    srv = _server()
    srv.handle(b"\x10\x03", READY)
    RC = services.RoutineControl
    rsp = _ask(srv, RC.make_request(uds.RID_SELF_TEST, RC.ControlType.requestRoutineResults))
    assert rsp.code == ResponseCode.RequestSequenceError
    rsp = _ask(srv, RC.make_request(uds.RID_SELF_TEST, RC.ControlType.startRoutine, b"\x01"))
    d = RC.interpret_response(rsp).service_data
    assert d.control_type_echo == 1 and d.routine_id_echo == uds.RID_SELF_TEST
    rsp = _ask(srv, RC.make_request(uds.RID_SELF_TEST, RC.ControlType.requestRoutineResults))
    assert RC.interpret_response(rsp).service_data.routine_status_record == b"\x00\x2a"


def test_tester_present_and_reset_with_suppress_bit():
    srv = _server()
    req = services.TesterPresent.make_request()
    assert srv.handle(req.get_payload(), READY) == b"\x7e\x00"
    assert srv.handle(req.get_payload(suppress_positive_response=True), READY) is None
    rsp = _ask(srv, services.ECUReset.make_request(services.ECUReset.ResetType.hardReset))
    assert services.ECUReset.interpret_response(rsp).service_data.reset_type_echo == 1


def test_download_sequence_with_udsoncan_services():
    srv = _server()
    image = bytes((i * 13 + 5) & 0xFF for i in range(5000))
    req = services.RequestDownload.make_request(MemoryLocation(0, len(image), 32, 32))
    srv.handle(b"\x10\x03", READY)
    srv.handle(b"\x10\x02", READY)
    assert _ask(srv, req).code == ResponseCode.SecurityAccessDenied
    _unlock(srv, 3)
    big = services.RequestDownload.make_request(MemoryLocation(0, srv.update.capacity + 1, 32, 32))
    assert _ask(srv, big).code == ResponseCode.UploadDownloadNotAccepted
    compressed = services.RequestDownload.make_request(MemoryLocation(0, 10, 32, 32),
                                                       DataFormatIdentifier(compression=1))
    assert _ask(srv, compressed).code == ResponseCode.RequestOutOfRange
    rsp = _ask(srv, req)
    max_len = services.RequestDownload.interpret_response(rsp).service_data.max_length
    assert max_len == 0x0402
    block = max_len - 2  # SID and counter
    seq = 1
    for off in range(0, len(image), block):
        rsp = _ask(srv, services.TransferData.make_request(seq & 0xFF, image[off:off + block]))
        assert services.TransferData.interpret_response(rsp).service_data.sequence_number_echo == seq & 0xFF
        if seq == 2:  # a repeated block (lost response) is accepted again
            again = _ask(srv, services.TransferData.make_request(2, image[off:off + block]))
            assert again.positive
        seq += 1
    wrong = _ask(srv, services.TransferData.make_request(seq + 1, b"\x00"))
    assert wrong.code == ResponseCode.WrongBlockSequenceCounter
    rsp = _ask(srv, services.RequestTransferExit.make_request())
    assert rsp.positive
    services.RequestTransferExit.interpret_response(rsp)
    assert bytes(srv.update.image) == image
    rsp = _ask(srv, services.TransferData.make_request(1, b"\x00"))
    assert rsp.code == ResponseCode.RequestSequenceError


def test_pending_response_parsed_by_udsoncan():
    srv = _server(update=Update(finish_us=30000))
    srv.handle(b"\x10\x03", READY)
    srv.handle(b"\x10\x02", READY)
    _unlock(srv, 3)
    _ask(srv, services.RequestDownload.make_request(MemoryLocation(0, 4, 32, 32)))
    _ask(srv, services.TransferData.make_request(1, b"abcd"))
    rsp = _ask(srv, services.RequestTransferExit.make_request())
    assert rsp.code == ResponseCode.RequestCorrectlyReceived_ResponsePending
    t = READY
    out = None
    while out is None:
        t += 1000
        out = srv.poll(t)
    final = Response.from_payload(out)
    assert final.positive and final.service == services.RequestTransferExit


# ---------------------------------------------------------------- client level
class ServerThread:
    """The server behind a QueueConnection, answering on the real clock (poll every 1 ms)."""

    def __init__(self, srv, conn, clock):
        self.srv = srv
        self.conn = conn
        self.clock = clock
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            try:
                req = self.conn.touserqueue.get(timeout=0.001)
            except queue.Empty:
                req = None
            now = self.clock.ticks_us()
            if req is not None:
                rsp = self.srv.handle(req, now)
                if rsp is not None:
                    self.conn.fromuserqueue.put(rsp)
            rsp = self.srv.poll(now)
            if rsp is not None:
                self.conn.fromuserqueue.put(rsp)


@pytest.fixture
def client():
    clock = RealClock()
    # powered up 10 s ago: the SecurityAccess power-up delay is over
    srv = _server(now=ticks_add(clock.ticks_us(), -uds.SECURITY_DELAY_US), update=Update(finish_us=300000))
    conn = QueueConnection(name="uds-test")
    st = ServerThread(srv, conn, clock)
    st.thread.start()
    cfg = dict(udsoncan.configs.default_client_config)
    cfg.update(security_algo=key_algo, security_algo_params=SECRET, data_identifiers=DIDS,
               dtc_snapshot_did_size=2, request_timeout=5, p2_timeout=1, p2_star_timeout=5,
               # the server's own P2 (50 ms) would make a thread held up on a busy host look like
               # a dead server; the values it announces are checked below instead
               use_server_timing=False)
    with Client(conn, config=cfg) as c:
        yield c, srv
    st.stop.set()
    st.thread.join(2)


def test_client_reads_identifiers_and_fault_memory(client):
    c, srv = client
    r = c.read_data_by_identifier([0xF18C, 0xF195, 0xD003])
    assert r.service_data.values[0xF18C].rstrip() == "GW-1"
    assert r.service_data.values[0xD003] == (555,)
    r = c.get_dtc_by_status_mask(0xFF)
    assert sorted(d.id for d in r.service_data.dtcs) == sorted([dtc.TRIP_UNDERVOLTAGE, dtc.COMM_EV])
    r = c.get_dtc_snapshot_by_dtc_number(dtc.TRIP_UNDERVOLTAGE, 1)
    assert r.service_data.dtcs[0].snapshots[0].data[2] == 1805


def test_client_programming_refused_without_security(client):
    c, srv = client
    c.change_session(3)
    c.change_session(2)
    with pytest.raises(NegativeResponseException) as e:
        c.request_download(MemoryLocation(0, 100, 32, 32))
    assert e.value.response.code == ResponseCode.SecurityAccessDenied
    with pytest.raises(NegativeResponseException) as e:
        c.transfer_data(1, b"\x00")
    assert e.value.response.code == ResponseCode.SecurityAccessDenied


def test_client_full_programming_sequence_with_pending_exit(client):
    c, srv = client
    r = c.change_session(3)
    # ISO 14229-1 10.2: the timing the server announces, as udsoncan reads it
    assert r.service_data.p2_server_max == uds.P2_MS / 1000
    assert r.service_data.p2_star_server_max == uds.P2_STAR_MS / 1000
    c.unlock_security_access(1)
    c.write_data_by_identifier(0xD101, 55)  # export limit 5.5 kW
    assert srv.config.cfg["site"]["export_limit_kw"] == 5.5
    c.change_session(2)
    c.unlock_security_access(3)
    c.start_routine(uds.RID_ERASE_MEMORY, b"\x44" + bytes(4) + (3000).to_bytes(4, "big"))
    image = bytes((7 * i) & 0xFF for i in range(3000))
    r = c.request_download(MemoryLocation(0, len(image), 32, 32))
    block = r.service_data.max_length - 2
    seq = 1
    for off in range(0, len(image), block):
        c.transfer_data(seq & 0xFF, image[off:off + block])
        seq += 1
    t0 = time.monotonic()
    c.request_transfer_exit()  # the server answers 0x78 first, then 0x77 about 0.3 s later
    assert time.monotonic() - t0 >= 0.25
    assert bytes(srv.update.image) == image
    c.tester_present()
    c.ecu_reset(1)


# ---------------------------------------------------------------- with the real Updater
def _flash(c, image):
    """The programming sequence of `v2xgw flash`, step by step through the udsoncan client."""
    c.change_session(1)
    c.change_session(3)
    c.change_session(2)
    c.unlock_security_access(3)
    c.start_routine(uds.RID_ERASE_MEMORY)
    r = c.request_download(MemoryLocation(0, len(image), 32, 32))
    block = r.service_data.max_length - 2
    seq = 1
    for off in range(0, len(image), block):
        c.transfer_data(seq & 0xFF, image[off:off + block])
        seq += 1
    c.request_transfer_exit()
    r = c.start_routine(uds.RID_CHECK_PROGRAMMING_DEPENDENCIES)
    return r.service_data.routine_status_record


def test_client_flashes_signed_image_through_updater():
    from controller.storage import MemoryMedium, Partition
    from controller.update.slots import Updater
    from tools.image import DEV_SEED, manifest_for, pack

    files = [("controller/__init__.py", b""), ("controller/main.py", b"VERSION = '9.9.9'\n" * 50)]
    image = pack(files, manifest_for(files, "9.9.9", build_time="2026-01-01T00:00:00Z"), DEV_SEED)
    dev = MemoryMedium(64 + 2 * 4096)

    def updater():
        return Updater(Partition(dev, 0, 64), (Partition(dev, 64, 4096), Partition(dev, 64 + 4096, 4096)))

    hooks = uds.UpdaterHooks(updater())
    clock = RealClock()
    srv = _server(now=ticks_add(clock.ticks_us(), -uds.SECURITY_DELAY_US), update=hooks, routines=hooks.routines())
    conn = QueueConnection(name="uds-flash")
    st = ServerThread(srv, conn, clock)
    st.thread.start()
    cfg = dict(udsoncan.configs.default_client_config)
    cfg.update(security_algo=key_algo, security_algo_params=SECRET, request_timeout=10, p2_timeout=1)
    try:
        with Client(conn, config=cfg) as c:
            # tampered: one payload byte changed -> RequestTransferExit 0x72, nothing pending
            bad = bytearray(image)
            bad[len(bad) - 80] ^= 1
            with pytest.raises(NegativeResponseException) as e:
                _flash(c, bytes(bad))
            assert e.value.response.code == ResponseCode.GeneralProgrammingFailure
            assert hooks.reason and updater().status()["pending"] == 0xFF
            # too large for the slot -> 0x70
            with pytest.raises(NegativeResponseException) as e:
                c.request_download(MemoryLocation(0, 5000, 32, 32))
            assert e.value.response.code == ResponseCode.UploadDownloadNotAccepted
            # the signed image: accepted, checked, pending for the next reset
            assert _flash(c, image) == b"\x00"
            c.ecu_reset(1)
    finally:
        st.stop.set()
        st.thread.join(2)
    u = updater()
    slot = u.select_boot()
    assert slot == u.status()["pending"] != 0xFF
    assert u.manifest(slot)["software_version"] == "9.9.9"


# ---------------------------------------------------------------- metering (docs/metering.md)
def _metered_server(records=150, **kw):
    """A UDS server with a meter attached (controller/metering/diag.py): registers set,
    `records` interval records in its ring."""
    import sys

    sys.path.insert(0, "tests/firmware")
    from test_metering import FakeGw

    from controller.metering import store as mst
    from controller.metering.diag import attach_uds
    from controller.metering.meter import Metering
    from controller.storage import MemoryMedium

    me = Metering(FakeGw(), config.defaults(), mst.MeterStore(MemoryMedium(mst.medium_size(900, 3))), 0)
    for k in range(records):
        me.store.append(mst.pack_record(1735689600 + 900 * k, 900, k & 63, [k + i for i in range(mst.N)]))
    me.tot[:] = me.base[:] = [10 ** 10 + i for i in range(mst.N)]
    srv = _server(**kw)
    attach_uds(me, srv)
    return srv, me


def test_meter_dids_parsed_by_udsoncan():
    import struct

    from controller.metering.diag import DID_OPEN, DID_REGISTERS, DID_STATUS

    srv, me = _metered_server()
    RD = services.ReadDataByIdentifier
    dids = {DID_REGISTERS: ">7Q", DID_REGISTERS + 1: ">Q", DID_REGISTERS + 7: ">Q", DID_STATUS: ">IIIHBIIHBH",
            DID_OPEN: ">7I"}
    rsp = _ask(srv, RD.make_request(list(dids), dids))
    v = RD.interpret_response(rsp, list(dids), dids, tolerate_zero_padding=False).service_data.values
    assert v[DID_REGISTERS] == tuple(10 ** 10 + i for i in range(7))
    assert v[DID_REGISTERS + 1] == (10 ** 10,) and v[DID_REGISTERS + 7] == (10 ** 10 + 6,)
    n, oldest, newest, interval, state = v[DID_STATUS][:5]
    assert (n, newest - oldest + 1, interval) == (150, 150, 900)
    assert state & 8 == 0 and state & 1 == 0  # storage on, wall time not synchronised
    assert v[DID_OPEN] == (0,) * 7
    # DIDs 0xD208/0xD20F are no meter DIDs: refused when asked alone
    rsp = _ask(srv, RD.make_request([0xD208], {0xD208: ">Q"}))
    assert rsp.code == ResponseCode.RequestOutOfRange
    assert struct.calcsize(dids[DID_STATUS]) == 28


def test_meter_records_routine_pages_through_the_ring(client):
    from tools import meter_export

    c, srv = client
    _srv, me = _metered_server()
    srv.dids.update(_srv.dids)
    srv.routines.update(_srv.routines)
    recs = meter_export.records_over_uds(c, page=64)  # three pages: 64, 64, 22
    assert len(recs) == 150
    assert [r[0] for r in recs] == [1735689600 + 900 * k for k in range(150)]
    assert recs[149][3] == tuple(149 + i for i in range(7)) and recs[5][2] == 5
    # the routine wants the extended session and a 5-byte option record
    c.change_session(services.DiagnosticSessionControl.Session.defaultSession)
    with pytest.raises(NegativeResponseException) as e:
        c.start_routine(uds.RID_METER_RECORDS, b"\x00\x00\x00\x00\x01")
    assert e.value.response.code == ResponseCode.ServiceNotSupportedInActiveSession
    c.change_session(services.DiagnosticSessionControl.Session.extendedDiagnosticSession)
    with pytest.raises(NegativeResponseException) as e:
        c.start_routine(uds.RID_METER_RECORDS, b"\x00\x00")
    assert e.value.response.code == ResponseCode.IncorrectMessageLengthOrInvalidFormat
