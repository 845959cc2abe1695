"""TLS 1.3 for ISO 15118-20: the SECC's server context (and the EVCC's client context
for the HIL EV), the handshake, blocking and non-blocking.

ISO 15118-20 mandates TLS 1.3 for every -20 session; both contexts here refuse any
other version (minimum_version = maximum_version = TLSv1_3). The SECC presents its
certificate chain (SECC leaf + CPO sub-CA(s)); the EV verifies it against the V2G root.
Hostname checking is off on the EV side: ISO 15118 identifies the SECC by its
certificate chain up to a trusted V2G root, not by a DNS name (the EV reaches the SECC
at a link-local address learned from SDP). Mutual TLS (EV certificate, verified
against the OEM root) is optional in -20 for EIM and asked for with
require_client_cert=True.

Platforms: the `ssl` module is imported inside the functions, so this module imports
everywhere. A platform whose TLS cannot be pinned to 1.3 gets no context at all:
tls13_missing() says why in one line, and the callers refuse TLS instead of falling
back to TLS 1.2 (MicroPython's mbedTLS build offers TLS 1.2 only, and its `ssl` has no
minimum_version; docs/secc.md).

The service (controller/iso15118/service.py) runs the handshake without blocking:
wrap_server_nonblocking() then handshake_step() on every poll until it returns True.
The blocking wrap_server_socket() and serve_connection() suit a thread per session:

    tls_sock = wrap_server_socket(tcp_sock, server_context(chain, key))
    serve_connection(tls_sock, conn, ticks_us)
"""


class TlsHandshakeError(OSError):
    """The TLS handshake with the peer failed (bad certificate, wrong version, timeout...)."""


def tls13_missing():
    """None when this platform can run TLS pinned to version 1.3, else one line saying why not."""
    try:
        import ssl
    except ImportError:
        return "TLS: this platform has no ssl module; ISO 15118-20 requires TLS 1.3"
    if not hasattr(ssl, "TLSVersion") or not getattr(ssl, "HAS_TLSv1_3", False):
        lib = getattr(ssl, "MBEDTLS_VERSION", None) or getattr(ssl, "OPENSSL_VERSION", "unknown library")
        return ("TLS: this platform's TLS (%s) cannot be limited to TLS 1.3, which ISO 15118-20 requires; "
                "refusing rather than falling back to TLS 1.2" % lib)
    return None


def _tls13_only(ctx):
    import ssl

    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def _require_tls13():
    why = tls13_missing()
    if why is not None:
        raise ValueError(why)


def server_context(cert_chain_pem, key_pem, ca_pem=None, require_client_cert=False):
    """SSLContext for the SECC: TLS 1.3 only, presenting cert_chain_pem (leaf first, then
    the sub-CAs) with key_pem. ca_pem: roots for client certificates (OEM roots); with
    require_client_cert the handshake fails unless the EV presents a certificate that
    verifies against ca_pem; with ca_pem alone a client certificate is optional.
    ValueError when this platform cannot do TLS 1.3 (tls13_missing())."""
    _require_tls13()
    import ssl

    if require_client_cert and not ca_pem:
        raise ValueError("require_client_cert needs ca_pem (the roots to verify EV certificates)")
    ctx = _tls13_only(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    ctx.load_cert_chain(cert_chain_pem, key_pem)
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
    _require_tls13()
    import ssl

    ctx = _tls13_only(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cafile=ca_pem)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def _close(sock):
    try:
        sock.close()
    except OSError:
        pass


def _peer(sock):
    try:
        return sock.getpeername()
    except (OSError, AttributeError):
        return None


def wrap_server_socket(sock, ctx, timeout=5.0):
    """Server-side TLS handshake on an accepted TCP socket, bounded by timeout seconds.
    Returns the SSLSocket (timeout still set; serve_connection sets its own). On failure
    the TCP socket is closed and TlsHandshakeError raised, naming the peer and reason."""
    peer = _peer(sock)
    sock.settimeout(timeout)
    try:
        return ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=True)
    except OSError as e:  # ssl.SSLError and socket.timeout are OSErrors
        _close(sock)
        kind = "timed out" if type(e).__name__ in ("timeout", "TimeoutError") else "failed"
        raise TlsHandshakeError("TLS handshake with %s %s: %s" % (peer, kind, e))


def wrap_client_socket(sock, ctx, timeout=5.0):
    """Client-side counterpart of wrap_server_socket (the EV): handshake on a connected
    TCP socket, TlsHandshakeError on failure."""
    sock.settimeout(timeout)
    try:
        return ctx.wrap_socket(sock, server_side=False, do_handshake_on_connect=True)
    except OSError as e:
        _close(sock)
        raise TlsHandshakeError("TLS handshake failed: %s" % e)


def wrap_server_nonblocking(sock, ctx):
    """The server side of TLS on an accepted TCP socket, handshake not yet run: the socket
    is made non-blocking and handshake_step() drives the handshake."""
    sock.setblocking(False)
    return ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)


def handshake_step(ssl_sock, peer=None):
    """One non-blocking step of the handshake: True when it is complete, False when it
    waits for the peer (call again on a later poll). On failure the socket is closed and
    TlsHandshakeError raised, naming the peer and the reason."""
    import ssl

    try:
        ssl_sock.do_handshake()
        return True
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return False
    except OSError as e:
        _close(ssl_sock)
        raise TlsHandshakeError("TLS handshake with %s failed: %s" % (peer, e))


def describe(ssl_sock):
    """{'version', 'cipher', 'bits', 'peer_cert_subject'} of an established SSLSocket."""
    import ssl

    name, _, bits = ssl_sock.cipher() or (None, None, None)
    subject = None
    try:
        pc = ssl_sock.getpeercert()
        if pc:
            subject = dict(x[0] for x in pc.get("subject", ()))
    except (ValueError, ssl.SSLError):
        pass
    return {"version": ssl_sock.version(), "cipher": name, "bits": bits, "peer_cert_subject": subject}
