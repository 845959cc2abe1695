"""Signed update images in A/B slots with a power-loss-safe boot record and rollback.

Image layout (little-endian; docs/storage-and-update.md has the full description):
    header   16 bytes  "<4sHHII": magic b"V2XI", format 1, signature scheme 1 (Ed25519),
                       manifest length M, payload length N
    manifest M bytes   UTF-8 JSON: format, software_version, build_time, target, mpy,
                       files [{path, offset, size, sha256}], payload_size
    payload  N bytes   the file blobs, back to back, in manifest order
    signature 64 bytes Ed25519 over header + manifest (the manifest's SHA-256 per file
                       binds the payload)

Boot record (a storage.TwoSlot, so every write is old-or-new under a power cut):
    active   slot of the confirmed image (0, 1, or NONE = the base firmware)
    pending  slot of a verified image awaiting its trial boots, or NONE
    attempts trial boots of the pending image so far
    result   what happened last (R_* below)

Sequence: begin(size) -> write(offset, data)... -> finish() verifies and marks the slot
pending -> reset -> select_boot() counts an attempt and boots the pending slot ->
the new firmware passes its self-test and calls confirm() (it becomes active), or it
does not within `max_attempts` boots and select_boot() rolls back to the active slot.
The active image is never written while it is the only confirmed one, and the boot
record is the only commit point, so a cut at any moment leaves a bootable unit.
"""

import json
import struct
from binascii import hexlify, unhexlify
from hashlib import sha256

from controller import ed25519
from controller.steps import run_to_end
from controller.storage import TwoSlot

IMG_MAGIC = b"V2XI"
IMG_FORMAT = 1
SCHEME_ED25519 = 1
HDR_FMT = "<4sHHII"
HDR_LEN = 16
SIG_LEN = 64
MAX_MANIFEST = 65536

# The development key pair: the seed is SHA-256 of
# b"v2xgw development signing key - not for production" (tools/image.py DEV_SEED).
# A production build replaces this constant with its own public key (tools/image.py keygen).
PUBLIC_KEY = unhexlify("4d152ea717ac500b54cd0e6892e1a4fd7fc712d0dab57d6e0b4fff554faa251b")
TARGET = "v2xgw"

NONE = 0xFF
R_NONE, R_PENDING, R_CONFIRMED, R_ROLLED_BACK, R_REFUSED_AT_BOOT, R_REJECTED = 0, 1, 2, 3, 4, 5
RESULT_NAMES = ("none", "pending", "confirmed", "rolled_back", "refused_at_boot", "rejected")
BOOT_FMT = "<BBBBI"  # active, pending, attempts, result, reserved
BOOT_LEN = 8
_CHUNK = 512
STEP_BYTES = 4096  # bytes hashed or erased per step of the *_steps generators (one flash sector)
_PATH_OK = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./"


def parse_header(h):
    """(manifest length, payload length, total image size) or a reason string."""
    if len(h) < HDR_LEN:
        return "truncated"
    magic, fmt, scheme, mlen, plen = struct.unpack(HDR_FMT, h[:HDR_LEN])
    if magic != IMG_MAGIC:
        return "magic"
    if fmt != IMG_FORMAT:
        return "format"
    if scheme != SCHEME_ED25519:
        return "scheme"
    if mlen == 0 or mlen > MAX_MANIFEST:
        return "manifest size"
    return mlen, plen, HDR_LEN + mlen + plen + SIG_LEN


def _good_path(p):
    if not p or p[0] == "/" or len(p) > 120:
        return False
    for c in p:
        if c not in _PATH_OK:
            return False
    for part in p.split("/"):
        if part in ("", ".", ".."):
            return False
    return True


def check_manifest(man, plen, target):
    """'ok' or the reason the (already authenticated) manifest is unacceptable."""
    if not isinstance(man, dict) or man.get("format") != IMG_FORMAT:
        return "manifest format"
    if man.get("target") != target:
        return "target"
    if man.get("payload_size") != plen:
        return "manifest size"
    files = man.get("files")
    if not isinstance(files, list) or not files:
        return "manifest files"
    off = 0
    seen = {}
    for f in files:
        if not isinstance(f, dict):
            return "manifest files"
        path = f.get("path")
        size = f.get("size")
        digest = f.get("sha256")
        if not isinstance(path, str) or not _good_path(path) or path in seen:
            return "manifest path"
        if f.get("offset") != off or not isinstance(size, int) or size < 0:
            return "manifest layout"
        if not isinstance(digest, str) or len(digest) != 64:
            return "manifest hash"
        seen[path] = 1
        off += size
    if off != plen:
        return "manifest layout"
    mpy = man.get("mpy")
    if mpy is not None:
        try:
            import sys

            have = sys.implementation._mpy & 0xFF
        except AttributeError:  # not MicroPython: nothing to compare with
            have = None
        if have is not None and str(mpy).split(".")[0] != str(have):
            return "mpy version"
    return "ok"


