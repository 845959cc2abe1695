"""V2GTP framing (ISO 15118-2 clause 7.8.3, reused by ISO 15118-20) and a bounded
incremental parser for a TCP byte stream.

Header, 8 bytes, big-endian:
    0  protocol version          0x01
    1  inverse protocol version  0xFE
    2  payload type              uint16
    4  payload length            uint32 (bytes after the header)

Bad headers ([V2G2-063..V2G2-067] and the -20 equivalents): a wrong version or
inverse version, an unknown payload type or a payload longer than the receiver's
buffer make the receiver discard the message; on TCP the stream can no longer be
resynchronised, so the connection is closed. The parser therefore stops at the first
bad header (`closed` becomes True, `error` names the reason, `errors[reason]` counts
it) and never buffers more than one header plus `max_payload` bytes.
MicroPython-clean: no struct formats, plain ints and bytearrays.
"""

VERSION = 0x01
INVERSE = 0xFE
HEADER_LEN = 8

# payload types
SAP = 0x8001  # supportedAppProtocol (and ISO 15118-2 EXI messages)
COMMON = 0x8002  # ISO 15118-20 CommonMessages
AC = 0x8003  # ISO 15118-20 AC
DC = 0x8004  # ISO 15118-20 DC
ACDP = 0x8005  # ISO 15118-20 ACDP (not served here)
WPT = 0x8006  # ISO 15118-20 WPT (not served here)
SDP_REQ = 0x9000
SDP_RES = 0x9001

NS_SAP = "urn:iso:15118:2:2010:AppProtocol"
NS_COMMON = "urn:iso:std:iso:15118:-20:CommonMessages"
NS_AC = "urn:iso:std:iso:15118:-20:AC"
NS_DC = "urn:iso:std:iso:15118:-20:DC"

# payload type <-> EXI schema namespace for the TCP session
NS_OF_TYPE = {SAP: NS_SAP, COMMON: NS_COMMON, AC: NS_AC, DC: NS_DC}
TYPE_OF_NS = {NS_SAP: SAP, NS_COMMON: COMMON, NS_AC: AC, NS_DC: DC}

TCP_TYPES = (SAP, COMMON, AC, DC)
UDP_TYPES = (SDP_REQ, SDP_RES)

DEFAULT_MAX_PAYLOAD = 8192

# error names (also the keys of Parser.errors)
E_VERSION = "version"
E_TYPE = "payload_type"
E_LENGTH = "length"


def header(ptype, length):
    """The 8 header bytes for a payload of `length` bytes."""
    return bytes((VERSION, INVERSE, (ptype >> 8) & 0xFF, ptype & 0xFF,
                  (length >> 24) & 0xFF, (length >> 16) & 0xFF, (length >> 8) & 0xFF, length & 0xFF))


def frame(ptype, payload):
    """One complete V2GTP message."""
    return header(ptype, len(payload)) + bytes(payload)


def check_header(buf, allowed=TCP_TYPES, max_payload=DEFAULT_MAX_PAYLOAD):
    """(ptype, length, error) for the 8 header bytes at the start of buf; error is
    None, E_VERSION, E_TYPE or E_LENGTH."""
    ptype = (buf[2] << 8) | buf[3]
    length = (buf[4] << 24) | (buf[5] << 16) | (buf[6] << 8) | buf[7]
    if buf[0] != VERSION or buf[1] != INVERSE:
        return ptype, length, E_VERSION
    if ptype not in allowed:
        return ptype, length, E_TYPE
    if length > max_payload:
        return ptype, length, E_LENGTH
    return ptype, length, None


def parse_datagram(data, allowed=UDP_TYPES, max_payload=64):
    """(ptype, payload) for one UDP datagram, or None (discard) when the header is
    bad, the length disagrees with the datagram or the type is not allowed."""
    if len(data) < HEADER_LEN:
        return None
    ptype, length, err = check_header(data, allowed, max_payload)
    if err is not None or len(data) != HEADER_LEN + length:
        return None
    return ptype, bytes(data[HEADER_LEN:])


class Parser:
    """Incremental V2GTP parser for one TCP connection.

    feed(data) -> list of (payload_type, payload bytes) completed by this chunk (a
    header may be split over chunks; one chunk may hold several messages). After a bad
    header `closed` is True, `error` says why, and further data is ignored: the owner
    closes the connection.
    """

    def __init__(self, max_payload=DEFAULT_MAX_PAYLOAD, allowed=TCP_TYPES):
        self.max_payload = max_payload
        self.allowed = allowed
        self.buf = bytearray()
        self.closed = False
        self.error = None
        self.errors = {}
        self.messages = 0
        self._need = -1  # payload length of the current message, -1 while in header

    def _fail(self, reason):
        self.closed = True
        self.error = reason
        self.errors[reason] = self.errors.get(reason, 0) + 1
        self.buf = bytearray()

    def feed(self, data):
        out = []
        if self.closed:
            return out
        buf = self.buf
        buf.extend(data)
        pos = 0
        n = len(buf)
        while True:
            if self._need < 0:
                if n - pos < HEADER_LEN:
                    break
                ptype, length, err = check_header(buf[pos:pos + HEADER_LEN], self.allowed, self.max_payload)
                if err is not None:
                    self._fail(err)
                    return out
                self._ptype = ptype
                self._need = length
                pos += HEADER_LEN
            if n - pos < self._need:
                break
            out.append((self._ptype, bytes(buf[pos:pos + self._need])))
            pos += self._need
            self._need = -1
            self.messages += 1
        if pos:
            self.buf = buf[pos:]
        return out

    def pending(self):
        """Bytes buffered but not yet returned (bounded by HEADER_LEN + max_payload)."""
        return len(self.buf)
