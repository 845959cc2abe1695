"""End-to-end (E2E) protection of site-bus frames: CRC-8 SAE J1850 plus a 4-bit alive counter.

The scheme follows the idea of AUTOSAR E2E Profile 1 (CRC-8 SAE J1850 over a data id
and the payload, 4-bit alive counter, receiver-side counter supervision) in simplified
form:

* the data id (DBC attribute ``E2EDataID``, 1..65535) is always fed to the CRC as two
  bytes, low byte then high byte (Profile 1 has several data-id modes; we use the
  "both bytes" one only), and it is never sent on the bus;
* the CRC is CRC-8 SAE J1850 (polynomial 0x1D, initial value 0xFF, final XOR 0xFF;
  check value 0x4B for ASCII "123456789") over
  ``[data_id & 0xFF, data_id >> 8, data[0], ..., data[6]]`` and is sent in ``data[7]``;
* the alive counter (signal ``AliveCounter``, 4 bits, location from the generated
  ``controller.bus.candb`` message) counts 0..15 and wraps to 0; unlike Profile 1, the
  value 15 is a valid counter value.

Guarantees (what a receiver can rely on when ``check`` accepts a frame):

* the frame has the message's length and its CRC matches: every single-bit error and
  every error burst of up to 8 bits in the protected bytes is detected; a frame of
  another E2E message (another data id) is accepted only by CRC coincidence (1/256);
* the counter moved forward by 1 (``OK``) or by 2..``max_delta`` (``OK_LOST``: frames
  were lost, the data is still fresh); a repeated frame (counter unchanged) is refused
  (``REPEATED``); a jump beyond ``max_delta`` is refused (``WRONG_SEQUENCE``) and the
  receiver resynchronises on it, so the next in-sequence frame is ``OK`` again;
* the first frame after construction or ``reset()`` is accepted as ``INITIAL`` (there is
  nothing to compare its counter with).

Not guaranteed: a 4-bit counter cannot tell a frame from one delayed by a multiple of
16 frames; timeouts (no frame at all) are supervised elsewhere (RxTimeoutTime), and a
receiver should call ``reset()`` after a timeout.
MicroPython-clean; ``check`` and ``seal`` allocate nothing.
"""

OK = 0
OK_LOST = 1
INITIAL = 2
REPEATED = 3
WRONG_SEQUENCE = 4
BAD_CRC = 5
BAD_LENGTH = 6

STATUS_NAMES = ("OK", "OK_LOST", "INITIAL", "REPEATED", "WRONG_SEQUENCE", "BAD_CRC", "BAD_LENGTH")

# CRC-8 SAE J1850 (poly 0x1D, MSB first): _TABLE[i] = the register after shifting byte i
_TABLE = (
    b"\x00\x1d\x3a\x27\x74\x69\x4e\x53\xe8\xf5\xd2\xcf\x9c\x81\xa6\xbb"
    b"\xcd\xd0\xf7\xea\xb9\xa4\x83\x9e\x25\x38\x1f\x02\x51\x4c\x6b\x76"
    b"\x87\x9a\xbd\xa0\xf3\xee\xc9\xd4\x6f\x72\x55\x48\x1b\x06\x21\x3c"
    b"\x4a\x57\x70\x6d\x3e\x23\x04\x19\xa2\xbf\x98\x85\xd6\xcb\xec\xf1"
    b"\x13\x0e\x29\x34\x67\x7a\x5d\x40\xfb\xe6\xc1\xdc\x8f\x92\xb5\xa8"
    b"\xde\xc3\xe4\xf9\xaa\xb7\x90\x8d\x36\x2b\x0c\x11\x42\x5f\x78\x65"
    b"\x94\x89\xae\xb3\xe0\xfd\xda\xc7\x7c\x61\x46\x5b\x08\x15\x32\x2f"
    b"\x59\x44\x63\x7e\x2d\x30\x17\x0a\xb1\xac\x8b\x96\xc5\xd8\xff\xe2"
    b"\x26\x3b\x1c\x01\x52\x4f\x68\x75\xce\xd3\xf4\xe9\xba\xa7\x80\x9d"
    b"\xeb\xf6\xd1\xcc\x9f\x82\xa5\xb8\x03\x1e\x39\x24\x77\x6a\x4d\x50"
    b"\xa1\xbc\x9b\x86\xd5\xc8\xef\xf2\x49\x54\x73\x6e\x3d\x20\x07\x1a"
    b"\x6c\x71\x56\x4b\x18\x05\x22\x3f\x84\x99\xbe\xa3\xf0\xed\xca\xd7"
    b"\x35\x28\x0f\x12\x41\x5c\x7b\x66\xdd\xc0\xe7\xfa\xa9\xb4\x93\x8e"
    b"\xf8\xe5\xc2\xdf\x8c\x91\xb6\xab\x10\x0d\x2a\x37\x64\x79\x5e\x43"
    b"\xb2\xaf\x88\x95\xc6\xdb\xfc\xe1\x5a\x47\x60\x7d\x2e\x33\x14\x09"
    b"\x7f\x62\x45\x58\x0b\x16\x31\x2c\x97\x8a\xad\xb0\xe3\xfe\xd9\xc4"
)


