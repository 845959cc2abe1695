# Freeze manifest for a MicroPython board build: the firmware's bytecode and strings
# then live in flash and only its objects take heap (docs/board.md):
#
#   make -C ports/stm32 BOARD=NUCLEO_H723ZG FROZEN_MANIFEST=/path/to/v2x-gateway/board/manifest.py
#
# The port's own frozen modules come first, then the firmware (board/firmware.py:
# controller/ without what only the tools, the HIL and the tests use). boot.py and
# main.py stay files on the board's file system: they are what the update flow starts
# from (docs/storage-and-update.md).
# Frozen modules are found before the file system's, so a board that boots updates from
# A/B slots must not freeze controller/ (a slot mounted at /app goes on sys.path ahead of
# the file system, but behind frozen code): freeze it for boards without updates, or
# deploy .mpy files (v2xgw deploy) where updates run.

include("$(PORT_DIR)/boards/manifest.py")
include("firmware.py")
