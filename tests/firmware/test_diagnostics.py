"""Diagnostics beside the control loop: the fault memory is saved a bounded piece per poll,
a change during a save is saved by the next one, and a power cut at any byte leaves the
previous or the new fault memory (run under MicroPython and CPython)."""

from controller import config
from controller.control.gateway import Gateway
from controller.diag import dtc
from controller.diag.diagnostics import SAVE_STEP_BYTES, Diagnostics
import os

from controller.diag import uds
from controller.storage import BlobStore, ConfigStore, CuttingMedium, FileMedium, MemoryMedium, PowerCut
from sitebus import Site

SNAP = (230.0, 50.0, 60.0, 1000, -2000)
IDENTITY = {"serial": "T", "sw_version": "t", "system_name": "t"}
SECRET = b"\x11" * 32
CODES = list(dtc.SUPPORTED)


def _gw():
    return Gateway(config.defaults(), Site().gw_port)


def _diag(gw, store, now=0):
    del gw.taps[:]
    del gw.listeners[:]
    return Diagnostics(gw, IDENTITY, SECRET, now, dtc_store=store)


def _settle(d, now=0, limit=1000):
    """Poll until no save is pending; the number of polls that had work."""
    n = 0
    while d.dtcs.changed or d._saving is not None:
        d.poll(now)
        n += 1
        assert n < limit
    return n


def test_a_full_fault_memory_is_saved_a_bounded_piece_per_poll():
    gw = _gw()
    medium = CuttingMedium(MemoryMedium(8192))  # no cut: counts the bytes that go to the medium
    d = _diag(gw, BlobStore(medium, 4000))
    _settle(d)
    for i in range(dtc.CAPACITY):
        d.dtcs.record(CODES[i], SNAP, i)
    expect = d.dtcs.to_bytes()
    polls = 0
    while d.dtcs.changed or d._saving is not None:
        before = medium.written
        d.poll(1000)
        assert medium.written - before <= SAVE_STEP_BYTES  # erase or program: one piece per poll
        polls += 1
    copy = BlobStore.copy_size(4000)
    assert polls >= 2 * copy // SAVE_STEP_BYTES  # the 8 KB of erase and program took many polls
    assert BlobStore(medium.inner, 4000).load() == expect
    assert dtc.DtcMemory.from_bytes(expect).by_mask(0xFF) == d.dtcs.by_mask(0xFF)


def test_a_change_during_a_save_is_saved_by_the_save_that_follows():
    gw = _gw()
    medium = MemoryMedium(8192)
    d = _diag(gw, BlobStore(medium, 4000))
    _settle(d)
    d.dtcs.record(dtc.COMM_METER, SNAP, 10)
    for _ in range(5):
        d.poll(20)  # the save of COMM_METER is under way
    assert d._saving is not None
    d.dtcs.record(dtc.TRIP_ROCOF, SNAP, 30)  # changes while it runs
    d.dtcs.passed(dtc.COMM_METER)
    final = d.dtcs.to_bytes()
    _settle(d, 40)
    assert BlobStore(medium, 4000).load() == final
    # and after a restart the memory holds both changes
    again = _diag(gw, BlobStore(medium, 4000))
    assert again.dtcs.status(dtc.TRIP_ROCOF) & dtc.CDTC
    assert again.dtcs.status(dtc.COMM_METER) & dtc.CDTC and not again.dtcs.status(dtc.COMM_METER) & dtc.TF


def test_a_change_every_poll_does_not_starve_the_save():
    gw = _gw()
    medium = MemoryMedium(8192)
    d = _diag(gw, BlobStore(medium, 4000))
    _settle(d)
    for i in range(200):  # a refused frame every poll: the memory changes all the time
        d.dtcs.record(dtc.FRAME_CRC, SNAP, i)
        d.poll(i)
    stored = dtc.DtcMemory.from_bytes(BlobStore(medium, 4000).load())
    assert stored.corrupt == 0 and stored.occurrences(dtc.FRAME_CRC) >= 100  # saves kept landing


def test_power_cut_at_every_byte_of_a_save_leaves_the_old_or_the_new_fault_memory():
    gw = _gw()
    max_len = 160
    base = MemoryMedium(2 * BlobStore.copy_size(max_len))
    d = _diag(gw, BlobStore(base, max_len))
    d.dtcs.record(dtc.COMM_METER, SNAP, 1)
    _settle(d)
    old = BlobStore(base, max_len).load()
    image = base.image()
    total = 2 * BlobStore.copy_size(max_len)  # erase and program one copy
    news = {}
    for n in range(total + 1):
        for tear in (False, True):
            dev = MemoryMedium(data=image)
            d = _diag(gw, BlobStore(CuttingMedium(dev, n, tear), max_len), now=5)
            d.dtcs.record(dtc.TRIP_UNDERVOLTAGE, SNAP, 7)  # a trip in the new operation cycle
            new = d.dtcs.to_bytes()
            try:
                _settle(d, 9)
                assert n == total
            except PowerCut:
                assert n < total
            got = BlobStore(dev, max_len).load()
            assert got == old or got == new, (n, tear)
            news[got == new] = 1
    assert len(news) == 2  # both outcomes occur


