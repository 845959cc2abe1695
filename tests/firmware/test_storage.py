"""Power-loss-safe storage: record ring and energy registers, with power cut at every byte
of every write (run under MicroPython and CPython).

A "cut" (storage.CuttingMedium): the first N bytes of the operation's writes reach the
medium, nothing after them; the process dies (PowerCut) and the device restarts from
what the medium holds. `tear` also writes a wrong value into byte N (a torn byte).
"""

import os

from controller.steps import run_to_end
from controller import config
from controller.storage import (BlobStore, ConfigStore, CuttingMedium, EnergyRegisters, FileMedium, MemoryMedium,
                                Partition, PowerCut, RecordLog, REGISTERS, TwoSlot)

SEG = 256  # small segments keep the every-byte loops short


def _payload(i, n=None):
    """Record i: length varies with i, content depends on i (and ends in 0xFF sometimes)."""
    if n is None:
        n = 5 + (i * 7) % 23
    return bytes(((i * 31 + k * 17) & 0xFF) for k in range(n - 1)) + (b"\xff" if i % 3 == 0 else b"\x01")


def _records(m, seg=SEG):
    return list(RecordLog(m, seg).records())


def _bytes_written(image, op, seg=SEG):
    m = CuttingMedium(MemoryMedium(data=image))
    op(RecordLog(m, seg))
    return m.written


def _tmp(name):
    d = os.getenv("TMPDIR") or "/tmp"
    return d + "/" + name


# --- media ---------------------------------------------------------------------------------

def test_memory_medium_and_partition():
    m = MemoryMedium(64)
    assert m.read(0, 4) == b"\xff\xff\xff\xff"
    p = Partition(m, 16, 16)
    p.write(2, b"abc")
    assert m.read(18, 3) == b"abc"
    assert p.read(2, 3) == b"abc"
    p.erase(2, 1)
    assert m.read(18, 3) == b"\xffbc"
    for bad in ((15, 2), (-1, 1), (16, 1)):
        try:
            p.read(bad[0], bad[1])
            assert False, bad
        except ValueError:
            pass
    try:
        Partition(m, 60, 8)
        assert False
    except ValueError:
        pass


def test_file_medium_persists():
    path = _tmp("v2xgw_test_file_medium.bin")
    try:
        os.remove(path)
    except OSError:
        pass
    try:
        f = FileMedium(path, 1000)
        assert f.read(990, 10) == b"\xff" * 10
        f.write(500, b"hello")
        f.sync()
        f.close()
        assert os.stat(path)[6] == 1000
        g = FileMedium(path, 1000)
        assert g.read(500, 5) == b"hello"
        g.erase(501, 2)
        assert g.read(500, 5) == b"h\xff\xfflo"
        log = RecordLog(g, 250)
        log.append(b"x")
        g.close()
        g = FileMedium(path, 1000)
        assert list(RecordLog(g, 250).records()) == [(1, b"x")]
        g.close()
    finally:
        os.remove(path)


def test_cutting_medium_cuts_exactly():
    m = MemoryMedium(16)
    c = CuttingMedium(m, 5)
    c.write(0, b"abc")
    try:
        c.write(3, b"defg")
        assert False
    except PowerCut:
        pass
    assert m.read(0, 8) == b"abcde\xff\xff\xff"
    try:
        c.write(10, b"z")
        assert False
    except PowerCut:
        pass
    m2 = MemoryMedium(data=b"\x00" * 8)
    c = CuttingMedium(m2, 2, tear=True)
    try:
        c.erase(0, 8)
        assert False
    except PowerCut:
        pass
    assert m2.read(0, 4) == b"\xff\xff\x5a\x00"


# --- record ring ---------------------------------------------------------------------------

def test_log_append_iterate_reopen():
    m = MemoryMedium(4 * SEG)
    log = RecordLog(m, SEG)
    assert log.count == 0 and log.last_seq is None and list(log.records()) == []
    seqs = [log.append(_payload(i)) for i in range(20)]
    assert seqs == list(range(1, 21))
    assert log.count == 20 and log.last_seq == 20
    again = RecordLog(m, SEG)
    assert again.count == 20 and again.last_seq == 20
    got = list(again.records())
    assert got == [(i + 1, _payload(i)) for i in range(20)]
    assert list(again.records(newest_first=True)) == got[::-1]
    assert again.append(b"") == 21
    assert list(RecordLog(m, SEG).records(newest_first=True))[0] == (21, b"")


