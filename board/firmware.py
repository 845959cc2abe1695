# The firmware's part of a freeze manifest: controller/, except what only the tools, the
# HIL and the tests use (the list below: each is imported lazily, if at all, by the
# firmware). board/manifest.py includes it after a board port's own frozen modules; a
# build that wants the firmware alone (the unix port's 32-bit heap measurement,
# docs/board.md) names this file as FROZEN_MANIFEST.

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
