"""Signed A/B updates: slot switching, rollback, refusal of bad images, and power cuts at
every stage (run under MicroPython and CPython).

The device is one medium: boot record (64 bytes) + slot 0 + slot 1, all behind one
CuttingMedium when a cut is simulated, so a cut hits whichever write comes next. After
every cut the device "resets": a fresh Updater on the surviving bytes runs select_boot(),
and the slot it picks must hold a valid image (a bootable unit), then a normal update
must still go through.
"""

import json
import os
import struct
import sys
from binascii import hexlify
from hashlib import sha256

from controller.update import ed25519
from controller.storage import CuttingMedium, MemoryMedium, Partition, PowerCut
from controller.update.image import HDR_LEN, ImageFS, parse_header, read_manifest, verify_image
from controller.update.slots import NONE, Updater, boot

SEED = bytes(range(32))
OTHER_SEED = bytes(range(100, 132))
BOOT = 64
SLOT = 1024
_cache = {}


def _pub():
    if "pub" not in _cache:
        _cache["pub"] = ed25519.public_key(SEED)
    return _cache["pub"]


def make_image(files, version, seed=SEED, target="v2xgw", sig=None):
    """An image built independently of tools/image.py, from the documented layout."""
    entries = []
    off = 0
    for path, data in files:
        entries.append({"path": path, "offset": off, "size": len(data),
                        "sha256": hexlify(sha256(data).digest()).decode()})
        off += len(data)
    man = {"format": 1, "software_version": version, "build_time": "2026-01-01T00:00:00Z",
           "target": target, "files": entries, "payload_size": off}
    mb = json.dumps(man).encode()
    hdr = struct.pack("<4sHHII", b"V2XI", 1, 1, len(mb), off)
    if sig is None:
        sig = ed25519.sign(seed, hdr + mb)
    return hdr + mb + b"".join(d for _, d in files) + sig


def _img(name):
    if name not in _cache:
        body = ("VERSION = %r\n" % name).encode() + b"# " + bytes(65 + (i * 7) % 26 for i in range(150)) + b"\n"
        _cache[name] = make_image([("app/__init__.py", b""), ("app/main.py", body)], name)
    return _cache[name]


def _device():
    return MemoryMedium(BOOT + 2 * SLOT)


def _updater(dev, max_attempts=2):
    return Updater(Partition(dev, 0, BOOT), (Partition(dev, BOOT, SLOT), Partition(dev, BOOT + SLOT, SLOT)),
                   public_key=_pub(), max_attempts=max_attempts)


def _download(u, img, block=100):
    if not u.begin(len(img)):
        return False, u.reason
    for off in range(0, len(img), block):
        assert u.write(off, img[off:off + block]), u.reason
    return u.finish()


def _reset(dev, max_attempts=2):
    """Power up: a new process, the boot selector picks a slot."""
    return _updater(dev, max_attempts).select_boot()


def _version(dev, slot):
    return read_manifest(_updater(dev).slots[slot])["software_version"]


def _bootable(dev, expect_versions=None):
    """The slot select_boot picks holds a valid image; returns (slot, version)."""
    u = _updater(dev)
    s = u.select_boot()
    assert s in (0, 1), s
    ok, man = verify_image(u.slots[s], None, _pub())
    assert ok, man
    if expect_versions is not None:
        assert man["software_version"] in expect_versions, man["software_version"]
    return s, man["software_version"]


def _installed(version="A"):
    """A unit running confirmed image `version` in slot 0."""
    dev = _device()
    assert _download(_updater(dev), _img(version)) == (True, "ok")
    assert _reset(dev) == 0
    assert _updater(dev).confirm()
    assert _updater(dev).status()["active"] == 0
    return dev


# --- the normal path ---------------------------------------------------------------------------

def test_image_layout_and_verifier_agree():
    img = _img("A")
    mlen, plen, total = parse_header(img[:HDR_LEN])
    assert total == len(img) and plen == len("VERSION = 'A'\n") + 2 + 150 + 1
    assert img[HDR_LEN:HDR_LEN + mlen].startswith(b"{")
    ok, man = verify_image(MemoryMedium(data=img), len(img), _pub())
    assert ok, man
    assert man["software_version"] == "A" and [f["path"] for f in man["files"]] == ["app/__init__.py", "app/main.py"]


