"""board/manifest.py, the freeze manifest for a MicroPython board build, held against the
tree: run it as MicroPython's makemanifest does (in its own folder, with include() and
package() provided) and check that it freezes every module the firmware loads on a
board run, none that only tools and tests use, and only files that exist.

A board build itself is not run here (no MicroPython source tree or cross compiler on
a fresh machine); docs/board.md gives the 32-bit unix build with board/firmware.py
frozen that was measured in development, and how to make it.
"""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "board" / "manifest.py"


def _frozen(manifest=MANIFEST):
    """What makemanifest would freeze: include() of a project manifest runs it in its own
    folder (as makemanifest does), a port's is only recorded."""
    calls = {"include": [], "package": []}

    def include(path, **kw):
        calls["include"].append(path)
        if not path.startswith("$("):
            run(manifest.parent / path)

    def run(path):
        cwd = os.getcwd()
        os.chdir(path.parent)
        try:
            exec(path.read_text(), env)
        finally:
            os.chdir(cwd)

    env = {"include": include,
           "package": lambda name, files=None, base_path=".", opt=None: calls["package"].append(
               (name, files, (pathlib.Path(os.getcwd()) / base_path).resolve(), opt))}
    run(manifest)
    return calls


def test_manifest_freezes_existing_firmware_files():
    calls = _frozen()
    assert calls["include"] == ["$(PORT_DIR)/boards/manifest.py", "firmware.py"]
    (name, files, root, opt), = calls["package"]
    assert name == "controller" and opt == 3
    assert root == ROOT
    for f in files:
        assert (root / "controller" / f).is_file(), f
    assert "__init__.py" in files and "main.py" in files and "control/gateway.py" in files
    for left in ("bus/ports/pythoncan.py", "bus/candb_lazy.py", "event_names.py"):
        assert left not in files


def test_the_firmware_manifest_alone_freezes_the_same_files_and_no_port_modules():
    # the 32-bit unix build of docs/board.md names board/firmware.py as FROZEN_MANIFEST
    alone = _frozen(MANIFEST.parent / "firmware.py")
    assert alone["include"] == []
    assert alone["package"] == _frozen()["package"]


def _micropython():
    here = pathlib.Path(sys.executable).parent / "micropython"
    return str(here) if here.exists() else None


@pytest.mark.skipif(_micropython() is None, reason="micropython not installed (pip install '.[test]')")
def test_every_module_a_board_run_loads_is_frozen(tmp_path):
    # the modules controller.main and the gateway load under MicroPython, on the scripted site
    script = (
        "import sys\n"
        "sys.path.insert(0, %r); sys.path.insert(0, %r)\n"
        "import controller.main, controller.control.gateway, controller.housekeeping, controller.runtime\n"
        "from controller.bus.ports import socketcand, machine_can, pyb_can\n"
        "from controller import config\n"
        "from controller.control.gateway import Gateway\n"
        "import sitebus\n"
        "s = sitebus.Site()\n"
        "g = Gateway(config.validate({}), s.gw_port)\n"
        "for t in range(20):\n"
        "    s.send_all(); g.poll(t * 10000); g.tick(t * 10000)\n"
        "print(' '.join(sorted(k for k in sys.modules if k.startswith('controller'))))\n"
    ) % (str(ROOT), str(ROOT / "tests" / "firmware"))
    r = subprocess.run([_micropython(), "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    loaded = r.stdout.split()
    (_, files, _, _), = _frozen()["package"]
    frozen = {("controller/" + f)[:-3].replace("/", ".").replace(".__init__", "") for f in files}
    sitebus_only = {"controller.bus.ports.memory", "controller.bus.candb_lazy"}  # the scripted site's, not a board's
    missing = [m for m in loaded if m not in frozen and m not in sitebus_only]
    assert not missing, missing
