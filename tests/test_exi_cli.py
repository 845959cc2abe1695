"""`v2xgw exi encode|decode`: line in, line out, in order, one error line per bad item."""

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
VECTORS = [json.loads(x) for x in (ROOT / "tests" / "data" / "iso15118-20-vectors.jsonl").read_text().splitlines()]


def _exi(mode, ns, stdin):
    return subprocess.run([sys.executable, "-m", "tools.cli", "exi", mode, "--ns", ns], input=stdin,
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_encode_and_decode_lines_in_order_with_error_lines():
    dc = [v for v in VECTORS if v["ns"].endswith(":DC")][:20]
    ns = dc[0]["ns"]
    lines = [json.dumps(v["json"]) for v in dc]
    lines.insert(3, '{"NotAMessage": {}}')
    lines.insert(7, "{broken json")
    r = _exi("encode", ns, "\n".join(lines) + "\n")
    out = r.stdout.splitlines()
    assert r.returncode == 1 and len(out) == len(lines)
    assert out[3].startswith("error:") and out[7].startswith("error:")
    good = [o for i, o in enumerate(out) if i not in (3, 7)]
    assert good == [v["exi"].upper() for v in dc]
    r = _exi("decode", ns, "\n".join(v["exi"] for v in dc) + "\nzz\n00\n")
    out = r.stdout.splitlines()
    assert [json.loads(o) for o in out[:len(dc)]] == [v["json"] for v in dc]
    assert out[-2].startswith("error:") and out[-1].startswith("error:") and r.returncode == 1


def test_unknown_namespace_exit_2():
    r = _exi("encode", "urn:nope", "{}\n")
    assert r.returncode == 2 and "unknown namespace" in r.stderr