def test_log_ring_is_bounded_and_keeps_the_newest():
    nseg = 3
    m = MemoryMedium(nseg * SEG)
    log = RecordLog(m, SEG)
    per_seg = (SEG - 12) // (12 + 10)
    for i in range(200):
        log.append(_payload(i, 10))
        assert log.count <= nseg * per_seg
        # never less than the last (nseg - 1) full segments of history
        assert log.count >= min(i + 1, (nseg - 1) * per_seg)
    got = list(RecordLog(m, SEG).records())
    assert got[-1] == (200, _payload(199, 10))
    assert [s for s, _ in got] == list(range(200 - len(got) + 1, 201))


def test_log_refuses_oversized_and_needs_two_segments():
    log = RecordLog(MemoryMedium(2 * SEG), SEG)
    assert log.max_payload == SEG - 24
    log.append(b"a" * log.max_payload)
    try:
        log.append(b"a" * (log.max_payload + 1))
        assert False
    except ValueError:
        pass
    try:
        RecordLog(MemoryMedium(SEG + 10), SEG)
        assert False
    except ValueError:
        pass


def test_log_clear():
    m = MemoryMedium(3 * SEG)
    log = RecordLog(m, SEG)
    for i in range(30):
        log.append(_payload(i))
    log.clear()
    assert log.count == 0 and list(RecordLog(m, SEG).records()) == []
    assert log.append(b"after") == 31
    assert list(RecordLog(m, SEG).records()) == [(31, b"after")]


def _check_after_cut(before, after, new_seq, new_payload, may_drop=()):
    """after = before (minus records it may drop) + maybe the new record, all intact."""
    assert len(after) == len(set(s for s, _ in after))
    olds = [r for r in after if r[0] != new_seq]
    newr = [r for r in after if r[0] == new_seq]
    assert newr == [] or newr == [(new_seq, new_payload)], newr
    if newr:
        assert after[-1] == newr[0]
    for r in before:
        if r[0] not in may_drop:
            assert r in olds, r
    for r in olds:
        assert r in before
    seqs = [s for s, _ in after]
    assert seqs == sorted(seqs) and (not seqs or seqs == list(range(seqs[0], seqs[0] + len(seqs))))


def _cut_every_byte(image, new_payload, tear, may_drop=()):
    before = _records(MemoryMedium(data=image))
    new_seq = before[-1][0] + 1 if before else 1
    total = _bytes_written(image, lambda log: log.append(new_payload))
    lost = kept = 0
    for n in range(total + 1):
        dev = MemoryMedium(data=image)
        cut = CuttingMedium(dev, n, tear)
        log = RecordLog(cut, SEG)  # opening a clean log writes nothing
        try:
            log.append(new_payload)
            assert n == total
        except PowerCut:
            assert n < total
        after = _records(dev)
        _check_after_cut(before, after, new_seq, new_payload, may_drop)
        if after and after[-1][0] == new_seq:
            kept += 1
        else:
            lost += 1
        # the recovered log takes the next record and reads it back
        log = RecordLog(dev, SEG)
        s = log.append(b"next")
        assert list(RecordLog(dev, SEG).records())[-1] == (s, b"next")
        _check_after_cut(before, list(RecordLog(dev, SEG).records())[:-1], new_seq, new_payload, may_drop)
    assert kept >= 1 and lost >= 1
    return total


def test_log_cut_at_every_byte_of_an_append():
    m = MemoryMedium(3 * SEG)
    log = RecordLog(m, SEG)
    for i in range(4):
        log.append(_payload(i))
    image = m.image()
    for payload in (_payload(10, 20), _payload(12, 20)):  # ends in 0x01 and in 0xFF
        for tear in (False, True):
            total = _cut_every_byte(image, payload, tear)
            assert total == 12 + 20


def test_log_cut_at_every_byte_of_a_segment_rotation():
    m = MemoryMedium(3 * SEG)
    log = RecordLog(m, SEG)
    i = 0
    # fill all three segments until the next 40-byte record needs the oldest one back
    while not (len(log._segs) == 3 and log._pos + 12 + 40 > SEG):
        log.append(_payload(i, 40))
        i += 1
    victim = (log._cur[0] + 1) % 3
    dropped = []
    for e in log._segs:
        if e[0] == victim:
            dropped = list(range(e[2], e[2] + e[3]))
    assert dropped
    image = m.image()
    for tear in (False, True):
        total = _cut_every_byte(image, _payload(99, 40), tear, may_drop=dropped)
        assert total == SEG + 12 + 12 + 40