def test_first_update_from_base_firmware_then_confirm():
    dev = _device()
    u = _updater(dev)
    assert u.status()["active"] == NONE and u.select_boot() == NONE  # no image yet: base firmware
    assert _download(u, _img("A")) == (True, "ok")
    st = _updater(dev).status()
    assert st["pending"] == 0 and st["active"] == NONE and st["result"] == "pending"
    assert _reset(dev) == 0
    u = _updater(dev)
    assert u.in_trial() and u.running() == 0
    assert u.confirm()
    st = _updater(dev).status()
    assert st["active"] == 0 and st["pending"] == NONE and st["result"] == "confirmed"
    before = dev.image()
    for _ in range(5):
        assert _reset(dev) == 0
    assert dev.image() == before  # a normal boot writes nothing


def test_slot_switching_a_b_a():
    dev = _installed("A")
    for version, slot in (("B", 1), ("C", 0), ("D", 1)):
        u = _updater(dev)
        assert u.target_slot() == slot
        assert _download(u, _img(version)) == (True, "ok")
        assert _reset(dev) == slot
        assert _updater(dev).confirm()
        assert _updater(dev).status()["active"] == slot
        assert _version(dev, slot) == version
        assert _reset(dev) == slot


def test_rollback_when_the_new_image_never_confirms():
    for attempts in (1, 2, 3):
        dev = _installed("A")
        assert _download(_updater(dev, attempts), _img("B")) == (True, "ok")
        for _ in range(attempts):  # each boot of the new image crashes before confirm()
            assert _reset(dev, attempts) == 1
        assert _reset(dev, attempts) == 0
        st = _updater(dev, attempts).status()
        assert st["active"] == 0 and st["pending"] == NONE and st["result"] == "rolled_back"
        assert _reset(dev, attempts) == 0
        # and the unit still takes an update afterwards
        assert _download(_updater(dev), _img("C")) == (True, "ok")
        assert _reset(dev) == 1 and _updater(dev).confirm() and _reset(dev) == 1


def test_failed_self_test_rejects_and_rolls_back_at_the_next_reset():
    dev = _installed("A")
    assert _download(_updater(dev), _img("B")) == (True, "ok")
    assert _reset(dev) == 1
    assert _updater(dev).reject()
    assert _updater(dev).status()["result"] == "rejected"
    assert _reset(dev) == 0
    assert not _updater(dev).reject()  # nothing on trial any more


def test_confirm_without_trial_is_harmless():
    dev = _installed("A")
    before = dev.image()
    assert _updater(dev).confirm()
    assert dev.image() == before


# --- refusals ------------------------------------------------------------------------------------

def _refused(dev, img, size=None, reason_prefix=None):
    u = _updater(dev)
    n = len(img) if size is None else size
    assert u.begin(n), u.reason
    for off in range(0, len(img), 100):
        assert u.write(off, img[off:off + 100]), u.reason
    ok, why = u.finish()
    assert not ok
    if reason_prefix is not None:
        assert why.startswith(reason_prefix), why
    st = _updater(dev).status()
    assert st["active"] == 0 and st["pending"] == NONE
    assert _reset(dev) == 0 and _version(dev, 0) == "A"
    return why


def test_tampered_images_are_refused_one_bit_anywhere():
    dev = _installed("A")
    img = _img("B")
    reasons = {}
    step = 3 if sys.implementation.name == "micropython" else 1
    for i in range(0, len(img), step):
        bad = bytearray(img)
        bad[i] ^= 1 << (i % 8)
        why = _refused(dev, bytes(bad))
        reasons[why.split(" ")[0]] = 1
    # header, manifest/signature and payload damage are all seen
    for r in ("signature", "hash"):
        assert r in reasons, reasons
    assert _download(_updater(dev), img) == (True, "ok")  # the genuine one still goes in


