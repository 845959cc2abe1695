"""Our EXI codec next to Josev's EXIficient (JVM via py4j) on the same messages, in the same
run: the same bytes, and the speed ratio (reported, not asserted: shared, noisy machines).
Needs Java; Josev's venv comes from the josev_py fixture (tests/conftest.py)."""

import json
import pathlib
import statistics
import subprocess
import time

from controller.iso15118 import exi

ROOT = pathlib.Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "data" / "iso15118-20-vectors.jsonl"


def test_same_bytes_and_speed_next_to_exificient(josev_py):
    r = subprocess.run([josev_py, str(ROOT / "tools" / "bench_josev.py"), str(VECTORS), "5"], capture_output=True,
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