def test_log_cut_during_first_use_and_during_recovery_cleanup():
    image = MemoryMedium(2 * SEG).image()
    _cut_every_byte(image, b"first", False)
    # a torn append leaves garbage; the cleanup on open can be cut too
    m = MemoryMedium(2 * SEG)
    log = RecordLog(m, SEG)
    log.append(b"one")
    try:
        RecordLog(CuttingMedium(m, 12 + 6, True), SEG).append(b"two-torn-record")
        assert False
    except PowerCut:
        pass
    dirty = m.image()
    for n in range(0, SEG + 1, 7):
        dev = MemoryMedium(data=dirty)
        try:
            RecordLog(CuttingMedium(dev, n), SEG)
        except PowerCut:
            pass
        log = RecordLog(dev, SEG)
        assert list(log.records()) == [(1, b"one")]
        log.append(b"three")
        assert list(RecordLog(dev, SEG).records()) == [(1, b"one"), (2, b"three")]


def test_log_cut_record_payload_never_resurfaces_as_a_record():
    """A cut record whose payload embeds a well-formed record: after recovery and a
    shorter append, the embedded one must not appear (the dirty tail is erased on open)."""
    import struct
    from binascii import crc32

    m = MemoryMedium(2 * SEG)
    log = RecordLog(m, SEG)
    log.append(b"one")  # seq 1
    ghost = bytearray(struct.pack("<HHI", 0x4C52, 5, 3))
    ghost += struct.pack("<I", crc32(b"ghost", crc32(bytes(ghost))))
    ghost += b"ghost"
    filler = b"F" * 13
    try:  # seq 2 = filler + ghost + "!!", cut before the "!!"
        RecordLog(CuttingMedium(m, 12 + len(filler) + len(ghost)), SEG).append(filler + ghost + b"!!")
        assert False
    except PowerCut:
        pass
    log = RecordLog(m, SEG)
    assert list(log.records()) == [(1, b"one")]
    log.append(b"G" * 13)  # seq 2 again, ends exactly where the ghost starts
    assert list(RecordLog(m, SEG).records()) == [(1, b"one"), (2, b"G" * 13)]


# --- two-slot registers --------------------------------------------------------------------

def test_two_slot_alternates_and_survives_one_bad_copy():
    m = MemoryMedium(64)
    ab = TwoSlot(m, 4)
    assert ab.load() is None
    ab.store(b"aaaa")
    ab.store(b"bbbb")
    assert TwoSlot(m, 4).load() == b"bbbb"
    m.write(20 + 12, b"x")  # corrupt copy B (the newer): A (older) is what is left
    assert TwoSlot(m, 4).load() == b"aaaa"
    t = TwoSlot(m, 4)
    t.store(b"cccc")  # goes over the bad copy, keeps A
    assert TwoSlot(m, 4).load() == b"cccc"
    try:
        TwoSlot(MemoryMedium(39), 4)
        assert False
    except ValueError:
        pass
    s = TwoSlot(MemoryMedium(300), 4, offset=10, stride=128)
    s.store(b"dddd")
    s.store(b"eeee")
    assert s.medium.read(10 + 128 + 12, 4) == b"eeee"


def test_energy_registers_update_load():
    m = MemoryMedium(256)
    r = EnergyRegisters(m)
    assert r.load() == dict((k, 0) for k in REGISTERS)
    r.update({"v2h_export_wh": 1234})
    r.add("charge_import_wh", 7)
    r.add("charge_import_wh", 2 ** 40)
    got = EnergyRegisters(m).load()
    assert got["v2h_export_wh"] == 1234 and got["charge_import_wh"] == 2 ** 40 + 7
    assert sum(got.values()) == 1234 + 7 + 2 ** 40
    r.update(list(range(8)))
    assert EnergyRegisters(m).load()["backup_export_wh"] == 7
    for bad in ({"nope": 1}, {"v2g_import_wh": -1}, [1, 2], {"v2g_import_wh": 2 ** 64}):
        try:
            r.update(bad)
            assert False, bad
        except (KeyError, ValueError):
            pass
    assert EnergyRegisters(m).load()["backup_export_wh"] == 7


