# main.py: MicroPython runs it after boot.py, in the same namespace (ARGV, BOOT_SLOT).
#
# Starts controller.main from the slot boot.py mounted (or the base firmware), and resets
# the board when it asks for a restart (exit status 3: a UDS ECUReset, or a trial image
# that failed its self-test), loses its bus (1) or crashes. docs/storage-and-update.md.
try:
    BOOT_SLOT
except NameError:  # boot.py is missing: controller.main selects the slot itself, still once
    ARGV = None
    BOOT_SLOT = None
from controller.update import launch  # the slot's copy when one is mounted

STATUS = launch.run_board(ARGV, BOOT_SLOT)
