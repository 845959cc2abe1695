"""ISO 15118-20 over TLS 1.3 (CPython): the test PKI (tools/pki.py), the contexts in
controller/iso15118/tls.py, and a whole DC_BPT session of the EV simulator against the SECC's
unchanged serve_connection running on an ssl.SSLSocket, with the EXI codec. Negative
cases: an EV trusting another root, a TLS 1.2-only EV, mutual TLS."""
import socket
import ssl
import threading

import pytest

from controller.clock import RealClock
from controller.iso15118.secc import BasicEvse, Connection, Secc, serve_connection
from controller.iso15118 import tls
from hil.evcc import Evcc, TcpExchange
from controller.iso15118 import exi
from tools.pki import make_test_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_test_pki(str(tmp_path_factory.mktemp("pki")))


class TlsServer:
    """127.0.0.1 listener: TLS 1.3 handshake (tls.wrap_server_socket), then the
    SECC's serve_connection on the SSLSocket; one connection at a time, until closed."""

    def __init__(self, ctx, codec=None):
        self.ctx = ctx
        self.codec = codec or exi
        self.evse = BasicEvse()
        self.secc = Secc(self.evse, {"energy": "DC"})
        self.clock = RealClock()
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(2)
        self.port = self.lsock.getsockname()[1]
        self.stop = False
        self.sessions = []  # (describe(ssl_sock), Connection)
        self.errors = []  # TlsHandshakeError messages
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.lsock.settimeout(0.05)
        while not self.stop:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                continue
            try:
                ss = tls.wrap_server_socket(s, self.ctx, timeout=2.0)
            except tls.TlsHandshakeError as e:
                self.errors.append(str(e))
                continue  # the SECC keeps serving
            conn = Connection(self.secc, self.codec)
            self.sessions.append((tls.describe(ss), conn))
            serve_connection(ss, conn, self.clock.ticks_us, lambda: self.stop)

    def wait(self, n_sessions=0, n_errors=0, timeout=3.0):
        ev = threading.Event()
        for _ in range(int(timeout / 0.01)):
            if len(self.sessions) >= n_sessions and len(self.errors) >= n_errors:
                return
            ev.wait(0.01)

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.lsock.close()


@pytest.fixture
def server():
    made = []

    def make(ctx):
        s = TlsServer(ctx)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def tls_exchange(port, ctx, codec=None):
    """hil.evcc.TcpExchange whose connected TCP socket is wrapped in TLS by the EV."""
    ex = TcpExchange("127.0.0.1", port, codec or exi, timeout=5.0)
    ex.sock = tls.wrap_client_socket(ex.sock, ctx, timeout=5.0)
    return ex


def run_session(port, ctx, **kw):
    ev = Evcc(energy="DC", bpt=True, loops=kw.pop("loops", 3), **kw)
    ex = tls_exchange(port, ctx)
    try:
        info = tls.describe(ex.sock)
        ev.run(ex)
    finally:
        ex.close()
    return ev, info


def test_pki_shape(pki):
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    def load(name):
        with open(pki[name], "rb") as f:
            return x509.load_pem_x509_certificates(f.read())

    root, = load("v2g_root_cert")
    leaf, sub = load("secc_chain")
    assert leaf.issuer == sub.subject and sub.issuer == root.subject and root.issuer == root.subject
    assert leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "DE*V2X*E12345*1"
    for c in (root, sub, leaf):
        assert isinstance(c.public_key().curve, ec.SECP521R1)
        assert c.signature_hash_algorithm.name == "sha512"
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert sub.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days <= 8
    leaf.verify_directly_issued_by(sub)
    sub.verify_directly_issued_by(root)


def test_contexts_are_tls13_only(pki):
    s = tls.server_context(pki["secc_chain"], pki["secc_key"])
    c = tls.client_context(pki["v2g_root_cert"])
    for ctx in (s, c):
        assert ctx.minimum_version == ctx.maximum_version == ssl.TLSVersion.TLSv1_3
    assert c.check_hostname is False and c.verify_mode == ssl.CERT_REQUIRED
    assert s.verify_mode == ssl.CERT_NONE
    with pytest.raises(ValueError):
        tls.server_context(pki["secc_chain"], pki["secc_key"], require_client_cert=True)