def test_energy_registers_cut_at_every_byte():
    old = [1000 * (k + 1) for k in range(8)]
    new = [v + 300 + k for k, v in enumerate(old)]
    for first in (True, False):
        base = MemoryMedium(2 * EnergyRegisters.copy_size())
        if not first:
            EnergyRegisters(base).update(old)
            EnergyRegisters(base).update([v + 1 for v in old])
            EnergyRegisters(base).update(old)
        image = base.image()
        want_old = [0] * 8 if first else old
        total = 2 * EnergyRegisters.copy_size()  # erase the copy, then write it
        probe = CuttingMedium(MemoryMedium(data=image))
        EnergyRegisters(probe).update(new)
        assert probe.written == total
        for tear in (False, True):
            seen = {}
            for n in range(total + 1):
                dev = MemoryMedium(data=image)
                r = EnergyRegisters(CuttingMedium(dev, n, tear))
                try:
                    r.update(new)
                    assert n == total
                except PowerCut:
                    assert n < total
                got = EnergyRegisters(dev).load()
                vals = [got[k] for k in REGISTERS]
                assert vals == want_old or vals == new, (n, vals)
                seen[vals == new] = 1
            assert len(seen) == 2


def test_energy_registers_repeated_cuts_never_lose_the_committed_value():
    """Cut, restart, cut again at another byte...: every restart reads the last committed
    set or the one being written; a cut update never destroys the only good copy."""
    dev = MemoryMedium(2 * EnergyRegisters.copy_size())
    committed = [0] * 8
    total = 2 * EnergyRegisters.copy_size()
    for step in range(3 * total):
        attempt = [v + step + 1 for v in committed]
        n = (step * 37) % (total + 8)  # sometimes past the end: the update completes
        r = EnergyRegisters(CuttingMedium(dev, n, step % 2 == 1))
        try:
            r.update(attempt)
        except PowerCut:
            pass
        got = EnergyRegisters(dev).load()
        vals = [got[k] for k in REGISTERS]
        assert vals == committed or vals == attempt, (step, n)
        committed = vals


def test_blob_store_cut_at_every_byte():
    m = MemoryMedium(2 * BlobStore.copy_size(40))
    b = BlobStore(m, 40)
    assert b.load() is None
    b.save(b"old image")
    assert BlobStore(m, 40).load() == b"old image"
    try:
        b.save(b"x" * 41)
        assert False
    except ValueError:
        pass
    image = m.image()
    total = 2 * BlobStore.copy_size(40)
    seen = {}
    for n in range(total + 1):
        for tear in (False, True):
            dev = MemoryMedium(data=image)
            try:
                BlobStore(CuttingMedium(dev, n, tear), 40).save(b"a new, longer image")
                assert n == total
            except PowerCut:
                assert n < total
            got = BlobStore(dev, 40).load()
            assert got in (b"old image", b"a new, longer image"), (n, got)
            seen[got] = 1
    assert len(seen) == 2
    b.save(b"")
    assert BlobStore(m, 40).load() == b""


