"""SocketcandPort: a CAN port over the socketcand TCP protocol in raw mode.

Runs unchanged on CPython and MicroPython (``socket`` + ``select.poll`` only).
Protocol (linux-can/socketcand doc/protocol.md, as implemented by socketcand and
python-can's ``socketcand`` interface):

    server: < hi >        client: < open CHANNEL >   server: < ok >
    client: < rawmode >   server: < ok >
    server: < frame ID SECS.USECS HEXDATA >   (ID: 3 hex digits, or 8 if extended)
    client: < send ID DLC B0 B1 ... >          (same ID rule; bytes in hex)

Guarantees: the constructor either returns a connected port or raises OSError within
``timeout_ms``; afterwards nothing raises for network trouble.  A lost connection
sets ``connected`` False, makes ``send`` return False and ``recv`` return None.
Server lines that are not a valid classic frame (``< error .. >``, ``< rtr .. >``,
``< fdframe .. >``, garbage, overlong lines) are counted in ``rx_errors`` and skipped;
``< ok >`` and ``< echo >`` replies are ignored.  socketcand's raw mode has no
subscription, so ``set_filter`` filters in the port: a frame line for another id is
dropped after its id, before its data is parsed.  Receive and transmit use fixed
preallocated buffers; a frame that does not fit the transmit buffer is dropped, so a
stalled server can never make ``send`` block or grow memory.
"""
import select
import socket

from . import Port, check_frame, ticks_diff, ticks_ms

_HEX = b"0123456789ABCDEF"
_SPACE = 0x20
_EAGAIN = 11
_EINPROGRESS = 115
_BAD_EVENTS = select.POLLERR | select.POLLHUP
_IPPROTO_TCP = 6  # numeric: MicroPython's socket module lacks these names
_TCP_NODELAY = 1
_MAX_LINE = 128  # a classic frame line is < 60 bytes; longer input is garbage


def _skip_spaces(buf, i, end):
    while i < end and buf[i] <= _SPACE:
        i += 1
    return i


def _token_end(buf, i, end):
    while i < end and buf[i] > _SPACE:
        i += 1
    return i


def _is_word(buf, i, j, word):
    if j - i != len(word):
        return False
    for k in range(j - i):
        if buf[i + k] != word[k]:
            return False
    return True


def _nibble(c):
    if 48 <= c <= 57:
        return c - 48
    c |= 0x20  # fold to lower case
    if 97 <= c <= 102:
        return c - 87
    return -1


def _hex_value(buf, i, j):
    """Value of the hex digits buf[i:j], or -1 if empty or not hex."""
    if i >= j:
        return -1
    v = 0
    while i < j:
        n = _nibble(buf[i])
        if n < 0:
            return -1
        v = (v << 4) | n
        i += 1
    return v


