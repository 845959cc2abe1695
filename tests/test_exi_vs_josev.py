"""Our EXI codec next to Josev's EXIficient (JVM via py4j) on the same messages, in the same
run: the same bytes, and the speed ratio (reported, not asserted: shared, noisy machines).
Needs Java and Josev's venv (.josev/, made by tests/test_josev_interop.py, or JOSEV_PY)."""

import json
import os
import pathlib
import shutil
import statistics
import subprocess
import time

import pytest

from controller.iso15118 import exi

ROOT = pathlib.Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "data" / "iso15118-20-vectors.jsonl"
JOSEV_PY = os.environ.get("JOSEV_PY") or str(ROOT / ".josev" / "bin" / "python")


def _have_josev():
    if shutil.which("java") is None or not pathlib.Path(JOSEV_PY).exists():
        return False
    return subprocess.run([JOSEV_PY, "-c", "import iso15118"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _have_josev(), reason="needs Java and Josev's venv (.josev/ or JOSEV_PY); "
                                              "tests/test_josev_interop.py creates it when it can run")
def test_same_bytes_and_speed_next_to_exificient():
    r = subprocess.run([JOSEV_PY, str(ROOT / "tools" / "bench_josev.py"), str(VECTORS), "5"], capture_output=True,
                       text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    josev = json.loads(r.stdout.strip().splitlines()[-1])
    assert josev["n"] >= 15 and josev["same_bytes"] == josev["n"]  # EXIficient reproduces the vectors here too
    vectors = [json.loads(x) for x in VECTORS.read_text().splitlines()]
    picked = {}
    for v in vectors:
        picked.setdefault(v["ns"], [])
        if len(picked[v["ns"]]) < 5:
            picked[v["ns"]].append(v)
    ours = []
    for vs in picked.values():
        for v in vs:
            t0 = time.perf_counter_ns()
            data = exi.encode(v["ns"], v["json"])
            exi.decode(v["ns"], data)
            ours.append((time.perf_counter_ns() - t0) / 1000)
            assert data.hex() == v["exi"]
    theirs = [a + b for a, b in zip(josev["encode_us"], josev["decode_us"])]
    ratio = statistics.median(theirs) / statistics.median(ours)
    print(f"\nEXI encode+decode median: ours {statistics.median(ours):.0f} us, EXIficient "
          f"{statistics.median(theirs):.0f} us, ratio {ratio:.0f}x (target >= 200x)")
    assert len(ours) == josev["n"]
