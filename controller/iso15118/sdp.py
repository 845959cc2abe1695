"""SECC Discovery Protocol (ISO 15118-2 clause 7.10.1, used unchanged by -20).

The EVCC multicasts an SDP request (V2GTP payload type 0x9000) to ff02::1 UDP port
15118; the SECC answers by unicast to the request's source address and port with an
SDP response (0x9001) holding the SECC's IPv6 address and TCP port.

    request payload  (2 bytes):  security, transport protocol
    response payload (20 bytes): IPv6 address (16), port (2, big-endian), security,
                                 transport protocol
    security: 0x00 TLS, 0x10 no TLS; transport protocol: 0x00 TCP (0x10 UDP reserved)

`handle_datagram` is pure and runs everywhere. `Responder` owns a UDP socket: on
CPython it binds [::]:15118 and joins ff02::1 on the given interface; MicroPython's
unix port has AF_INET6 sockets but no IPV6_JOIN_GROUP constant, so there it binds
without the explicit join (link-local hosts already receive ff02::1, all-nodes) and
boards without IPv6 cannot serve SDP at all (see docs/secc.md).
"""

from controller.iso15118 import v2gtp

PORT = 15118
MULTICAST = "ff02::1"
SEC_TLS = 0x00
SEC_NO_TLS = 0x10
PROTO_TCP = 0x00
PROTO_UDP = 0x10


def request(security=SEC_NO_TLS, transport=PROTO_TCP):
    """A complete SDP request datagram."""
    return v2gtp.frame(v2gtp.SDP_REQ, bytes((security, transport)))


def parse_request(data):
    """{'security', 'transport'} for a complete SDP request datagram, or None."""
    m = v2gtp.parse_datagram(data, (v2gtp.SDP_REQ,), 2)
    if m is None or len(m[1]) != 2:
        return None
    sec, tp = m[1][0], m[1][1]
    if sec not in (SEC_TLS, SEC_NO_TLS) or tp not in (PROTO_TCP, PROTO_UDP):
        return None
    return {"security": sec, "transport": tp}


def response(addr16, port, security, transport=PROTO_TCP):
    """A complete SDP response datagram; addr16 is the 16-byte IPv6 address."""
    if len(addr16) != 16:
        raise ValueError("IPv6 address must be 16 bytes")
    p = bytes(addr16) + bytes(((port >> 8) & 0xFF, port & 0xFF, security, transport))
    return v2gtp.frame(v2gtp.SDP_RES, p)


def parse_response(data):
    """{'addr', 'port', 'security', 'transport'} for an SDP response datagram, or None."""
    m = v2gtp.parse_datagram(data, (v2gtp.SDP_RES,), 20)
    if m is None or len(m[1]) != 20:
        return None
    p = m[1]
    return {"addr": bytes(p[:16]), "port": (p[16] << 8) | p[17], "security": p[18], "transport": p[19]}


def handle_datagram(data, addr16, port, tls_offered=False, tls_only=False):
    """The response datagram for one received datagram, or None to stay silent.

    The SECC answers with the security it offers: TLS when the EV asks for it and TLS
    is offered, otherwise no TLS (unless tls_only, then a no-TLS request is ignored).
    Only TCP is offered; a UDP transport request is ignored.
    """
    req = parse_request(data)
    if req is None or req["transport"] != PROTO_TCP:
        return None
    if req["security"] == SEC_TLS and tls_offered:
        sec = SEC_TLS
    elif tls_only:
        return None
    else:
        sec = SEC_NO_TLS
    return response(addr16, port, sec, PROTO_TCP)


class Responder:
    """UDP responder on port 15118. `poll()` serves at most one datagram (non-blocking
    after `open`) and returns True when it answered.

    addr16: the 16-byte link-local address announced (the SECC's TCP listener);
    tcp_port: the announced TCP port; iface: interface name (CPython, for the
    multicast join and the scope of link-local addresses).
    """

    def __init__(self, addr16, tcp_port, iface=None, port=PORT, tls_offered=False, tls_only=False):
        self.addr16 = addr16
        self.tcp_port = tcp_port
        self.iface = iface
        self.port = port
        self.tls_offered = tls_offered
        self.tls_only = tls_only  # a listener that wraps every connection in TLS: no-TLS requests get no answer
        self.sock = None
        self.answered = 0
        self.ignored = 0

    def open(self):
        import socket

        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        except Exception:
            pass
        try:
            # getaddrinfo: MicroPython's bind takes a raw sockaddr, not a tuple
            s.bind(socket.getaddrinfo("::", self.port, socket.AF_INET6, socket.SOCK_DGRAM)[0][-1])
        except BaseException:
            s.close()
            raise
        join = getattr(socket, "IPV6_JOIN_GROUP", None)
        if join is not None and hasattr(socket, "inet_pton"):
            idx = 0
            if self.iface and hasattr(socket, "if_nametoindex"):
                idx = socket.if_nametoindex(self.iface)
            import sys

            mreq = socket.inet_pton(socket.AF_INET6, MULTICAST) + idx.to_bytes(4, sys.byteorder)
            try:
                s.setsockopt(socket.IPPROTO_IPV6, join, mreq)
            except OSError:
                pass  # already a member of all-nodes on this link
        s.setblocking(False)
        self.sock = s
        return s

    def poll(self):
        try:
            data, peer = self.sock.recvfrom(64)
        except OSError:
            return False
        out = handle_datagram(data, self.addr16, self.tcp_port, self.tls_offered, self.tls_only)
        if out is None:
            self.ignored += 1
            return False
        self.sock.sendto(out, peer)
        self.answered += 1
        return True

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
