"""ISO-TP (ISO 15765-2:2016) on classic CAN: one non-blocking, event-driven endpoint.

The gateway's loop owns the CAN port and the clock; this module only reacts:

    tp = IsoTp(port.send)                      # ECU side: rx 0x7E0, tx 0x7E8, functional 0x7DF
    f = port.recv()
    if f is not None:
        tp.on_frame(f[0], f[2], now, f[1])     # True if the frame was addressed to tp
    tp.poll(now)                               # due consecutive frames, timeouts, FC.WAIT
    msg = tp.recv()                            # a complete request (bytes) or None
    tp.send(response, now)                     # False if busy, empty or too long

Everything takes `now` in ticks_us (controller.clock) and compares with ticks_diff, so the
same code runs in lockstep simulation and in real time.  Frames are built in preallocated
buffers and handed to ``port_send`` as preallocated memoryviews (every port copies them);
the only allocation is one ``bytes`` per completed received message.

Protocol (clause numbers of ISO 15765-2:2016 as far as public tables of contents show them;
docs/isotp.md says which are certain):
- N_PCI (9.4, 9.6): SF (SF_DL 1..7), FF (FF_DL 12 bit, or 0 + 32-bit FF_DL > 4095), CF
  (SN 1, 2, .., 15, 0, 1, ..), FC (FS CTS/WAIT/OVFLW, BS, STmin).
- STmin (9.6.5): 0x00..0x7F ms, 0xF1..0xF9 100..900 us, every other value as 0x7F.
  BS and STmin of the first FC.CTS hold for the whole message (as Linux's isotp does).
- N_WFTmax (9.7): at most `wft_max` FC.WAIT in a row, as receiver and as sender.
- Timing (9.8): N_As/N_Ar (a frame the port refused is retried until they expire),
  N_Bs, N_Cr as timeouts; N_Br is the period of our FC.WAIT, N_Cs a counted
  performance limit (`late_cf`), because the standard gives them no timeout value.
- Unexpected N_PDU (9.8.3): a new SF/FF during a reception ends it (N_UNEXP_PDU) and
  starts the new one; CF and FC nobody waits for are ignored and counted.
- Padding (10.4.2): frames are padded to 8 bytes with `padding`, or sent with the minimum
  DLC when padding is None; received frames of any DLC that holds their data are accepted.
- Functional addressing: SF only, on `functional_id`.
"""

from controller.clock import ticks_add, ticks_diff

# 11-bit normal addressing, the legislated OBD diagnostic ids (ISO 15765-4)
REQUEST_ID = 0x7E0
RESPONSE_ID = 0x7E8
FUNCTIONAL_ID = 0x7DF

# N_Result values (ISO 15765-2 8.3.7); `error`, `tx_result` and `rx_result` hold these
N_OK = "N_OK"
N_TIMEOUT_A = "N_TIMEOUT_A"
N_TIMEOUT_BS = "N_TIMEOUT_Bs"
N_TIMEOUT_CR = "N_TIMEOUT_Cr"
N_WRONG_SN = "N_WRONG_SN"
N_INVALID_FS = "N_INVALID_FS"
N_UNEXP_PDU = "N_UNEXP_PDU"
N_WFT_OVRN = "N_WFT_OVRN"
N_BUFFER_OVFLW = "N_BUFFER_OVFLW"

# flow status
FS_CTS = 0
FS_WAIT = 1
FS_OVFLW = 2

SF_MAX = 7  # classic CAN, normal addressing
FF_DL_12BIT_MAX = 4095

_TX_IDLE = 0
_TX_PEND = 1  # a frame is built and waits for the port to take it (N_As running)
_TX_WAIT_FC = 2
_TX_CF = 3

_RX_IDLE = 0
_RX_CF = 1
_RX_WAIT = 2  # FF accepted but no free message slot: FC.WAIT every N_Br

_K_SF = 0
_K_FF = 1
_K_CF = 2

_COUNTERS = ("tx_msgs", "rx_msgs", "tx_frames", "rx_frames", "tx_refused", "tx_errors", "rx_errors",
             "timeouts", "wrong_sn", "unexpected", "invalid", "overflow", "rx_overrun", "wait_sent",
             "wait_recv", "late_cf")


