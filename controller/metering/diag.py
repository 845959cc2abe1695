"""The meter over UDS (ISO 14229-1): ReadDataByIdentifier DIDs and the record routine.

attach_uds(metering, server) adds to a controller.diag.uds.UdsServer (docs/uds.md,
"Metering"; all integers big-endian):

  0xD200            every register, 7 x u64 Wh (store.NAMES order)
  0xD201..0xD207    one register each, u64 Wh
  0xD210            status: records u32, oldest seq u32, newest seq u32 (both 0xFFFFFFFF
                    when none), interval s u16, state u8 (bit 0 wall time synchronised,
                    bit 1 meter counters arriving, bit 2 stored state refused, bit 3 no
                    storage), wall time u32, open interval start u32, seconds covered
                    u16, its flags u8, storage errors u16
  0xD211            the open interval so far, 7 x u32 Wh
  RoutineControl 0x31 01 0210 (extended session, no security): option record
                    [first seq u32][count u8]; status record [n u8] then n x ([seq u32]
                    [the record's 36 bytes, little-endian as stored: store.py]), the
                    records with seq >= first, oldest first, n <= min(count, MAX_RECORDS)
"""

import struct

from controller.diag.uds import INCORRECT_LENGTH, RID_METER_RECORDS, UdsError
from controller.metering import store as st

DID_REGISTERS = 0xD200
DID_STATUS = 0xD210
DID_OPEN = 0xD211
MAX_RECORDS = 64  # 64 x 40 bytes + 5: one ISO-TP message (4095 bytes) with room


def attach_uds(me, server):
    dids = server.dids
    dids[DID_REGISTERS] = lambda: struct.pack(">7Q", *me.tot)
    for i in range(st.N):
        dids[DID_REGISTERS + 1 + i] = _one(me, i)
    dids[DID_STATUS] = lambda: status(me)
    dids[DID_OPEN] = lambda: struct.pack(">7I", *me.deltas())
    server.routines[RID_METER_RECORDS] = RecordsRoutine(me)


def _one(me, i):
    return lambda: struct.pack(">Q", me.tot[i])


def status(me):
    n = 0
    oldest = newest = 0xFFFFFFFF
    state = (1 if me.synced else 0) | (2 if me.ctr_live else 0) | (4 if me.refused else 0)
    if me.store is None:
        state |= 8
    else:
        log = me.store.log
        n = log.count
        if n:
            newest = log.last_seq
            for q, _p in log.records():
                oldest = q
                break
    cov = me.covered if me.covered < 0xFFFF else 0xFFFF
    err = me.save_errors if me.save_errors < 0xFFFF else 0xFFFF
    return struct.pack(">IIIHBIIHBH", n, oldest, newest, me.interval_s, state, me.utc & 0xFFFFFFFF,
                       me.start & 0xFFFFFFFF, cov, me.flags, err)


class RecordsRoutine:
    """RoutineControl start: the records from a sequence number on (a page of them)."""

    __slots__ = ("me",)

    def __init__(self, me):
        self.me = me

    def start(self, option):
        if len(option) != 5:
            raise UdsError(INCORRECT_LENGTH)
        first = struct.unpack(">I", option[:4])[0]
        k = option[4] if option[4] < MAX_RECORDS else MAX_RECORDS
        out = bytearray(1)
        if self.me.store is not None and k:
            for q, p in self.me.store.log.records_from(first, k):
                out += struct.pack(">I", q)
                out += p
                out[0] += 1
        return bytes(out)