def test_truncated_unsigned_foreign_and_misdirected_images_are_refused():
    dev = _installed("A")
    img = _img("B")
    files = [("app/__init__.py", b""), ("app/main.py", b"X = 1\n")]
    _refused(dev, img[:-1], reason_prefix="truncated")
    _refused(dev, img[:-64], reason_prefix="truncated")  # the signature cut off
    _refused(dev, img[:HDR_LEN + 70], reason_prefix="truncated")
    _refused(dev, img + b"\x00", reason_prefix="size")
    _refused(dev, make_image(files, "U", sig=bytes(64)), reason_prefix="signature")  # unsigned
    _refused(dev, make_image(files, "F", seed=OTHER_SEED), reason_prefix="signature")  # another key
    _refused(dev, make_image(files, "T", target="other-board"), reason_prefix="target")
    _refused(dev, b"V2XJ" + img[4:], reason_prefix="magic")
    _refused(dev, img[:4] + b"\x02" + img[5:], reason_prefix="format")
    # the manifest is signed, its path rules still apply
    _refused(dev, make_image([("../boot.py", b"x")], "P"), reason_prefix="manifest path")
    # an image that is declared longer than what arrived
    u = _updater(dev)
    assert u.begin(len(img))
    assert u.write(0, img[:200])
    assert u.finish() == (False, "incomplete")
    assert _reset(dev) == 0


def test_download_protocol_errors():
    dev = _installed("A")
    u = _updater(dev)
    assert not u.write(0, b"x") and u.reason == "no download"
    assert u.finish() == (False, "no download")
    assert not u.begin(SLOT + 1) and u.reason == "size"
    assert not u.begin(10) and u.reason == "size"
    assert u.begin(300)
    assert u.write(0, b"a" * 100)
    assert not u.write(101, b"b") and u.reason == "sequence"
    assert u.write(0, b"a" * 100)  # a repeated block is fine
    assert u.write(100, b"b" * 100)
    assert not u.write(250, b"c" * 60) and u.reason == "sequence"
    assert not u.write(200, b"c" * 101) and u.reason == "overflow"
    # during a trial the confirmed image is off limits
    assert _download(_updater(dev), _img("B")) == (True, "ok")
    assert _reset(dev) == 1
    u = _updater(dev)
    assert not u.begin(len(_img("C"))) and u.reason == "unconfirmed image running"
    assert not u.erase() and u.reason == "unconfirmed image running"
    assert _version(dev, 0) == "A"


def test_new_download_over_a_pending_image_unmarks_it_first():
    dev = _installed("A")
    assert _download(_updater(dev), _img("B")) == (True, "ok")
    u = _updater(dev)
    assert u.status()["pending"] == 1
    assert u.begin(len(_img("C")))
    assert _updater(dev).status()["pending"] == NONE  # durable before any byte lands
    assert _reset(dev) == 0


def test_check_and_erase_hooks():
    dev = _installed("A")
    u = _updater(dev)
    assert u.check(0) == (True, "ok")
    assert u.check() == (False, "magic")  # slot 1 is empty
    assert _download(u, _img("B")) == (True, "ok")
    assert _updater(dev).check() == (True, "ok")
    assert _updater(dev).check(1) == (True, "ok")
    u = _updater(dev)
    assert u.erase()
    assert u.status()["pending"] == NONE
    assert u.check(1) == (False, "magic")
    assert u.check(7) == (False, "slot")
    assert _reset(dev) == 0


class _Metered:
    """A medium that counts the bytes erased and read since the last reset_count()."""

    def __init__(self, base):
        self.base = base
        self.size = base.size
        self.moved = 0

    def read(self, offset, n):
        self.moved += n
        return self.base.read(offset, n)

    def write(self, offset, data):
        self.base.write(offset, data)

    def erase(self, offset, n):
        self.moved += n
        self.base.erase(offset, n)

    def sync(self):
        pass


def _steps(gen, medium):
    """Run a stepped operation; (its result, number of steps, most bytes moved in one step)."""
    n = 0
    most = 0
    while True:
        medium.moved = 0
        try:
            next(gen)
        except StopIteration as e:
            return e.value, n + 1, max(most, medium.moved)
        n += 1
        most = max(most, medium.moved)


def test_erase_and_verify_run_in_bounded_steps():
    """The loop-friendly forms do the same work as the plain calls, a sector at a time."""
    from controller.update.image import STEP_BYTES

    size = 6 * STEP_BYTES
    boot_m = MemoryMedium(BOOT)
    slots = (_Metered(MemoryMedium(size)), _Metered(MemoryMedium(size)))
    u = Updater(boot_m, slots, public_key=_pub())
    ok, n, most = _steps(u.erase_steps(), slots[0])
    assert ok is True and n == 7 and most == STEP_BYTES  # 6 sectors, then the verdict
    body = bytes(i & 0xFF for i in range(3 * STEP_BYTES + 100))
    img = make_image([("app/main.py", body)], "S")
    assert u.begin(len(img))
    for off in range(0, len(img), 1000):
        assert u.write(off, img[off:off + 1000])
    r, n, most = _steps(u.finish_steps(), slots[0])
    assert r == (True, "ok")
    assert n >= 3 + 16 and most <= STEP_BYTES + 512  # every hash chunk and ladder slice is a step
    r, n2, _ = _steps(u.check_steps(0), slots[0])
    assert r == (True, "ok") and n2 == n
    bad = bytearray(img)
    bad[-70] ^= 1  # the last byte of the payload
    slots[1].base.write(0, bytes(bad))
    r, _, _ = _steps(u.check_steps(1), slots[1])
    assert r == (False, "hash app/main.py") and u.check(1) == r


