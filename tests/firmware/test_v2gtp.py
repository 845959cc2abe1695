"""V2GTP framing, the incremental stream parser, bad headers; SDP formats."""
from controller.iso15118 import sdp, v2gtp


def test_frame_header_bytes():
    f = v2gtp.frame(v2gtp.DC, b"\x80\x01")
    assert f == b"\x01\xfe\x80\x04\x00\x00\x00\x02\x80\x01"


def test_parser_split_and_several_per_read():
    a = v2gtp.frame(v2gtp.SAP, b"abc")
    b = v2gtp.frame(v2gtp.COMMON, b"")
    c = v2gtp.frame(v2gtp.AC, b"x" * 300)
    stream = a + b + c
    for cut in range(1, len(stream)):
        p = v2gtp.Parser()
        got = p.feed(stream[:cut]) + p.feed(stream[cut:])
        assert got == [(v2gtp.SAP, b"abc"), (v2gtp.COMMON, b""), (v2gtp.AC, b"x" * 300)]
        assert p.pending() == 0 and not p.closed
    p = v2gtp.Parser()
    got = []
    for i in range(len(stream)):  # one byte at a time
        got += p.feed(stream[i:i + 1])
    assert len(got) == 3 and p.messages == 3


def test_bad_version_closes():
    for bad in (b"\x02\xfd", b"\x01\xff", b"\x00\x00"):
        p = v2gtp.Parser()
        assert p.feed(bad + b"\x80\x02\x00\x00\x00\x00") == []
        assert p.closed and p.error == v2gtp.E_VERSION and p.errors[v2gtp.E_VERSION] == 1
        assert p.feed(v2gtp.frame(v2gtp.COMMON, b"x")) == []  # ignored after close
        assert p.pending() == 0


def test_unknown_payload_type_closes():
    for t in (0x9000, 0x9001, 0x0000, 0x8007, 0xFFFF):
        p = v2gtp.Parser()
        assert p.feed(v2gtp.frame(t, b"x")) == []
        assert p.closed and p.error == v2gtp.E_TYPE


def test_oversized_length_closes_without_buffering():
    p = v2gtp.Parser(max_payload=100)
    good = v2gtp.frame(v2gtp.COMMON, b"y" * 100)
    assert p.feed(good) == [(v2gtp.COMMON, b"y" * 100)]
    assert p.feed(v2gtp.header(v2gtp.COMMON, 101)) == []
    assert p.closed and p.error == v2gtp.E_LENGTH and p.pending() == 0
    p = v2gtp.Parser()
    assert p.feed(v2gtp.header(v2gtp.DC, 0xFFFFFFFF)) == []
    assert p.error == v2gtp.E_LENGTH


def test_messages_before_a_bad_header_are_delivered():
    p = v2gtp.Parser()
    got = p.feed(v2gtp.frame(v2gtp.COMMON, b"ok") + b"\x07\x07\x07\x07\x07\x07\x07\x07")
    assert got == [(v2gtp.COMMON, b"ok")] and p.closed


def test_garbage_never_crashes_and_stays_bounded():
    seed = 12345
    for _ in range(200):
        p = v2gtp.Parser(max_payload=64)
        data = bytearray()
        for _ in range(40):
            seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
            data.append(seed & 0xFF)
        p.feed(bytes(data[:5]))
        p.feed(bytes(data[5:]))
        assert p.pending() <= v2gtp.HEADER_LEN + 64


def test_sdp_request_response_roundtrip():
    req = sdp.request(sdp.SEC_NO_TLS, sdp.PROTO_TCP)
    assert req == b"\x01\xfe\x90\x00\x00\x00\x00\x02\x10\x00"
    assert sdp.parse_request(req) == {"security": 0x10, "transport": 0x00}
    addr = bytes([0xFE, 0x80] + [0] * 13 + [1])
    res = sdp.handle_datagram(req, addr, 61000)
    assert len(res) == 8 + 20
    assert sdp.parse_response(res) == {"addr": addr, "port": 61000, "security": 0x10, "transport": 0}


def test_sdp_security_choice_and_bad_requests():
    addr = bytes(16)
    tls = sdp.request(sdp.SEC_TLS)
    assert sdp.parse_response(sdp.handle_datagram(tls, addr, 1))["security"] == sdp.SEC_NO_TLS
    assert sdp.parse_response(sdp.handle_datagram(tls, addr, 1, tls_offered=True))["security"] == sdp.SEC_TLS
    assert sdp.handle_datagram(sdp.request(sdp.SEC_NO_TLS), addr, 1, tls_offered=True, tls_only=True) is None
    assert sdp.handle_datagram(sdp.request(sdp.SEC_NO_TLS, sdp.PROTO_UDP), addr, 1) is None
    assert sdp.handle_datagram(b"\x01\xfe\x90\x00\x00\x00\x00\x03\x10\x00\x00", addr, 1) is None
    assert sdp.handle_datagram(b"\x01\xfe\x90\x00\x00\x00\x00\x02\x55\x00", addr, 1) is None
    assert sdp.handle_datagram(b"\x01\xfe", addr, 1) is None
    assert sdp.handle_datagram(v2gtp.frame(v2gtp.COMMON, b"\x10\x00"), addr, 1) is None