def verify_image(medium, size=None, public_key=PUBLIC_KEY, target=TARGET):
    """Verify the image at the start of `medium`: (True, manifest) or (False, reason).

    `size` is the number of bytes downloaded (None: take it from the header). Order:
    header, signature over header + manifest, manifest fields, then every file's
    SHA-256 -- untrusted JSON is parsed only after the signature checked out."""
    return run_to_end(verify_image_steps(medium, size, public_key, target))


def verify_image_steps(medium, size=None, public_key=PUBLIC_KEY, target=TARGET):
    """verify_image() in bounded steps (controller.steps): one hash chunk or a slice of
    the signature check per step; the generator returns (ok, manifest or reason)."""
    if size is not None and size < HDR_LEN + SIG_LEN:
        return False, "truncated"
    hdr = parse_header(medium.read(0, HDR_LEN) if medium.size >= HDR_LEN else b"")
    if isinstance(hdr, str):
        return False, hdr
    mlen, plen, total = hdr
    if size is None:
        size = total
    if total > size or total > medium.size:
        return False, "truncated"
    if total < size:
        return False, "size"
    signed = medium.read(0, HDR_LEN + mlen)
    sig = medium.read(HDR_LEN + mlen + plen, SIG_LEN)
    ok = yield from ed25519.verify_steps(public_key, signed, sig)
    if not ok:
        return False, "signature"
    try:
        man = json.loads(signed[HDR_LEN:])
    except ValueError:
        return False, "manifest json"
    why = check_manifest(man, plen, target)
    if why != "ok":
        return False, why
    base = HDR_LEN + mlen
    done = 0
    for f in man["files"]:
        h = sha256()
        pos = base + f["offset"]
        left = f["size"]
        while left > 0:
            n = left if left < _CHUNK else _CHUNK
            h.update(medium.read(pos, n))
            pos += n
            left -= n
            done += n
            if done >= STEP_BYTES:
                done = 0
                yield
        if hexlify(h.digest()).decode() != f["sha256"]:
            return False, "hash " + f["path"]
    return True, man


def read_manifest(medium):
    """The manifest of the image in `medium`, unverified (for diagnostics), or None."""
    hdr = parse_header(medium.read(0, HDR_LEN))
    if isinstance(hdr, str) or hdr[2] > medium.size:
        return None
    try:
        return json.loads(medium.read(HDR_LEN, hdr[0]))
    except ValueError:
        return None