class SocketcandPort(Port):
    """CAN port on a socketcand server (or hil.socketcand_hub) in raw mode."""

    __slots__ = (
        "host", "port", "channel", "connected", "_sock", "_poll", "_readinto",
        "_rx", "_rxmv", "_r0", "_r1", "_tx", "_txmv", "_t0", "_t1",
        "_data", "_views", "_pending",
    )

    def __init__(self, host="127.0.0.1", port=29536, channel="vcan0", timeout_ms=3000,
                 rx_buffer=2048, tx_buffer=2048):
        Port.__init__(self)
        self.host = host
        self.port = port
        self.channel = channel
        self.connected = False
        self._rx = bytearray(rx_buffer)
        self._rxmv = memoryview(self._rx)
        self._r0 = self._r1 = 0  # unparsed input is _rx[_r0:_r1]
        self._tx = bytearray(tx_buffer)
        self._txmv = memoryview(self._tx)
        self._t0 = self._t1 = 0  # unsent output is _tx[_t0:_t1]
        self._data = bytearray(8)
        mv = memoryview(self._data)
        self._views = [mv[:n] for n in range(9)]  # so a frame costs only its bytes()
        self._pending = None  # one-frame look-ahead filled by wait()
        self._sock = None
        self._poll = None
        try:
            self._connect(timeout_ms)
        except Exception:
            self.close()
            raise

    # -- connection -------------------------------------------------------------

    def _connect(self, timeout_ms):
        t0 = ticks_ms()
        ai = socket.getaddrinfo(self.host, self.port)[0]
        s = socket.socket(ai[0], socket.SOCK_STREAM)
        self._sock = s
        s.setblocking(False)
        try:  # TCP_NODELAY: Nagle would hold each small frame line for the peer's ACK
            s.setsockopt(_IPPROTO_TCP, _TCP_NODELAY, 1)
        except (OSError, AttributeError):  # a board stack without the option
            pass
        # CPython sockets have recv_into, MicroPython streams have readinto
        self._readinto = getattr(s, "recv_into", None) or s.readinto
        try:
            s.connect(ai[-1])
        except OSError as e:
            if e.args[0] not in (_EINPROGRESS, _EAGAIN):
                raise
        self._poll = select.poll()
        self._poll.register(s, select.POLLOUT)
        ev = self._events(self._left(t0, timeout_ms))
        if ev == 0:
            raise OSError(110, "socketcand: connect timed out")
        if ev & _BAD_EVENTS:
            raise OSError(111, "socketcand: connect refused")
        self._poll.modify(s, select.POLLIN)
        self.connected = True
        self._expect(b"hi", t0, timeout_ms)
        self._write(b"< open ")
        self._write(self.channel.encode())
        self._write(b" >")
        self._flush()
        self._expect(b"ok", t0, timeout_ms)
        self._write(b"< rawmode >")
        self._flush()
        self._expect(b"ok", t0, timeout_ms)

    @staticmethod
    def _left(t0, timeout_ms):
        left = timeout_ms - ticks_diff(ticks_ms(), t0)
        return left if left > 0 else 0

    def _expect(self, word, t0, timeout_ms):
        """Read the next server message during the handshake; it must be < word >."""
        while True:
            m = self._message()
            if m is not None:
                i = _skip_spaces(self._rx, m[0], m[1])
                j = _token_end(self._rx, i, m[1])
                if _is_word(self._rx, i, j, word) and _skip_spaces(self._rx, j, m[1]) == m[1]:
                    return
                got = bytes(self._rxmv[m[0]:m[1]])
                raise OSError(5, "socketcand: expected %r, got %r" % (word, got))
            left = self._left(t0, timeout_ms)
            if left == 0 or not self.connected:
                raise OSError(110, "socketcand: no %r from server" % (word,))
            self._fill(left)

    def _events(self, timeout_ms):
        # MicroPython's ipoll reuses one result tuple; poll builds a list each call
        p = self._poll
        t = int(timeout_ms)
        if t < timeout_ms:  # poll takes whole milliseconds (MicroPython: ints only): round up
            t += 1
        for res in p.ipoll(t) if hasattr(p, "ipoll") else p.poll(t):
            return res[1]
        return 0

    def _lost(self):
        self.connected = False
        s = self._sock
        self._sock = None
        if s is not None:
            if self._poll is not None:
                self._poll.unregister(s)
            s.close()

    # -- receive ----------------------------------------------------------------

    def _fill(self, timeout_ms):
        """Wait up to timeout_ms for input and append it to the receive buffer.

        True if bytes arrived.  EOF or a socket error marks the connection lost.
        """
        if not self.connected:
            return False
        if self._t0 != self._t1:  # output left over from a busy socket goes first
            self._flush()
        if self._r0 == self._r1:
            self._r0 = self._r1 = 0
        elif self._r1 == len(self._rx):
            n = self._r1 - self._r0
            if self._r0 == 0:  # a full buffer without a complete line: garbage
                self.rx_errors += 1
                self._r0 = self._r1 = 0
            else:  # rare: move the partial line to the front to make room
                self._rx[0:n] = self._rx[self._r0:self._r1]
                self._r0 = 0
                self._r1 = n
        ev = self._events(timeout_ms)
        if ev == 0:
            return False
        try:
            n = self._readinto(self._rxmv[self._r1:])
        except OSError as e:
            if e.args[0] == _EAGAIN:
                return False
            self._lost()
            return False
        if n is None:  # MicroPython non-blocking stream: nothing there after all
            return False
        if n == 0:
            self._lost()
            return False
        self._r1 += n
        return True

    def _message(self):
        """Bounds (i, j) of the next complete '< ... >' body in the buffer, or None.

        Bytes outside '<' .. '>' and lines cut short by a new '<' count as rx_errors.
        """
        buf = self._rx
        while self._r0 < self._r1:
            i = buf.find(b"<", self._r0, self._r1)
            if i < 0:
                if _skip_spaces(buf, self._r0, self._r1) < self._r1:
                    self.rx_errors += 1
                self._r0 = self._r1
                return None
            if _skip_spaces(buf, self._r0, i) < i:
                self.rx_errors += 1  # garbage before '<'
            self._r0 = i
            j = buf.find(b">", i + 1, self._r1)
            k = buf.find(b"<", i + 1, self._r1 if j < 0 else j)
            if k >= 0:  # a new line started before this one ended
                self.rx_errors += 1
                self._r0 = k
                continue
            if j < 0:
                if self._r1 - i > _MAX_LINE:
                    self.rx_errors += 1
                    self._r0 = self._r1
                return None
            self._r0 = j + 1
            if j - i > _MAX_LINE:
                self.rx_errors += 1
                continue
            return (i + 1, j)
        return None

    def _take(self):
        """Parse buffered lines until one yields a frame tuple; None if none is complete."""
        while True:
            m = self._message()
            if m is None:
                return None
            f = self._frame(m[0], m[1])
            if f is not None:
                self.rx_count += 1
                return f

    def _frame(self, i, end):
        """Decode '< frame ID SECS.USECS DATA >' from buf[i:end]; count anything else."""
        buf = self._rx
        i = _skip_spaces(buf, i, end)
        j = _token_end(buf, i, end)
        if not _is_word(buf, i, j, b"frame"):
            if not (_is_word(buf, i, j, b"ok") or _is_word(buf, i, j, b"echo")):
                self.rx_errors += 1
            return None
        i = _skip_spaces(buf, j, end)
        j = _token_end(buf, i, end)
        can_id = _hex_value(buf, i, j)
        extended = j - i == 8  # socketcand's rule: 8 id digits means a 29-bit id
        i = _skip_spaces(buf, j, end)
        j = _token_end(buf, i, end)  # the timestamp: presence checked, value unused
        if can_id < 0 or can_id > (0x1FFFFFFF if extended else 0x7FF) or i == j:
            self.rx_errors += 1
            return None
        if not self._passes(can_id, extended):
            return None  # not for us: the data is not even parsed
        # data: contiguous hex pairs (what socketcand sends) or one token per byte
        n = 0
        data = self._data
        i = _skip_spaces(buf, j, end)
        while i < end:
            j = _token_end(buf, i, end)
            if j - i == 1:
                v = _nibble(buf[i])
                if v < 0 or n == 8:
                    self.rx_errors += 1
                    return None
                data[n] = v
                n += 1
            else:
                if (j - i) & 1:
                    self.rx_errors += 1
                    return None
                while i < j:
                    hi = _nibble(buf[i])
                    lo = _nibble(buf[i + 1])
                    if hi < 0 or lo < 0 or n == 8:
                        self.rx_errors += 1
                        return None
                    data[n] = (hi << 4) | lo
                    n += 1
                    i += 2
            i = _skip_spaces(buf, j, end)
        return (can_id, extended, bytes(self._views[n]))

    def recv(self):
        f = self._pending
        if f is not None:
            self._pending = None
            return f
        f = self._take()
        if f is None and self._fill(0):
            f = self._take()
        return f

    def wait(self, timeout_ms):
        if self._pending is None:
            self._pending = self._take()
        t0 = ticks_ms()
        left = timeout_ms if timeout_ms > 0 else 0
        while self._pending is None:
            self._fill(left)
            self._pending = self._take()
            left = self._left(t0, timeout_ms)
            if self._pending is None and (left == 0 or not self.connected):
                return False
        return True

    # -- transmit ---------------------------------------------------------------

    def _write(self, b):
        n = len(b)
        self._tx[self._t1:self._t1 + n] = b
        self._t1 += n

    def _hex(self, v, digits):
        tx = self._tx
        t = self._t1 + digits
        while t > self._t1:
            t -= 1
            tx[t] = _HEX[v & 15]
            v >>= 4
        self._t1 += digits

    def _flush(self):
        """Write as much queued output as the socket takes now; never blocks."""
        if self._t0 == self._t1:
            return
        try:
            n = self._sock.send(self._txmv[self._t0:self._t1])
        except OSError as e:
            if e.args[0] != _EAGAIN:
                self._lost()
            return
        if n is None:
            return
        self._t0 += n
        if self._t0 == self._t1:
            self._t0 = self._t1 = 0

    def send(self, can_id, data, extended=False):
        check_frame(can_id, data, extended)
        if not self.connected:
            return self._dropped()
        n = len(data)
        need = 19 + 3 * n  # '< send ' + 8-digit id + ' ' + dlc + n * ' XX' + ' >'
        if self._t1 + need > len(self._tx):
            if self._t0 > 0:  # move the unsent tail to the front, then retry
                k = self._t1 - self._t0
                self._tx[0:k] = self._tx[self._t0:self._t1]
                self._t0 = 0
                self._t1 = k
            if self._t1 + need > len(self._tx):
                self._flush()
                return self._dropped()
        self._write(b"< send ")
        self._hex(can_id, 8 if extended else 3)
        self._write(b" ")
        self._hex(n, 1)
        for b in data:
            self._write(b" ")
            self._hex(b, 2)
        self._write(b" >")
        self.tx_count += 1
        self._flush()
        return True

    def flush(self):
        """Push queued output to the socket (send() already tries); True when all out."""
        if self.connected:
            self._flush()
        return self.connected and self._t0 == self._t1

    def close(self):
        self._pending = None
        self._lost()