def stmin_to_us(b):
    """Separation time of an STmin byte in microseconds; reserved values count as 0x7F."""
    if b <= 0x7F:
        return b * 1000
    if 0xF1 <= b <= 0xF9:
        return (b - 0xF0) * 100
    return 127000


def stmin_from_us(us):
    """The smallest STmin byte whose separation time is at least `us` (capped at 127 ms)."""
    if us <= 0:
        return 0
    if us <= 900:
        return 0xF0 + (us + 99) // 100
    ms = (us + 999) // 1000
    return ms if ms < 127 else 127


def fixed_ids(ecu, tester=0xF1, functional_ta=0x33):
    """29-bit normal fixed addressing seen from the ECU: (tx_id, rx_id, functional_id).

    Physical 0x18DA<TA><SA>, functional 0x18DB<TA><SA> (ISO 15765-2 10.3.3; 0x33 is the
    legislated OBD functional target address of ISO 15765-4).  Use with extended=True.
    """
    return (0x18DA0000 | (tester << 8) | ecu, 0x18DA0000 | (ecu << 8) | tester,
            0x18DB0000 | (functional_ta << 8) | tester)


class IsoTp:
    """One ISO-TP connection: a transmitter and a receiver sharing a (tx_id, rx_id) pair.

    Full duplex: a reception may run while a transmission is in progress.  Not thread
    safe: call on_frame, poll, send and recv from one loop.  Times in microseconds.
    """

    __slots__ = _COUNTERS + (
        "_port_send", "tx_id", "rx_id", "extended", "functional_id", "block_size", "st_min_us",
        "_stmin_byte", "max_len", "padding", "n_as_us", "n_ar_us", "n_bs_us", "n_br_us",
        "n_cs_us", "n_cr_us", "wft_max", "max_burst",
        "error", "tx_result", "rx_result", "rx_functional",
        "_txbuf", "_txmv", "_tf", "_tfv", "_tx_state", "_tx_kind", "_tx_can_id", "_tx_flen",
        "_tx_len", "_tx_off", "_tx_sn", "_tx_bs", "_tx_bc", "_tx_stmin", "_tx_wft", "_tx_since",
        "_tx_deadline", "_tx_due", "_tx_first_fc",
        "_rxbuf", "_rxmv", "_fc", "_fcv", "_fc_pend", "_fc_fs", "_fc_len", "_fc_since",
        "_rx_state", "_rx_len", "_rx_off", "_rx_sn", "_rx_bc", "_rx_wft", "_rx_deadline",
        "_q", "_qf", "_q_head", "_q_n")

    def __init__(self, port_send, tx_id=RESPONSE_ID, rx_id=REQUEST_ID, extended=False,
                 functional_id=FUNCTIONAL_ID, block_size=0, st_min_us=0, max_len=4095, padding=0xCC,
                 n_as_us=1000000, n_ar_us=1000000, n_bs_us=1000000, n_br_us=500000, n_cs_us=500000,
                 n_cr_us=1000000, wft_max=10, rx_queue=2, max_burst=16):
        id_max = 0x1FFFFFFF if extended else 0x7FF
        for cid in (tx_id, rx_id, functional_id):
            if cid is not None and (cid < 0 or cid > id_max):
                raise ValueError("isotp: CAN id out of range")
        if tx_id == rx_id or (functional_id is not None and functional_id in (tx_id, rx_id)):
            raise ValueError("isotp: tx, rx and functional ids must differ")
        if not 0 <= block_size <= 255:
            raise ValueError("isotp: block_size 0..255")
        if padding is not None and not 0 <= padding <= 255:
            raise ValueError("isotp: padding byte 0..255 or None")
        if max_len < SF_MAX + 1 or rx_queue < 1 or wft_max < 0 or max_burst < 1:
            raise ValueError("isotp: max_len >= 8, rx_queue >= 1, wft_max >= 0, max_burst >= 1")
        self._port_send = port_send
        self.tx_id = tx_id
        self.rx_id = rx_id
        self.extended = bool(extended)
        self.functional_id = functional_id
        self.block_size = block_size
        self.st_min_us = st_min_us
        self._stmin_byte = stmin_from_us(st_min_us)
        self.max_len = max_len
        self.padding = padding
        self.n_as_us = n_as_us
        self.n_ar_us = n_ar_us
        self.n_bs_us = n_bs_us
        self.n_br_us = n_br_us
        self.n_cs_us = n_cs_us
        self.n_cr_us = n_cr_us
        self.wft_max = wft_max
        self.max_burst = max_burst
        for name in _COUNTERS:
            setattr(self, name, 0)
        self.error = None  # last N_Result other than N_OK, either direction
        self.tx_result = None  # None while sending (or before the first send), then an N_Result
        self.rx_result = None  # outcome of the last reception that started
        self.rx_functional = False  # was the message recv() returned last addressed functionally?
        self._txbuf = bytearray(max_len)
        self._txmv = memoryview(self._txbuf)
        self._tf = bytearray(8)
        m = memoryview(self._tf)
        self._tfv = tuple(m[:i] for i in range(9))  # one view per DLC: no slicing per frame
        self._fc = bytearray(8)
        m = memoryview(self._fc)
        self._fcv = tuple(m[:i] for i in range(9))
        self._rxbuf = bytearray(max_len)
        self._rxmv = memoryview(self._rxbuf)
        self._q = [None] * rx_queue
        self._qf = [False] * rx_queue
        self._q_head = 0
        self._q_n = 0
        self._tx_state = _TX_IDLE
        self._tx_kind = _K_SF
        self._tx_can_id = tx_id
        self._tx_flen = 0
        self._tx_len = 0
        self._tx_off = 0
        self._tx_sn = 0
        self._tx_bs = 0
        self._tx_bc = 0
        self._tx_stmin = 0
        self._tx_wft = 0
        self._tx_since = 0
        self._tx_deadline = 0
        self._tx_due = 0
        self._tx_first_fc = True
        self._fc_pend = False
        self._fc_fs = FS_CTS
        self._fc_len = 0
        self._fc_since = 0
        self._rx_state = _RX_IDLE
        self._rx_len = 0
        self._rx_off = 0
        self._rx_sn = 0
        self._rx_bc = 0
        self._rx_wft = 0
        self._rx_deadline = 0

    # ------------------------------------------------------------------ user side

    def send(self, payload, now, functional=False):
        """Start sending `payload` (1..max_len bytes; functional: 1..7). False if busy or refused.

        The payload is copied; the caller may reuse its buffer at once.  The outcome lands
        in `tx_result` (N_OK or an error) once the transmission ends.
        """
        n = len(payload)
        if self._tx_state != _TX_IDLE or n == 0 or n > self.max_len:
            self.tx_refused += 1
            return False
        if functional:
            if self.functional_id is None or n > SF_MAX:
                self.tx_refused += 1
                return False
            self._tx_can_id = self.functional_id
        else:
            self._tx_can_id = self.tx_id
        f = self._tf
        self._tx_len = n
        self.tx_result = None
        if n <= SF_MAX:
            f[0] = n
            for i in range(n):
                f[1 + i] = payload[i]
            self._tx_flen = self._pad(f, 1 + n)
            self._tx_kind = _K_SF
        else:
            self._txmv[:n] = payload
            src = self._txbuf
            if n <= FF_DL_12BIT_MAX:
                f[0] = 0x10 | (n >> 8)
                f[1] = n & 0xFF
                hdr = 2
            else:  # escape sequence: FF_DL = 0, then a 32-bit length
                f[0] = 0x10
                f[1] = 0
                f[2] = (n >> 24) & 0xFF
                f[3] = (n >> 16) & 0xFF
                f[4] = (n >> 8) & 0xFF
                f[5] = n & 0xFF
                hdr = 6
            for i in range(8 - hdr):
                f[hdr + i] = src[i]
            self._tx_off = 8 - hdr
            self._tx_sn = 1
            self._tx_flen = 8  # an FF always fills the frame: the receiver takes RX_DL from it
            self._tx_kind = _K_FF
            self._tx_first_fc = True
        self._tx_state = _TX_PEND
        self._tx_since = now
        self._tx_try(now)
        return True

    def recv(self):
        """The oldest completely received message (bytes), or None; sets `rx_functional`."""
        if self._q_n == 0:
            return None
        i = self._q_head
        msg = self._q[i]
        self.rx_functional = self._qf[i]
        self._q[i] = None
        self._q_head = (i + 1) % len(self._q)
        self._q_n -= 1
        return msg

    def pending(self):
        """Number of received messages waiting for recv()."""
        return self._q_n

    def tx_busy(self):
        return self._tx_state != _TX_IDLE

    def rx_busy(self):
        return self._rx_state != _RX_IDLE

    def rx_ids(self):
        """[(can_id, extended)] this endpoint receives on: physical, then functional."""
        ids = [(self.rx_id, self.extended)]
        if self.functional_id is not None:
            ids.append((self.functional_id, self.extended))
        return ids

    def on_port_frame(self, frame, now):
        """on_frame for a port tuple (can_id, extended, data)."""
        return self.on_frame(frame[0], frame[2], now, frame[1])

    def on_frame(self, can_id, data, now, extended=None):
        """Feed one received CAN frame.  True if it was addressed to this endpoint.

        `extended` None skips the 11/29-bit check.  Never raises on frame contents.
        """
        if extended is not None and bool(extended) != self.extended:
            return False
        if can_id == self.rx_id:
            func = False
        elif can_id == self.functional_id and can_id is not None:
            func = True
        else:
            return False
        self.rx_frames += 1
        n = len(data)
        if n == 0:
            self.invalid += 1
            return True
        b0 = data[0]
        pci = b0 >> 4
        if func and pci != 0:  # functional addressing carries single frames only
            self.unexpected += 1
        elif pci == 0:
            self._on_sf(data, n, b0 & 0x0F, func, now)
        elif pci == 2:
            self._on_cf(data, n, b0 & 0x0F, now)
        elif pci == 3:
            self._on_fc(data, n, b0 & 0x0F, now)
        elif pci == 1:
            self._on_ff(data, n, b0 & 0x0F, now)
        else:  # reserved N_PCI type
            self.invalid += 1
        return True

    def poll(self, now):
        """Send due consecutive frames, retry refused frames, send FC.WAIT, check timeouts."""
        st = self._tx_state
        if st == _TX_PEND:
            self._tx_try(now)
        elif st == _TX_WAIT_FC:
            if ticks_diff(now, self._tx_deadline) >= 0:
                self.timeouts += 1
                self._tx_end(N_TIMEOUT_BS)
        if self._tx_state == _TX_CF:
            self._tx_pump(now)
        if self._fc_pend:
            self._fc_try(now)
            return
        st = self._rx_state
        if st == _RX_CF:
            if ticks_diff(now, self._rx_deadline) >= 0:
                self.timeouts += 1
                self._rx_end(N_TIMEOUT_CR)
        elif st == _RX_WAIT:
            if self._q_n < len(self._q):
                self._rx_state = _RX_CF
                self._fc_send(FS_CTS, now)
            elif ticks_diff(now, self._rx_deadline) >= 0:
                if self._rx_wft >= self.wft_max:
                    self.overflow += 1
                    self._rx_end(N_WFT_OVRN)
                    self._fc_send(FS_OVFLW, now)
                else:
                    self._fc_send(FS_WAIT, now)

    def wait_hint(self, now):
        """Microseconds until poll() has something to do (0: now), or None when idle."""
        best = None
        st = self._tx_state
        if st == _TX_PEND:
            return 0
        if st == _TX_WAIT_FC:
            best = ticks_diff(self._tx_deadline, now)
        elif st == _TX_CF:
            best = ticks_diff(self._tx_due, now)
        if self._fc_pend:
            return 0
        st = self._rx_state
        if st != _RX_IDLE:
            if st == _RX_WAIT and self._q_n < len(self._q):
                return 0
            d = ticks_diff(self._rx_deadline, now)
            if best is None or d < best:
                best = d
        if best is not None and best < 0:
            best = 0
        return best

    def reset(self):
        """Drop both directions and the receive queue without reporting an error."""
        self._tx_state = _TX_IDLE
        self._rx_state = _RX_IDLE
        self._fc_pend = False
        for i in range(len(self._q)):
            self._q[i] = None
        self._q_head = 0
        self._q_n = 0

    def stats(self):
        """Counters and the last error as a dict (allocates: for reports, not the hot path)."""
        d = {}
        for name in _COUNTERS:
            d[name] = getattr(self, name)
        d["error"] = self.error
        return d

    # ------------------------------------------------------------------ transmitter

    def _pad(self, f, n):
        p = self.padding
        if p is None:
            return n
        for i in range(n, 8):
            f[i] = p
        return 8

    def _out(self, can_id, view):
        if self._port_send(can_id, view, self.extended):
            self.tx_frames += 1
            return True
        return False

    def _tx_end(self, result):
        self._tx_state = _TX_IDLE
        self.tx_result = result
        if result == N_OK:
            self.tx_msgs += 1
        else:
            self.tx_errors += 1
            self.error = result

    def _tx_try(self, now):
        """Hand the built frame to the port; on success move the transmitter on."""
        if not self._out(self._tx_can_id, self._tfv[self._tx_flen]):
            if ticks_diff(now, self._tx_since) >= self.n_as_us:
                self.timeouts += 1
                self._tx_end(N_TIMEOUT_A)
            return False
        kind = self._tx_kind
        if kind == _K_SF or self._tx_off >= self._tx_len:
            self._tx_end(N_OK)
        elif kind == _K_FF:
            self._tx_state = _TX_WAIT_FC
            self._tx_deadline = ticks_add(now, self.n_bs_us)
            self._tx_wft = 0
        else:
            self._tx_bc += 1
            # STmin separates every two CFs, across a block boundary too
            self._tx_due = ticks_add(now, self._tx_stmin)
            if self._tx_bs and self._tx_bc >= self._tx_bs:
                self._tx_state = _TX_WAIT_FC
                self._tx_deadline = ticks_add(now, self.n_bs_us)
                self._tx_wft = 0
            else:
                self._tx_state = _TX_CF
        return True

    def _tx_pump(self, now):
        """Send the consecutive frames that are due, at most max_burst per call."""
        f = self._tf
        src = self._txbuf
        burst = self.max_burst
        while self._tx_state == _TX_CF and burst > 0:
            late = ticks_diff(now, self._tx_due)
            if late < 0:
                return
            if late > self.n_cs_us:  # N_Cs: our loop let a due CF wait too long
                self.late_cf += 1
            off = self._tx_off
            take = self._tx_len - off
            if take > 7:
                take = 7
            f[0] = 0x20 | self._tx_sn
            for i in range(take):
                f[1 + i] = src[off + i]
            self._tx_off = off + take
            self._tx_sn = (self._tx_sn + 1) & 0x0F
            self._tx_flen = self._pad(f, 1 + take)
            self._tx_kind = _K_CF
            self._tx_state = _TX_PEND
            self._tx_since = now
            burst -= 1
            if not self._tx_try(now):
                return

    def _on_fc(self, data, n, fs, now):
        if n < 3:
            self.invalid += 1
            return
        if self._tx_state != _TX_WAIT_FC:
            self.unexpected += 1
            return
        if fs == FS_CTS:
            if self._tx_first_fc:  # BS and STmin of the first FC hold for the message
                self._tx_first_fc = False
                self._tx_bs = data[1]
                self._tx_stmin = stmin_to_us(data[2])
                self._tx_due = now
            elif ticks_diff(self._tx_due, now) < 0:
                self._tx_due = now  # else: STmin since the block's last CF still runs
            self._tx_bc = 0
            self._tx_wft = 0
            self._tx_state = _TX_CF
            self._tx_pump(now)
        elif fs == FS_WAIT:
            self.wait_recv += 1
            self._tx_wft += 1
            if self._tx_wft > self.wft_max:
                self._tx_end(N_WFT_OVRN)
            else:
                self._tx_deadline = ticks_add(now, self.n_bs_us)
        elif fs == FS_OVFLW:
            self.overflow += 1
            self._tx_end(N_BUFFER_OVFLW)
        else:
            self._tx_end(N_INVALID_FS)

    # ------------------------------------------------------------------ receiver

    def _rx_end(self, result):
        self._rx_state = _RX_IDLE
        self.rx_result = result
        if result != N_OK:
            self.rx_errors += 1
            self.error = result

    def _enqueue(self, msg, func):
        cap = len(self._q)
        if self._q_n >= cap:
            self.rx_overrun += 1
            return False
        i = (self._q_head + self._q_n) % cap
        self._q[i] = msg
        self._qf[i] = func
        self._q_n += 1
        self.rx_msgs += 1
        return True

    def _fc_send(self, fs, now):
        f = self._fc
        f[0] = 0x30 | fs
        f[1] = self.block_size
        f[2] = self._stmin_byte
        self._fc_len = self._pad(f, 3)
        self._fc_fs = fs
        self._fc_pend = True
        self._fc_since = now
        self._fc_try(now)

    def _fc_try(self, now):
        if self._out(self.tx_id, self._fcv[self._fc_len]):
            self._fc_pend = False
            fs = self._fc_fs
            if fs == FS_CTS:
                self._rx_deadline = ticks_add(now, self.n_cr_us)
            elif fs == FS_WAIT:
                self.wait_sent += 1
                self._rx_wft += 1
                self._rx_deadline = ticks_add(now, self.n_br_us)
            return True
        if ticks_diff(now, self._fc_since) >= self.n_ar_us:
            self._fc_pend = False
            self.timeouts += 1
            if self._rx_state != _RX_IDLE:
                self._rx_end(N_TIMEOUT_A)
            else:
                self.error = N_TIMEOUT_A
        return False

    def _interrupt(self):
        """A new SF/FF while a reception runs: the old one ends with N_UNEXP_PDU (9.8.3)."""
        if self._rx_state != _RX_IDLE:
            self.unexpected += 1
            self._fc_pend = False
            self._rx_end(N_UNEXP_PDU)

    def _on_sf(self, data, n, dl, func, now):
        if dl == 0 or dl > SF_MAX or dl > n - 1:
            self.invalid += 1
            return
        if not func:
            self._interrupt()
        if self._enqueue(bytes(data[1:1 + dl]), func) and not func:
            self.rx_result = N_OK

    def _on_ff(self, data, n, hi, now):
        if n < 8:  # an FF fills the frame; RX_DL is taken from it (9.5.3)
            self.invalid += 1
            return
        fl = (hi << 8) | data[1]
        hdr = 2
        if fl == 0:
            fl = (data[2] << 24) | (data[3] << 16) | (data[4] << 8) | data[5]
            hdr = 6
            if fl <= FF_DL_12BIT_MAX:  # the escape is only for lengths above 4095
                self.invalid += 1
                return
        elif fl <= SF_MAX:  # would have fitted a single frame
            self.invalid += 1
            return
        self._interrupt()
        if fl > self.max_len:
            self.overflow += 1
            self.rx_result = N_BUFFER_OVFLW
            self.error = N_BUFFER_OVFLW
            self._fc_send(FS_OVFLW, now)
            return
        buf = self._rxbuf
        for i in range(8 - hdr):
            buf[i] = data[hdr + i]
        self._rx_len = fl
        self._rx_off = 8 - hdr
        self._rx_sn = 1
        self._rx_bc = 0
        self._rx_wft = 0
        self.rx_result = None
        self._rx_deadline = ticks_add(now, self.n_cr_us)
        if self._q_n < len(self._q):
            self._rx_state = _RX_CF
            self._fc_send(FS_CTS, now)
        elif self.wft_max > 0:  # no free message slot yet: make the sender wait
            self._rx_state = _RX_WAIT
            self._fc_send(FS_WAIT, now)
        else:
            self.overflow += 1
            self._rx_end(N_BUFFER_OVFLW)
            self._fc_send(FS_OVFLW, now)

    def _on_cf(self, data, n, sn, now):
        if self._rx_state != _RX_CF or self._fc_pend:
            self.unexpected += 1
            return
        if sn != self._rx_sn:
            self.wrong_sn += 1
            self._rx_end(N_WRONG_SN)
            return
        off = self._rx_off
        take = self._rx_len - off
        if take > 7:
            take = 7
        if n - 1 < take:  # DLC too short for the data still due: not a valid CF
            self.invalid += 1
            return
        buf = self._rxbuf
        for i in range(take):
            buf[off + i] = data[1 + i]
        off += take
        self._rx_off = off
        self._rx_sn = (sn + 1) & 0x0F
        if off >= self._rx_len:
            self._rx_state = _RX_IDLE
            if self._enqueue(bytes(self._rxmv[:off]), False):
                self.rx_result = N_OK
            else:
                self._rx_end(N_BUFFER_OVFLW)
            return
        self._rx_deadline = ticks_add(now, self.n_cr_us)
        if self.block_size:
            self._rx_bc += 1
            if self._rx_bc >= self.block_size:
                self._rx_bc = 0
                self._fc_send(FS_CTS, now)
