"""The boot flow: select the firmware slot once per reset, mount it, start the application.

    slot = launch.boot_slot(data_dir)         # board boot.py; controller.main on Linux
    controller.main.main(argv, booted=slot)   # the application, told the decision

boot_slot() runs Updater.select_boot() -- which counts a trial boot in the boot record
*before* the new firmware runs, so a crash, a hang or a power cut inside it counts too --
mounts the selected slot's image at /app (ImageFS) ahead of the base firmware on
sys.path and drops the `controller` modules imported so far, so that the next import
takes the slot's copy. Nothing after it may call select_boot() again in the same boot:
the application is handed the decision (`booted`), and Updater.running() gives the same
slot from the record without counting.

Where it runs:
- a MicroPython board: board/boot.py calls boot_slot(), board/main.py calls run_board();
- Linux, the MicroPython unix port: `micropython -m controller.main` calls boot_slot()
  itself and hands over to the slot's controller.main (a supervisor restarts the
  process after exit status 3, which boots the next selection);
- CPython: images hold .mpy files, which CPython cannot import. boot_slot() returns None
  without touching the record: the source tree runs, nothing is counted or confirmed.

Files under the data folder (--data): boot.bin (the boot record), slot0.bin, slot1.bin
(the A/B slots); config.bin and dtc.bin belong to the application.
"""

BOOT_FILE = "boot.bin"
BOOT_SIZE = 4096
SLOT_FILES = ("slot0.bin", "slot1.bin")
SLOT_SIZE = 512 * 1024
MOUNT_POINT = "/app"
ARGS_FILE = "v2xgw.args"  # on a board: the options of controller.main (relative to the current folder, "/")
NONE = 0xFF  # controller.update.slots.NONE: the base firmware


def data_dir(data):
    """The --data folder as a prefix for file names ("." -> "./", "/" -> "/")."""
    return data if data.endswith("/") else data + "/"


def open_updater(data, slot_size=SLOT_SIZE):
    """The Updater over the boot record and slot files under `data` (created erased when missing)."""
    from controller.storage import FileMedium
    from controller.update.slots import Updater

    d = data_dir(data)
    return Updater(FileMedium(d + BOOT_FILE, BOOT_SIZE),
                   (FileMedium(d + SLOT_FILES[0], slot_size), FileMedium(d + SLOT_FILES[1], slot_size)))


def _close(medium):
    close = getattr(medium, "close", None)
    if close is not None:
        close()


def boot_slot(data, say=None, mount_point=MOUNT_POINT, package="controller"):
    """Once per reset, before the application: the boot selector's decision.

    NONE: the base firmware runs (no boot record yet, or nothing confirmed); 0 or 1: that
    slot is mounted at `mount_point` and the application (`package`) must be imported
    from it; None: this interpreter cannot run an image (no os.mount: CPython), nothing
    was counted.
    say(text) reports what happened (a trial boot, a rollback, a slot that cannot be
    mounted)."""
    import os

    d = data_dir(data)
    try:
        os.stat(d + BOOT_FILE)
    except OSError:
        return NONE  # never updated: the base firmware, and nothing to count
    u = open_updater(data)
    if not hasattr(os, "mount"):
        st = u.status()
        if say is not None and (st["active"] != NONE or st["pending"] != NONE):
            say("boot: this interpreter cannot run slot images (.mpy): the base firmware runs and the boot "
                "record is left alone (active %s, pending %s); run micropython -m controller.main to boot them"
                % (_name(st["active"]), _name(st["pending"])))
        for m in (u._rec.medium,) + u.slots:
            _close(m)
        return None
    before = u.status()
    slot = u.select_boot()  # the one call per reset: a trial boot is counted here
    if say is not None:
        say(describe(u, slot, before))
    for m in (u._rec.medium,) + u.slots:
        _close(m)
    u = None
    if slot == NONE:
        return NONE
    try:
        mount(d + SLOT_FILES[slot], mount_point, package)
    except OSError as e:
        # the attempt is counted: after max_attempts the record rolls back
        if say is not None:
            say("boot: slot %d cannot be mounted (%s): the base firmware runs" % (slot, e))
        return NONE
    return slot


