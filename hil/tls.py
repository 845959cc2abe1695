"""TLS 1.3 for ISO 15118-20 on CPython (`ssl`): SECC server and EVCC client contexts.

ISO 15118-20 mandates TLS 1.3 for every -20 session; both contexts here refuse any
other version (minimum_version = maximum_version = TLSv1_3). The SECC presents its
certificate chain (SECC leaf + CPO sub-CA(s)); the EV verifies it against the V2G root.
Hostname checking is off on the EV side: ISO 15118 identifies the SECC by its
certificate chain up to a trusted V2G root, not by a DNS name (the EV reaches the SECC
at a link-local address learned from SDP). Mutual TLS (EV certificate, verified
against the OEM root) is optional in -20 for EIM and asked for with
require_client_cert=True.

The SECC's serve loop (controller.iso15118.secc.serve_connection) needs only
settimeout, recv, sendall and close, which an ssl.SSLSocket provides, so

    tls_sock = wrap_server_socket(tcp_sock, server_context(chain, key))
    serve_connection(tls_sock, conn, ticks_us)

runs a session over TLS unchanged (tests/test_secc_tls.py). A recv timeout on an
SSLSocket raises socket.timeout (an OSError), as serve_connection expects.
"""

import socket
import ssl


class TlsHandshakeError(OSError):
    """The TLS handshake with the peer failed (bad certificate, wrong version, timeout...)."""


def _tls13_only(ctx):
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def server_context(cert_chain_pem, key_pem, ca_pem=None, require_client_cert=False):
    """SSLContext for the SECC: TLS 1.3 only, presenting cert_chain_pem (leaf first, then
    the sub-CAs) with key_pem. ca_pem: roots for client certificates (OEM roots); with
    require_client_cert the handshake fails unless the EV presents a certificate that
    verifies against ca_pem; with ca_pem alone a client certificate is optional."""
    ctx = _tls13_only(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    ctx.load_cert_chain(cert_chain_pem, key_pem)
    if require_client_cert and not ca_pem:
        raise ValueError("require_client_cert needs ca_pem (the roots to verify EV certificates)")
    if ca_pem:
        ctx.load_verify_locations(cafile=ca_pem)
        ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def client_context(ca_pem, cert=None, key=None):
    """SSLContext for the EV: TLS 1.3 only, verifying the SECC chain against ca_pem (the
    V2G root(s)); no hostname check (see the module doc). cert/key: the EV's own
    certificate chain and key for mutual TLS."""
    ctx = _tls13_only(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cafile=ca_pem)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def wrap_server_socket(sock, ctx, timeout=5.0):
    """Server-side TLS handshake on an accepted TCP socket, bounded by timeout seconds.
    Returns the SSLSocket (timeout still set; serve_connection sets its own). On failure
    the TCP socket is closed and TlsHandshakeError raised, naming the peer and reason."""
    try:
        peer = sock.getpeername()
    except OSError:
        peer = None
    sock.settimeout(timeout)
    try:
        return ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=True)
    except (ssl.SSLError, socket.timeout, OSError) as e:
        try:
            sock.close()
        except OSError:
            pass
        kind = "timed out" if isinstance(e, socket.timeout) else "failed"
        raise TlsHandshakeError("TLS handshake with %s %s: %s" % (peer, kind, e)) from e


def wrap_client_socket(sock, ctx, timeout=5.0):
    """Client-side counterpart of wrap_server_socket (the EV): handshake on a connected
    TCP socket, TlsHandshakeError on failure."""
    sock.settimeout(timeout)
    try:
        return ctx.wrap_socket(sock, server_side=False, do_handshake_on_connect=True)
    except (ssl.SSLError, socket.timeout, OSError) as e:
        try:
            sock.close()
        except OSError:
            pass
        raise TlsHandshakeError("TLS handshake failed: %s" % e) from e


def describe(ssl_sock):
    """{'version', 'cipher', 'bits', 'peer_cert_subject'} of an established SSLSocket."""
    name, _, bits = ssl_sock.cipher() or (None, None, None)
    subject = None
    try:
        pc = ssl_sock.getpeercert()
        if pc:
            subject = dict(x[0] for x in pc.get("subject", ()))
    except (ValueError, ssl.SSLError):
        pass
    return {"version": ssl_sock.version(), "cipher": name, "bits": bits, "peer_cert_subject": subject}
