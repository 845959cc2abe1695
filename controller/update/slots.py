"""A/B update slots with a power-loss-safe boot record and rollback.

Boot record (a storage.TwoSlot, so every write is old-or-new under a power cut):
    active   slot of the confirmed image (0, 1, or NONE = the base firmware)
    pending  slot of a verified image awaiting its trial boots, or NONE
    attempts trial boots of the pending image so far
    result   what happened last (R_* below)

Sequence: begin(size) -> write(offset, data)... -> finish() verifies and marks the slot
pending -> reset -> select_boot() counts an attempt and boots the pending slot (once per
reset: controller/update/launch.py) -> the new firmware passes its self-test
(controller/update/selftest.py) and calls confirm() (it becomes active), or it does not
within `max_attempts` boots and select_boot() rolls back to the active slot.
The active image is never written while it is the only confirmed one, and the boot
record is the only commit point, so a cut at any moment leaves a bootable unit.
The image format and its verification are in controller/update/image.py.
"""

import struct

from controller.steps import run_to_end
from controller.storage import TwoSlot
from controller.update.image import (HDR_LEN, PUBLIC_KEY, SIG_LEN, STEP_BYTES, TARGET, ImageFS, read_manifest,
                                     verify_image, verify_image_steps)

NONE = 0xFF
R_NONE, R_PENDING, R_CONFIRMED, R_ROLLED_BACK, R_REFUSED_AT_BOOT, R_REJECTED = 0, 1, 2, 3, 4, 5
RESULT_NAMES = ("none", "pending", "confirmed", "rolled_back", "refused_at_boot", "rejected")
BOOT_FMT = "<BBBBI"  # active, pending, attempts, result, reserved
BOOT_LEN = 8


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
        """The slot the boot selector chose for this boot, from the record alone: after
        select_boot() it is the slot select_boot() returned, and nothing is written (the
        application learns the decision without counting another attempt)."""
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
