"""Energy metering (controller/metering/): integration in integers, the meter's counters,
the split by use, interval records aligned to UTC, and power cuts at every byte of a
store and an append. Runs under MicroPython and CPython (tests/firmware/mp_run.py).

The gateway is a stand-in with the attributes the meter reads (the power inputs' values,
the input timeouts, the backup state): the meter's arithmetic is under test, not the
control loop (tests/test_metering_hil.py runs it in the HIL).
"""

import struct
import sys

from controller import config, events
from controller.bus import candb
from controller.metering import store as st
from controller.metering.meter import Metering
from controller.storage import CuttingMedium, EnergyRegisters, MemoryMedium, PowerCut, TwoSlot
from sitebus import Device

CPYTHON = sys.implementation.name == "cpython"
SEG = 256  # small ring segments keep the every-byte loops short


class _Values:
    def __init__(self, **v):
        self.values = v


class _State:
    state = 0


class FakeGw:
    def __init__(self):
        self.taps = []
        self.timed_out = {events.IN_METER: False, events.IN_INVERTER: False}
        self.mtr_power = _Values(ActivePower=0)
        self.inv_status = _Values(PActual=0)
        self.backup = _State()
        self.refused = []

    def refuse(self, reason, cid):
        self.refused.append((reason, cid))


class _Sink:
    def send(self, can_id, data):
        pass


_DEV = Device(_Sink())


def frame(name, **values):
    return (candb.BY_NAME[name].frame_id, False, bytes(_DEV.send(name, **values)))


def cfg(**metering):
    return config.validate({"metering": metering, "inverter": {"efficiency": 0.95}})


def medium(days=1, interval=900):
    return MemoryMedium(st.BLOCK_AREA + SEG * 8)


def meter(m=None, c=None, now=0, gw=None):
    gw = gw or FakeGw()
    return Metering(gw, c or cfg(), None if m is None else st.MeterStore(m, SEG), now), gw


def _lcg(x):
    return (x * 1103515245 + 12345) & 0x7FFFFFFF


