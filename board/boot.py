# boot.py: MicroPython runs it at every reset, before main.py, in the same namespace.
#
# Selects the firmware once per reset: a newly flashed image is counted as a trial boot
# in the boot record *before* it runs (a crash, a watchdog reset or a power cut inside it
# counts too), then its slot is mounted at /app, ahead of the base firmware in /controller.
# main.py starts the application from there and is told the decision (BOOT_SLOT), so it
# never counts again. The options of controller.main are in /v2xgw.args (--data tells
# where the boot record and the slots are). docs/storage-and-update.md, "The boot flow".
#
# boot.py must not fail: on many ports main.py does not run after a failed boot.py. Any
# error falls back to the base firmware.
try:
    from controller.update import launch

    ARGV = launch.read_args()
    BOOT_SLOT = launch.boot_slot(launch.option(ARGV, "--data", "."), print)
    del launch
except Exception as e:  # noqa: BLE001 - the board must still start
    import sys

    sys.print_exception(e)
    ARGV = None
    BOOT_SLOT = 0xFF  # the base firmware; a counted trial that never confirms rolls back
import gc

gc.collect()