def test_pending_image_damaged_after_finish_is_not_booted():
    dev = _installed("A")
    assert _download(_updater(dev), _img("B")) == (True, "ok")
    dev.write(BOOT + SLOT + len(_img("B")) - 100, b"\x00")  # a flipped flash cell in slot 1
    assert _reset(dev) == 0
    assert _updater(dev).status()["result"] == "refused_at_boot"


# --- power cuts ----------------------------------------------------------------------------------

def _cut_run(image, n, op, tear=False):
    """Run op(updater) on a copy of `image` with power cut after n bytes; returns the device."""
    dev = MemoryMedium(data=image)
    cut = CuttingMedium(dev, n, tear)
    u = Updater(Partition(cut, 0, BOOT), (Partition(cut, BOOT, SLOT), Partition(cut, BOOT + SLOT, SLOT)),
                public_key=_pub(), max_attempts=2)
    try:
        op(u)
    except PowerCut:
        pass
    return dev


def _bytes_of(image, op):
    dev = MemoryMedium(data=image)
    cut = CuttingMedium(dev)
    u = Updater(Partition(cut, 0, BOOT), (Partition(cut, BOOT, SLOT), Partition(cut, BOOT + SLOT, SLOT)),
                public_key=_pub(), max_attempts=2)
    op(u)
    return cut.written


def _still_updatable(dev):
    u = _updater(dev)
    if u.in_trial():
        assert u.confirm()
    s = _updater(dev).target_slot()
    assert _download(_updater(dev), _img("Z")) == (True, "ok")
    assert _reset(dev) == s and _updater(dev).confirm()
    assert _bootable(dev, ("Z",)) == (s, "Z")


def _full_update(img):
    def op(u):
        assert u.begin(len(img))
        for off in range(0, len(img), 64):
            assert u.write(off, img[off:off + 64])
        assert u.finish() == (True, "ok")
    return op


def test_cut_anywhere_during_download_and_finish_leaves_a_bootable_unit():
    image = _installed("A").image()
    img = _img("B")
    op = _full_update(img)
    total = _bytes_of(image, op)
    rec = 2 * (12 + 8 + 4)  # the commit: erase and write one boot-record copy
    assert total == HDR_LEN + len(img) + rec
    points = [n for n in range(total + 1) if n < HDR_LEN + 8 or n > total - rec - 4 or n % 17 == 0]
    got_new = 0
    for k in range(len(points)):
        n = points[k]
        dev = _cut_run(image, n, op, tear=(n % 2 == 1))
        s, v = _bootable(dev, ("A", "B"))
        if v == "B":
            got_new += 1
            assert n > total - rec  # only a complete commit record makes B pending
        elif n >= total:
            assert False, "finished update not pending"
        if k % 5 == 0 or n > total - rec - 2:
            _still_updatable(dev)
    assert got_new >= 1


def _every_byte_of(image, op, expect_versions, after=None):
    total = _bytes_of(image, op)
    assert 0 < total <= 64, total
    outcomes = {}
    for n in range(total + 1):
        for tear in (False, True):
            dev = _cut_run(image, n, op, tear)
            s, v = _bootable(dev, expect_versions)
            outcomes[v] = 1
            if after is not None:
                after(dev)
            if n == total and not tear:
                _still_updatable(dev)
    return outcomes


def test_cut_at_every_byte_of_the_trial_boot_record_write():
    dev = _installed("A")
    assert _download(_updater(dev), _img("B")) == (True, "ok")
    out = _every_byte_of(dev.image(), lambda u: u.select_boot(), ("A", "B"))
    assert out == {"B": 1}  # the attempt is counted or not: B boots either way