def test_integral_exact_over_a_million_periods():
    # powers change every few periods; periods jitter around 10 ms: the registers equal the
    # exact integral of the held powers (W x us summed exactly here) to within one Wh
    n = 1000000 if CPYTHON else 60000
    me, gw = meter()
    exact = [0] * st.N
    x = 7
    now = 0
    pg = pb = 0
    for k in range(n):
        if k % 37 == 0:
            x = _lcg(x)
            pg = (x % 40001) - 20000
            x = _lcg(x)
            pb = (x % 22001) - 11000
            gw.mtr_power.values["ActivePower"] = pg
            gw.inv_status.values["PActual"] = pb
            me.poll(now)
        x = _lcg(x)
        dt = 9000 + x % 2001
        now = (now + dt) & 0x3FFFFFFF
        if pg > 0:
            exact[0] += pg * dt
        else:
            exact[1] -= pg * dt
        if pb > 0:
            exact[2] += pb * dt
        elif pb < 0:
            exact[3] -= pb * dt
        me.poll(now)
    for i in range(4):
        # W x us summed exactly: the register is the exact integral rounded down to the Wh
        assert me.tot[i] == exact[i] // 3600000000, (i, me.tot[i], exact[i] / 3.6e9)
    assert exact[0] > (n // 1000) * 3600000000  # a sum of many Wh: a drift would show
    # the discharge at the AC side, split: v2h + v2g = discharged x efficiency (to 1 Wh each)
    ac = me.tot[4] + me.tot[5]
    assert abs(ac - exact[3] * 95 // 100 // 3600000000) <= 2 + exact[3] // 3600000000 // 1000


def test_long_polls_lose_nothing():
    # 30 days of 60-s polls at 1234 W: the whole-ms and whole-Wh remainders carry over
    me, gw = meter()
    gw.inv_status.values["PActual"] = 1234
    now = 0
    me.poll(now)  # the first poll takes the power; from it on it counts
    for _ in range(30 * 1440):
        now = (now + 60000000) & 0x3FFFFFFF
        me.poll(now)
    assert me.tot[2] == 1234 * 30 * 24  # exactly: 1234 W for 720 h


def test_counters_deltas_wrap_reset_and_missing():
    me, gw = meter()
    gw.mtr_power.values["ActivePower"] = 3600  # 1 Wh a second by the power
    t = 0
    me.on_port_frame(frame("MTR_Energy", EnergyImport=4294967290, EnergyExport=5), t)
    assert me.ctr_live and me.tot[0] == 0
    for k in range(1, 6):  # the counter says 2 Wh a second: the counter wins
        t += 1000000
        me.poll(t)
        me.on_port_frame(frame("MTR_Energy", EnergyImport=(4294967290 + 2 * k) & 0xFFFFFFFF, EnergyExport=5), t)
    assert me.tot[0] == 10, me.tot  # across the 32-bit wrap
    # a reset to 0: not 4 billion Wh; the span comes from the power integral (1 Wh)
    t += 1000000
    me.poll(t)
    me.on_port_frame(frame("MTR_Energy", EnergyImport=0, EnergyExport=5), t)
    assert me.tot[0] == 11 and me.counter_resets == 1
    # the counters go silent: after their timeout the power integral counts, from their last frame
    for _ in range(20):
        t += 1000000
        me.poll(t)
    assert not me.ctr_live
    assert me.tot[0] == 31, me.tot  # 20 s at 1 Wh/s, nothing counted twice or lost
    assert me.flags & st.NO_COUNTERS


def test_discharge_split_v2h_v2g_backup():
    me, gw = meter()
    gw.inv_status.values["PActual"] = -10000  # 9500 W at the AC side (efficiency 0.95)
    gw.mtr_power.values["ActivePower"] = -4000  # of which 4000 W leave the site
    t = 0
    me.poll(t)
    t += 360000000  # 0.1 h
    me.poll(t)
    assert me.tot[3] == 1000 and me.tot[5] == 400 and me.tot[4] == 550 and me.tot[6] == 0, me.tot
    gw.backup.state = 2  # islanded: all of it is backup
    me.poll(t)
    t += 360000000
    me.poll(t)
    assert me.tot[6] == 950 and me.tot[5] == 400 and me.tot[3] == 2000, me.tot
    # the inverter silent: no EV energy counted, the interval says so
    gw.timed_out[events.IN_INVERTER] = True
    me.poll(t)
    t += 360000000
    me.poll(t)
    assert me.tot[3] == 2000 and me.flags & st.INVERTER_GAP


def _run(me, gw, t, seconds, step_us=1000000):
    me.poll(t)  # takes the powers set before the call
    for _ in range(seconds * 1000000 // step_us):
        t = (t + step_us) & 0x3FFFFFFF
        me.poll(t)
    return t


def _records(m):
    out = []
    for _seq, p in st.MeterStore(MemoryMedium(data=m.image()), SEG).log.records():
        out.append(st.unpack_record(p))
    return out


def test_intervals_align_to_utc_quarter_hours():
    m = medium()
    me, gw = meter(m)
    gw.inv_status.values["PActual"] = 3600  # 1 Wh a second
    t = _run(me, gw, 0, 100)
    t0 = 1735689600 + 7 * 900 + 300  # 2025-01-01T01:50:00Z
    me.on_port_frame(frame("EMS_Time", UnixTime=t0), t)
    assert me.synced and me.utc == t0
    t = _run(me, gw, t, 600 + 900 + 10)
    recs = _records(m)
    # the boot interval (relabelled onto the synchronised quarter-hour), then a whole one
    assert [r[0] for r in recs] == [1735689600 + 7 * 900, 1735689600 + 8 * 900], recs
    first, whole = recs
    assert first[2] & (st.NOT_SYNCED | st.PARTIAL | st.CLOCK_ADJUSTED) == st.NOT_SYNCED | st.PARTIAL | st.CLOCK_ADJUSTED
    assert whole[1] == 900 and whole[3][2] == 900 and not whole[2] & (st.NOT_SYNCED | st.PARTIAL)
    assert first[3][2] == 700  # 100 s before the sync and 600 after, in the first record
    # records plus the open interval add up to the registers
    assert sum(r[3][2] for r in recs) + me.deltas()[2] == me.tot[2]
    # a correction within the tolerance does not step the clock
    me.on_port_frame(frame("EMS_Time", UnixTime=me.utc + 2), t)
    assert me.time_steps == 1
    me.on_port_frame(frame("EMS_Time", UnixTime=me.utc + 30), t)
    assert me.time_steps == 2 and me.flags & st.CLOCK_ADJUSTED
    # a corrupt time frame is refused and counted on the gateway
    bad = frame("EMS_Time", UnixTime=5)
    me.on_port_frame((bad[0], False, bad[2][:7] + bytes((bad[2][7] ^ 1,))), t)
    assert gw.refused and me.utc != 5


def test_persist_every_n_wh_and_restart_continues():
    m = medium()
    me, gw = meter(m, cfg(persist_wh=50))
    gw.inv_status.values["PActual"] = 3600
    t = _run(me, gw, 0, 120)  # 120 Wh: stored at 50 and 100
    assert me.stores == 2
    me2, _ = meter(MemoryMedium(data=m.image()), cfg(persist_wh=50))  # a power cut now
    assert me2.tot[2] == 100  # lost: 20 Wh < persist_wh
    # the interval open at the cut became a partial record of what was stored
    assert me2.records == 1 and me2.deltas() == [0] * st.N
    (rec,) = [st.unpack_record(p) for _q, p in me2.store.log.records()]
    assert rec[3][2] == 100 and rec[2] & st.PARTIAL


def _state(image):
    """(registers, records) a device restarting from `image` sees."""
    m = MemoryMedium(data=image)
    me, _ = meter(m)
    recs = []
    for _seq, p in me.store.log.records():
        recs.append(p)
    return list(me.tot), recs


def _cut_every_byte(prepare, op):
    """prepare(me, gw) brings a device into a state; op(me) is the operation cut at every
    byte. After any cut a restart sees the old or the new registers, every record written
    before the operation unchanged, at most one record more, and records that add up to
    the registers."""

    def fresh():
        m = medium()
        me, gw = meter(m)
        prepare(me, gw)
        return me, m.image()

    me, before = fresh()
    base = [p for _q, p in st.MeterStore(MemoryMedium(data=before), SEG).log.records()]
    old_tot, _ = _state(before)
    cm = CuttingMedium(MemoryMedium(data=before))
    me.store = st.MeterStore(cm, SEG)
    op(me)
    total = cm.written
    new_tot, new_recs = _state(cm.inner.image())
    assert total > 0 and new_tot != old_tot
    for tear in (False, True):
        for n in range(total):
            me, _ = fresh()
            cm = CuttingMedium(MemoryMedium(data=before), n, tear)
            me.store = st.MeterStore(cm, SEG)
            try:
                op(me)
            except PowerCut:
                pass
            tot, recs = _state(cm.inner.image())
            assert tot in (old_tot, new_tot), (n, tear, tot)
            assert recs[:len(base)] == base and len(recs) <= len(base) + 1, (n, tear)
            sums = [0] * st.N
            for p in recs:
                d = st.unpack_record(p)[3]
                for i in range(st.N):
                    sums[i] += d[i]
            assert sums == tot, (n, tear, sums, tot)
    return new_tot, new_recs


def _prepared(me, gw):
    gw.inv_status.values["PActual"] = 3600
    t = _run(me, gw, 0, 300, 10000000)
    me.close()
    _run(me, gw, t, 200, 10000000)
    me.save()
    me.tot[2] += 7  # energy since the last store: what the operation below stores


def test_cut_at_every_byte_of_an_interval_close():
    def op(me):
        me.close()

    tot, recs = _cut_every_byte(_prepared, op)
    assert len(recs) >= 2


def test_cut_at_every_byte_of_a_register_store():
    def op(me):
        me.save()

    _cut_every_byte(_prepared, op)


def test_old_register_layout_is_refused_not_overwritten():
    m = medium()
    EnergyRegisters(m).update({"charge_import_wh": 1234})  # the older layout, at the same place
    before = m.image()
    me, gw = meter(m)
    assert me.refused and me.store is None
    gw.inv_status.values["PActual"] = 3600
    _run(me, gw, 0, 2000)  # closes intervals, would store
    assert m.image() == before
    assert EnergyRegisters(m).load()["charge_import_wh"] == 1234


def test_other_major_version_refused_newer_minor_read():
    m = medium()
    me, gw = meter(m)
    me.tot[0] = 42
    me.tot[6] = 9
    me.save()
    raw = bytearray(TwoSlot(m, st.BLOCK_LEN).load())
    # a newer minor version with an eighth register and a longer tail: the first seven read
    n = 8
    newer = bytearray(st.BLOCK_LEN)
    newer[:16] = raw[:16]
    newer[1] = 3
    newer[2] = n
    struct.pack_into("<8Q", newer, 16, *(list(me.tot) + [77]))
    struct.pack_into("<8I", newer, 16 + 8 * n, *([0] * 8))
    m2 = medium()
    TwoSlot(m2, st.BLOCK_LEN).store(bytes(newer))
    me2, _ = meter(m2)
    assert me2.refused is None and me2.tot[0] == 42 and me2.tot[6] == 9
    newer[0] = 2
    m3 = medium()
    TwoSlot(m3, st.BLOCK_LEN).store(bytes(newer))
    before = m3.image()
    me3, _ = meter(m3)
    assert me3.refused and "major" in me3.refused and me3.tot == [0] * st.N
    me3.save()
    assert m3.image() == before


def test_ring_sized_for_the_history():
    # 35 days of 15-minute records: 3360 records, 85 a 4 KB segment, 41 segments
    assert st.records_for(900, 35) == 3360
    assert st.segments_for(900, 35) == 41
    assert st.medium_size(900, 35) == 1024 + 41 * 4096
    m = MemoryMedium(st.BLOCK_AREA + SEG * 3)
    s = st.MeterStore(m, SEG)
    per = (SEG - 12) // (12 + st.REC_LEN)
    for k in range(3 * per + 2):
        s.append(st.pack_record(900 * k, 900, 0, [k] * st.N))
    recs = [st.unpack_record(p) for _q, p in s.log.records()]
    assert len(recs) >= 2 * per and recs[-1][0] == 900 * (3 * per + 1)  # oldest dropped, newest kept
    got = s.log.records_from(s.log.last_seq - 4, 3)
    assert [q for q, _p in got] == [s.log.last_seq - 4, s.log.last_seq - 3, s.log.last_seq - 2]


def test_no_allocation_on_the_integration_path():
    # MicroPython only (CPython has no gc.mem_alloc; there every int is an object anyway):
    # a poll integrating charge, discharge and export allocates nothing
    import gc

    if not hasattr(gc, "mem_alloc"):
        return
    me, gw = meter(medium(), cfg(persist_wh=100000))
    gw.mtr_power.values["ActivePower"] = -3000
    gw.inv_status.values["PActual"] = -5000
    t = _run(me, gw, 0, 1, 10000)
    gc.collect()
    gc.disable()
    try:
        a = gc.mem_alloc()
        for _ in range(500):
            t += 10123
            me.poll(t)
        b = gc.mem_alloc()
    finally:
        gc.enable()
    assert b == a, b - a
    assert me.tot[5] > 0  # it did integrate (V2G)
