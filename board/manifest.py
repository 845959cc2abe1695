# Freeze manifest for a MicroPython board build: the firmware's bytecode and strings
# then live in flash and only its objects take heap (docs/board.md):
#
#   make -C ports/stm32 BOARD=NUCLEO_H723ZG FROZEN_MANIFEST=/path/to/v2x-gateway/board/manifest.py
#
# The port's own frozen modules come first. Then controller/, except what only the
# tools, the HIL and the tests use (the list below: each is imported lazily, if at all,
# by the firmware). boot.py and main.py stay files on the board's file system: they are
# what the update flow starts from (docs/storage-and-update.md).
# Frozen modules are found before the file system's, so a board that boots updates from
# A/B slots must not freeze controller/ (a slot mounted at /app goes on sys.path ahead of
# the file system, but behind frozen code): freeze it for boards without updates, or
# deploy .mpy files (v2xgw deploy) where updates run.

include("$(PORT_DIR)/boards/manifest.py")

# modules no board run imports (CPython adapters, HIL buses, codec halves for tools,
# names for reports, the sourced grid-code tables, profile checks)
LEAVE_OUT = (
    "controller/bus/ports/pythoncan.py",
    "controller/bus/ports/memory.py",
    "controller/bus/candb_lazy.py",
    "controller/event_names.py",
    "controller/protection/grid_code_sources.py",
    "controller/protection/ride_through_check.py",
)


def _firmware_files(root):
    import os

    out = []
    for base, _dirs, files in os.walk(os.path.join(root, "controller")):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(base, f), root).replace(os.sep, "/")
                if rel not in LEAVE_OUT:
                    out.append(rel[len("controller/"):])
    return sorted(out)


# makemanifest runs a manifest with its own folder as the working directory: ".." is the
# project's root
package("controller", files=_firmware_files(".."), base_path="..", opt=3)