def test_cut_at_every_byte_of_confirm():
    dev = _installed("A")
    assert _download(_updater(dev), _img("B")) == (True, "ok")
    assert _reset(dev) == 1

    def after(d):
        st = _updater(d).status()
        assert st["active"] == 1 or (st["active"] == 0 and st["pending"] == 1)

    out = _every_byte_of(dev.image(), lambda u: u.confirm(), ("B",), after)
    assert out == {"B": 1}


def test_cut_at_every_byte_of_the_rollback_write():
    dev = _installed("A")
    assert _download(_updater(dev), _img("B")) == (True, "ok")
    assert _reset(dev) == 1 and _reset(dev) == 1  # two failed trial boots (max_attempts=2)
    out = _every_byte_of(dev.image(), lambda u: u.select_boot(), ("A",))
    assert out == {"A": 1}


def test_cut_at_every_byte_of_reject():
    dev = _installed("A")
    assert _download(_updater(dev), _img("B")) == (True, "ok")
    assert _reset(dev) == 1
    # reject() cut or not: B has one attempt left, then A
    out = _every_byte_of(dev.image(), lambda u: u.reject(), ("A", "B"))
    assert "A" in out


def test_cut_at_every_byte_of_begin_over_a_pending_image():
    dev = _installed("A")
    assert _download(_updater(dev), _img("B")) == (True, "ok")
    out = _every_byte_of(dev.image(), lambda u: u.begin(len(_img("C"))), ("A", "B"))
    assert out == {"A": 1, "B": 1}


def test_cut_during_erase_and_first_update_from_base_firmware():
    dev = _installed("A")
    assert _download(_updater(dev), _img("B")) == (True, "ok")
    image = dev.image()
    total = _bytes_of(image, lambda u: u.erase())
    for n in list(range(0, 40)) + list(range(40, total + 1, 37)):
        d = _cut_run(image, n, lambda u: u.erase())
        _bootable(d, ("A", "B"))
        if n % 4 == 0:
            _still_updatable(d)
    # no image yet: a cut anywhere leaves the base firmware or the new image pending
    empty = _device().image()
    img = _img("A")
    op = _full_update(img)
    total = _bytes_of(empty, op)
    for n in range(0, total + 1, 11):
        d = _cut_run(empty, n, op)
        s = _reset(d)
        assert s == NONE or (s == 0 and _version(d, 0) == "A")


# --- running an image -------------------------------------------------------------------------

def test_image_fs_serves_the_files():
    dev = _installed("A")
    fs = ImageFS(_updater(dev).slots[0])
    assert fs.stat("/app")[0] == 0x4000
    assert fs.stat("/app/main.py")[6] == len(("VERSION = 'A'\n").encode()) + 2 + 150 + 1
    names = sorted(e[0] for e in fs.ilistdir("/app"))
    assert names == ["__init__.py", "main.py"]
    assert [e[0] for e in fs.ilistdir("/")] == ["app"]
    f = fs.open("/app/main.py", "rb")
    assert f.read(14) == b"VERSION = 'A'\n"
    buf = bytearray(4)
    assert f.readinto(buf) == 4 and bytes(buf) == b"# AH"
    for bad in (("/nope.py", "rb"), ("/app/main.py", "wb")):
        try:
            fs.open(bad[0], bad[1])
            assert False
        except OSError:
            pass


def test_boot_mounts_the_slot_and_imports_from_it():
    if not hasattr(os, "mount"):  # CPython has no VFS mounting: MicroPython only
        return
    dev = _device()
    files = [("v2xslotpkg/__init__.py", b"WHERE = 'slot'\n"), ("v2xslotpkg/mod.py", b"def f():\n    return 42\n")]
    img = make_image(files, "M")
    assert _download(_updater(dev), img) == (True, "ok")
    mp = "/v2xslot_test"
    slot = boot(_updater(dev), mp, package="v2xslotpkg")
    try:
        assert slot == 0
        import v2xslotpkg.mod

        assert v2xslotpkg.mod.f() == 42
        assert sys.modules["v2xslotpkg"].WHERE == "slot"
    finally:
        os.umount(mp)
        sys.path.remove(mp)
        for k in ("v2xslotpkg", "v2xslotpkg.mod"):
            if k in sys.modules:
                del sys.modules[k]
    assert _updater(dev).confirm() and _reset(dev) == 0