def test_dc_bpt_session_over_tls13(pki, server):
    srv = server(tls.server_context(pki["secc_chain"], pki["secc_key"]))
    ev, client_info = run_session(srv.port, tls.client_context(pki["v2g_root_cert"]), channel="Discharge")
    srv.wait(1)
    server_info, conn = srv.sessions[0]
    assert client_info["version"] == "TLSv1.3" and server_info["version"] == "TLSv1.3"
    assert client_info["cipher"] == server_info["cipher"] and client_info["cipher"].startswith("TLS_")
    # the EV verified the SECC chain: leaf subject is the EVSE ID
    assert client_info["peer_cert_subject"]["commonName"] == "DE*V2X*E12345*1"
    assert server_info["peer_cert_subject"] is None  # no client certificate asked for
    names = [n for n, _ in ev.log]
    assert names[0] == "supportedAppProtocolReq" and names[-1] == "SessionStopReq"
    assert "DC_CableCheckReq" in names and "DC_WeldingDetectionReq" in names
    assert len(ev.loop_results) == 3 and all(r["current"] < 0 for r in ev.loop_results)
    assert srv.evse.lost == [] and conn.decode_errors == 0
    print("TLS session:", client_info["version"], client_info["cipher"], client_info["bits"], "bits")


def test_untrusted_root_fails_and_secc_keeps_serving(pki, server):
    srv = server(tls.server_context(pki["secc_chain"], pki["secc_key"]))
    with pytest.raises(tls.TlsHandshakeError, match="CERTIFICATE_VERIFY_FAILED"):
        tls_exchange(srv.port, tls.client_context(pki["other_root_cert"]))
    srv.wait(0, 1)
    assert len(srv.errors) == 1 and srv.sessions == []
    # a client trusting the V2G root still gets a session afterwards
    ev, info = run_session(srv.port, tls.client_context(pki["v2g_root_cert"]), loops=1)
    assert info["version"] == "TLSv1.3" and ev.log[-1][0] == "SessionStopReq"


def test_tls12_only_client_refused(pki, server):
    srv = server(tls.server_context(pki["secc_chain"], pki["secc_key"]))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(cafile=pki["v2g_root_cert"])
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(tls.TlsHandshakeError, match="PROTOCOL_VERSION"):
        tls_exchange(srv.port, ctx)
    srv.wait(0, 1)
    assert len(srv.errors) == 1 and srv.sessions == []
    assert "UNSUPPORTED_PROTOCOL" in srv.errors[0]


def test_mutual_tls(pki, server):
    sctx = tls.server_context(pki["secc_chain"], pki["secc_key"], ca_pem=pki["oem_root_cert"],
                              require_client_cert=True)
    srv = server(sctx)
    # without a client certificate: refused. In TLS 1.3 the client's handshake completes
    # before the server checks its certificate, so the EV sees the alert (ssl.SSLError, an
    # OSError) on its first send/recv, the SECC at its handshake.
    with pytest.raises(OSError):
        run_session(srv.port, tls.client_context(pki["v2g_root_cert"]), loops=1)
    srv.wait(0, 1)
    assert len(srv.errors) == 1 and srv.sessions == []
    assert "PEER_DID_NOT_RETURN_A_CERTIFICATE" in srv.errors[0]
    # a certificate from an untrusted issuer (the SECC's own leaf, signed by the V2G CPO sub-CA)
    with pytest.raises(OSError):
        run_session(srv.port, tls.client_context(pki["v2g_root_cert"], pki["secc_chain"], pki["secc_key"]), loops=1)
    srv.wait(0, 2)
    assert len(srv.errors) == 2 and srv.sessions == []
    assert "CERTIFICATE_VERIFY_FAILED" in srv.errors[1]
    # with the EV certificate from the OEM root: a whole session
    ev, info = run_session(srv.port, tls.client_context(pki["v2g_root_cert"], pki["ev_chain"], pki["ev_key"]),
                           loops=1)
    srv.wait(1)
    assert info["version"] == "TLSv1.3" and ev.log[-1][0] == "SessionStopReq"
    assert srv.sessions[0][0]["peer_cert_subject"]["commonName"] == "WMIV1234567890ABCDEX"


def test_pki_cli(tmp_path):
    from tools import pki as pki_mod

    assert pki_mod.main([str(tmp_path / "p"), "--days", "2", "--curve", "secp256r1"]) == 0
    assert (tmp_path / "p" / "secc_chain.pem").exists()