def accepted(status):
    """True for the statuses whose frame may be used: OK, OK_LOST, INITIAL."""
    return status <= INITIAL


def crc8_sae_j1850(data, n=-1):
    """Plain CRC-8 SAE J1850 (init 0xFF, final XOR 0xFF) of data[:n] (all of data if n < 0).

    crc8_sae_j1850(b"123456789") == 0x4B.
    """
    t = _TABLE
    crc = 0xFF
    if n < 0:
        n = len(data)
    for i in range(n):
        crc = t[crc ^ data[i]]
    return crc ^ 0xFF


def crc8_j1850(data_id, data, n=7):
    """E2E CRC: CRC-8 SAE J1850 over [data_id & 0xFF, data_id >> 8, data[0], ..., data[n-1]]."""
    # few locals on purpose: MicroPython takes a frame above 11 words from the heap
    crc = _TABLE[0xFF ^ (data_id & 0xFF)]
    crc = _TABLE[crc ^ ((data_id >> 8) & 0xFF)]
    for i in range(n):
        crc = _TABLE[crc ^ data[i]]
    return crc ^ 0xFF


def _layout(message):
    did = message.e2e_data_id
    if not did or message.crc_byte < 0 or message.counter_len != 4:
        raise ValueError("%s is not E2E protected" % message.name)
    return did, message.counter_start >> 3, message.counter_start & 7, message.crc_byte


class E2ESender:
    """Writes the alive counter and the CRC into an encoded frame.

    ``seal(buf)``: ``buf`` is a bytearray of the message's length that already holds
    the encoded signals (``message.encode_into``); seal puts the next alive counter
    (the first sealed frame carries ``start``, then +1 mod 16) into the counter bits,
    the CRC into the CRC byte, and returns ``buf``.
    """

    __slots__ = ("data_id", "counter", "_cbyte", "_cshift", "_keep", "_crc_byte")

    def __init__(self, message, start=0):
        self.data_id, self._cbyte, self._cshift, self._crc_byte = _layout(message)
        self._keep = 0xFF ^ (0x0F << self._cshift)
        self.counter = start & 0x0F

    def seal(self, buf):
        c = self.counter
        i = self._cbyte
        buf[i] = (buf[i] & self._keep) | (c << self._cshift)
        n = self._crc_byte
        buf[n] = crc8_j1850(self.data_id, buf, n)
        self.counter = (c + 1) & 0x0F
        return buf


class E2EReceiver:
    """Checks received frames of one E2E-protected message; see the module docstring.

    ``check(data)`` returns one of OK, OK_LOST, INITIAL (accepted) or REPEATED,
    WRONG_SEQUENCE, BAD_CRC, BAD_LENGTH (refused); the last status is kept in
    ``status``.  Counters: ``accepted_count``, ``lost`` (frames missing in OK_LOST
    gaps) and, per refusal reason, ``bad_length``, ``bad_crc``, ``repeated``,
    ``wrong_sequence`` (``refused()`` is their sum).  A refused frame does not move
    the expected counter, except WRONG_SEQUENCE, which resynchronises on it.
    """

    __slots__ = (
        "data_id", "max_delta", "length", "_cbyte", "_cshift", "_crc_byte", "last", "status",
        "accepted_count", "lost", "bad_length", "bad_crc", "repeated", "wrong_sequence",
    )

    def __init__(self, message, max_delta=3):
        if max_delta < 1 or max_delta > 14:
            raise ValueError("max_delta must be 1..14")
        self.data_id, self._cbyte, self._cshift, self._crc_byte = _layout(message)
        self.length = message.length
        self.max_delta = max_delta
        self.last = -1
        self.status = INITIAL
        self.accepted_count = 0
        self.lost = 0
        self.bad_length = 0
        self.bad_crc = 0
        self.repeated = 0
        self.wrong_sequence = 0

    def reset(self):
        """Forget the last counter (after a timeout): the next good frame is INITIAL."""
        self.last = -1

    def refused(self):
        return self.bad_length + self.bad_crc + self.repeated + self.wrong_sequence

    def check(self, data):
        if len(data) != self.length:
            self.bad_length += 1
            self.status = BAD_LENGTH
            return BAD_LENGTH
        n = self._crc_byte
        if crc8_j1850(self.data_id, data, n) != data[n]:
            self.bad_crc += 1
            self.status = BAD_CRC
            return BAD_CRC
        c = (data[self._cbyte] >> self._cshift) & 0x0F
        last = self.last
        self.last = c
        if last < 0:
            status = INITIAL
        else:
            delta = (c - last) & 0x0F
            if delta == 1:
                status = OK
            elif delta == 0:
                self.repeated += 1
                self.status = REPEATED
                return REPEATED
            elif delta <= self.max_delta:
                self.lost += delta - 1
                status = OK_LOST
            else:
                self.wrong_sequence += 1  # refused; self.last = c resynchronises
                self.status = WRONG_SEQUENCE
                return WRONG_SEQUENCE
        self.accepted_count += 1
        self.status = status
        return status
