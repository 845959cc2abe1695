"""The boot flow: the slot is selected once per reset, the application learns the decision
without counting again, and a trial image is confirmed only after its self-test, or rolled
back by the attempts counter (run under MicroPython and CPython).

The end-to-end runs (the real firmware booted from a slot by board/boot.py and main.py and
by `micropython -m controller.main`, restarted like a supervisor does) are in
tests/test_boot_flow.py.
"""

import os
import sys
from hashlib import sha256

from controller import config
from controller.control.gateway import Gateway
from controller.storage import FileMedium, MemoryMedium, Partition
from controller.update import launch
from controller.update.imagefs import ImageFS, SlotFile
from controller.update.selftest import FAILED, PASSED, RUNNING, SelfTest
from controller.update.slots import NONE, Updater
from sitebus import Site
from test_update import BOOT, SLOT, _download, _img, _installed, _pub, make_image

PERIOD = 10000  # us: the default control period


def _updater(dev, max_attempts=3):
    return Updater(Partition(dev, 0, BOOT), (Partition(dev, BOOT, SLOT), Partition(dev, BOOT + SLOT, SLOT)),
                   public_key=_pub(), max_attempts=max_attempts)


def _pending(version="B", max_attempts=3):
    """A unit running image A (slot 0, confirmed) with image `version` pending in slot 1."""
    dev = _installed("A")
    assert _download(_updater(dev, max_attempts), _img(version)) == (True, "ok")
    return dev


# --- the decision, learnt without counting ----------------------------------------------------

def test_running_is_the_slot_select_boot_returned_and_reads_nothing_back_into_the_record():
    cases = []
    dev = MemoryMedium(BOOT + 2 * SLOT)  # a new unit: no record
    cases.append(dev)
    cases.append(_installed("A"))  # a normal boot of a confirmed image
    cases.append(_pending())  # a trial boot
    dev = _pending(max_attempts=1)
    assert _updater(dev, 1).select_boot() == 1  # its only trial: the next boot rolls back
    cases.append(dev)
    dev = _pending()
    dev.write(BOOT + SLOT + 200, b"rot")  # the pending image went bad after finish()
    cases.append(dev)
    for dev in cases:
        n = 1 if dev is cases[3] else 3
        slot = _updater(dev, n).select_boot()
        after = dev.image()
        u = _updater(dev, n)
        assert u.running() == slot
        assert dev.image() == after  # learning the decision writes nothing


def test_one_trial_boot_is_one_attempt():
    dev = _pending()
    assert _updater(dev).select_boot() == 1
    st = _updater(dev).status()
    assert st["attempts"] == 1 and st["running"] == 1
    # the application side: status, running(), in_trial() and the self-test's set-up count nothing
    u = _updater(dev)
    assert u.in_trial() and u.running() == 1
    assert launch.start_selftest(u, _gw()[0], 1, 0) is not None
    assert _updater(dev).status()["attempts"] == 1


# --- the self-test ----------------------------------------------------------------------------

def _gw():
    site = Site()
    return Gateway(config.defaults(), site.gw_port), site


def _run(gw, site, test, t, periods, **send):
    """Run the loop for `periods` periods with the site sending; the self-test ticks after each."""
    state = RUNNING
    for _ in range(periods):
        site.send_all(**send)
        gw.poll(t)
        gw.tick(t)
        state = test.tick(t)
        t += PERIOD
    return state, t


def test_a_good_image_is_confirmed_once_after_its_self_test():
    dev = _pending()
    assert _updater(dev).select_boot() == 1
    u = _updater(dev)
    gw, site = _gw()
    test = launch.start_selftest(u, gw, 1, 0)
    state, t = _run(gw, site, test, 0, test.periods - 1)
    assert state == RUNNING and u.in_trial()  # not before PERIODS control periods
    before = dev.image()
    state, t = _run(gw, site, test, t, 1)
    assert state == PASSED and not u.in_trial()
    after = dev.image()
    assert after != before  # the confirmation, the one write
    state, t = _run(gw, site, test, t, 50)
    assert state == PASSED and dev.image() == after  # and nothing more
    st = _updater(dev).status()
    assert st["active"] == 1 and st["pending"] == NONE and st["result"] == "confirmed"
    for _ in range(3):  # later boots run it as the confirmed image, no self-test
        assert _updater(dev).select_boot() == 1
        assert launch.start_selftest(_updater(dev), gw, 1, 0) is None
    assert dev.image() == after