class Updater:
    """A/B update slots. `boot_medium` holds the boot record (two copies at `boot_offset`,
    `boot_stride` apart); `slots` are two media, one image each.

    UDS hooks: begin(size) -> bool, write(offset, data) -> bool, erase() -> bool (on
    False, `reason` says why); finish() and check() -> (bool, reason). Boot side:
    select_boot() -> slot to run (0, 1 or NONE = base firmware), confirm(), reject()."""

    __slots__ = ("slots", "public_key", "target", "max_attempts", "reason", "_rec", "_active",
                 "_pending", "_attempts", "_result", "_dl_slot", "_dl_size", "_dl_have")

    def __init__(self, boot_medium, slots, public_key=PUBLIC_KEY, target=TARGET, max_attempts=3,
                 boot_offset=0, boot_stride=None):
        if len(slots) != 2:
            raise ValueError("two slots")
        if not 1 <= max_attempts <= 250:
            raise ValueError("max_attempts 1..250")
        self.slots = slots
        self.public_key = public_key
        self.target = target
        self.max_attempts = max_attempts
        self.reason = ""
        self._rec = TwoSlot(boot_medium, BOOT_LEN, boot_offset, boot_stride)
        self._dl_slot = None
        self._dl_size = 0
        self._dl_have = 0
        self._load()

    # --- boot record ---------------------------------------------------------------------
    def _load(self):
        raw = self._rec.load()
        if raw is None:
            self._active, self._pending, self._attempts, self._result = NONE, NONE, 0, R_NONE
            return
        a, p, n, r, _ = struct.unpack(BOOT_FMT, raw)
        if a not in (0, 1, NONE):
            a = NONE
        if p not in (0, 1) or p == a:
            p = NONE
        self._active, self._pending, self._attempts, self._result = a, p, n, r

    def _save(self, active, pending, attempts, result):
        self._rec.store(struct.pack(BOOT_FMT, active, pending, attempts, result, 0))
        self._active, self._pending, self._attempts, self._result = active, pending, attempts, result

    def running(self):
        """The slot the boot selector chose for this boot (from the record alone)."""
        if self._pending != NONE and self._attempts > 0:
            return self._pending
        return self._active

    def in_trial(self):
        return self._pending != NONE and self._attempts > 0

    def target_slot(self):
        """The slot a download goes to: never the running or the confirmed one."""
        return 1 if self._active == 0 else 0

    def status(self):
        return {"active": self._active, "pending": self._pending, "attempts": self._attempts,
                "max_attempts": self.max_attempts, "running": self.running(),
                "result": RESULT_NAMES[self._result] if self._result < len(RESULT_NAMES) else self._result,
                "downloading": self._dl_slot is not None}

    def _refuse(self, why):
        self.reason = why
        return False

    def _release(self, slot):
        """Before touching `slot`, make sure the boot record no longer points at it."""
        if self._pending == slot:
            self._save(self._active, NONE, 0, R_NONE)

    # --- download (UDS RequestDownload / TransferData / RequestTransferExit) -----------------
    def begin(self, size):
        if self.in_trial():
            return self._refuse("unconfirmed image running")
        slot = self.target_slot()
        m = self.slots[slot]
        if size < HDR_LEN + SIG_LEN + 2 or size > m.size:
            return self._refuse("size")
        self._release(slot)
        m.erase(0, HDR_LEN)  # a half-written slot never carries a valid header
        m.sync()
        self._dl_slot = slot
        self._dl_size = size
        self._dl_have = 0
        self.reason = ""
        return True

    def write(self, offset, data):
        """Write a block at `offset`; blocks come in order (a repeated block is accepted)."""
        if self._dl_slot is None:
            return self._refuse("no download")
        n = len(data)
        if offset < 0 or offset > self._dl_have:
            return self._refuse("sequence")
        if offset + n > self._dl_size:
            return self._refuse("overflow")
        self.slots[self._dl_slot].write(offset, data)
        if offset + n > self._dl_have:
            self._dl_have = offset + n
        return True

    def finish(self):
        """Verify the downloaded image; on success mark it pending (boots at next reset)."""
        return run_to_end(self.finish_steps())

    def finish_steps(self):
        """finish() in bounded steps (controller.steps)."""
        slot = self._dl_slot
        if slot is None:
            return False, "no download"
        if self._dl_have != self._dl_size:
            self._dl_slot = None
            return False, "incomplete"
        m = self.slots[slot]
        m.sync()
        ok, got = yield from verify_image_steps(m, self._dl_size, self.public_key, self.target)
        self._dl_slot = None
        if not ok:
            self.reason = got
            return False, got
        self._save(self._active, slot, 0, R_PENDING)  # the commit point
        return True, "ok"

    def erase(self):
        """Erase the download slot (UDS RoutineControl erase memory)."""
        return run_to_end(self.erase_steps())

    def erase_steps(self):
        """erase() in bounded steps (controller.steps): one STEP_BYTES sector per step."""
        if self.in_trial():
            return self._refuse("unconfirmed image running")
        slot = self.target_slot()
        self._release(slot)
        self._dl_slot = None
        m = self.slots[slot]
        for off in range(0, m.size, STEP_BYTES):
            m.erase(off, STEP_BYTES if off + STEP_BYTES <= m.size else m.size - off)
            yield
        m.sync()
        return True

    def check(self, slot=None):
        """Verify an image (default: the download slot) without changing anything."""
        return run_to_end(self.check_steps(slot))

    def check_steps(self, slot=None):
        """check() in bounded steps (controller.steps)."""
        if slot is None:
            slot = self.target_slot()
        if slot not in (0, 1):
            return False, "slot"
        if self._dl_slot == slot:
            return False, "download in progress"
        ok, got = yield from verify_image_steps(self.slots[slot], None, self.public_key, self.target)
        return (True, "ok") if ok else (False, got)

    # --- boot ---------------------------------------------------------------------------
    def select_boot(self):
        """Called once per reset, before the application: returns the slot to run.

        A pending image gets up to `max_attempts` boots; each is counted in the record
        *before* it runs, so a crash or a cut inside the new firmware still counts. When
        they are used up without confirm(), the record falls back to the active slot."""
        self._load()
        p = self._pending
        if p == NONE:
            return self._active
        if self._attempts >= self.max_attempts:
            self._save(self._active, NONE, 0, R_ROLLED_BACK)
            return self._active
        if self._attempts == 0:
            ok, _ = verify_image(self.slots[p], None, self.public_key, self.target)
            if not ok:
                self._save(self._active, NONE, 0, R_REFUSED_AT_BOOT)
                return self._active
        self._save(self._active, p, self._attempts + 1, R_PENDING)
        return p

    def confirm(self):
        """The running image passed its self-test: make it the active one. True when the
        running image is confirmed afterwards."""
        self._load()
        if not self.in_trial():
            return True  # the running image is the active one already
        self._save(self._pending, NONE, 0, R_CONFIRMED)
        return True

    def reject(self):
        """The running trial image failed its self-test: roll back now (takes effect at
        the next reset). False when no trial is running."""
        self._load()
        if not self.in_trial():
            return False
        self._save(self._active, NONE, 0, R_REJECTED)
        return True

    def manifest(self, slot):
        if slot not in (0, 1):
            return None
        return read_manifest(self.slots[slot])