def mount(path, mount_point=MOUNT_POINT, package="controller"):
    """Mount the image in the slot file `path` at `mount_point`, ahead of the base firmware
    on sys.path, and drop the imported `package` modules so that the next import takes the
    slot's copy. Through controller/update/imagefs.py alone: the boot selector's modules
    (storage, the verifier) are not kept alive by the mount and are freed."""
    import os
    import sys

    from controller.update.imagefs import ImageFS, SlotFile

    f = SlotFile(path)
    try:
        os.mount(ImageFS(f), mount_point)
    except OSError:
        f.close()
        raise
    sys.path.insert(0, mount_point)
    for name in list(sys.modules):
        if name == package or name.startswith(package + "."):
            del sys.modules[name]


def _name(slot):
    return "base" if slot == NONE else "slot %d" % slot


def describe(updater, slot, before=None):
    """One line on this boot's decision, for the log."""
    st = updater.status()
    if slot == NONE:
        line = "boot: base firmware"
    else:
        m = updater.manifest(slot)
        line = "boot: slot %d, version %s" % (slot, m.get("software_version", "?") if m else "?")
        if st["pending"] == slot:
            line += ", trial %d of %d (confirmed after its self-test)" % (st["attempts"], st["max_attempts"])
    if before is not None and before["pending"] != NONE and st["pending"] == NONE and st["result"] != "confirmed":
        line += "; the image in slot %d was %s" % (before["pending"], st["result"].replace("_", " "))
    return line


def version(updater, booted):
    """The software version of the firmware this boot runs: the slot's manifest, or "base"."""
    if booted not in (0, 1) or updater is None:
        return "base"
    m = updater.manifest(booted)
    return str(m.get("software_version", "?")) if m else "base"


def start_selftest(updater, gw, booted, now, deadline_s=None):
    """The self-test of this boot (controller/update/selftest.py) when it runs a trial image
    (`booted` is the pending slot the record counted); None otherwise."""
    if updater is None or booted not in (0, 1) or not updater.in_trial() or updater.running() != booted:
        return None
    from controller.update.selftest import DEADLINE_S, SelfTest

    return SelfTest(updater, gw, now, deadline_s=DEADLINE_S if deadline_s is None else deadline_s)


def read_args(path=ARGS_FILE):
    """The options in a board's args file: whitespace-separated, '#' starts a comment line.
    A missing file gives no options (the defaults of controller.main)."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return []
    out = []
    for line in text.split("\n"):
        if not line.strip().startswith("#"):
            out.extend(line.split())
    return out


def option(argv, name, default):
    """The value of option `name` in argv (the last one given), or `default`."""
    value = default
    for i in range(len(argv) - 1):
        if argv[i] == name:
            value = argv[i + 1]
    return value


def run_board(argv=None, booted=None, reset=None, pause_s=5):
    """board/main.py: run controller.main.main(argv, booted), then do with its exit status
    what a board does. 3 (a restart was requested: ECUReset, a trial image that failed its
    self-test) and 1 (the bus connection was lost) reset the board; so does a crash, after
    printing it and a pause (time to interrupt a crash loop at the REPL). 0 (--duration
    ran out) and 2 (an invalid configuration or option: a restart would not help) return
    to the REPL. Returns the status where the board cannot reset itself (the unix port).
    The crash and its reset count as a boot attempt of a trial image."""
    import sys

    if argv is None:
        argv = read_args()
    if reset is None:
        try:
            import machine

            reset = getattr(machine, "reset", None)
        except ImportError:
            reset = None
    try:
        import controller.main

        status = controller.main.main(argv, booted)
    except Exception as e:  # a crash: print it, then reset like a watchdog would
        if hasattr(sys, "print_exception"):
            sys.print_exception(e)
        else:
            import traceback

            traceback.print_exception(e)
        status = -1
        if reset is not None and pause_s:
            import time

            time.sleep(pause_s)
    if status in (1, 3, -1) and reset is not None:
        reset()
    return status