def test_blob_store_save_in_steps_writes_the_same_bytes_a_bounded_piece_at_a_time():
    size = 2 * BlobStore.copy_size(300)
    whole = MemoryMedium(size)
    stepped = MemoryMedium(size)
    BlobStore(whole, 300).save(b"first")
    BlobStore(stepped, 300).save(b"first")
    data = bytes(range(200))
    BlobStore(whole, 300).save(data)
    c = CuttingMedium(stepped)
    gen = BlobStore(c, 300).save_steps(data, 64)
    steps = 0
    try:
        while True:
            before = c.written
            next(gen)
            assert c.written - before <= 64  # never more than one piece per step
            steps += 1
    except StopIteration as e:
        assert e.value == 2  # the sequence number of the stored copy
    assert steps == 2 * ((BlobStore.copy_size(300) + 63) // 64)  # erase pieces, then program pieces
    assert stepped.image() == whole.image()  # the same copy, byte for byte
    assert BlobStore(stepped, 300).load() == data
    try:
        run_to_end(BlobStore(stepped, 300).save_steps(b"x" * 301, 64))
        assert False
    except ValueError:
        pass


def test_blob_store_abandoned_save_keeps_the_old_value_and_the_next_save_lands():
    m = MemoryMedium(2 * BlobStore.copy_size(100))
    b = BlobStore(m, 100)
    b.save(b"committed")
    gen = b.save_steps(b"abandoned half way", 16)
    for _ in range(9):
        next(gen)  # the copy is erased and partly written, then the save is dropped
    assert BlobStore(m, 100).load() == b"committed"
    b.save(b"next")
    assert BlobStore(m, 100).load() == b"next"
    b.save(b"and the one after")
    assert BlobStore(m, 100).load() == b"and the one after"


def test_blob_store_stepped_save_cut_at_every_byte():
    size = 2 * BlobStore.copy_size(60)
    m = MemoryMedium(size)
    BlobStore(m, 60).save(b"old fault memory")
    image = m.image()
    total = BlobStore.copy_size(60) * 2  # erase + program of one copy
    for n in range(total + 1):
        for tear in (False, True):
            dev = MemoryMedium(data=image)
            gen = BlobStore(CuttingMedium(dev, n, tear), 60).save_steps(b"new fault memory, longer", 7)
            try:
                run_to_end(gen)
                assert n == total
            except PowerCut:
                assert n < total
            got = BlobStore(dev, 60).load()
            assert got in (b"old fault memory", b"new fault memory, longer"), (n, tear, got)
            if n == total:
                assert got == b"new fault memory, longer"


# --- configuration written over UDS ----------------------------------------------------------

CFG_SIZE = 2 * BlobStore.copy_size(1024)


def test_config_store_round_trip_and_apply():
    m = MemoryMedium(CFG_SIZE)
    st = ConfigStore(m)
    assert st.load() == {}
    ov = {"site": {"main_fuse_a": 20.0, "phases": 1}, "mode": {"kind": "v2h"}}
    st.save(ov)
    assert ConfigStore(m).load() == ov
    base = config.validate({"site": {"main_fuse_a": 63.0, "grid_code": "DK-EN50549-1"}})  # the file's
    said = []
    cfg, keep = ConfigStore(m).apply(base, said.append)
    assert said == [] and keep == ov
    assert cfg["site"]["main_fuse_a"] == 20.0 and cfg["site"]["phases"] == 1 and cfg["mode"]["kind"] == "v2h"
    assert cfg["site"]["grid_code"] == "DK-EN50549-1"  # what the file says and UDS did not write stays
    assert base["site"]["main_fuse_a"] == 63.0  # the file's configuration is not changed in place
    try:
        st.save({"site": {"grid_code": "x" * 1100}})
        assert False
    except ValueError:
        pass
    assert ConfigStore(m).load() == ov


def test_config_store_invalid_keys_are_reported_and_left_out():
    m = MemoryMedium(CFG_SIZE)
    ConfigStore(m).save({"site": {"main_fuse_a": 0.5, "phases": 2}, "gone": {"x": 1}, "mode": {"nope": 1}})
    said = []
    cfg, keep = ConfigStore(m).apply(config.defaults(), said.append)
    assert keep == {"site": {"phases": 2}}
    assert cfg["site"]["phases"] == 2 and cfg["site"]["main_fuse_a"] == 35.0
    assert len(said) == 3 and "site.main_fuse_a" in " ".join(said) and "gone" in " ".join(said)


def test_config_store_corrupt_content_is_reported_and_ignored():
    for raw, why in ((b"{not json", "not JSON"), (b"[1, 2]", "not an object"), (b'{"site": 3}', "site")):
        m = MemoryMedium(CFG_SIZE)
        BlobStore(m, 1024).save(raw)
        said = []
        cfg, keep = ConfigStore(m).apply(config.defaults(), said.append)
        assert cfg == config.defaults() and keep == {}
        assert len(said) == 1 and why in said[0], said
    m = MemoryMedium(CFG_SIZE)
    ConfigStore(m).save({"site": {"phases": 1}})
    ConfigStore(m).save({"site": {"phases": 2}})
    m.write(40, b"rot")  # both copies damaged
    m.write(BlobStore.copy_size(1024) + 40, b"rot")
    said = []
    cfg, keep = ConfigStore(m).apply(config.defaults(), said.append)
    assert cfg == config.defaults() and keep == {} and "no valid copy" in said[0]
    cfg, keep = ConfigStore(m).apply(config.defaults())  # without a report hook: quiet, still no crash
    assert keep == {}


def test_config_store_cut_at_every_byte_of_a_save():
    m = MemoryMedium(CFG_SIZE)
    old = {"site": {"main_fuse_a": 20.0}}
    new = {"site": {"main_fuse_a": 25.0, "phases": 1}, "backup": {"enabled": False}}
    ConfigStore(m).save(old)
    image = m.image()
    total = CFG_SIZE  # erase and program one copy
    for n in range(0, total + 1):
        for tear in (False, True):
            dev = MemoryMedium(data=image)
            try:
                ConfigStore(CuttingMedium(dev, n, tear)).save(new)
                assert n == total
            except PowerCut:
                assert n < total
            got = ConfigStore(dev).load()
            assert got == old or got == new, (n, tear)
            if n == total:
                assert got == new
            cfg, keep = ConfigStore(dev).apply(config.defaults())
            assert keep == got