# --- running an image: a read-only file system over a slot (os.mount) ----------------------

try:
    import io as _io

    _StreamBase = _io.IOBase
except (ImportError, AttributeError):
    _StreamBase = object


class ImageFile(_StreamBase):
    """A read-only file inside an image (what `import` reads a .mpy through)."""

    def __init__(self, medium, start, size):
        self._m = medium
        self._start = start
        self._size = size
        self._pos = 0

    def readinto(self, buf):
        n = self._size - self._pos
        if n > len(buf):
            n = len(buf)
        if n <= 0:
            return 0
        buf[:n] = self._m.read(self._start + self._pos, n)
        self._pos += n
        return n

    def read(self, n=-1):
        left = self._size - self._pos
        if n < 0 or n > left:
            n = left
        data = self._m.read(self._start + self._pos, n) if n > 0 else b""
        self._pos += n
        return data

    def ioctl(self, req, arg):
        return 0

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        pass


class ImageFS:
    """MicroPython VFS over a verified image: `os.mount(ImageFS(slot), "/app")` and put
    "/app" first on sys.path; modules are then imported straight from the slot."""

    def __init__(self, medium):
        man = read_manifest(medium)
        if man is None:
            raise OSError(22)
        mlen = parse_header(medium.read(0, HDR_LEN))[0]
        base = HDR_LEN + mlen
        self._m = medium
        self._files = {}
        self._dirs = {"": 1}
        for f in man["files"]:
            self._files[f["path"]] = (base + f["offset"], f["size"])
            parts = f["path"].split("/")
            for i in range(1, len(parts)):
                self._dirs["/".join(parts[:i])] = 1
        self._cwd = "/"

    def _norm(self, path):
        # the VFS layer hands over paths relative to the mount point ("/controller/x.mpy")
        return path.strip("/")

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def stat(self, path):
        p = self._norm(path)
        if p in self._files:
            return (0x8000, 0, 0, 0, 0, 0, self._files[p][1], 0, 0, 0)
        if p in self._dirs:
            return (0x4000, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        raise OSError(2)

    def open(self, path, mode):
        if "w" in mode or "a" in mode or "+" in mode:
            raise OSError(30)  # EROFS
        p = self._norm(path)
        if p not in self._files:
            raise OSError(2)
        start, size = self._files[p]
        return ImageFile(self._m, start, size)

    def ilistdir(self, path):
        p = self._norm(path)
        if p not in self._dirs:
            raise OSError(2)
        pre = p + "/" if p else ""
        seen = {}
        out = []
        for name in list(self._files) + list(self._dirs):
            if name and name.startswith(pre):
                head = name[len(pre):].split("/")[0]
                if head and head not in seen:
                    seen[head] = 1
                    isdir = (pre + head) in self._dirs
                    out.append((head, 0x4000 if isdir else 0x8000, 0))
        return iter(out)

    def chdir(self, path):
        self._cwd = path

    def getcwd(self):
        return self._cwd

    def statvfs(self, path):
        return (512, 512, 0, 0, 0, 0, 0, 0, 0, 255)


def boot(updater, mount_point="/app", package="controller"):
    """Board boot: pick the slot, mount it at `mount_point` ahead of the base firmware on
    sys.path, and drop the already imported `package` modules so the application imports
    the slot's copy. Returns the slot (NONE: run the base firmware as it is)."""
    import os
    import sys

    slot = updater.select_boot()
    if slot == NONE:
        return slot
    os.mount(ImageFS(updater.slots[slot]), mount_point)
    sys.path.insert(0, mount_point)
    for name in list(sys.modules):
        if name == package or name.startswith(package + "."):
            del sys.modules[name]
    return slot