def test_the_self_test_needs_the_meter_the_inverter_and_the_relay():
    for missing in ("meter", "inverter", "relay"):
        dev = _pending()
        assert _updater(dev).select_boot() == 1
        u = _updater(dev)
        gw, site = _gw()
        test = SelfTest(u, gw, 0, periods=20, deadline_s=1)
        state, t = _run(gw, site, test, 0, 100, **{missing: False})  # 0 .. 0.99 s
        assert state == RUNNING and u.in_trial()
        state, t = _run(gw, site, test, t, 1, **{missing: False})  # 1 s: the deadline
        assert state == FAILED and missing in test.why, test.why
        assert _updater(dev).in_trial()  # not confirmed, not rejected: the counter decides


def test_the_self_test_needs_the_loop_to_run_its_periods():
    dev = _pending()
    assert _updater(dev).select_boot() == 1
    gw, site = _gw()
    test = SelfTest(_updater(dev), gw, 0, periods=50, deadline_s=1)
    site.send_all()
    gw.poll(0)
    for t in (200000, 600000, 999999):  # the loop stalled: a few periods in a second
        assert test.tick(t) == RUNNING
    assert test.tick(1000000) == FAILED and "4 of 50 control periods" in test.why, test.why
    assert _updater(dev).in_trial()


def _boot_and_run(dev, passes, max_attempts=3):
    """One power-up: select the slot, run the application's self-test to its end.
    Returns (slot, state or None when no self-test ran)."""
    slot = _updater(dev, max_attempts).select_boot()
    u = _updater(dev, max_attempts)
    gw, site = _gw()
    test = launch.start_selftest(u, gw, slot, 0, 1)
    if test is None:
        return slot, None
    test.periods = 20
    state, t = _run(gw, site, test, 0, 150, inverter=passes)
    return slot, state


def test_a_trial_image_that_never_passes_is_rolled_back_after_max_attempts_restarts():
    for n in (1, 2, 3):
        dev = _pending(max_attempts=n)
        for attempt in range(n):
            slot, state = _boot_and_run(dev, False, n)
            assert (slot, state) == (1, FAILED)  # the new image ran, failed, asked for a restart
            assert _updater(dev, n).status()["attempts"] == attempt + 1
        slot, state = _boot_and_run(dev, False, n)
        assert (slot, state) == (0, None)  # back on the previous image, no self-test
        st = _updater(dev, n).status()
        assert st["active"] == 0 and st["pending"] == NONE and st["result"] == "rolled_back"


def test_a_crash_before_the_self_test_counts_like_a_failure():
    dev = _pending()
    for _ in range(3):
        assert _updater(dev).select_boot() == 1  # ... and the new firmware dies before confirming
    slot, state = _boot_and_run(dev, True)
    assert (slot, state) == (0, None)


def test_a_trial_image_that_passes_on_its_second_boot_is_confirmed():
    dev = _pending()
    assert _boot_and_run(dev, False) == (1, FAILED)
    assert _boot_and_run(dev, True) == (1, PASSED)
    assert _boot_and_run(dev, True) == (1, None)
    assert _updater(dev).status()["active"] == 1