class _FailingStore:
    """A store whose medium fails the first `fail` saves at their third step."""

    def __init__(self, fail):
        self.fail = fail
        self.saved = []

    def load(self):
        return None

    def save_steps(self, data, step):
        for i in range(4):
            if i == 2 and self.fail > 0:
                self.fail -= 1
                raise OSError(5)
            yield
        self.saved.append(data)
        return len(self.saved)


def test_a_failing_store_is_counted_and_the_save_retried():
    gw = _gw()
    store = _FailingStore(2)
    d = _diag(gw, store)
    d.dtcs.record(dtc.RELAY_FAULT, SNAP, 1)
    _settle(d)
    assert d.save_errors == 2 and len(store.saved) == 1
    assert dtc.DtcMemory.from_bytes(store.saved[0]).status(dtc.RELAY_FAULT) & dtc.CDTC


def test_flush_finishes_the_save_in_progress_and_a_pending_change():
    gw = _gw()
    medium = MemoryMedium(8192)
    d = _diag(gw, BlobStore(medium, 4000))
    _settle(d)
    d.dtcs.record(dtc.COMM_RELAY, SNAP, 1)
    d.poll(2)
    d.poll(2)
    d.dtcs.record(dtc.COMM_EV, SNAP, 3)
    d.flush()
    assert d._saving is None and not d.dtcs.changed
    stored = dtc.DtcMemory.from_bytes(BlobStore(medium, 4000).load())
    assert stored.status(dtc.COMM_RELAY) and stored.status(dtc.COMM_EV)
    store = _FailingStore(1000)
    d = _diag(gw, store)
    d.dtcs.record(dtc.COMM_EV, SNAP, 3)
    d.flush()  # a medium that keeps failing: flush gives up after a few tries
    assert d.save_errors == 3 and store.saved == []


def test_a_store_without_steps_is_saved_in_one_go():
    class Plain:
        def __init__(self):
            self.saved = []

        def load(self):
            return None

        def save(self, data):
            self.saved.append(data)

    gw = _gw()
    store = Plain()
    d = _diag(gw, store)
    d.poll(0)
    assert len(store.saved) == 1 and not d.dtcs.changed


# --- configuration written over UDS persists ---------------------------------------------------

def _tmp(name):
    return (os.getenv("TMPDIR") or "/tmp") + "/" + name


def _ask(d, req, now):
    return d.uds.handle(req, now)


def _unlocked(d, now):
    assert _ask(d, b"\x10\x03", now)[:2] == b"\x50\x03"
    seed = _ask(d, b"\x27\x01", now)[2:]
    assert _ask(d, b"\x27\x02" + uds.security_key(SECRET, seed, 1), now) == b"\x67\x02"


def test_configuration_written_over_uds_is_in_force_after_a_restart():
    path = _tmp("v2xgw_test_config_store.bin")
    try:
        os.remove(path)
    except OSError:
        pass
    size = 2 * BlobStore.copy_size(1024)
    file_cfg = config.validate({"site": {"main_fuse_a": 63.0}})  # what --config says
    try:
        for boot in range(3):
            store = ConfigStore(FileMedium(path, size))  # a restart: new objects on the same file
            said = []
            cfg, overrides = store.apply(file_cfg, said.append)
            assert said == []
            gw = Gateway(cfg, Site().gw_port)
            d = Diagnostics(gw, IDENTITY, SECRET, 0, config_store=store, config_overrides=overrides)
            now = uds.SECURITY_DELAY_US
            if boot == 0:
                assert gw.cfg["site"]["main_fuse_a"] == 63.0
                _unlocked(d, now)
                assert _ask(d, b"\x2e\xd1\x00\x00\xc8", now) == b"\x6e\xd1\x00"  # main fuse 20.0 A
            elif boot == 1:
                assert gw.cfg["site"]["main_fuse_a"] == 20.0  # in force after the restart
                assert _ask(d, b"\x22\xd1\x00", now) == b"\x62\xd1\x00\x00\xc8"
                _unlocked(d, now)
                assert _ask(d, b"\x2e\xd1\x08\x00", now) == b"\x6e\xd1\x08"  # backup off
            else:
                assert gw.cfg["site"]["main_fuse_a"] == 20.0 and gw.cfg["backup"]["enabled"] is False
                assert overrides == {"site": {"main_fuse_a": 20.0}, "backup": {"enabled": False}}
    finally:
        os.remove(path)
