"""Shared fixtures: Josev (PyPI iso15118), the independent ISO 15118-20 implementation the
interoperability and codec-comparison tests run against, in a venv of its own."""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
JOSEV_VERSION = "0.31.2"


@pytest.fixture(scope="session")
def josev_py():
    """Python of a venv with Josev (JOSEV_PY, or .josev/ made on first use); skips with the reason."""
    if shutil.which("java") is None:
        pytest.skip("Java not installed (Josev's EXI codec runs in a JVM)")
    py = os.environ.get("JOSEV_PY")
    if py:
        return py
    venv = ROOT / ".josev"
    py = venv / "bin" / "python"
    ok = py.exists() and subprocess.run([str(py), "-c", "import iso15118, aiofile"], capture_output=True).returncode == 0
    if not ok:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        r = subprocess.run([str(py), "-m", "pip", "install", "-q", f"iso15118=={JOSEV_VERSION}", "aiofile"],
                           capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            pytest.skip("cannot install Josev (iso15118) from the package registry: " + r.stderr[-500:])
    return str(py)