def test_no_self_test_where_the_code_does_not_run_from_the_trial_slot():
    dev = _pending()
    u = _updater(dev)
    gw, _ = _gw()
    assert launch.start_selftest(u, gw, 1, 0) is None  # not selected yet (attempts 0)
    assert _updater(dev).select_boot() == 1
    u = _updater(dev)
    assert launch.start_selftest(u, gw, NONE, 0) is None  # the base firmware runs (mount failed)
    assert launch.start_selftest(u, gw, None, 0) is None  # not started through the selector (CPython)
    assert launch.start_selftest(u, gw, 0, 0) is None
    assert launch.start_selftest(None, gw, 1, 0) is None
    assert launch.start_selftest(u, gw, 1, 0) is not None


# --- launch: files, options, the selector on a real mount ----------------------------------------

def _tmpdir(name):
    d = (os.getenv("TMPDIR") or "/tmp") + "/" + name
    try:
        os.mkdir(d)
    except OSError:
        pass
    for f in os.listdir(d):
        os.remove(d + "/" + f)
    return d


def test_read_args_and_option():
    d = _tmpdir("v2xgw_test_args")
    path = d + "/v2xgw.args"
    with open(path, "w") as f:
        f.write("# the options of controller.main\n--interface machine --channel 1\n  --data /flash/data\n\n"
                "# --data /not/this\n--serial GW-1\n")
    argv = launch.read_args(path)
    assert argv == ["--interface", "machine", "--channel", "1", "--data", "/flash/data", "--serial", "GW-1"]
    assert launch.option(argv, "--data", ".") == "/flash/data"
    assert launch.option(argv, "--secret", None) is None
    assert launch.option(["--data", "a", "--data", "b"], "--data", ".") == "b"
    assert launch.read_args(d + "/missing.args") == []
    assert launch.data_dir(".") == "./" and launch.data_dir("/") == "/" and launch.data_dir("/d/") == "/d/"


def test_boot_slot_selects_once_and_mounts_or_leaves_the_record_alone():
    d = _tmpdir("v2xgw_test_boot_slot")
    said = []
    assert launch.boot_slot(d, said.append) == NONE  # no boot record: never updated, nothing written
    assert os.listdir(d) == [] and said == []
    # signed with the development key: what a firmware without a generated trusted_key trusts
    dev_seed = sha256(b"v2xgw development signing key - not for production").digest()
    img = make_image([("v2xbootpkg/__init__.py", b"WHERE = 'slot'\n")], "9.1", seed=dev_seed)
    assert _download(launch.open_updater(d), img) == (True, "ok")
    f = SlotFile(d + "/" + launch.SLOT_FILES[0])  # what the boot selector mounts: the slot file alone
    fs = ImageFS(f)
    assert fs.stat("/v2xbootpkg/__init__.py")[6] == len(b"WHERE = 'slot'\n")
    assert fs.open("/v2xbootpkg/__init__.py", "rb").read() == b"WHERE = 'slot'\n"
    f.close()
    try:
        ImageFS(SlotFile(d + "/" + launch.SLOT_FILES[1]))  # erased: no image
        assert False
    except OSError:
        pass
    record = FileMedium(d + "/" + launch.BOOT_FILE, launch.BOOT_SIZE)
    before = record.read(0, 64)
    record.close()
    if not hasattr(os, "mount"):  # CPython: cannot run a slot image; the record stays as it is
        assert launch.boot_slot(d, said.append) is None
        record = FileMedium(d + "/" + launch.BOOT_FILE, launch.BOOT_SIZE)
        assert record.read(0, 64) == before
        assert "cannot run slot images" in said[0] and "pending slot 0" in said[0]
        return
    mp = "/v2xboot_test"
    slot = launch.boot_slot(d, said.append, mp, "v2xbootpkg")
    try:
        assert slot == 0, said
        import v2xbootpkg

        assert v2xbootpkg.WHERE == "slot"
        assert said == ["boot: slot 0, version 9.1, trial 1 of 3 (confirmed after its self-test)"]
        st = launch.open_updater(d).status()
        assert st["attempts"] == 1 and st["running"] == 0  # counted once
    finally:
        os.umount(mp)
        sys.path.remove(mp)
        del sys.modules["v2xbootpkg"]
